package server

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	"github.com/meshgate/meshgate/config"
)

const staticHead = `
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
          normalize_path: {{NORMALIZE}}
          route_config: { name: local, virtual_hosts: [ { name: all, domains: ["*"], routes: [ { match: { prefix: / }, route: { cluster: be } } ] } ] }
          http_filters:
          - { name: istio.stats }
          - { name: envoy.filters.http.router, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } }
  clusters:
  - name: be
    type: STATIC
    load_assignment: { cluster_name: be, endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 9 } } } } ] } ] }
`

// syncBuffer is a log sink tests can read while the server writes.
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

// What a config asks for but the data plane does not do is listed per
// resource, logged once at WARN (not again on a recompile), counted, and
// gone when the config no longer asks for it.
func TestServer_UnimplementedNotes(t *testing.T) {
	var logs syncBuffer
	srv := New(Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	store := config.NewStore(srv)
	apply := func(normalize string, version string) {
		t.Helper()
		l, err := config.Load([]byte(strings.ReplaceAll(staticHead, "{{NORMALIZE}}", normalize)), "")
		if err != nil {
			t.Fatal(err)
		}
		if err := store.Apply(context.Background(), config.Update{Source: "file", Version: version, Replace: config.ResourceTypes, Resources: l.Resources}); err != nil {
			t.Fatal(err)
		}
	}
	apply("true", "v1")
	want := []string{
		"filter_chains[*].filters[envoy.filters.network.http_connection_manager].typed_config.normalize_path: paths are not normalized: routes match the path as sent",
		"filter_chains[0].http_filters[istio.stats]: skipped: Istio's standard metrics (istio_requests_total, ...) are not produced",
	}
	list := srv.Unimplemented()
	if len(list) != 1 || list[0].GetName() != "web" || list[0].GetTypeUrl() != config.ListenerType || list[0].GetVersion() != "v1" {
		t.Fatalf("Unimplemented = %v, want listener web at v1", list)
	}
	if diff := cmp.Diff(list[0].GetUnimplemented(), want); diff != "" {
		t.Errorf("notes (-got +want):\n%s", diff)
	}
	if got := testutil.ToFloat64(srv.Metrics().Unimplemented.WithLabelValues("listener")); got != 2 {
		t.Errorf("meshgate_config_unimplemented_fields{type=listener} = %v, want 2", got)
	}
	if n := strings.Count(logs.String(), "accepted, but not done"); n != 2 {
		t.Errorf("logged %d notes, want 2:\n%s", n, logs.String())
	}

	// A recompile (another change) says nothing again.
	apply("true", "v2")
	if n := strings.Count(logs.String(), "accepted, but not done"); n != 2 {
		t.Errorf("logged %d notes after a recompile, want still 2", n)
	}
	// Asking for nothing more than meshgate does clears the note.
	apply("false", "v3")
	if got := srv.Unimplemented()[0].GetUnimplemented(); len(got) != 1 {
		t.Errorf("notes with normalize_path false = %q, want the skipped filter alone", got)
	}
	if got := testutil.ToFloat64(srv.Metrics().Unimplemented.WithLabelValues("listener")); got != 1 {
		t.Errorf("gauge = %v after the fix, want 1", got)
	}
}

// fromYAML reads one Envoy resource written as YAML (protojson names).
func fromYAML[T proto.Message](t *testing.T, m T, y string) T {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if err := protojson.Unmarshal(js, m); err != nil {
		t.Fatalf("%s: %v", y, err)
	}
	return m
}

func rdsListener(t *testing.T, name, addr, routes string) *listenerv3.Listener {
	host, port, _ := net.SplitHostPort(addr)
	return fromYAML(t, &listenerv3.Listener{}, `
name: `+name+`
address: { socket_address: { address: `+host+`, port_value: `+port+` } }
filter_chains:
- filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: x
      rds: { route_config_name: `+routes+`, config_source: { ads: {} } }
      http_filters: [ { name: envoy.filters.http.router, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } } ]
`)
}

func routeTo(t *testing.T, name, regex string) *routev3.RouteConfiguration {
	return fromYAML(t, &routev3.RouteConfiguration{}, `
name: `+name+`
virtual_hosts: [ { name: all, domains: ["*"], routes: [ { match: { safe_regex: { regex: "`+regex+`" } }, route: { cluster: ok } } ] } ]
`)
}

// failed lists the resources an error names, as kind/name.
func failed(t *testing.T, err error) map[string]bool {
	t.Helper()
	byRes, rest := config.ByResource(err)
	if rest != nil {
		t.Fatalf("errors not tied to a resource: %v", rest)
	}
	got := map[string]bool{}
	for typ, names := range byRes {
		for n := range names {
			got[kindName(typ)+"/"+n] = true
		}
	}
	return got
}

// Every failure is tied to its resource, so that a source taking
// resources one by one can reject those alone: a cluster that does not
// build or asks for a refused field, a route configuration that does not
// compile (not the listener that names it), a listener whose port is
// taken.
func TestServer_ResourceErrors(t *testing.T) {
	srv := New(Options{})
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	store := config.NewStore(srv)
	ok := fromYAML(t, &clusterv3.Cluster{}, `{ name: ok, type: STATIC }`)
	agg := fromYAML(t, &clusterv3.Cluster{}, `{ name: agg, cluster_type: { name: envoy.clusters.aggregate } }`)
	apply := func(res ...proto.Message) error {
		return store.Apply(context.Background(), config.Update{Source: "xds", Replace: config.ResourceTypes, Resources: res})
	}

	err := apply(ok, agg, routeTo(t, "good", "/a.*"), routeTo(t, "bad", "("),
		rdsListener(t, "l1", "127.0.0.1:0", "good"), rdsListener(t, "l2", "127.0.0.1:0", "bad"))
	if diff := cmp.Diff(failed(t, err), map[string]bool{"cluster/agg": true, "route_config/bad": true}); diff != "" {
		t.Errorf("failed resources (-got +want):\n%s", diff)
	}

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	err = apply(ok, routeTo(t, "good", "/a.*"), rdsListener(t, "l1", "127.0.0.1:0", "good"),
		rdsListener(t, "busy", taken.Addr().String(), "good"))
	if diff := cmp.Diff(failed(t, err), map[string]bool{"listener/busy": true}); diff != "" {
		t.Errorf("failed resources (-got +want):\n%s", diff)
	}
	if srv.ListenerAddr("l1") != "" {
		t.Error("a rejected config left a listener bound")
	}
	if err := apply(ok, routeTo(t, "good", "/a.*"), rdsListener(t, "l1", "127.0.0.1:0", "good")); err != nil {
		t.Fatalf("without the bad ones: %v", err)
	}
	// A newcomer on the port another listener serves is the one refused,
	// whatever their names' order.
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fixed := free.Addr().String()
	free.Close()
	if err := apply(ok, routeTo(t, "good", "/a.*"), rdsListener(t, "l1", fixed, "good")); err != nil {
		t.Fatal(err)
	}
	err = apply(ok, routeTo(t, "good", "/a.*"), rdsListener(t, "l1", fixed, "good"), rdsListener(t, "a-newcomer", fixed, "good"))
	if diff := cmp.Diff(failed(t, err), map[string]bool{"listener/a-newcomer": true}); diff != "" {
		t.Errorf("failed resources (-got +want):\n%s", diff)
	}
}

// x-forwarded-client-cert from a client is removed unless the HCM says to
// forward it (Envoy's forward_client_cert_details; SANITIZE by default), so
// that a client cannot claim another identity to the backends.
func TestServer_ForwardClientCertDetails(t *testing.T) {
	seen := make(chan string, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("X-Forwarded-Client-Cert")
	}))
	t.Cleanup(backend.Close)
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(backend.URL, "http://"))
	tests := []struct {
		mode string
		want string
	}{
		{"", ""}, // SANITIZE, Envoy's default
		{"SANITIZE_SET", ""},
		{"FORWARD_ONLY", ""}, // only from a client with a verified certificate
		{"ALWAYS_FORWARD_ONLY", "By=spiffe://evil/ns/x/sa/y"},
	}
	for _, tt := range tests {
		t.Run("mode "+tt.mode, func(t *testing.T) {
			srv := New(Options{})
			t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
			mode := ""
			if tt.mode != "" {
				mode = "forward_client_cert_details: " + tt.mode
			}
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
          `+mode+`
          route_config: { virtual_hosts: [ { name: all, domains: ["*"], routes: [ { match: { prefix: / }, route: { cluster: be } } ] } ] }
          http_filters: [ { name: envoy.filters.http.router, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } } ]
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
			req, _ := http.NewRequest("GET", "http://"+srv.ListenerAddr("web")+"/", nil)
			req.Header.Set("X-Forwarded-Client-Cert", "By=spiffe://evil/ns/x/sa/y")
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := <-seen; got != tt.want {
				t.Errorf("the backend saw x-forwarded-client-cert %q, want %q", got, tt.want)
			}
		})
	}
}
