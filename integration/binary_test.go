package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	demov1 "github.com/meshgate/meshgate/proto/demo/v1"
)

// buildBinary builds cmd/meshgate once per test binary.
var buildBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "meshgate-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "meshgate")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/meshgate")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// handedOut remembers the ports freeAddr gave, so that it never gives one
// twice: the kernel may offer a freed port again at once, and of two peers
// told to listen on one port the second fails (dubbo-go then serves on,
// without that protocol), which a test sees as two peers being one.
var handedOut sync.Map

func freeAddr(t *testing.T) string {
	t.Helper()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if _, dup := handedOut.LoadOrStore(addr, true); !dup {
			return addr
		}
	}
}

// process is the meshgate binary running as a child process.
type process struct {
	cmd    *exec.Cmd
	logs   *syncBuffer
	done   chan struct{}
	exit   error
	config string
	admin  string
	addr   string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const binaryConfig = `
admin: { address: "{{.Admin}}" }
drain_timeout: {{.Drain}}
drain_period: {{if .Period}}{{.Period}}{{else}}0s{{end}}
listeners:
  - name: main
    address: "{{.Addr}}"
    virtual_hosts:
      - routes:
          - match: { prefix: /echo }
            cluster: http
            timeout: 30s
            request_headers_to_set: { x-gateway: "{{.Tag}}" }
{{- if .GRPC}}
          - match: { prefix: /demo.v1.DemoService/, grpc: true }
            cluster: grpc
{{- end}}
clusters:
  - { name: http, endpoints: [ "{{.HTTP}}" ] }
{{- if .GRPC}}
  - { name: grpc, protocol: grpc, endpoints: [ "{{.GRPC}}" ] }
{{- end}}
`

// binaryData fills binaryConfig; Period is the drain period (default 0s),
// GRPC a gRPC backend (optional).
type binaryData struct{ Admin, Addr, HTTP, GRPC, Tag, Drain, Period string }

func startProcess(t *testing.T, data binaryData, args ...string) *process {
	t.Helper()
	return startProcessWith(t, binaryConfig, data, data.Admin, data.Addr, args...)
}

// startProcessWith runs the binary on the config tmpl renders from data;
// admin and addr are its admin and main listener addresses.
func startProcessWith(t *testing.T, tmpl string, data any, admin, addr string, args ...string) *process {
	t.Helper()
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "meshgate.yaml")
	if err := os.WriteFile(path, render(t, tmpl, data), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &process{logs: &syncBuffer{}, done: make(chan struct{}), config: path, admin: admin, addr: addr}
	p.cmd = exec.Command(bin, append([]string{"run", "-c", path}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exit = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("meshgate logs:\n%s", p.logs.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + admin + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("meshgate not ready: %v\n%s", err, p.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tag asks the echo which x-gateway header the gateway set.
func (p *process) tag(t *testing.T, c *http.Client) string {
	t.Helper()
	resp, err := c.Get("http://" + p.addr + "/echo")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e echoed
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatal(err)
	}
	return e.Headers["x-gateway"]
}

func (p *process) waitTag(t *testing.T, c *http.Client, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for p.tag(t, c) != want {
		if time.Now().After(deadline) {
			t.Fatalf("x-gateway is still %q, want %q", p.tag(t, c), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The binary reloads its file when it changes and on SIGHUP.
func TestBinary_Reload(t *testing.T) {
	b := startBackend(t, "b1")
	c := httpClient(t)
	data := binaryData{Admin: freeAddr(t), Addr: freeAddr(t), HTTP: b.HTTPAddr, Tag: "v1", Drain: "5s"}

	t.Run("file change", func(t *testing.T) {
		d := data
		p := startProcess(t, d)
		if got := p.tag(t, c); got != "v1" {
			t.Fatalf("x-gateway = %q, want v1", got)
		}
		d.Tag = "v2"
		if err := os.WriteFile(p.config, render(t, binaryConfig, d), 0o600); err != nil {
			t.Fatal(err)
		}
		p.waitTag(t, c, "v2")
	})
	t.Run("SIGHUP", func(t *testing.T) {
		d := data
		d.Admin, d.Addr = freeAddr(t), freeAddr(t)
		p := startProcess(t, d, "-watch=false")
		d.Tag = "v3"
		if err := os.WriteFile(p.config, render(t, binaryConfig, d), 0o600); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond) // a watcher, were there one, would have reloaded by now
		if got := p.tag(t, c); got != "v1" {
			t.Fatalf("with -watch=false the file change was applied without SIGHUP (x-gateway %q)", got)
		}
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		p.waitTag(t, c, "v3")
		// A bad file on SIGHUP is rejected and v3 keeps serving.
		if err := os.WriteFile(p.config, []byte("listeners: [oops"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for !bytes.Contains([]byte(p.logs.String()), []byte("config reload rejected")) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if got := p.tag(t, c); got != "v3" {
			t.Errorf("after a rejected reload x-gateway = %q, want v3", got)
		}
	})
}

// SIGTERM drains: new connections are refused, the request in flight
// finishes, and the process exits 0. A request longer than the drain
// timeout is cut and the process still exits 0.
// With no drain period, SIGTERM stops accepting at once; in-flight
// requests get the drain timeout, and one longer than it is cut.
func TestBinary_Drain(t *testing.T) {
	b := startBackend(t, "b1")
	tests := []struct {
		name      string
		drain     string
		delay     time.Duration
		wantDone  bool
		maxExitIn time.Duration
	}{
		{"in-flight request finishes", "5s", 1500 * time.Millisecond, true, 4 * time.Second},
		{"drain timeout cuts a long request", "500ms", 10 * time.Second, false, 4 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := startProcess(t, binaryData{Admin: freeAddr(t), Addr: freeAddr(t), HTTP: b.HTTPAddr, Tag: "v1", Drain: tc.drain, Period: "0s"})
			inflight := getAsync(httpClient(t), fmt.Sprintf("http://%s/echo?delay=%s", p.addr, tc.delay))
			time.Sleep(300 * time.Millisecond) // the request is at the backend
			start := time.Now()
			if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if d := refusedWithin(t, p.addr, 2*time.Second); d < 0 {
				t.Fatal("the listener still accepts 2s after SIGTERM (no drain period set)")
			}
			p.exitsWithin(t, tc.maxExitIn)
			r := <-inflight
			if tc.wantDone && (r.err != nil || r.code != 200) {
				t.Errorf("in-flight request: %d %v, want 200 (it should finish during the drain)", r.code, r.err)
			}
			if !tc.wantDone && r.err == nil && r.code == 200 {
				t.Errorf("a request longer than the drain timeout completed; want it cut")
			}
			t.Logf("exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))
		})
	}
}

// With a drain period, SIGTERM fails /ready at once while the port keeps
// accepting: clients still sent here (a Kubernetes Service whose endpoints
// have not caught up) are answered and told to go — HTTP/1.1 answers say
// Connection: close, HTTP/2 connections get GOAWAY — and no call fails,
// whether on an open connection or a new one. After the period the port
// refuses, the in-flight request finishes, and the process exits 0.
func TestBinary_DrainPeriod(t *testing.T) {
	b := startBackend(t, "b1")
	const period = 2 * time.Second
	p := startProcess(t, binaryData{Admin: freeAddr(t), Addr: freeAddr(t), HTTP: b.HTTPAddr, GRPC: b.GRPCAddr, Tag: "v1", Drain: "5s", Period: period.String()})
	inflight := getAsync(httpClient(t), fmt.Sprintf("http://%s/echo?delay=3s", p.addr))
	adminClient := httpClient(t)

	// Callers on open connections (gRPC on one HTTP/2 connection, HTTP/1.1
	// keep-alive) call on until the period is nearly over.
	grpcClient, web := demoClient(t, p.addr), httpClient(t)
	stopLoad := make(chan struct{})
	var calls, failed atomic.Int64
	var firstErr atomic.Value
	var load sync.WaitGroup
	fail := func(err error) {
		failed.Add(1)
		firstErr.CompareAndSwap(nil, err.Error())
	}
	for i := range 6 {
		load.Add(1)
		go func() {
			defer load.Done()
			for {
				select {
				case <-stopLoad:
					return
				default:
				}
				calls.Add(1)
				if i%2 == 0 {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					_, err := grpcClient.Echo(ctx, &demov1.EchoRequest{Message: "drain"})
					cancel()
					if err != nil {
						fail(err)
					}
					continue
				}
				resp, err := web.Get("http://" + p.addr + "/echo")
				if err != nil {
					fail(err)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					fail(fmt.Errorf("HTTP %d", resp.StatusCode))
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	before := calls.Load()
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	// /ready fails at once.
	for {
		resp, err := adminClient.Get("http://" + p.admin + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable {
				break
			}
		}
		if time.Since(start) > 500*time.Millisecond {
			t.Fatalf("/ready: %v %v half a second after SIGTERM, want 503", resp.Status, err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// A new HTTP/1.1 connection is served and told to close.
	time.Sleep(200 * time.Millisecond)
	fresh := httpClient(t)
	resp, err := fresh.Get("http://" + p.addr + "/echo")
	if err != nil {
		t.Fatalf("a new connection during the drain period: %v (want it served)", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !resp.Close {
		t.Errorf("a new HTTP/1.1 connection during the drain: %d, Connection: close %v; want 200 and close", resp.StatusCode, resp.Close)
	}
	// A new HTTP/2 connection is served and gets GOAWAY.
	goAway, answer := h2GetOnNewConn(t, p.addr, "/echo")
	if !goAway || answer != "200" {
		t.Errorf("a new HTTP/2 connection during the drain: GOAWAY %v, answer %q; want GOAWAY and 200", goAway, answer)
	}

	time.Sleep(period - time.Since(start) - 300*time.Millisecond)
	close(stopLoad)
	load.Wait()
	during := calls.Load() - before
	if failed.Load() > 0 {
		t.Errorf("%d of %d calls failed during the drain period (first: %v), want 0", failed.Load(), during, firstErr.Load())
	}
	if during < 50 {
		t.Errorf("only %d calls during the drain period; the load did not run", during)
	}

	// After the period the port refuses.
	if d := refusedWithin(t, p.addr, period+2*time.Second-time.Since(start)); d < 0 {
		t.Fatal("the listener still accepts 2s after the drain period")
	}
	if refusedAt := time.Since(start); refusedAt < period-100*time.Millisecond {
		t.Errorf("the port refused %v after SIGTERM, before the %v drain period ended", refusedAt, period)
	}
	p.exitsWithin(t, 5*time.Second)
	r := <-inflight
	if r.err != nil || r.code != 200 {
		t.Errorf("in-flight request: %d %v, want 200", r.code, r.err)
	}
	t.Logf("%d calls during the drain period, %d failed; exited %v after SIGTERM", during, failed.Load(), time.Since(start).Round(time.Millisecond))
}

// POST /drain_listeners?graceful drains as SIGTERM does, without exiting:
// /ready fails, the port accepts and tells clients to go for the drain
// period, then refuses; the admin endpoint still answers.
func TestBinary_DrainListenersAdmin(t *testing.T) {
	b := startBackend(t, "b1")
	p := startProcess(t, binaryData{Admin: freeAddr(t), Addr: freeAddr(t), HTTP: b.HTTPAddr, Tag: "v1", Drain: "5s", Period: "1s"})
	adminClient := httpClient(t)
	resp, err := adminClient.Post("http://"+p.admin+"/drain_listeners?graceful", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	start := time.Now()
	if resp.StatusCode != 200 {
		t.Fatalf("POST /drain_listeners?graceful: %s", resp.Status)
	}
	if resp, err := adminClient.Get("http://" + p.admin + "/ready"); err != nil {
		t.Errorf("/ready after drain_listeners: %v", err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/ready after drain_listeners: %s, want 503", resp.Status)
	}
	resp, err = httpClient(t).Get("http://" + p.addr + "/echo")
	if err != nil {
		t.Fatalf("a request during the drain period: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !resp.Close {
		t.Errorf("during the drain period: %d, Connection: close %v; want 200 and close", resp.StatusCode, resp.Close)
	}
	if refusedWithin(t, p.addr, 3*time.Second) < 0 {
		t.Fatal("the listener still accepts 3s after drain_listeners with a 1s period")
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("refused %v after drain_listeners, before the 1s period ended", d)
	}
	select {
	case <-p.done:
		t.Fatalf("the process exited after drain_listeners: %v", p.exit)
	default:
	}
	if resp, err := adminClient.Get("http://" + p.admin + "/ready"); err != nil {
		t.Errorf("the admin endpoint after the drain: %v", err)
	} else {
		resp.Body.Close()
	}
}

type getResult struct {
	code int
	err  error
}

// getAsync GETs url on its own goroutine.
func getAsync(c *http.Client, url string) <-chan getResult {
	out := make(chan getResult, 1)
	go func() {
		resp, err := c.Get(url)
		if err != nil {
			out <- getResult{err: err}
			return
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		out <- getResult{code: resp.StatusCode, err: err}
	}()
	return out
}

// refusedWithin dials addr until it is refused, and returns how long that
// took (-1: still accepting after within).
func refusedWithin(t *testing.T, addr string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		conn, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			return time.Since(start)
		}
		conn.Close()
		if time.Since(start) > within {
			return -1
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// exitsWithin waits for the process to exit 0.
func (p *process) exitsWithin(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("meshgate did not exit within %v", d)
	}
	if p.exit != nil {
		t.Fatalf("exit = %v, want 0", p.exit)
	}
}

// h2GetOnNewConn sends one GET on a new cleartext HTTP/2 connection and
// reports whether the server sent GOAWAY and the answer's :status.
func h2GetOnNewConn(t *testing.T, addr, path string) (goAway bool, status string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	var hbuf bytes.Buffer
	enc := hpack.NewEncoder(&hbuf)
	for _, kv := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", addr}, {":path", path}} {
		_ = enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
	}
	if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hbuf.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for !goAway || status == "" {
		f, err := fr.ReadFrame()
		if err != nil {
			return goAway, status
		}
		switch f := f.(type) {
		case *http2.GoAwayFrame:
			goAway = true
		case *http2.MetaHeadersFrame:
			if f.StreamID == 1 && status == "" {
				status = f.PseudoValue("status")
			}
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		}
	}
	return goAway, status
}
