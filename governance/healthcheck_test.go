package governance

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// scriptedProbe answers each host's checks from a script; after the script
// it repeats the last answer.
type scriptedProbe struct {
	mu     sync.Mutex
	script map[string][]bool
	checks map[string]int
	forgot []string
	closed bool
	// gate, when set, holds every check until it is closed (so that a
	// test can finish its setup before the first result arrives).
	gate chan struct{}
}

func (p *scriptedProbe) Check(_ context.Context, addr string) error {
	if p.gate != nil {
		<-p.gate
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.script[addr]
	i := min(p.checks[addr], len(s)-1)
	p.checks[addr]++
	if s[i] {
		return nil
	}
	return errors.New("down")
}
func (p *scriptedProbe) Forget(addr string) {
	p.mu.Lock()
	p.forgot = append(p.forgot, addr)
	p.mu.Unlock()
}
func (p *scriptedProbe) Close() { p.mu.Lock(); p.closed = true; p.mu.Unlock() }

func TestHealthChecker_StateMachine(t *testing.T) {
	// ok, then 3 failures (unhealthy after 2), then 3 successes (healthy after 3).
	probe := &scriptedProbe{script: map[string][]bool{"h": {true, false, false, false, true, true, true}}, checks: map[string]int{},
		gate: make(chan struct{})}
	changes := make(chan bool, 10)
	var state *HealthState
	hc := NewHealthChecker(HealthCheckConfig{Interval: 5 * time.Millisecond, UnhealthyThreshold: 2, HealthyThreshold: 3}, probe,
		func() { changes <- state.Healthy() })
	state = hc.SetHosts([]string{"h"})[0]
	if state.Healthy() || !state.Pending() {
		t.Fatal("a new host is not pending")
	}
	close(probe.gate) // the callback reads state: checks start once it is set
	var got []bool
	for range 3 {
		select {
		case h := <-changes:
			got = append(got, h)
		case <-time.After(5 * time.Second):
			t.Fatalf("health flips so far %v, want [true false true]", got)
		}
	}
	if got[0] != true || got[1] != false || got[2] != true {
		t.Errorf("health flips %v, want [true false true]", got)
	}
	probe.mu.Lock()
	checks := probe.checks["h"]
	probe.mu.Unlock()
	// The flips happened at checks 1, 3 and 7 exactly.
	if checks < 7 {
		t.Errorf("%d checks for 3 flips, want at least 7", checks)
	}
	hc.SetHosts(nil)
	hc.Close()
	if len(probe.forgot) != 1 || !probe.closed {
		t.Errorf("after removal and Close: forgot %v, closed %v", probe.forgot, probe.closed)
	}
}

func TestHTTPProbe(t *testing.T) {
	status := 200
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path != "/healthz" || r.Host != "svc.local" {
			w.WriteHeader(404)
			return
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	p := &HTTPProbe{Path: "/healthz", Host: "svc.local", Expected: [][2]int{{200, 300}}}
	defer p.Close()
	addr := srv.Listener.Addr().String()
	for _, tc := range []struct {
		status int
		ok     bool
	}{{200, true}, {204, true}, {503, false}} {
		mu.Lock()
		status = tc.status
		mu.Unlock()
		if err := p.Check(context.Background(), addr); (err == nil) != tc.ok {
			t.Errorf("status %d: Check() = %v, want ok %v", tc.status, err, tc.ok)
		}
	}
}

func TestTCPProbe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4)
				n, _ := c.Read(buf)
				if string(buf[:n]) == "PING" {
					_, _ = c.Write([]byte("+PONG\r\n"))
				}
			}()
		}
	}()
	addr := ln.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := (&TCPProbe{Send: []byte("PING"), Receive: [][]byte{[]byte("PONG")}}).Check(ctx, addr); err != nil {
		t.Errorf("PING/PONG check: %v", err)
	}
	if err := (&TCPProbe{Send: []byte("NOPE"), Receive: [][]byte{[]byte("PONG")}}).Check(ctx, addr); err == nil {
		t.Error("a wrong answer passed")
	}
	if err := (&TCPProbe{}).Check(ctx, "127.0.0.1:1"); err == nil {
		t.Error("a closed port passed")
	}
}

func TestGRPCProbe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(s, hs)
	go func() { _ = s.Serve(ln) }()
	defer s.Stop()
	p := &GRPCProbe{Service: "demo.v1.DemoService"}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addr := ln.Addr().String()
	hs.SetServingStatus("demo.v1.DemoService", healthpb.HealthCheckResponse_SERVING)
	if err := p.Check(ctx, addr); err != nil {
		t.Errorf("SERVING: %v", err)
	}
	hs.SetServingStatus("demo.v1.DemoService", healthpb.HealthCheckResponse_NOT_SERVING)
	if err := p.Check(ctx, addr); !errors.Is(err, ErrNotServing) {
		t.Errorf("NOT_SERVING: %v, want ErrNotServing", err)
	}
	p.Forget(addr)
}
