package server

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/meshgate/meshgate/config"
)

// overloadGateway serves one listener in front of a backend that waits for
// ?wait to close; the overload manager's heap reading is driven by the
// test (Update), its own once an hour.
func overloadGateway(t *testing.T, o config.OverloadSettings) (*Server, string, chan struct{}) {
	t.Helper()
	release := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("wait") {
			<-release
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(backend.Close)
	o.RefreshInterval = time.Hour
	srv := New(Options{Overload: o})
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	loadSet(t, config.NewStore(srv), `
listeners:
  - {name: l, address: "127.0.0.1:0", virtual_hosts: [{routes: [{match: {prefix: /}, cluster: svc}]}]}
clusters: [{name: svc, endpoints: ["`+strings.TrimPrefix(backend.URL, "http://")+`"]}]
`)
	return srv, srv.ListenerAddr("l"), release
}

// Past stop_accepting_requests new requests are answered 503 with a JSON
// error and never reach the backend, while one in flight finishes; past
// disable_http_keepalive answers carry Connection: close; below both the
// gateway serves as before.
func TestOverload_Actions(t *testing.T) {
	const limit = 1 << 50 // the real heap is nothing next to it
	srv, addr, release := overloadGateway(t, config.OverloadSettings{MaxHeapBytes: limit})
	c := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(c.CloseIdleConnections)
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := c.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	inflight := make(chan int, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/?wait")
		if err != nil {
			inflight <- 0
			return
		}
		resp.Body.Close()
		inflight <- resp.StatusCode
	}()
	time.Sleep(100 * time.Millisecond) // at the backend

	srv.overload.Update(limit / 100 * 92) // past keep-alive's 0.90, under stop's 0.95
	resp, body := get("/")
	if resp.StatusCode != 200 || !resp.Close || body != "ok" {
		t.Errorf("keep-alive off: %d %q, Connection: close %v; want 200 ok and close", resp.StatusCode, body, resp.Close)
	}
	srv.overload.Update(limit / 100 * 99) // past both
	resp, body = get("/")
	var e struct {
		Error struct {
			Code   int
			Status string
		}
	}
	if resp.StatusCode != 503 || json.Unmarshal([]byte(body), &e) != nil || e.Error.Status != "RESOURCE_EXHAUSTED" {
		t.Errorf("stop accepting: %d %s; want 503 with a RESOURCE_EXHAUSTED JSON error", resp.StatusCode, body)
	}
	close(release)
	if code := <-inflight; code != 200 {
		t.Errorf("the request in flight when shedding began: %d, want 200", code)
	}
	srv.overload.Update(limit / 100)
	if resp, _ := get("/"); resp.StatusCode != 200 || resp.Close {
		t.Errorf("below the thresholds: %d, close %v; want 200 kept alive", resp.StatusCode, resp.Close)
	}
}

// Past max_active_downstream_connections a new connection is closed as
// accepted; closing one frees its place.
func TestOverload_ConnectionCap(t *testing.T) {
	_, addr, _ := overloadGateway(t, config.OverloadSettings{MaxActiveDownstreamConnections: 2})
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	served := func(c net.Conn) bool {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return false
		}
		b := make([]byte, 12)
		_, err := io.ReadFull(c, b)
		return err == nil && string(b) == "HTTP/1.1 200"
	}
	a, b := dial(), dial()
	if !served(a) || !served(b) {
		t.Fatal("the two connections under the cap were not served")
	}
	if served(dial()) {
		t.Error("a third connection over a cap of 2 was served")
	}
	a.Close()
	time.Sleep(100 * time.Millisecond) // the gateway sees it closed
	if !served(dial()) {
		t.Error("no place for a new connection after one closed")
	}
}
