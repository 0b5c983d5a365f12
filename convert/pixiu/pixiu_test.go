package pixiu

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/filesource"
	"github.com/meshgate/meshgate/server"
)

// Each fixture is a Pixiu sample shape written from Pixiu's docs; the
// expectations below were checked by hand against those docs and
// docs/config.md.
func TestConvert(t *testing.T) {
	tests := []struct {
		fixture  string
		check    func(t *testing.T, f *config.File)
		warnings []string // each must be among the warnings (substrings)
	}{
		{"http.yaml", func(t *testing.T, f *config.File) {
			l := f.Listeners[0]
			if l.Name != "net-http" || l.Address != "0.0.0.0:8888" || l.IdleTimeout.Duration.String() != "5s" {
				t.Errorf("listener = %+v", l)
			}
			r := l.VirtualHosts[0].Routes
			if len(r) != 2 || r[0].Match.Prefix != "/user" || r[0].Cluster != "user" || r[0].Timeout.Duration.String() != "10s" {
				t.Errorf("route 0 = %+v", r[0])
			}
			if r[1].Match.Regex != "/orders/[^/]+" || r[1].Match.Headers[0].Name != ":method" || *r[1].Match.Headers[0].Exact != "GET" || r[1].Cluster != "orders" {
				t.Errorf("route 1 = %+v", r[1])
			}
			if len(f.Clusters) != 2 || len(f.Clusters[0].Endpoints) != 2 || f.Clusters[0].Endpoints[1].Address != "127.0.0.2:1314" ||
				f.Clusters[1].LBPolicy != "random" || f.Clusters[0].ConnectTimeout.Duration.String() != "2s" {
				t.Errorf("clusters = %+v", f.Clusters)
			}
			if f.DrainTimeout.Duration.String() != "1m0s" {
				t.Errorf("drain_timeout = %v", f.DrainTimeout)
			}
		}, nil},
		{"dubbo.yaml", func(t *testing.T, f *config.File) {
			r := f.Listeners[0].VirtualHosts[0].Routes
			if len(r) != 3 {
				t.Fatalf("routes = %+v", r)
			}
			get := r[0]
			if get.Cluster != "dubbo|com.dubbogo.pixiu.UserService|1.0.0|test" || get.Dubbo.Method != "GetUserByName" ||
				get.Dubbo.PathTemplate != "/api/v1/test-dubbo/user/{name}" || get.Dubbo.Params[0] != (config.DubboParamConfig{From: "path.name", Type: "java.lang.String"}) ||
				get.Timeout.Duration.String() != "1s" {
				t.Errorf("GET route = %+v %+v", get, get.Dubbo)
			}
			post := r[1]
			if post.Match.Path != "/api/v1/test-dubbo/user" || post.Dubbo.Params[0] != (config.DubboParamConfig{From: "body", Type: "com.dubbogo.pixiu.User"}) ||
				post.Timeout.Duration.String() != "20s" {
				t.Errorf("POST route = %+v %+v", post, post.Dubbo)
			}
			if r[2].DirectResponse == nil || r[2].DirectResponse.Status != 406 {
				t.Errorf("offline API = %+v", r[2])
			}
			if len(f.Registries) != 1 || f.Registries[0].ZooKeeper.Servers[0] != "127.0.0.1:2181" {
				t.Errorf("registries = %+v", f.Registries)
			}
		}, []string{"timeout_config.connect_timeout: 25s not converted for the clusters a registry finds"}},
		{"grpc.yaml", func(t *testing.T, f *config.File) {
			l := f.Listeners[0]
			if l.GRPCJSON == nil || strings.Join(l.GRPCJSON.Services, ",") != "hello.v1.Greeter" || !strings.HasSuffix(l.GRPCJSON.Protos[0], "/testdata/proto/hello.proto") {
				t.Errorf("grpc_json = %+v", l.GRPCJSON)
			}
			r := l.VirtualHosts[0].Routes[0]
			if r.Match.Prefix != "/hello.v1.Greeter/" || !r.Match.GRPC || r.Cluster != "test-grpc" || f.Clusters[0].Protocol != "grpc" {
				t.Errorf("route = %+v, cluster %+v", r, f.Clusters[0])
			}
		}, []string{`without Pixiu's "/api/v1" in front`, "cluster_not_found_response_code: 505 not converted", "server_name: not converted"}},
		{"policies.yaml", func(t *testing.T, f *config.File) {
			vh := f.Listeners[0].VirtualHosts[0]
			if vh.CORS == nil || vh.CORS.AllowOrigins[0] != `regex:https?://api\.dubbo\.com` || strings.Join(vh.CORS.AllowMethods, ",") != "GET,POST" ||
				vh.CORS.MaxAge.Duration.String() != "1h0m0s" || !vh.CORS.AllowCredentials {
				t.Errorf("cors = %+v", vh.CORS)
			}
			if vh.Routes[0].RateLimit != nil {
				t.Errorf("/health got a rate limit")
			}
			if rl := vh.Routes[1].RateLimit; rl == nil || rl.Requests != 100 || rl.Per.Duration.String() != "1s" {
				t.Errorf("/user rate limit = %+v", rl)
			}
		}, []string{"JWT authentication (providers provider1) is NOT converted", "under /user are open"}},
		{"unsupported.yaml", func(t *testing.T, f *config.File) {
			if len(f.Listeners) != 1 || f.Clusters[0].LBPolicy != "ring_hash" {
				t.Errorf("config = %+v", f)
			}
		}, []string{
			"dgp.filter.http.csrf has no meshgate equivalent",
			"listeners[1]: TCP listener not converted",
			"health_checks: not converted",
			"ConsistentHashing became ring_hash",
			"static_resources.pprofConf: not converted",
			"tracing: not converted",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.fixture, func(t *testing.T) {
			res, err := ConvertFile(filepath.Join("testdata", tc.fixture), "")
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, res.File)
			all := strings.Join(res.Warnings, "\n")
			for _, w := range tc.warnings {
				if !strings.Contains(all, w) {
					t.Errorf("no warning %q in:\n%s", w, all)
				}
			}
			if tc.warnings == nil && len(res.Warnings) > 0 {
				t.Errorf("unexpected warnings:\n%s", all)
			}
			text, err := res.YAML()
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range res.Warnings {
				if !strings.Contains(string(text), "#   warning: "+w+"\n") {
					t.Errorf("warning %q is not a comment of the output", w)
				}
			}
			validate(t, text)
		})
	}
}

// validate loads and compiles the output as `meshgate validate` does.
func validate(t *testing.T, text []byte) {
	t.Helper()
	l, err := config.Load(text, t.TempDir())
	if err != nil {
		t.Fatalf("meshgate does not load the output: %v\n%s", err, text)
	}
	store := config.NewStore(nil)
	if err := store.Apply(context.Background(), config.Update{Source: filesource.Name, Replace: config.ResourceTypes, Resources: l.Resources}); err != nil {
		t.Fatalf("store: %v", err)
	}
	if _, err := server.New(server.Options{}).Validate(store.Current()); err != nil {
		t.Fatalf("meshgate does not compile the output: %v\n%s", err, text)
	}
}

func TestConvert_Errors(t *testing.T) {
	for _, in := range []string{"listeners: [", "admin: {}", "static_resources: {listeners: [{name: t, protocol_type: TCP}]}"} {
		if _, err := Convert([]byte(in), nil, "."); err == nil {
			t.Errorf("Convert(%q) succeeded", in)
		}
	}
}

// Keys come out in meshgate's order and strings YAML would misread are
// quoted.
func TestYAML(t *testing.T) {
	out, err := toYAML(map[string]any{"a": []any{"yes", "x|y", "/p"}, "b": []any{map[string]any{"c": 1, "d": "on"}}})
	if err != nil {
		t.Fatal(err)
	}
	if want := "a: [ \"yes\", \"x|y\", /p ]\nb:\n  - c: 1\n    d: \"on\"\n"; string(out) != want {
		t.Errorf("got %q, want %q", out, want)
	}
}
