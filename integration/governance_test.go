package integration

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/meshgate/meshgate/internal/demo"
	demov1 "github.com/meshgate/meshgate/proto/demo/v1"
)

// governanceConfig fronts three backends. Extra is YAML spliced into the
// gRPC cluster; Route into the gRPC route.
const governanceConfig = `
listeners:
  - name: main
    address: 127.0.0.1:0
    virtual_hosts:
      - routes:
          - match: { prefix: /demo.v1.DemoService/ }
            cluster: grpc
            timeout: 10s
{{.Route}}
          - match: { prefix: /echo }
            cluster: http
clusters:
  - name: grpc
    protocol: grpc
    endpoints: [ {{range $i, $b := .Backends}}{{if $i}}, {{end}}"{{$b.GRPCAddr}}"{{end}} ]
{{.Extra}}
  - name: http
    endpoints: [ {{range $i, $b := .Backends}}{{if $i}}, {{end}}"{{$b.HTTPAddr}}"{{end}} ]
{{.Extra}}
`

type governanceData struct {
	Backends     []*demo.Backend
	Extra, Route string
}

func backends(t *testing.T, n int) []*demo.Backend {
	out := make([]*demo.Backend, n)
	for i := range out {
		out[i] = startBackend(t, fmt.Sprintf("b%d", i))
	}
	return out
}

func indent(s string, n int) string {
	pad := strings.Repeat(" ", n)
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i, l := range lines {
		lines[i] = pad + l
	}
	return strings.Join(lines, "\n")
}

// callLoop runs unary calls from n goroutines until stop, counting
// successes and failures.
type callLoop struct {
	ok, failed atomic.Int64
	// cutMidAnswer counts the failed calls the gateway says were cut after
	// their answer began (an upstream that died mid-answer: no retry can
	// hide those, in Envoy neither).
	cutMidAnswer atomic.Int64
	lastErr      atomic.Value
	wg           sync.WaitGroup
	stop         chan struct{}
}

func startCalls(c demov1.DemoServiceClient, n int) *callLoop {
	l := &callLoop{stop: make(chan struct{})}
	for range n {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := c.Echo(ctx, &demov1.EchoRequest{Message: "x"})
				cancel()
				if err != nil {
					l.failed.Add(1)
					if strings.Contains(err.Error(), "(after the response started)") {
						l.cutMidAnswer.Add(1)
					}
					l.lastErr.Store(err.Error())
				} else {
					l.ok.Add(1)
				}
			}
		}()
	}
	return l
}

// failedBeforeAnswer is the failed calls not cut mid-answer: those a
// retry could have hidden.
func (l *callLoop) failedBeforeAnswer() int64 { return l.failed.Load() - l.cutMidAnswer.Load() }

func (l *callLoop) end() {
	close(l.stop)
	l.wg.Wait()
}

// waitFor polls cond for up to 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A backend killed mid-load: requests move to the others, and retries keep
// the client from seeing the failures.
func TestGovernance_BackendKilledMidLoad(t *testing.T) {
	bs := backends(t, 3)
	g := startGateway(t, render(t, governanceConfig, governanceData{
		Backends: bs,
		Route: indent(`
retries: { retry_on: "connect-failure,reset,unavailable", num_retries: 2, skip_previous_hosts: true }`, 12),
		// Room for every caller to retry at once: Envoy's default of 3
		// concurrent retries would, on a loaded machine, turn away the
		// retry of a fourth call that met the dead backend at the same time
		// (correctly: that is the breaker's job, tested elsewhere).
		Extra: indent(`
outlier_detection: { consecutive_5xx: 2, interval: 100ms, base_ejection_time: 30s, max_ejection_percent: 50 }
circuit_breakers: { max_retries: 16 }`, 4),
	}))
	c := demoClient(t, g.addr("main"))
	loop := startCalls(c, 8)
	time.Sleep(300 * time.Millisecond)
	bs[0].Stop()
	killedAt := bs[0].Service.Calls.Load()
	time.Sleep(700 * time.Millisecond)
	loop.end()

	if loop.ok.Load() < 100 {
		t.Fatalf("only %d calls succeeded", loop.ok.Load())
	}
	if f := loop.failedBeforeAnswer(); f > 0 {
		t.Errorf("%d of %d calls failed after a backend was killed (last: %v); retries should have hidden it",
			f, loop.failed.Load()+loop.ok.Load(), loop.lastErr.Load())
	}
	cl := clusterNamed(t, g, "grpc")
	var killed string
	for _, h := range cl.Hosts() {
		if h.Address == bs[0].GRPCAddr {
			killed = h.HealthFlags()
		}
	}
	if killed != "/failed_outlier_check" {
		t.Errorf("the killed backend's health flags are %q, want /failed_outlier_check", killed)
	}
	ej, _ := cl.OutlierStats()
	t.Logf("%d calls ok, %d failed; the killed backend had served %d; %d retries (%d succeeded, %d refused by the breaker); ejections %v",
		loop.ok.Load(), loop.failed.Load(), killedAt, cl.Stats.RqRetry.Load(), cl.Stats.RqRetrySuccess.Load(), cl.Stats.RetryOverflow.Load(), ej)
}

// A backend answering UNAVAILABLE is ejected, gets no traffic while out,
// and is back after the ejection time once it recovers. (The ejection time
// is long enough for the calls made meanwhile on a busy CI machine: with
// 400ms it once ran out under them.)
func TestGovernance_OutlierEjectionAndReturn(t *testing.T) {
	bs := backends(t, 3)
	g := startGateway(t, render(t, governanceConfig, governanceData{
		Backends: bs,
		Extra: indent(`
outlier_detection: { consecutive_5xx: 3, interval: 50ms, base_ejection_time: 3s, max_ejection_percent: 50 }`, 4),
	}))
	c := demoClient(t, g.addr("main"))
	cl := clusterNamed(t, g, "grpc")
	bs[1].Service.Faults.GRPCCode.Store(int32(codes.Unavailable))

	failures := 0
	for range 60 {
		_, err := c.Echo(context.Background(), &demov1.EchoRequest{Message: "x"})
		if status.Code(err) == codes.Unavailable {
			failures++
		}
	}
	if failures != 3 {
		t.Errorf("%d calls failed before the failing backend was ejected, want 3 (consecutive_5xx)", failures)
	}
	ej, active := cl.OutlierStats()
	if ej["consecutive_5xx"] != 1 || active != 1 {
		t.Fatalf("ejections %v, active %d; want one consecutive_5xx ejection", ej, active)
	}
	before := bs[1].Service.Calls.Load()
	for range 30 {
		if _, err := c.Echo(context.Background(), &demov1.EchoRequest{}); err != nil {
			t.Fatalf("a call failed while the bad backend was ejected: %v", err)
		}
	}
	if got := bs[1].Service.Calls.Load(); got != before {
		t.Errorf("the ejected backend got %d calls while ejected", got-before)
	}
	bs[1].Service.Faults.GRPCCode.Store(0) // it recovers
	waitFor(t, "the backend's return after the ejection time", func() bool {
		_, active := cl.OutlierStats()
		return active == 0
	})
	before = bs[1].Service.Calls.Load()
	for range 30 {
		if _, err := c.Echo(context.Background(), &demov1.EchoRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if got := bs[1].Service.Calls.Load() - before; got < 5 {
		t.Errorf("after its return the backend got %d of 30 calls, want its share (~10)", got)
	}
}

// A slow backend: the per-try timeout gives up on it and the retry goes to
// another host, so the client gets a fast answer.
func TestGovernance_SlowBackendPerTryTimeout(t *testing.T) {
	bs := backends(t, 2)
	g := startGateway(t, render(t, governanceConfig, governanceData{
		Backends: bs,
		Route: indent(`
retries: { retry_on: "5xx,reset", num_retries: 2, per_try_timeout: 150ms, skip_previous_hosts: true }`, 12),
	}))
	c := demoClient(t, g.addr("main"))
	bs[0].Service.Faults.Delay.Store(int64(3 * time.Second))
	for i := range 6 {
		start := time.Now()
		resp, err := c.Echo(context.Background(), &demov1.EchoRequest{Message: "x"})
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if resp.GetServer() != "b1" {
			t.Errorf("call %d answered by %s, want the fast backend b1", i, resp.GetServer())
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("call %d took %v: the slow backend was waited for", i, d)
		}
	}
	if n := clusterNamed(t, g, "grpc").Stats.RqTimeout.Load(); n == 0 {
		t.Error("no per-try timeout was counted")
	}
	waitCancel(t, bs[0], "Echo") // the slow backend saw its attempt cancelled
}

// An overloaded cluster answers the excess at once with 503 / UNAVAILABLE
// and says the breaker tripped, rather than queueing it.
func TestGovernance_OverflowAnsweredAtOnce(t *testing.T) {
	bs := backends(t, 1)
	g := startGateway(t, render(t, governanceConfig, governanceData{
		Backends: bs,
		Extra:    indent(`circuit_breakers: { max_requests: 2, max_connections: 2, max_pending_requests: 1 }`, 4),
	}))
	bs[0].Service.Faults.Delay.Store(int64(time.Second))
	c := demoClient(t, g.addr("main"))
	var wg sync.WaitGroup
	results := make(chan error, 6)
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			_, err := c.Echo(context.Background(), &demov1.EchoRequest{})
			if err != nil && time.Since(start) > 500*time.Millisecond {
				err = fmt.Errorf("refused only after %v: %w", time.Since(start), err)
			}
			results <- err
		}()
	}
	wg.Wait()
	close(results)
	var ok, overflow int
	for err := range results {
		switch st := status.Convert(err); {
		case err == nil:
			ok++
		case st.Code() == codes.Unavailable && strings.Contains(st.Message(), "max_requests"):
			overflow++
		default:
			t.Errorf("unexpected result: %v", err)
		}
	}
	if ok != 2 || overflow != 4 {
		t.Errorf("%d succeeded and %d overflowed, want 2 and 4 (max_requests 2)", ok, overflow)
	}
	if n := clusterNamed(t, g, "grpc").Stats.RqOverflow.Load(); n != 4 {
		t.Errorf("rq_overflow = %d, want 4", n)
	}

	// HTTP/1.1: max_connections 2 busy, one more may wait, the rest overflow.
	hc := httpClient(t)
	var hwg sync.WaitGroup
	codesSeen := make(chan int, 5)
	// Long enough that a caller started late on a loaded machine still finds
	// both places taken (at 1s, one of five was once admitted after the
	// first answer: 3 x 200).
	bs[0].Service.Faults.Delay.Store(int64(3 * time.Second))
	for range 5 {
		hwg.Add(1)
		go func() {
			defer hwg.Done()
			resp, err := hc.Get("http://" + g.addr("main") + "/echo")
			if err != nil {
				codesSeen <- -1
				return
			}
			if resp.StatusCode == 503 && resp.Header.Get("X-Envoy-Overloaded") != "true" {
				codesSeen <- -2
			} else {
				codesSeen <- resp.StatusCode
			}
			resp.Body.Close()
		}()
	}
	hwg.Wait()
	close(codesSeen)
	counts := map[int]int{}
	for c := range codesSeen {
		counts[c]++
	}
	if counts[http.StatusOK] != 2 || counts[http.StatusServiceUnavailable] != 3 {
		t.Errorf("HTTP results %v; want 2 x 200 and 3 x 503 with x-envoy-overloaded (max_requests 2)", counts)
	}
}

// An endpoint breaker trips on a failing host, keeps traffic away while
// open, probes it half-open, and closes when it answers again. open_for is
// long enough that the 20 calls end before the first probe, even on a
// loaded machine (at 300ms a slow run let a probe fail a 4th call).
func TestGovernance_EndpointBreaker(t *testing.T) {
	bs := backends(t, 2)
	g := startGateway(t, render(t, governanceConfig, governanceData{
		Backends: bs,
		Extra:    indent(`endpoint_breaker: { consecutive_failures: 3, open_for: 2s }`, 4),
	}))
	c := demoClient(t, g.addr("main"))
	cl := clusterNamed(t, g, "grpc")
	host := func() string {
		for _, h := range cl.Hosts() {
			if h.Address == bs[0].GRPCAddr {
				return h.BreakerState()
			}
		}
		return ""
	}
	bs[0].Service.Faults.GRPCCode.Store(int32(codes.Internal))
	failures := 0
	for range 20 {
		if _, err := c.Echo(context.Background(), &demov1.EchoRequest{}); err != nil {
			failures++
		}
	}
	if failures != 3 || host() != "open" {
		t.Fatalf("%d failures, breaker %q; want 3 failures and the breaker open", failures, host())
	}
	bs[0].Service.Faults.GRPCCode.Store(0)
	waitFor(t, "the breaker to close after a good probe", func() bool {
		_, _ = c.Echo(context.Background(), &demov1.EchoRequest{})
		return host() == "closed"
	})
	var opens uint64
	for _, h := range cl.Hosts() {
		opens += h.BreakerOpens()
	}
	if opens != 1 {
		t.Errorf("breaker opens = %d, want 1", opens)
	}
}

// With every host failing, the retry budget keeps retries from
// multiplying the load.
func TestGovernance_RetryBudget(t *testing.T) {
	bs := backends(t, 2)
	g := startGateway(t, render(t, governanceConfig, governanceData{
		Backends: bs,
		Route:    indent(`retries: { retry_on: "unavailable", num_retries: 5, backoff: { base: 1ms } }`, 12),
		Extra:    indent(`circuit_breakers: { retry_budget: { budget_percent: 10, min_retry_concurrency: 1 } }`, 4),
	}))
	for _, b := range bs {
		b.Service.Faults.GRPCCode.Store(int32(codes.Unavailable))
		b.Service.Faults.Delay.Store(int64(20 * time.Millisecond))
	}
	loop := startCalls(demoClient(t, g.addr("main")), 16)
	time.Sleep(time.Second)
	loop.end()
	requests := loop.ok.Load() + loop.failed.Load()
	attempts := bs[0].Service.Calls.Load() + bs[1].Service.Calls.Load()
	cl := clusterNamed(t, g, "grpc")
	// Without the budget each request would make 6 attempts.
	if float64(attempts) > 1.5*float64(requests) || cl.Stats.RetryOverflow.Load() == 0 {
		t.Errorf("%d requests made %d attempts (%d retries refused by the budget); want at most 1.5 attempts per request",
			requests, attempts, cl.Stats.RetryOverflow.Load())
	}
	t.Logf("%d requests, %d attempts, %d retries refused by the budget", requests, attempts, cl.Stats.RetryOverflow.Load())
}

// A gRPC failure in trailers (after headers, as grpc-go sends it when the
// handler set metadata) is retried on another host.
func TestGovernance_RetryOnTrailerStatus(t *testing.T) {
	bs := backends(t, 2)
	g := startGateway(t, render(t, governanceConfig, governanceData{
		Backends: bs,
		Route:    indent(`retries: { retry_on: "unavailable", num_retries: 1, skip_previous_hosts: true }`, 12),
	}))
	bs[0].Service.Faults.GRPCCode.Store(int32(codes.Unavailable))
	c := demoClient(t, g.addr("main"))
	for i := range 20 {
		resp, err := c.Echo(context.Background(), &demov1.EchoRequest{Message: "x"})
		if err != nil || resp.GetServer() != "b1" {
			t.Fatalf("call %d: %v, %v; want an answer from b1 after a retry", i, resp, err)
		}
	}
	if bs[0].Service.Calls.Load() == 0 {
		t.Fatal("the failing backend was never tried: the test proves nothing")
	}
}

// Active health checks take a host out when it stops serving and put it
// back when it serves again; new hosts wait for their first good check.
func TestGovernance_ActiveHealthChecks(t *testing.T) {
	bs := backends(t, 2)
	g := startGateway(t, render(t, governanceConfig, governanceData{
		Backends: bs,
		Extra:    indent(`health_check: { interval: 50ms, timeout: 1s, unhealthy_threshold: 2, healthy_threshold: 2, grpc: { service: demo.v1.DemoService } }`, 4),
	}))
	c := demoClient(t, g.addr("main"))
	cl := clusterNamed(t, g, "grpc")
	flags := func(b *demo.Backend) string {
		for _, h := range cl.Hosts() {
			if h.Address == b.GRPCAddr {
				return h.HealthFlags()
			}
		}
		return "missing"
	}
	waitFor(t, "both hosts to pass their first check", func() bool { return flags(bs[0]) == "healthy" && flags(bs[1]) == "healthy" })

	bs[0].Health.SetServingStatus("demo.v1.DemoService", healthpb.HealthCheckResponse_NOT_SERVING)
	waitFor(t, "the host to fail its checks", func() bool { return flags(bs[0]) == "/failed_active_hc" })
	before := bs[0].Service.Calls.Load()
	for range 20 {
		if _, err := c.Echo(context.Background(), &demov1.EchoRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if got := bs[0].Service.Calls.Load() - before; got != 0 {
		t.Errorf("the host failing health checks got %d calls", got)
	}
	bs[0].Health.SetServingStatus("demo.v1.DemoService", healthpb.HealthCheckResponse_SERVING)
	waitFor(t, "the host to pass its checks again", func() bool { return flags(bs[0]) == "healthy" })
	attempts, ok, failed, _ := cl.HealthCheckStats()
	if failed < 2 || ok < 4 || attempts != ok+failed {
		t.Errorf("health check counts: %d attempts, %d ok, %d failed", attempts, ok, failed)
	}
}

// Local rate limits answer 429 (HTTP) and RESOURCE_EXHAUSTED (gRPC) past
// the bucket; a route's own bucket wins over the listener's.
func TestGovernance_LocalRateLimit(t *testing.T) {
	b := startBackend(t, "b0")
	g := startGateway(t, render(t, `
listeners:
  - name: main
    address: 127.0.0.1:0
    rate_limit: { requests: 100, per: 1h }
    virtual_hosts:
      - rate_limit: { requests: 2, per: 1h }
        routes:
          - match: { prefix: /demo.v1.DemoService/ }
            cluster: grpc
          - match: { prefix: /echo/own }
            cluster: http
            rate_limit: { requests: 3, per: 1h }
          - match: { prefix: /echo }
            cluster: http
clusters:
  - { name: grpc, protocol: grpc, endpoints: [ "{{.GRPCAddr}}" ] }
  - { name: http, endpoints: [ "{{.HTTPAddr}}" ] }
`, b))
	hc := httpClient(t)
	get := func(path string) int {
		resp, err := hc.Get("http://" + g.addr("main") + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	var got []int
	for range 5 {
		got = append(got, get("/echo/own"))
	}
	if fmt.Sprint(got) != "[200 200 200 429 429]" {
		t.Errorf("route limit of 3: statuses %v", got)
	}
	// The virtual host's bucket of 2 is shared by gRPC and plain /echo.
	c := demoClient(t, g.addr("main"))
	if _, err := c.Echo(context.Background(), &demov1.EchoRequest{}); err != nil {
		t.Fatal(err)
	}
	if st := get("/echo"); st != 200 {
		t.Errorf("second request on the virtual host's bucket: %d", st)
	}
	_, err := c.Echo(context.Background(), &demov1.EchoRequest{})
	if s := status.Convert(err); s.Code() != codes.ResourceExhausted || !strings.Contains(s.Message(), "rate limit") {
		t.Errorf("third call on a bucket of 2: %v, want ResourceExhausted", err)
	}
}

// A stream quiet for longer than the route's idle timeout is reset; one
// that keeps talking outlives it (the gateway's first calls: the handler
// path).
func TestGovernance_IdleTimeout(t *testing.T) {
	checkIdleTimeout(t, "0s", func(_ *testing.T, _ *gateway, _ demov1.DemoServiceClient, call func()) { call() })
}

// oneRouteConfig fronts one gRPC backend with one route; Route is YAML
// spliced into that route.
const oneRouteConfig = `
listeners:
  - name: main
    address: 127.0.0.1:0
    virtual_hosts:
      - routes:
          - match: { prefix: /demo.v1.DemoService/ }
            cluster: grpc
{{.Route}}
clusters:
  - { name: grpc, protocol: grpc, endpoints: [ "{{.GRPC}}" ] }
`

type oneRouteData struct{ GRPC, Route string }

// checkIdleTimeout runs a route with a 200ms stream idle timeout (and the
// given route timeout): a stream sending every 50ms outlives it; one quiet
// for 600ms ends DEADLINE_EXCEEDED before its next message and the
// backend's handler is cancelled. Calls go through th.
func checkIdleTimeout(t *testing.T, routeTimeout string, th through) {
	b := startBackend(t, "b0")
	g := startGateway(t, render(t, oneRouteConfig, oneRouteData{GRPC: b.GRPCAddr,
		Route: indent("timeout: "+routeTimeout+"\nidle_timeout: 200ms", 12)}))
	c := demoClient(t, g.addr("main"))
	th(t, g, c, func() {
		s, err := c.ServerStream(context.Background(), &demov1.ServerStreamRequest{Count: 10, IntervalMs: 50})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := drain(s); err != nil || len(got) != 10 {
			t.Fatalf("a stream sending every 50ms over 500ms: %d messages, %v; want all 10", len(got), err)
		}
	})
	th(t, g, c, func() {
		s, err := c.ServerStream(context.Background(), &demov1.ServerStreamRequest{Count: 3, IntervalMs: 600})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err = drain(s)
		if st := status.Convert(err); st.Code() != codes.DeadlineExceeded || !strings.Contains(st.Message(), "idle") {
			t.Fatalf("a stream quiet for 600ms past a 200ms idle timeout: %v, want DeadlineExceeded (stream idle timeout)", err)
		}
		if d := time.Since(start); d >= 600*time.Millisecond {
			t.Errorf("the idle stream ended after %v, not before its next message at 600ms", d)
		}
		waitCancel(t, b, "ServerStream")
	})
}

// A backend that sends its response headers and then dies, before the
// first message: nothing has reached the client, so retry_on reset moves
// the call to another host (a backend killed mid-load does this).
func TestGovernance_ResetAfterHeadersIsRetried(t *testing.T) {
	good := startBackend(t, "good")
	var cut atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bad := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // a unary server reads the request first
		cut.Add(1)
		w.Header().Set("Content-Type", "application/grpc")
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler) // RST_STREAM after the headers
	}), ErrorLog: log.New(io.Discard, "", 0)}
	bad.Protocols = new(http.Protocols)
	bad.Protocols.SetUnencryptedHTTP2(true)
	go func() { _ = bad.Serve(ln) }()
	t.Cleanup(func() { _ = bad.Close() })

	g := startGateway(t, fmt.Appendf(nil, `
listeners:
  - name: main
    address: 127.0.0.1:0
    virtual_hosts:
      - routes:
          - match: { prefix: / }
            cluster: grpc
            retries: { retry_on: reset, num_retries: 1, skip_previous_hosts: true }
clusters:
  - name: grpc
    protocol: grpc
    endpoints: [ %q, %q ]
`, ln.Addr().String(), good.GRPCAddr))
	c := demoClient(t, g.addr("main"))
	for i := range 20 {
		resp, err := c.Echo(context.Background(), &demov1.EchoRequest{Message: "x"})
		if err != nil || resp.GetServer() != "good" {
			t.Fatalf("call %d: %v, %v; want an answer from the good backend after a retry", i, resp, err)
		}
	}
	if cut.Load() == 0 {
		t.Fatal("the backend that cuts its answers was never tried: the test proves nothing")
	}
}
