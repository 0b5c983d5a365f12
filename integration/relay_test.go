package integration

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	demov1 "github.com/meshgate/meshgate/proto/demo/v1"
)

// The HTTP/2 server relays plain gRPC calls frame by frame once the
// upstream connection is up (the first call of a gateway goes through a
// handler and dials). These tests warm the connection, check that the call
// under test was relayed, and that it behaves as through a handler: the
// other gRPC tests cover the handler path (their one call is the first).

// relayed runs call after warming the gateway's connection to the grpc
// cluster, and fails the test unless the call was relayed.
func relayed(t *testing.T, g *gateway, c demov1.DemoServiceClient, call func()) {
	t.Helper()
	if _, err := c.Echo(context.Background(), &demov1.EchoRequest{Message: "warm"}); err != nil {
		t.Fatalf("warm-up call: %v", err)
	}
	cl := clusterNamed(t, g, "grpc")
	// The warm-up dialed; wait until a call is relayed (the connection
	// is ready) before the one under test.
	deadline := time.Now().Add(5 * time.Second)
	for before := cl.Stats.RqRelayed.Load(); cl.Stats.RqRelayed.Load() == before; {
		if time.Now().After(deadline) {
			t.Fatal("no call was relayed: the relay did not take plain gRPC calls")
		}
		if _, err := c.Echo(context.Background(), &demov1.EchoRequest{Message: "warm"}); err != nil {
			t.Fatalf("warm-up call: %v", err)
		}
	}
	before := cl.Stats.RqRelayed.Load()
	call()
	if cl.Stats.RqRelayed.Load() == before {
		t.Fatal("the call under test was not relayed")
	}
}

func TestRelay_Calls(t *testing.T) {
	b := startBackend(t, "b1")
	g := startGateway(t, render(t, baseConfig, baseData{GRPC: b.GRPCAddr, HTTP: b.HTTPAddr}))
	c := demoClient(t, g.addr("main"))
	relayed(t, g, c, func() {
		resp, err := c.Echo(context.Background(), &demov1.EchoRequest{Message: "through the relay"})
		if err != nil || resp.GetMessage() != "through the relay" {
			t.Fatalf("Echo = %v, %v", resp, err)
		}
	})
	relayed(t, g, c, func() {
		// More than the client's and the backend's initial windows, both
		// ways, through a slow reader: the relay holds back, nothing lost.
		s, err := c.ServerStream(context.Background(), &demov1.ServerStreamRequest{Count: 200, Message: strings.Repeat("x", 4096)})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for {
			m, err := s.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("after %d messages: %v", n, err)
			}
			if len(m.GetMessage()) != 4096 {
				t.Fatalf("message %d is %d bytes", n, len(m.GetMessage()))
			}
			n++
			if n%50 == 0 {
				time.Sleep(20 * time.Millisecond)
			}
		}
		if n != 200 {
			t.Fatalf("%d messages, want 200", n)
		}
	})
	relayed(t, g, c, func() {
		s, err := c.BidiStream(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			if err := s.Send(&demov1.EchoRequest{Message: strings.Repeat("y", 20000)}); err != nil {
				t.Fatal(err)
			}
			m, err := s.Recv()
			if err != nil || len(m.GetMessage()) != 20000 {
				t.Fatalf("bidi message %d: %d bytes, %v", i, len(m.GetMessage()), err)
			}
		}
		_ = s.CloseSend()
		if _, err := s.Recv(); err != io.EOF {
			t.Fatalf("end of bidi stream: %v", err)
		}
	})
	relayed(t, g, c, func() {
		b.Service.Faults.GRPCCode.Store(int32(codes.PermissionDenied))
		defer b.Service.Faults.GRPCCode.Store(0)
		_, err := c.Echo(context.Background(), &demov1.EchoRequest{})
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("a trailers-only answer = %v, want PermissionDenied", err)
		}
	})
}

// The deadline and cancellation cases of TestGRPC_Deadlines, relayed.
func TestRelay_DeadlinesAndCancel(t *testing.T) {
	checkDeadlines(t, relayed)
}

func TestRelay_UpstreamResetsAndLoss(t *testing.T) {
	for _, tc := range backendResets {
		t.Run(tc.name, func(t *testing.T) {
			addr := serveH2C(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				if strings.HasSuffix(r.URL.Path, "/Echo") {
					w.Header().Set("Content-Type", "application/grpc")
					w.Header().Set("Trailer", "Grpc-Status")
					_, _ = w.Write([]byte{0, 0, 0, 0, 0})
					w.Header().Set("Grpc-Status", "0")
					return
				}
				tc.reset(w)
			}))
			g := startGateway(t, render(t, baseConfig, baseData{GRPC: addr, HTTP: addr}))
			c := demoClient(t, g.addr("main"))
			relayed(t, g, c, func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				s, err := c.ServerStream(ctx, &demov1.ServerStreamRequest{Count: 1})
				if err == nil {
					_, err = drain(s)
				}
				if got := status.Code(err); got != tc.want {
					t.Fatalf("call to a resetting backend = %v, want %v", err, tc.want)
				}
			})
		})
	}
	t.Run("backend gone mid-stream", func(t *testing.T) {
		b := startBackend(t, "b1")
		g := startGateway(t, render(t, baseConfig, baseData{GRPC: b.GRPCAddr, HTTP: b.HTTPAddr}))
		c := demoClient(t, g.addr("main"))
		relayed(t, g, c, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := c.ServerStream(ctx, &demov1.ServerStreamRequest{Count: 1000, IntervalMs: 20})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Recv(); err != nil {
				t.Fatal(err)
			}
			b.Stop()
			_, err = drain(s)
			if code := status.Code(err); code != codes.Unavailable && code != codes.Internal {
				t.Fatalf("stream after the backend stopped = %v, want Unavailable or Internal", err)
			}
		})
	})
}

// warmRelay makes calls until n of them were relayed: with round robin
// over a few hosts, every host's connection is then up.
func warmRelay(t *testing.T, g *gateway, c demov1.DemoServiceClient, n uint64) {
	t.Helper()
	cl := clusterNamed(t, g, "grpc")
	start := cl.Stats.RqRelayed.Load()
	deadline := time.Now().Add(10 * time.Second)
	for cl.Stats.RqRelayed.Load()-start < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d calls relayed while warming up", cl.Stats.RqRelayed.Load()-start)
		}
		if _, err := c.Echo(context.Background(), &demov1.EchoRequest{Message: "warm"}); err != nil {
			t.Fatalf("warm-up call: %v", err)
		}
	}
}

// A route with a retry policy is relayed too: an attempt that fails before
// its answer reaches the client (a failure status in trailers-only or in
// trailers behind headers, a reset, a refused stream) is handed to the
// handler path, which makes the retries: the client sees the other host's
// answer, and the relayed attempt counts as the first of num_retries + 1.
func TestRelay_Retries(t *testing.T) {
	t.Run("a failing host is retried on another", func(t *testing.T) {
		bs := backends(t, 2)
		g := startGateway(t, render(t, governanceConfig, governanceData{
			Backends: bs,
			Route:    indent(`retries: { retry_on: "unavailable", num_retries: 1, skip_previous_hosts: true }`, 12),
		}))
		c := demoClient(t, g.addr("main"))
		warmRelay(t, g, c, 10)
		cl := clusterNamed(t, g, "grpc")
		bs[0].Service.Faults.GRPCCode.Store(int32(codes.Unavailable))
		relayedBefore, retriesBefore, failingBefore := cl.Stats.RqRelayed.Load(), cl.Stats.RqRetry.Load(), bs[0].Service.Calls.Load()
		for i := range 20 {
			resp, err := c.Echo(context.Background(), &demov1.EchoRequest{Message: "x"})
			if err != nil || resp.GetServer() != "b1" {
				t.Fatalf("call %d: %v, %v; want an answer from b1 after a retry", i, resp, err)
			}
		}
		failed := bs[0].Service.Calls.Load() - failingBefore
		if failed == 0 {
			t.Fatal("the failing backend was never tried: the test proves nothing")
		}
		if got := cl.Stats.RqRelayed.Load() - relayedBefore; got != 20 {
			t.Errorf("%d of 20 calls were relayed first, want all", got)
		}
		if got := cl.Stats.RqRetry.Load() - retriesBefore; got != uint64(failed) {
			t.Errorf("%d retries for %d failed attempts", got, failed)
		}
	})
	t.Run("retries run out", func(t *testing.T) {
		bs := backends(t, 2)
		g := startGateway(t, render(t, governanceConfig, governanceData{
			Backends: bs,
			Route:    indent(`retries: { retry_on: "unavailable", num_retries: 1, skip_previous_hosts: true }`, 12),
		}))
		c := demoClient(t, g.addr("main"))
		warmRelay(t, g, c, 10)
		cl := clusterNamed(t, g, "grpc")
		for _, b := range bs {
			b.Service.Faults.GRPCCode.Store(int32(codes.Unavailable))
		}
		relayedBefore := cl.Stats.RqRelayed.Load()
		attemptsBefore := bs[0].Service.Calls.Load() + bs[1].Service.Calls.Load()
		for i := range 10 {
			_, err := c.Echo(context.Background(), &demov1.EchoRequest{Message: "x"})
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("call %d: %v, want UNAVAILABLE once the retry failed too", i, err)
			}
		}
		if got := cl.Stats.RqRelayed.Load() - relayedBefore; got != 10 {
			t.Errorf("%d of 10 calls were relayed first, want all", got)
		}
		// num_retries 1: the relayed attempt and one retry, per call.
		if got := bs[0].Service.Calls.Load() + bs[1].Service.Calls.Load() - attemptsBefore; got != 20 {
			t.Errorf("%d attempts reached the backends for 10 calls, want 20 (1 + num_retries each)", got)
		}
	})
	t.Run("a per-try timeout moves a slow attempt to another host", func(t *testing.T) {
		bs := backends(t, 2)
		g := startGateway(t, render(t, governanceConfig, governanceData{
			Backends: bs,
			Route:    indent(`retries: { retry_on: "5xx,reset", num_retries: 2, per_try_timeout: 150ms, skip_previous_hosts: true }`, 12),
		}))
		c := demoClient(t, g.addr("main"))
		warmRelay(t, g, c, 10)
		cl := clusterNamed(t, g, "grpc")
		bs[0].Service.Faults.Delay.Store(int64(3 * time.Second))
		relayedBefore, timeoutsBefore := cl.Stats.RqRelayed.Load(), cl.Stats.RqTimeout.Load()
		for i := range 6 {
			start := time.Now()
			resp, err := c.Echo(context.Background(), &demov1.EchoRequest{Message: "x"})
			if err != nil || resp.GetServer() != "b1" {
				t.Fatalf("call %d: %v, %v; want an answer from the fast backend b1", i, resp, err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("call %d took %v: the slow backend was waited for", i, d)
			}
		}
		if got := cl.Stats.RqRelayed.Load() - relayedBefore; got != 6 {
			t.Errorf("%d of 6 calls were relayed first, want all", got)
		}
		if cl.Stats.RqTimeout.Load() == timeoutsBefore {
			t.Error("no per-try timeout was counted")
		}
		waitCancel(t, bs[0], "Echo") // the slow attempt was cancelled
	})
	t.Run("a backend gone mid-load", func(t *testing.T) {
		bs := backends(t, 3)
		g := startGateway(t, render(t, governanceConfig, governanceData{
			Backends: bs,
			Route:    indent(`retries: { retry_on: "connect-failure,reset,refused-stream,unavailable", num_retries: 2, skip_previous_hosts: true }`, 12),
			Extra:    indent(`circuit_breakers: { max_retries: 16 }`, 4),
		}))
		c := demoClient(t, g.addr("main"))
		warmRelay(t, g, c, 20)
		cl := clusterNamed(t, g, "grpc")
		relayedBefore := cl.Stats.RqRelayed.Load()
		loop := startCalls(c, 8)
		time.Sleep(200 * time.Millisecond)
		bs[0].Stop()
		time.Sleep(500 * time.Millisecond)
		loop.end()
		if f := loop.failedBeforeAnswer(); f > 0 {
			t.Errorf("%d of %d calls failed after a backend stopped (last: %v); retries should have hidden it",
				f, loop.failed.Load()+loop.ok.Load(), loop.lastErr.Load())
		}
		if cl.Stats.RqRelayed.Load() == relayedBefore {
			t.Error("no call was relayed under load")
		}
		t.Logf("%d calls ok, %d cut mid-answer by the stopped backend; %d relayed, %d retries",
			loop.ok.Load(), loop.cutMidAnswer.Load(), cl.Stats.RqRelayed.Load()-relayedBefore, cl.Stats.RqRetry.Load())
	})
}

// The stream idle timeout on the relay: a route without a timeout is
// watched by the connection's sweep, one with a timeout by the call's own
// timer; either way TestGovernance_IdleTimeout's checks hold.
func TestRelay_StreamIdleTimeout(t *testing.T) {
	for _, timeout := range []string{"0s", "10s"} {
		t.Run("route timeout "+timeout, func(t *testing.T) { checkIdleTimeout(t, timeout, relayed) })
	}
}

// A listener's max_grpc_message_bytes holds on the relay too: a request
// message over it ends the call RESOURCE_EXHAUSTED before the backend's
// handler sees it; messages within it pass.
func TestRelay_MessageLimit(t *testing.T) {
	b := startBackend(t, "b1")
	g := startGateway(t, render(t, baseConfig, baseData{GRPC: b.GRPCAddr, HTTP: b.HTTPAddr, MaxMsg: 1024}))
	c := demoClient(t, g.addr("main"))
	relayed(t, g, c, func() {
		resp, err := c.Echo(context.Background(), &demov1.EchoRequest{Payload: make([]byte, 1000)})
		if err != nil || len(resp.GetPayload()) != 1000 {
			t.Fatalf("Echo with a 1000-byte payload under a 1024-byte limit = %v, %v", resp, err)
		}
	})
	before := b.Service.Calls.Load()
	relayed(t, g, c, func() {
		_, err := c.Echo(context.Background(), &demov1.EchoRequest{Payload: make([]byte, 4096)})
		if st := status.Convert(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "1024") {
			t.Fatalf("Echo with a 4096-byte payload over a 1024-byte limit = %v, want RESOURCE_EXHAUSTED naming the limit", err)
		}
	})
	// The warm-up calls of relayed reached it; the oversized one did not.
	if got := b.Service.Calls.Load() - before; got > 2 {
		t.Errorf("the backend's handler ran %d times for the warm-up and the oversized call, want the warm-up only", got)
	}
}

// A route's response header mutations hold on the relay: set on the
// answer's headers, a trailers-only answer included; the trailers and the
// message pass untouched.
func TestRelay_ResponseHeaderEdits(t *testing.T) {
	b := startBackend(t, "b0")
	g := startGateway(t, render(t, oneRouteConfig, oneRouteData{GRPC: b.GRPCAddr,
		Route: indent("timeout: 0s\nresponse_headers_to_set: { x-route: relayed }", 12)}))
	c := demoClient(t, g.addr("main"))
	relayed(t, g, c, func() {
		var hdr, trl metadata.MD
		resp, err := c.Echo(context.Background(), &demov1.EchoRequest{Message: "m"}, grpc.Header(&hdr), grpc.Trailer(&trl))
		if err != nil || resp.GetMessage() != "m" {
			t.Fatalf("Echo = %v, %v", resp, err)
		}
		if got := hdr.Get("x-route"); len(got) != 1 || got[0] != "relayed" {
			t.Errorf("response header x-route = %q, want [relayed] (response_headers_to_set)", got)
		}
		if got := trl.Get("x-route"); len(got) != 0 {
			t.Errorf("trailer x-route = %q, want none: the edits are for headers", got)
		}
	})
	relayed(t, g, c, func() {
		var hdr metadata.MD
		_, err := c.Echo(context.Background(), &demov1.EchoRequest{FailCode: int32(codes.NotFound)}, grpc.Header(&hdr))
		if status.Code(err) != codes.NotFound {
			t.Fatalf("Echo asked to fail = %v, want NotFound", err)
		}
		if got := hdr.Get("x-route"); len(got) != 1 || got[0] != "relayed" {
			t.Errorf("response header x-route of a failed call = %q, want [relayed]", got)
		}
	})
}

// rbacRelayConfig: an Envoy listener whose chain has an RBAC filter as
// Istio's AuthorizationPolicy puts it (DENY policies), in front of the gRPC
// demo backend.
const rbacRelayConfig = `
static_resources:
  listeners:
  - name: main
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: main
          route_config: { virtual_hosts: [ { name: all, domains: ["*"], routes: [ { match: { prefix: / }, route: { cluster: grpc } } ] } ] }
          http_filters:
          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                action: DENY
                policies:
                  by-header: { permissions: [ { header: { name: x-deny, present_match: true } } ], principals: [ { any: true } ] }
                  by-method: { permissions: [ { url_path: { path: { exact: /demo.v1.DemoService/ServerStream } } } ], principals: [ { any: true } ] }
                  by-port:
                    permissions: [ { and_rules: { rules: [ { destination_port_range: { start: 1, end: 65536 } }, { header: { name: x-port-deny, present_match: true } } ] } } ]
                    principals: [ { any: true } ]
          - { name: envoy.filters.http.router, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } }
  clusters:
  - name: grpc
    type: STATIC
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }
    load_assignment: { cluster_name: grpc, endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: {{.Port}} } } } } ] } ] }
`

// Behind an RBAC filter (Istio's AuthorizationPolicy), the calls the policy
// allows are relayed, and the ones it denies are denied as on the handler
// path (PERMISSION_DENIED, nothing upstream, nothing relayed): by header,
// by path, and by the destination port (the request's local address).
func TestRelay_RBAC(t *testing.T) {
	b := startBackend(t, "b1")
	_, port, _ := net.SplitHostPort(b.GRPCAddr)
	g := startGateway(t, render(t, rbacRelayConfig, map[string]string{"Port": port}))
	c := demoClient(t, g.addr("main"))
	relayed(t, g, c, func() {
		resp, err := c.Echo(context.Background(), &demov1.EchoRequest{Message: "allowed"})
		if err != nil || resp.GetMessage() != "allowed" {
			t.Fatalf("an allowed call = %v, %v", resp, err)
		}
	})
	cl := clusterNamed(t, g, "grpc")
	for _, tc := range []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"by header", func(ctx context.Context) error {
			_, err := c.Echo(metadata.AppendToOutgoingContext(ctx, "x-deny", "1"), &demov1.EchoRequest{})
			return err
		}},
		{"by path", func(ctx context.Context) error {
			st, err := c.ServerStream(ctx, &demov1.ServerStreamRequest{})
			if err != nil {
				return err
			}
			_, err = st.Recv()
			return err
		}},
		{"by destination port", func(ctx context.Context) error {
			_, err := c.Echo(metadata.AppendToOutgoingContext(ctx, "x-port-deny", "1"), &demov1.EchoRequest{})
			return err
		}},
	} {
		calls, relayedBefore := b.Service.Calls.Load(), cl.Stats.RqRelayed.Load()
		err := tc.call(context.Background())
		if st := status.Convert(err); st.Code() != codes.PermissionDenied {
			t.Errorf("a call denied %s = %v, want PERMISSION_DENIED", tc.name, err)
		}
		if n := b.Service.Calls.Load() - calls; n != 0 {
			t.Errorf("a call denied %s reached the backend (%d calls)", tc.name, n)
		}
		if cl.Stats.RqRelayed.Load() != relayedBefore {
			t.Errorf("a call denied %s was relayed", tc.name)
		}
	}
}
