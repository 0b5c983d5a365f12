package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/meshgate/meshgate/config"
)

// An RBAC DENY on the address a request arrived at (destination_port,
// destination_ip: Istio's AuthorizationPolicy `to.operation.ports`) denies
// it over HTTP/2 as over HTTP/1.1. The HTTP/2 server once left the local
// address out of the request's context, so such a DENY never matched an
// HTTP/2 request: it failed open for every gRPC call.
func TestRBAC_DenyByLocalAddress(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "reached") }))
	defer backend.Close()
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(backend.URL, "http://"))
	h1 := &http.Transport{}
	defer h1.CloseIdleConnections()
	h2c := &http.Transport{Protocols: new(http.Protocols)}
	h2c.Protocols.SetUnencryptedHTTP2(true) // prior knowledge, as gRPC clients speak
	defer h2c.CloseIdleConnections()
	for _, tc := range []struct{ name, permission string }{
		{"destination_port_range", "{ destination_port_range: { start: 1, end: 65536 } }"},
		{"destination_ip", "{ destination_ip: { address_prefix: 127.0.0.0, prefix_len: 8 } }"},
	} {
		srv := New(Options{})
		l, err := config.Load([]byte(`
static_resources:
  listeners:
  - name: web
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: web
          route_config: { virtual_hosts: [ { name: all, domains: ["*"], routes: [ { match: { prefix: / }, route: { cluster: be } } ] } ] }
          http_filters:
          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules: { action: DENY, policies: { deny-local: { permissions: [ `+tc.permission+` ], principals: [ { any: true } ] } } }
          - { name: envoy.filters.http.router, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } }
  clusters:
  - name: be
    type: STATIC
    load_assignment: { cluster_name: be, endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: `+host+`, port_value: `+port+` } } } } ] } ] }
`), "")
		if err != nil {
			t.Fatal(err)
		}
		if err := config.NewStore(srv).Apply(context.Background(), config.Update{Source: "file", Replace: config.ResourceTypes, Resources: l.Resources}); err != nil {
			t.Fatal(err)
		}
		for proto, rt := range map[string]http.RoundTripper{"HTTP/1.1": h1, "HTTP/2": h2c} {
			resp, err := (&http.Client{Transport: rt}).Get(fmt.Sprintf("http://%s/", srv.ListenerAddr("web")))
			if err != nil {
				t.Fatalf("%s over %s: %v", tc.name, proto, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden || resp.ProtoMajor != map[string]int{"HTTP/1.1": 1, "HTTP/2": 2}[proto] {
				t.Errorf("a DENY by %s over %s: %s %d %q, want 403", tc.name, proto, resp.Proto, resp.StatusCode, body)
			}
		}
		_ = srv.Shutdown(context.Background())
	}
}
