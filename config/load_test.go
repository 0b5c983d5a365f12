package config

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"sigs.k8s.io/yaml"
)

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// byName indexes resources by type and name.
func byName(t *testing.T, ms []proto.Message) map[string]proto.Message {
	t.Helper()
	out := map[string]proto.Message{}
	for _, m := range ms {
		name, err := ResourceName(m)
		if err != nil {
			t.Fatal(err)
		}
		out[kind(TypeURL(m))+"/"+name] = m
	}
	return out
}

// The friendly format translates into exactly the resources a hand-written
// Envoy config of the same meaning holds.
func TestLoad_FriendlyMatchesHandWrittenEnvoy(t *testing.T) {
	friendly, err := Load(readFile(t, "testdata/friendly.yaml"), "testdata")
	if err != nil {
		t.Fatalf("Load(friendly.yaml): %v", err)
	}
	// The Envoy file's listener takes "main" over RDS, which a bootstrap
	// cannot define, so it is read without the reference check; the route
	// config comes from its own file.
	js, err := yaml.YAMLToJSON(readFile(t, "testdata/envoy-equivalent.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(js, &top); err != nil {
		t.Fatal(err)
	}
	envoy, err := loadEnvoy(top)
	if err != nil {
		t.Fatalf("loadEnvoy(envoy-equivalent.yaml): %v", err)
	}
	rcJSON, err := yaml.YAMLToJSON(readFile(t, "testdata/envoy-route-main.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	main := &routev3.RouteConfiguration{}
	if err := protojson.Unmarshal(rcJSON, main); err != nil {
		t.Fatal(err)
	}
	want := byName(t, append(envoy.Resources, main))
	got := byName(t, friendly.Resources)
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("friendly.yaml translation (-hand-written Envoy +friendly):\n%s", diff)
	}
	if friendly.Bootstrap.AdminAddress != "127.0.0.1:9902" || friendly.Bootstrap.DrainTimeout.Seconds() != 3 {
		t.Errorf("bootstrap = %+v, want admin 127.0.0.1:9902, drain 3s", friendly.Bootstrap)
	}
	if envoy.Bootstrap.AdminAddress != "127.0.0.1:9902" {
		t.Errorf("Envoy admin address = %q, want 127.0.0.1:9902", envoy.Bootstrap.AdminAddress)
	}
}

func TestLoad_EnvoyStaticResources(t *testing.T) {
	l, err := Load([]byte(`{
  "static_resources": {
    "listeners": [{
      "name": "l", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 10000}},
      "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
          "stat_prefix": "l",
          "route_config": {"virtual_hosts": [{"name": "v", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "c"}}]}]},
          "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}]
    }],
    "clusters": [{"name": "c", "type": "STATIC", "load_assignment": {"cluster_name": "c", "endpoints": [{"lb_endpoints": [
      {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 8000}}}}]}]}}]
  },
  "layered_runtime": {}
}`), "")
	if err != nil {
		t.Fatalf("Load(Envoy JSON): %v", err)
	}
	if l.Format != "envoy" || len(l.Resources) != 2 {
		t.Fatalf("format %q with %d resources, want envoy with 2", l.Format, len(l.Resources))
	}
	if _, ok := l.Resources[0].(*listenerv3.Listener); !ok {
		t.Errorf("first resource is %T, want a Listener", l.Resources[0])
	}
	if c, ok := l.Resources[1].(*clusterv3.Cluster); !ok || c.GetName() != "c" {
		t.Errorf("second resource is %v, want cluster c", l.Resources[1])
	}
	if len(l.Warnings) != 1 || !strings.Contains(l.Warnings[0], "layered_runtime") {
		t.Errorf("warnings = %q, want one about layered_runtime", l.Warnings)
	}
}

// Errors name the field and say why.
func TestLoad_Errors(t *testing.T) {
	tests := []struct {
		name, config string
		want         []string
	}{
		{"unknown field", `listeners: [{name: a, adress: x}]`, []string{`unknown field "adress"`}},
		{"not a mapping", `- a`, []string{"top level must be a mapping"}},
		{"bad address", `
listeners: [{name: l, address: "nope", virtual_hosts: [{routes: [{match: {prefix: /}, direct_response: {status: 200}}]}]}]`,
			[]string{`listeners[0].address: want host:port, got "nope"`}},
		{"two actions", `
listeners: [{name: l, address: ":80", virtual_hosts: [{routes: [{match: {prefix: /}, cluster: c, direct_response: {status: 200}}]}]}]
clusters: [{name: c, endpoints: ["127.0.0.1:1"]}]`,
			[]string{"listeners[0].virtual_hosts[0].routes[0]: needs exactly one of cluster, weighted_clusters, direct_response, redirect (has 2)"}},
		{"undefined cluster", `
listeners: [{name: l, address: ":80", virtual_hosts: [{name: v, routes: [{match: {prefix: /}, cluster: nope}]}]}]`,
			[]string{`virtual_hosts[0] (v) routes[0]: cluster "nope" is not defined`}},
		{"bad faults", `
listeners: [{name: l, address: ":80", virtual_hosts: [{routes: [
  {match: {prefix: /a}, cluster: c, fault: {abort_status: 42}},
  {match: {prefix: /b}, cluster: c, fault: {delay: 1s, delay_percent: 120}},
  {match: {prefix: /c}, cluster: c, fault: {}}]}]}]
clusters: [{name: c, endpoints: ["127.0.0.1:1"]}]`,
			[]string{"routes[0].fault.abort_status: 42 is not an HTTP status", "routes[1].fault.delay_percent: want a percentage from 0 to 100, got 120",
				"routes[2].fault: needs a delay or an abort"}},
		{"tracing without a collector, sampling out of range", `
listeners:
  - {name: a, address: ":80", tracing: {random_sampling: 5}, virtual_hosts: [{routes: [{match: {prefix: /}, direct_response: {status: 200}}]}]}
  - {name: b, address: ":81", tracing: {otlp_endpoint: "c:4317", random_sampling: 150}, virtual_hosts: [{routes: [{match: {prefix: /}, direct_response: {status: 200}}]}]}`,
			[]string{"listeners[0].tracing.otlp_endpoint: must name the collector", "listeners[1].tracing.random_sampling: must be a percentage, 0 to 100"}},
		{"local app without cluster, services or method names", `
dubbo_listeners:
  - {name: d, address: ":20880", local_app: {services: []}}
  - {name: e, address: ":20881", local_app: {cluster: app, services: [{interface: org.x.S, methods: [{name: "", param_types: [int], param_names: [a, b]}]}]}}
clusters: [{name: app, endpoints: ["127.0.0.1:8000"]}]`,
			[]string{"dubbo_listeners[0].local_app.cluster: must name the app's cluster", "dubbo_listeners[0].local_app.services: needs at least one",
				"dubbo_listeners[1].local_app.services[0].methods[0].name: must not be empty", "dubbo_listeners[1].local_app.services[0].methods[0].param_names: one per param_types entry"}},
		{"local app registration without application, registries, a known mode or a path", `
dubbo_listeners:
  - {name: d, address: ":20880", local_app: {cluster: app, services: [{interface: org.x.S, methods: [{name: m}]}],
     register: {mode: both, registries: [{}], health_check: {path: health}}}}
  - {name: e, address: ":20881", local_app: {cluster: app, services: [{interface: org.x.S, methods: [{name: m}]}],
     register: {application: a, registries: [{zookeeper: {servers: []}}]}}}
clusters: [{name: app, endpoints: ["127.0.0.1:8000"]}]`,
			[]string{"dubbo_listeners[0].local_app.register.application: must not be empty", "dubbo_listeners[0].local_app.register.mode: want all, interface or instance, got \"both\"",
				"dubbo_listeners[0].local_app.register.registries[0]: give exactly one of zookeeper or nacos", "dubbo_listeners[0].local_app.register.health_check.path: want a path starting with /, got \"health\"",
				"dubbo_listeners[1].local_app.register.registries[0].zookeeper.servers: give at least one host:port"}},
		{"local app registered in Nacos with a password from an unset variable, and a gRPC port that is none", `
dubbo_listeners:
  - {name: d, address: ":20880", local_app: {cluster: app, services: [{interface: org.x.S, methods: [{name: m}]}],
     register: {application: a, registries: [{nacos: {servers: ["n:8848"], grpc_port: 70000, password_env: MESHGATE_NO_SUCH_VAR}}]}}}
clusters: [{name: app, endpoints: ["127.0.0.1:8000"]}]`,
			[]string{"dubbo_listeners[0].local_app.register.registries[0].nacos.grpc_port: 70000 is not a port",
				"dubbo_listeners[0].local_app.register.registries[0].nacos.password_env: environment variable MESHGATE_NO_SUCH_VAR is not set"}},
		{"local app protocol unknown, a gRPC app checked by path, an HTTP app by gRPC service", `
dubbo_listeners:
  - {name: d, address: ":20880", local_app: {cluster: app, protocol: soap, services: [{interface: org.x.S, methods: [{name: m}]}]}}
  - {name: e, address: ":20881", local_app: {cluster: app, protocol: grpc, services: [{interface: org.x.S, methods: [{name: m}]}],
     register: {application: a, registries: [{zookeeper: {servers: ["zk:2181"]}}], health_check: {path: /health}}}}
  - {name: f, address: ":20882", local_app: {cluster: app, services: [{interface: org.x.S, methods: [{name: m}]}],
     register: {application: a, registries: [{zookeeper: {servers: ["zk:2181"]}}], health_check: {path: /h, grpc_service: x}}}}
clusters: [{name: app, endpoints: ["127.0.0.1:8000"]}]`,
			[]string{`dubbo_listeners[0].local_app.protocol: want http_json or grpc, got "soap"`,
				"dubbo_listeners[1].local_app.register.health_check.path: a gRPC app is checked with grpc.health.v1",
				"dubbo_listeners[2].local_app.register.health_check.grpc_service: is for a gRPC app"}},
		{"undefined route config", `
listeners: [{name: l, address: ":80", route_config: main}]`,
			[]string{`listeners[0].route_config: route config "main" is not defined in route_configs`}},
		{"several errors at once", `
listeners: [{name: l, address: ":80", virtual_hosts: [{routes: [{match: {prefix: /, path: /x}, redirect: {code: 200}}]}]}]
clusters: [{name: c, protocol: http3, lb_policy: least_connections, endpoints: ["x"]}]`,
			[]string{
				"routes[0].match: give at most one of prefix, path, regex",
				"routes[0].redirect.code: want 301, 302, 303, 307 or 308, got 200",
				`clusters[0].protocol: unknown protocol "http3"`,
				`clusters[0].lb_policy: unknown policy "least_connections"`,
				`clusters[0].endpoints[0]: want host:port, got "x"`,
			}},
		{"bad regex", `
listeners: [{name: l, address: ":80", virtual_hosts: [{routes: [{match: {regex: "("}, direct_response: {status: 200}}]}]}]`,
			[]string{"routes[0].match.regex: error parsing regexp"}},
		{"bad duration", `drain_timeout: soon`, []string{`duration "soon"`}},
		{"duplicate cluster", `clusters: [{name: c}, {name: c}]`, []string{`clusters[1].name: cluster "c" is defined twice`}},
		{"eds with endpoints", `clusters: [{name: c, type: eds, endpoints: ["1.2.3.4:5"]}]`, []string{"clusters[0].endpoints: an eds cluster takes its endpoints"}},
		{"Envoy unknown field", `static_resources: {clusters: [{name: c, typo: 1}]}`, []string{"static_resources.clusters[0]", "typo"}},
		{"Envoy unknown bootstrap field", `{static_resources: {}, nonsense: 1}`, []string{"nonsense: unknown bootstrap field"}},
		{"Envoy secrets", `static_resources: {secrets: []}`, []string{"static_resources.secrets: not supported"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load([]byte(tc.config), "")
			if err == nil {
				t.Fatal("Load() accepted a bad config")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Load() error:\n%v\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

func TestLoad_XDSSettings(t *testing.T) {
	friendly, err := Load([]byte(`
xds:
  address: istiod.istio-system:15012
  delta: true
  istio: { namespace: gw-ns, pod: edge-1, labels: { app: edge } }
listeners:
  - name: static
    address: 127.0.0.1:0
    virtual_hosts: [ { routes: [ { match: { prefix: / }, cluster: from-xds } ] } ]
`), "")
	if err != nil {
		t.Fatalf("Load: %v (a route may name a cluster the control plane provides)", err)
	}
	x := friendly.Bootstrap.XDS
	if x == nil || x.Address != "istiod.istio-system:15012" || !x.Delta ||
		x.Node.GetId() != "router~127.0.0.1~edge-1.gw-ns~gw-ns.svc.cluster.local" ||
		x.Node.GetMetadata().AsMap()["LABELS"].(map[string]any)["app"] != "edge" {
		t.Errorf("xds settings %+v", x)
	}
	envoy, err := Load([]byte(`{
  "node": {"id": "gw-1", "cluster": "edge"},
  "dynamic_resources": {"ads_config": {"api_type": "DELTA_GRPC", "grpc_services": [{"envoy_grpc": {"cluster_name": "xds"}}]},
                        "lds_config": {"ads": {}}, "cds_config": {"ads": {}}},
  "static_resources": {"clusters": [{"name": "xds", "type": "STATIC", "load_assignment": {"cluster_name": "xds",
    "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "10.0.0.9", "port_value": 18000}}}}]}]}}]}
}`), "")
	if err != nil {
		t.Fatal(err)
	}
	if x := envoy.Bootstrap.XDS; x == nil || x.Address != "10.0.0.9:18000" || !x.Delta || x.Node.GetId() != "gw-1" {
		t.Errorf("Envoy dynamic_resources read as %+v", x)
	}
}
