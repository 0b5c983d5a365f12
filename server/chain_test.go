package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/server/httpfilter"
)

// A filter that answers itself, registered as a user's would be.
func init() {
	httpfilter.Register(&httpfilter.Factory{
		Name: "test.filters.http.teapot",
		Build: func(proto.Message, httpfilter.Build) (httpfilter.Filter, []string, error) {
			return httpfilter.FilterFunc(func(s *httpfilter.Stream) httpfilter.Status {
				if s.R.Header.Get("X-Teapot") == "" {
					return httpfilter.Continue
				}
				s.W.WriteHeader(http.StatusTeapot)
				_, _ = io.WriteString(s.W, "short and stout")
				return httpfilter.Stop
			}), nil, nil
		},
	})
}

// Filters run in the order the listener lists them, the router last: a
// filter that answers stops the chain and the router never forwards; a
// filter listed after it does not run.
func TestChain_FilterOrder(t *testing.T) {
	var hits atomic.Int64
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		_, _ = io.WriteString(w, "backend")
	}))
	t.Cleanup(backend.Close)
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(backend.URL, "http://"))
	srv := New(Options{})
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
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
          - { name: test.filters.http.teapot }
          - name: envoy.filters.http.fault
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
              abort: { header_abort: {}, percentage: { numerator: 100 } }
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
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	get := func(headers ...string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+srv.ListenerAddr("web")+"/", nil)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tests := []struct {
		name    string
		headers []string
		code    int
		body    string
		forward bool
	}{
		{"through every filter to the router", nil, 200, "backend", true},
		{"the first filter answers", []string{"X-Teapot", "1"}, 418, "short and stout", false},
		{"the first answers before the second would", []string{"X-Teapot", "1", "X-Envoy-Fault-Abort-Request", "503"}, 418, "short and stout", false},
		{"the second answers", []string{"X-Envoy-Fault-Abort-Request", "503"}, 503, "fault filter abort", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := hits.Load()
			code, body := get(tt.headers...)
			if code != tt.code || !strings.Contains(body, tt.body) {
				t.Errorf("answer %d %q, want %d with %q", code, body, tt.code, tt.body)
			}
			if forwarded := hits.Load() > before; forwarded != tt.forward {
				t.Errorf("forwarded to the backend: %v, want %v", forwarded, tt.forward)
			}
		})
	}
}

// A call a circuit breaker refuses says so in x-envoy-overloaded, unless
// the router's suppress_envoy_headers is set.
func TestChain_SuppressEnvoyHeaders(t *testing.T) {
	var release atomic.Pointer[chan struct{}]
	started := make(chan struct{}, 4)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		started <- struct{}{}
		<-*release.Load()
	}))
	t.Cleanup(backend.Close)
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(backend.URL, "http://"))
	for _, suppress := range []bool{false, true} {
		hold := make(chan struct{})
		release.Store(&hold)
		srv := New(Options{})
		t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
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
          route_config: { virtual_hosts: [ { name: all, domains: ["*"], routes: [ { match: { prefix: / }, route: { cluster: be, timeout: 0s } } ] } ] }
          http_filters:
          - { name: envoy.filters.http.router, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router, suppress_envoy_headers: `+fmt.Sprint(suppress)+` } }
  clusters:
  - name: be
    type: STATIC
    circuit_breakers: { thresholds: [ { max_requests: 1 } ] }
    load_assignment: { cluster_name: be, endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: `+host+`, port_value: `+port+` } } } } ] } ] }
`), "")
		if err != nil {
			t.Fatal(err)
		}
		if err := config.NewStore(srv).Apply(context.Background(), config.Update{Source: "file", Replace: config.ResourceTypes, Resources: l.Resources}); err != nil {
			t.Fatal(err)
		}
		tr := &http.Transport{}
		t.Cleanup(tr.CloseIdleConnections)
		hc := &http.Client{Transport: tr}
		url := "http://" + srv.ListenerAddr("web") + "/"
		go func() {
			if resp, err := hc.Get(url); err == nil {
				resp.Body.Close()
			}
		}()
		<-started // one call holds the cluster's only request slot
		resp, err := hc.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 503 || (resp.Header.Get("X-Envoy-Overloaded") == "true") == suppress {
			t.Errorf("suppress_envoy_headers %v: %d, x-envoy-overloaded %q", suppress, resp.StatusCode, resp.Header.Get("X-Envoy-Overloaded"))
		}
		close(hold) // the held call ends before the gateway shuts down
	}
}
