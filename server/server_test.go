package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"

	"github.com/meshgate/meshgate/config"
)

func loadSet(t *testing.T, store *config.Store, yaml string) {
	t.Helper()
	l, err := config.Load([]byte(yaml), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Apply(context.Background(), config.Update{Source: "file", Replace: config.ResourceTypes, Resources: l.Resources}); err != nil {
		t.Fatal(err)
	}
}

func cla(name string, addrs ...string) *endpointv3.ClusterLoadAssignment {
	out := &endpointv3.ClusterLoadAssignment{ClusterName: name}
	lle := &endpointv3.LocalityLbEndpoints{}
	for _, a := range addrs {
		host, port, _ := strings.Cut(strings.TrimPrefix(a, "http://"), ":")
		var p uint32
		for _, c := range port {
			p = p*10 + uint32(c-'0')
		}
		lle.LbEndpoints = append(lle.LbEndpoints, &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{
			Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: p},
			}}}},
		}})
	}
	out.Endpoints = []*endpointv3.LocalityLbEndpoints{lle}
	return out
}

// An endpoint update of an EDS cluster swaps its host set in place: the
// listener keeps its compiled route table, and traffic moves to the new
// endpoint.
func TestServer_EndpointUpdateInPlace(t *testing.T) {
	backend := func(name string) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, name) }))
		t.Cleanup(s.Close)
		return s
	}
	a, b := backend("a"), backend("b")
	srv := New(Options{})
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	store := config.NewStore(srv)
	loadSet(t, store, `
listeners: [{name: l, address: "127.0.0.1:0", virtual_hosts: [{routes: [{match: {prefix: /}, cluster: svc}]}]}]
clusters: [{name: svc, type: eds}]
`)
	addr := srv.ListenerAddr("l")
	get := func() (int, string) {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get(); code != 503 || !strings.Contains(body, `cluster \"svc\": no healthy upstream`) {
		t.Fatalf("EDS cluster without endpoints: %d %s, want 503 naming the cluster", code, body)
	}

	var ln *listener
	for _, l := range srv.listeners {
		ln = l
	}
	before := ln.state.Load()
	for _, tc := range []struct{ addr, want string }{{a.URL, "a"}, {b.URL, "b"}} {
		start := time.Now()
		if err := store.Apply(context.Background(), config.Update{Source: "eds", Resources: []proto.Message{cla("svc", tc.addr)}}); err != nil {
			t.Fatal(err)
		}
		t.Logf("endpoint update applied in %v", time.Since(start))
		if ln.state.Load() != before {
			t.Fatal("an endpoint-only update recompiled the listener")
		}
		if code, body := get(); code != 200 || body != tc.want {
			t.Errorf("after moving svc to %s: %d %q, want 200 %q", tc.want, code, body, tc.want)
		}
	}
	hosts := srv.Clusters()[0].Hosts()
	if len(hosts) != 1 || hosts[0].Address != strings.TrimPrefix(b.URL, "http://") {
		t.Errorf("hosts = %v, want only b", hosts)
	}
}

// Two listeners on port 0 each get a port of their own, and keep it when
// the config is reloaded; two on the same fixed port are refused.
func TestServer_ListenersOnPortZero(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(backend.Close)
	srv := New(Options{})
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	store := config.NewStore(srv)
	cfg := `
listeners:
  - {name: a, address: "127.0.0.1:0", virtual_hosts: [{routes: [{match: {prefix: /}, cluster: svc}]}]}
  - {name: b, address: "127.0.0.1:0", virtual_hosts: [{routes: [{match: {prefix: /}, cluster: svc}]}]}
clusters: [{name: svc, endpoints: ["` + strings.TrimPrefix(backend.URL, "http://") + `"]}]
`
	loadSet(t, store, cfg)
	a, b := srv.ListenerAddr("a"), srv.ListenerAddr("b")
	if a == "" || b == "" || a == b {
		t.Fatalf("listeners a and b on %q and %q", a, b)
	}
	for _, addr := range []string{a, b} {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d", addr, resp.StatusCode)
		}
	}
	loadSet(t, store, strings.ReplaceAll(cfg, "{prefix: /}", "{prefix: /v}")) // a change: a recompile
	if srv.ListenerAddr("a") != a || srv.ListenerAddr("b") != b {
		t.Errorf("after a reload: %s, %s; want %s, %s", srv.ListenerAddr("a"), srv.ListenerAddr("b"), a, b)
	}
	l, err := config.Load([]byte(strings.ReplaceAll(cfg, "127.0.0.1:0", "127.0.0.1:18080")), "")
	if err != nil {
		t.Fatal(err)
	}
	err = store.Apply(context.Background(), config.Update{Source: "file", Replace: config.ResourceTypes, Resources: l.Resources})
	if err == nil || !strings.Contains(err.Error(), "also used by") {
		t.Errorf("two listeners on one fixed port: %v", err)
	}
}

// Faults from the friendly route `fault:` (Envoy's per-route HTTPFault):
// an HTTP abort, a gRPC abort answered as grpc-status, and a fault at 0%
// that lets requests through.
func TestServer_FaultInjection(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "backend") }))
	t.Cleanup(backend.Close)
	srv := New(Options{})
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	store := config.NewStore(srv)
	loadSet(t, store, `
listeners:
  - name: l
    address: "127.0.0.1:0"
    virtual_hosts:
      - routes:
          - { match: { prefix: /teapot }, cluster: svc, fault: { abort_status: 418 } }
          - { match: { prefix: /grpc }, cluster: svc, fault: { abort_grpc_status: 14 } }
          - { match: { prefix: /never }, cluster: svc, fault: { abort_status: 500, abort_percent: 0, delay: 1h, delay_percent: 0 } }
clusters: [{name: svc, endpoints: ["`+strings.TrimPrefix(backend.URL, "http://")+`"]}]
`)
	addr := "http://" + srv.ListenerAddr("l")
	get := func(path string, hdr ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("POST", addr+path, strings.NewReader(""))
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	if resp := get("/teapot"); resp.StatusCode != 418 {
		t.Errorf("abort_status 418: %d", resp.StatusCode)
	} else if b, _ := io.ReadAll(resp.Body); !strings.Contains(string(b), "fault filter abort") {
		t.Errorf("abort body: %s", b)
	}
	if resp := get("/grpc", "Content-Type", "application/grpc"); resp.StatusCode != 200 || resp.Header.Get("Grpc-Status") != "14" {
		t.Errorf("abort_grpc_status 14 to a gRPC caller: %d grpc-status %q", resp.StatusCode, resp.Header.Get("Grpc-Status"))
	}
	if resp := get("/grpc"); resp.StatusCode != 503 {
		t.Errorf("abort_grpc_status 14 to an HTTP caller: %d, want 503", resp.StatusCode)
	}
	if resp := get("/never"); resp.StatusCode != 200 {
		t.Errorf("a fault at 0%%: %d", resp.StatusCode)
	} else if b, _ := io.ReadAll(resp.Body); string(b) != "backend" {
		t.Errorf("a fault at 0%%: %s", b)
	}
}
