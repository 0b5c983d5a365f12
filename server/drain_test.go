package server

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/meshgate/meshgate/config"
)

// accepts reports whether addr takes a TCP connection.
func accepts(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// DrainListeners covers the listeners asked (inboundOnly: those whose
// traffic_direction is INBOUND, as Istio's pilot-agent asks with
// /drain_listeners?inboundonly&graceful), fails readiness for good (a
// reload does not bring it back), keeps the drained ports accepting and
// answering with Connection: close for the period, then closes them.
func TestServer_DrainListeners(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(backend.Close)
	srv := New(Options{})
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	store := config.NewStore(srv)
	cfg := `
listeners:
  - {name: in, address: "127.0.0.1:0", virtual_hosts: [{routes: [{match: {prefix: /}, cluster: svc}]}]}
  - {name: out, address: "127.0.0.1:0", virtual_hosts: [{routes: [{match: {prefix: /}, cluster: svc}]}]}
clusters: [{name: svc, endpoints: ["` + strings.TrimPrefix(backend.URL, "http://") + `"]}]
`
	apply := func(cfg string) {
		t.Helper()
		l, err := config.Load([]byte(cfg), "")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range l.Resources {
			if ln, ok := r.(*listenerv3.Listener); ok && ln.GetName() == "in" {
				ln.TrafficDirection = corev3.TrafficDirection_INBOUND
			}
		}
		if err := store.Apply(context.Background(), config.Update{Source: "file", Replace: config.ResourceTypes, Resources: l.Resources}); err != nil {
			t.Fatal(err)
		}
	}
	apply(cfg)
	in, out := srv.ListenerAddr("in"), srv.ListenerAddr("out")
	if !srv.Ready() {
		t.Fatal("not ready before the drain")
	}

	done := srv.DrainListeners(300*time.Millisecond, true)
	if srv.Ready() || !srv.Draining() {
		t.Errorf("during the drain: Ready %v, Draining %v; want false, true", srv.Ready(), srv.Draining())
	}
	apply(strings.ReplaceAll(cfg, "{prefix: /}", "{prefix: /v}")) // a reload during the drain
	if srv.Ready() {
		t.Error("a reload during the drain made the server ready again")
	}
	c := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(c.CloseIdleConnections)
	for addr, wantClose := range map[string]bool{in: true, out: false} {
		resp, err := c.Get("http://" + addr + "/v")
		if err != nil {
			t.Fatalf("%s during the drain period: %v", addr, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Close != wantClose {
			t.Errorf("%s during the drain period: %d, Connection: close %v; want 200, %v", addr, resp.StatusCode, resp.Close, wantClose)
		}
	}
	select {
	case <-done:
		t.Fatal("the drain period ended early")
	default:
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the drain period did not end")
	}
	if accepts(in) {
		t.Error("the inbound listener still accepts after the drain period")
	}
	if !accepts(out) {
		t.Error("the outbound listener stopped accepting on an inbound-only drain")
	}
}
