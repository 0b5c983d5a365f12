package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/meshgate/meshgate/config"
)

// The embedded demo config loads and compiles.
func TestDemoConfig(t *testing.T) {
	l, err := config.Load(demoConfig, "")
	if err != nil {
		t.Fatalf("demo config: %v", err)
	}
	notDone, err := check(l)
	if err != nil {
		t.Fatalf("demo config does not compile: %v", err)
	}
	// meshgate's own format translates only into what meshgate does.
	if len(notDone) > 0 {
		t.Errorf("the demo config has parts that are accepted but not done: %q", notDone)
	}
	if l.Bootstrap.AdminAddress != "127.0.0.1:9901" {
		t.Errorf("demo admin address = %q, want 127.0.0.1:9901", l.Bootstrap.AdminAddress)
	}
}

func TestRun_Commands(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, demoConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("listeners: [{name: l, address: ':1', virtual_hosts: [{routes: [{match: {prefix: /}, cluster: nope}]}]}]"), 0o600); err != nil {
		t.Fatal(err)
	}
	// An Envoy config asking for what meshgate does not do: access logs
	// (accepted, said) and SAN checks without trust anchors (refused: never
	// fails open).
	envoyCfg := filepath.Join(dir, "envoy.yaml")
	sanCfg := filepath.Join(dir, "envoy-san.yaml")
	const envoyListener = `
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
          access_log: [ { name: envoy.access_loggers.stdout, filter: { not_health_check_filter: {} }, typed_config: { "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog } } ]
          route_config: { virtual_hosts: [ { name: all, domains: ["*"], routes: [ { match: { prefix: / }, route: { cluster: be } } ] } ] }
          http_filters: [ { name: envoy.filters.http.router, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } } ]
  clusters:
  - name: be
    type: STATIC
    load_assignment: { cluster_name: be, endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 9 } } } } ] } ] }
`
	const sanCluster = `
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context: { validation_context: { match_typed_subject_alt_names: [ { san_type: DNS, matcher: { exact: be.example.com } } ] } }
`
	if err := os.WriteFile(envoyCfg, []byte(envoyListener), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sanCfg, []byte(envoyListener+sanCluster), 0o600); err != nil {
		t.Fatal(err)
	}
	pixiuCfg := filepath.Join(dir, "pixiu.yaml")
	const pixiuConf = `
static_resources:
  listeners:
    - name: web
      address: { socket_address: { address: 127.0.0.1, port: 0 } }
      filter_chains:
        filters:
          - name: dgp.filter.httpconnectionmanager
            config:
              route_config: { routes: [ { match: { prefix: / }, route: { cluster: user } } ] }
              http_filters: [ { name: dgp.filter.http.httpproxy } ]
  clusters: [ { name: user, endpoints: [ { socket_address: { address: 127.0.0.1, port: 9 } } ] } ]
tracing: { http: { name: jaeger } }
`
	if err := os.WriteFile(pixiuCfg, []byte(pixiuConf), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"validate", "-c", envoyCfg}, 0, "valid (envoy format",
			`warning: accepted, but not done: listener "web": filter_chains[0].filters[envoy.filters.network.http_connection_manager].typed_config.access_log[0].filter: not applied: every request is logged`},
		{[]string{"validate", "-c", sanCfg}, 1, "", "subject alt name matchers need trust anchors"},
		{[]string{"version"}, 0, "meshgate ", ""},
		{[]string{"convert", "pixiu", "-c", pixiuCfg}, 0, "cluster: user", "warning: tracing: not converted"},
		{[]string{"convert", "pixiu", "-c", bad}, 1, "", "no static_resources"},
		{[]string{"convert", "pixiu", "-c", filepath.Join(dir, "missing.yaml")}, 1, "", "no such file"},
		{[]string{"convert", "pixiu"}, 2, "", "-c conf.yaml is required"},
		{[]string{"convert", "pixiu", "-nope"}, 2, "", "flag provided but not defined"},
		{[]string{"convert"}, 2, "", "the source format is required"},
		{[]string{"validate", "-c", good}, 0, "valid (meshgate format", ""},
		{[]string{"validate", "-c", bad}, 1, "", `cluster "nope" is not defined`},
		{[]string{"validate"}, 2, "", "-c FILE is required"},
		{[]string{"validate", "-c", filepath.Join(dir, "missing.yaml")}, 1, "", "no such file"},
		{[]string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{nil, 2, "", "Usage:"},
	}
	for _, tc := range tests {
		var stdout, stderr bytes.Buffer
		code := Run(tc.args, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stdout.String(), tc.stdout) || !strings.Contains(stderr.String(), tc.stderr) {
			t.Errorf("meshgate %v = %d, stdout %q, stderr %q; want %d with %q / %q",
				tc.args, code, stdout.String(), stderr.String(), tc.code, tc.stdout, tc.stderr)
		}
	}
}

// `meshgate version` names the release, the commit and the toolchain, from
// -ldflags or from what `go build` / `go install ...@vX` recorded.
func TestDescribeBuild(t *testing.T) {
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	tests := []struct {
		ldflags string
		bi      *debug.BuildInfo
		want    string
	}{
		{"v0.3.0", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("0123456789abcdef0123", "false")},
			"v0.3.0 (commit 0123456789ab, go1.26.8)"},
		{"", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("0123456789abcdef0123", "true")},
			"dev (commit 0123456789ab-dirty, go1.26.8)"},
		// go install github.com/meshgate/meshgate/cmd/meshgate@v0.3.1: no VCS stamp.
		{"", &debug.BuildInfo{Main: debug.Module{Version: "v0.3.1"}}, "v0.3.1 (go1.26.8)"},
		{"", nil, "dev (go1.26.8)"},
	}
	for _, tc := range tests {
		if got := describeBuild(tc.ldflags, tc.bi, "go1.26.8"); got != tc.want {
			t.Errorf("describeBuild(%q, %+v) = %q, want %q", tc.ldflags, tc.bi, got, tc.want)
		}
	}
	if line := versionLine(); !strings.HasPrefix(line, "meshgate ") || !strings.Contains(line, runtime.Version()+")") {
		t.Errorf("version line %q", line)
	}
}

func TestXDSFlags_Apply(t *testing.T) {
	var b config.Bootstrap
	f := xdsFlags{address: "istiod:15010", nodeCluster: "edge", locality: "eu/eu-1"}
	_ = f.metadata.Set("CLUSTER_ID=c2")
	if err := f.apply(&b); err != nil {
		t.Fatal(err)
	}
	n := b.XDS.Node
	if b.XDS.Address != "istiod:15010" || !strings.HasPrefix(n.GetId(), "router~127.0.0.1~meshgate.istio-system~") ||
		n.GetCluster() != "edge" || n.GetLocality().GetZone() != "eu-1" {
		t.Errorf("node = %v at %s", n, b.XDS.Address)
	}
	md := n.GetMetadata().AsMap()
	if md["CLUSTER_ID"] != "c2" || md["NAMESPACE"] != "istio-system" {
		t.Errorf("metadata = %v, want CLUSTER_ID overridden and Istio defaults kept", md)
	}
	var none config.Bootstrap
	if err := (xdsFlags{nodeID: "x"}).apply(&none); err == nil {
		t.Error("-node-id without a control plane was accepted")
	}
}
