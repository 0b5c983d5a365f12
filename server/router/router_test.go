package router

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"
)

// parseRC reads a RouteConfiguration written as Envoy YAML.
func parseRC(t testing.TB, y string) *routev3.RouteConfiguration {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatalf("yaml: %v", err)
	}
	rc := &routev3.RouteConfiguration{}
	if err := protojson.Unmarshal(js, rc); err != nil {
		t.Fatalf("route config: %v", err)
	}
	return rc
}

// targets resolves every cluster name to itself.
func targets(name string) (string, bool) { return name, name != "missing" }

func compile(t testing.TB, y string) *Table[string] {
	t.Helper()
	table, err := Compile(parseRC(t, y), targets)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return table
}

type req struct {
	method, target, host string
	headers              map[string]string
	tls                  bool
}

func (r req) build() *http.Request {
	method := r.method
	if method == "" {
		method = "GET"
	}
	hr := httptest.NewRequest(method, r.target, nil)
	hr.Host = r.host
	if r.host == "" {
		hr.Host = "example.com"
	}
	for k, v := range r.headers {
		hr.Header.Set(k, v)
	}
	if r.tls {
		hr.TLS = &tls.ConnectionState{}
	}
	return hr
}

func TestTable_VirtualHost(t *testing.T) {
	table := compile(t, `
virtual_hosts:
- {name: exact, domains: [api.example.com, "api.example.com:8443"], routes: [{match: {prefix: /}, direct_response: {status: 200}}]}
- {name: suffix-long, domains: ["*.eu.example.com"], routes: [{match: {prefix: /}, direct_response: {status: 200}}]}
- {name: suffix, domains: ["*.example.com"], routes: [{match: {prefix: /}, direct_response: {status: 200}}]}
- {name: prefix, domains: ["shop.*"], routes: [{match: {prefix: /}, direct_response: {status: 200}}]}
- {name: any, domains: ["*"], routes: [{match: {prefix: /}, direct_response: {status: 200}}]}
`)
	tests := []struct{ host, want string }{
		{"api.example.com", "exact"},
		{"API.Example.COM", "exact"},
		{"api.example.com:8443", "exact"},
		{"api.example.com:9999", "exact"}, // tried again without the port
		{"x.eu.example.com", "suffix-long"},
		{"www.example.com", "suffix"},
		{"example.com", "any"}, // "*.example.com" needs a non-empty label
		{"shop.local", "prefix"},
		{"shop.local:80", "prefix"},
		{"other.org", "any"},
		{"", "any"},
	}
	for _, tc := range tests {
		vh := table.VirtualHost(tc.host)
		if vh == nil || vh.Name != tc.want {
			got := "<nil>"
			if vh != nil {
				got = vh.Name
			}
			t.Errorf("VirtualHost(%q) = %s, want %s", tc.host, got, tc.want)
		}
	}
	noDefault := compile(t, `virtual_hosts: [{name: only, domains: [a.com], routes: [{match: {prefix: /}, direct_response: {status: 200}}]}]`)
	if vh := noDefault.VirtualHost("b.com"); vh != nil {
		t.Errorf("VirtualHost(b.com) without a * host = %s, want nil", vh.Name)
	}
}

// Each route names the condition it tests; the table checks which route a
// request lands on ("" for none). Order matters: the first match wins.
const matchRoutes = `
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - {name: exact, match: {path: /exact}, direct_response: {status: 200}}
  - {name: exact-fold, match: {path: /Fold, case_sensitive: false}, direct_response: {status: 200}}
  - {name: regex, match: {safe_regex: {regex: "/items/[0-9]+"}}, direct_response: {status: 200}}
  - {name: separated, match: {path_separated_prefix: /sep}, direct_response: {status: 200}}
  - {name: grpc, match: {prefix: /pkg.Svc/, grpc: {}}, direct_response: {status: 200}}
  - name: hdr-exact
    match: {prefix: /h/, headers: [{name: x-env, string_match: {exact: prod}}]}
    direct_response: {status: 200}
  - name: hdr-prefix-fold
    match: {prefix: /h/, headers: [{name: x-env, string_match: {prefix: STAG, ignore_case: true}}]}
    direct_response: {status: 200}
  - name: hdr-suffix
    match: {prefix: /h/, headers: [{name: x-env, string_match: {suffix: -dev}}]}
    direct_response: {status: 200}
  - name: hdr-contains
    match: {prefix: /h/, headers: [{name: x-env, string_match: {contains: canary}}]}
    direct_response: {status: 200}
  - name: hdr-regex
    match: {prefix: /h/, headers: [{name: x-env, string_match: {safe_regex: {regex: "v[0-9]+"}}}]}
    direct_response: {status: 200}
  - name: hdr-range
    match: {prefix: /h/, headers: [{name: x-tier, range_match: {start: 10, end: 20}}]}
    direct_response: {status: 200}
  - name: hdr-absent
    match: {prefix: /h/, headers: [{name: x-debug, present_match: false}]}
    direct_response: {status: 200}
  - name: hdr-present
    match: {prefix: /h/, headers: [{name: x-debug, present_match: true}]}
    direct_response: {status: 200}
  - name: hdr-inverted
    match: {prefix: /inv/, headers: [{name: x-env, string_match: {exact: prod}, invert_match: true}]}
    direct_response: {status: 200}
  - name: hdr-method
    match: {prefix: /m/, headers: [{name: ":method", string_match: {exact: POST}}]}
    direct_response: {status: 200}
  - name: hdr-host
    match: {prefix: /host/, headers: [{name: host, string_match: {exact: api.example.com}}]}
    direct_response: {status: 200}
  - name: query-exact
    match: {prefix: /q/, query_parameters: [{name: v, string_match: {exact: "a b"}}]}
    direct_response: {status: 200}
  - name: query-present
    match: {prefix: /q/, query_parameters: [{name: debug, present_match: true}]}
    direct_response: {status: 200}
  - {name: prefix-fold, match: {prefix: /CaSe/, case_sensitive: false}, direct_response: {status: 200}}
  - {name: prefix-long, match: {prefix: /api/v2/}, direct_response: {status: 200}}
  - {name: prefix, match: {prefix: /api/}, direct_response: {status: 200}}
  - {name: prefix-shadowed, match: {prefix: /api/v3/}, direct_response: {status: 200}}
`

func TestVirtualHost_Match(t *testing.T) {
	table := compile(t, matchRoutes)
	grpcCT := map[string]string{"content-type": "application/grpc"}
	tests := []struct {
		name string
		req  req
		want string
	}{
		{"exact path", req{target: "/exact"}, "exact"},
		{"exact path ignores the query", req{target: "/exact?a=1"}, "exact"},
		{"exact path is whole", req{target: "/exact/more"}, ""},
		{"exact is case sensitive by default", req{target: "/EXACT"}, ""},
		{"exact case insensitive", req{target: "/fOLD"}, "exact-fold"},
		{"regex matches the whole path", req{target: "/items/42"}, "regex"},
		{"regex rejects a partial match", req{target: "/items/42/x"}, ""},
		{"regex ignores the query", req{target: "/items/7?x=y"}, "regex"},
		{"separated prefix, equal", req{target: "/sep"}, "separated"},
		{"separated prefix, segment", req{target: "/sep/a"}, "separated"},
		{"separated prefix, no boundary", req{target: "/septic"}, ""},
		{"grpc with content type", req{method: "POST", target: "/pkg.Svc/M", headers: grpcCT}, "grpc"},
		{"grpc+proto content type", req{method: "POST", target: "/pkg.Svc/M", headers: map[string]string{"content-type": "application/grpc+proto"}}, "grpc"},
		{"grpc-web is not grpc", req{method: "POST", target: "/pkg.Svc/M", headers: map[string]string{"content-type": "application/grpc-web"}}, ""},
		{"grpc without content type", req{target: "/pkg.Svc/M"}, ""},
		{"header exact", req{target: "/h/", headers: map[string]string{"x-env": "prod"}}, "hdr-exact"},
		{"header prefix ignoring case", req{target: "/h/", headers: map[string]string{"x-env": "staging"}}, "hdr-prefix-fold"},
		{"header suffix", req{target: "/h/", headers: map[string]string{"x-env": "team-dev"}}, "hdr-suffix"},
		{"header contains", req{target: "/h/", headers: map[string]string{"x-env": "a-canary-b"}}, "hdr-contains"},
		{"header regex", req{target: "/h/", headers: map[string]string{"x-env": "v12"}}, "hdr-regex"},
		{"header regex is whole", req{target: "/h/", headers: map[string]string{"x-env": "v12x", "x-debug": "1"}}, "hdr-present"},
		{"header range inside", req{target: "/h/", headers: map[string]string{"x-tier": "15", "x-debug": "1"}}, "hdr-range"},
		{"header range end is exclusive", req{target: "/h/", headers: map[string]string{"x-tier": "20", "x-debug": "1"}}, "hdr-present"},
		{"header absent", req{target: "/h/"}, "hdr-absent"},
		{"header present", req{target: "/h/", headers: map[string]string{"x-debug": ""}}, "hdr-present"},
		{"inverted matches another value", req{target: "/inv/", headers: map[string]string{"x-env": "dev"}}, "hdr-inverted"},
		{"inverted refuses the value", req{target: "/inv/", headers: map[string]string{"x-env": "prod"}}, ""},
		{"inverted refuses a missing header (Envoy)", req{target: "/inv/"}, ""},
		{"method pseudo-header", req{method: "POST", target: "/m/"}, "hdr-method"},
		{"method pseudo-header refuses", req{target: "/m/"}, ""},
		{"host header (Go keeps it out of the header map)", req{target: "/host/", host: "api.example.com"}, "hdr-host"},
		{"host header refuses another host", req{target: "/host/", host: "www.example.com"}, ""},
		{"query exact, decoded", req{target: "/q/?v=a+b"}, "query-exact"},
		{"query exact, percent", req{target: "/q/?x=1&v=a%20b"}, "query-exact"},
		{"query present", req{target: "/q/?debug"}, "query-present"},
		{"query other value", req{target: "/q/?v=c"}, ""},
		{"prefix case insensitive", req{target: "/case/x"}, "prefix-fold"},
		{"longer prefix first in order", req{target: "/api/v2/x"}, "prefix-long"},
		{"first match wins over a later longer prefix", req{target: "/api/v3/x"}, "prefix"},
		{"no route", req{target: "/nothing"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ""
			if rt := table.Match(tc.req.build()); rt != nil {
				got = rt.Name
			}
			if got != tc.want {
				t.Errorf("Match(%s %s %v) = %q, want %q", tc.req.method, tc.req.target, tc.req.headers, got, tc.want)
			}
		})
	}
}

func TestHeaderMatcher_SeveralValuesJoined(t *testing.T) {
	table := compile(t, `
virtual_hosts: [{name: vh, domains: ["*"], routes: [
  {name: both, match: {prefix: /, headers: [{name: x-a, string_match: {exact: "1,2"}}]}, direct_response: {status: 200}}]}]`)
	r := req{target: "/"}.build()
	r.Header.Add("X-A", "1")
	r.Header.Add("X-A", "2")
	if rt := table.Match(r); rt == nil {
		t.Error("a header sent twice did not match the values joined by a comma, as Envoy joins them")
	}
}

func TestForward_Actions(t *testing.T) {
	table := compile(t, `
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - match: {prefix: /api/}
    route: {cluster: a, prefix_rewrite: /v1/, timeout: 2s, max_stream_duration: {grpc_timeout_header_max: 1s}}
  - match: {path: /one}
    route: {cluster: a, prefix_rewrite: /uno}
  - match: {safe_regex: {regex: "/u/([a-z]+)/([0-9]+)"}}
    route: {cluster: a, regex_rewrite: {pattern: {regex: "^/u/([a-z]+)/([0-9]+)$"}, substitution: "/users/\\2/\\1$x"}}
  - match: {prefix: /split}
    route: {weighted_clusters: {clusters: [{name: a, weight: 3}, {name: zero, weight: 0}, {name: missing, weight: 1}]}}
  - match: {prefix: /}
    route: {cluster: b, host_rewrite_literal: upstream.local}
`)
	tests := []struct {
		target, wantPath string
	}{
		{"/api/x/y", "/v1/x/y"},
		{"/one", "/uno"},
		{"/u/bob/42", "/users/42/bob$x"},
		{"/other", "/other"},
	}
	for _, tc := range tests {
		rt := table.Match(req{target: tc.target}.build())
		if rt == nil || rt.Forward == nil {
			t.Fatalf("Match(%s) = no forward route", tc.target)
		}
		path, _, _ := strings.Cut(tc.target, "?")
		if got := rt.Forward.RewritePath(path); got != tc.wantPath {
			t.Errorf("RewritePath(%s) = %q, want %q", tc.target, got, tc.wantPath)
		}
	}
	api := table.Match(req{target: "/api/"}.build()).Forward
	if api.Timeout.Seconds() != 2 || api.GRPCTimeoutMax.Seconds() != 1 {
		t.Errorf("timeouts = %v, %v, want 2s, 1s", api.Timeout, api.GRPCTimeoutMax)
	}
	if def := table.Match(req{target: "/other"}.build()).Forward; def.Timeout != DefaultTimeout || def.HostRewrite != "upstream.local" {
		t.Errorf("default route: timeout %v host %q, want Envoy's 15s and upstream.local", def.Timeout, def.HostRewrite)
	}

	split := table.Match(req{target: "/split"}.build()).Forward
	counts := map[string]int{}
	for i := range uint64(4000) {
		w := split.Pick(i)
		counts[w.Name]++
		if w.Name == "missing" && w.Found {
			t.Fatal("a cluster the resolver does not know is marked found")
		}
	}
	if counts["a"] != 3000 || counts["missing"] != 1000 || counts["zero"] != 0 {
		t.Errorf("4000 picks over weights 3/0/1 = %v, want a:3000 missing:1000", counts)
	}
}

func TestRedirect_Location(t *testing.T) {
	table := compile(t, `
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - {match: {prefix: /https}, redirect: {https_redirect: true}}
  - {match: {prefix: /old/}, redirect: {prefix_rewrite: /new/, response_code: PERMANENT_REDIRECT}}
  - {match: {prefix: /elsewhere}, redirect: {host_redirect: other.org, port_redirect: 8443, path_redirect: /landing, strip_query: true, response_code: FOUND}}
`)
	tests := []struct {
		target     string
		tls        bool
		want       string
		wantStatus int
	}{
		{"/https/x?a=1", false, "https://example.com/https/x?a=1", 301},
		{"/old/page?q=2", true, "https://example.com/new/page?q=2", 308},
		{"/elsewhere?drop=me", false, "http://other.org:8443/landing", 302},
	}
	for _, tc := range tests {
		rt := table.Match(req{target: tc.target, tls: tc.tls}.build())
		if rt == nil || rt.Redirect == nil {
			t.Fatalf("%s: no redirect route", tc.target)
		}
		if got := rt.Redirect.Location(req{target: tc.target, tls: tc.tls}.build()); got != tc.want || rt.Redirect.Status != tc.wantStatus {
			t.Errorf("Location(%s) = %d %q, want %d %q", tc.target, rt.Redirect.Status, got, tc.wantStatus, tc.want)
		}
	}
}

func TestHeaderEdits_Order(t *testing.T) {
	table := compile(t, `
request_headers_to_add: [{header: {key: x-level, value: table}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}]
response_headers_to_remove: [x-internal]
virtual_hosts:
- name: vh
  domains: ["*"]
  request_headers_to_add: [{header: {key: x-level, value: vhost}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}]
  routes:
  - match: {prefix: /}
    route: {cluster: a}
    request_headers_to_remove: [x-drop]
    request_headers_to_add:
    - {header: {key: x-level, value: route}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}
    - {header: {key: x-list, value: b}}
    - {header: {key: x-once, value: new}, append_action: ADD_IF_ABSENT}
    - {header: {key: x-only-if, value: set}, append_action: OVERWRITE_IF_EXISTS}
    - {header: {key: x-old-style, value: v}, append: false}
`)
	rt := table.Match(req{target: "/"}.build())
	h := http.Header{"X-Drop": {"1"}, "X-List": {"a"}, "X-Once": {"old"}, "X-Old-Style": {"1", "2"}}
	rt.RequestEdits.Apply(h)
	want := http.Header{
		"X-Level":     {"table"}, // outer levels apply last and win an overwrite, as in Envoy
		"X-List":      {"a", "b"},
		"X-Once":      {"old"},
		"X-Old-Style": {"v"},
	}
	if len(h) != len(want) {
		t.Errorf("headers = %v, want %v", h, want)
	}
	for k, v := range want {
		if strings.Join(h[k], "|") != strings.Join(v, "|") {
			t.Errorf("header %s = %q, want %q", k, h[k], v)
		}
	}
	resp := http.Header{"X-Internal": {"secret"}, "X-Keep": {"1"}}
	rt.ResponseEdits.Apply(resp)
	if _, ok := resp["X-Internal"]; ok || resp.Get("X-Keep") != "1" {
		t.Errorf("response headers = %v, want X-Internal removed and X-Keep kept", resp)
	}
}

// max_direct_response_body_size_bytes raises the 4096-byte limit.
func TestCompile_DirectBodyLimit(t *testing.T) {
	body := strings.Repeat("x", 10000)
	table := compile(t, `max_direct_response_body_size_bytes: 10000
virtual_hosts: [{name: a, domains: ["*"], routes: [{match: {prefix: /}, direct_response: {status: 200, body: {inline_string: "`+body+`"}}}]}]`)
	rt := table.fallback.routes[0]
	if rt.Direct == nil || string(rt.Direct.Body) != body {
		t.Errorf("direct body of %d bytes not kept whole", len(body))
	}
}

func TestCompile_Errors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"duplicate domain", `virtual_hosts: [
  {name: a, domains: [x.com], routes: [{match: {prefix: /}, direct_response: {status: 200}}]},
  {name: b, domains: [X.com], routes: [{match: {prefix: /}, direct_response: {status: 200}}]}]`, `domain "x.com" is also in virtual host "a"`},
		{"wildcard in the middle", `virtual_hosts: [{name: a, domains: ["a.*.com"], routes: [{match: {prefix: /}, direct_response: {status: 200}}]}]`, "wildcard"},
		{"bad regex", `virtual_hosts: [{name: a, domains: ["*"], routes: [{name: r, match: {safe_regex: {regex: "("}}, direct_response: {status: 200}}]}]`, "routes[0] (r): match.safe_regex"},
		{"runtime fraction", `virtual_hosts: [{name: a, domains: ["*"], routes: [{match: {prefix: /, runtime_fraction: {default_value: {numerator: 1}}}, direct_response: {status: 200}}]}]`, "runtime_fraction: not supported"},
		{"prefix rewrite on regex", `virtual_hosts: [{name: a, domains: ["*"], routes: [{match: {safe_regex: {regex: "/x"}}, route: {cluster: c, prefix_rewrite: /y}}]}]`, "prefix_rewrite"},
		{"header formatter", `virtual_hosts: [{name: a, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: c}, request_headers_to_add: [{header: {key: x-ip, value: "%DOWNSTREAM_REMOTE_ADDRESS%"}}]}]}]`, "formatters"},
		{"setting host", `virtual_hosts: [{name: a, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: c}, request_headers_to_add: [{header: {key: Host, value: x}}]}]}]`, `cannot set "Host"`},
		{"all weights zero", `virtual_hosts: [{name: a, domains: ["*"], routes: [{match: {prefix: /}, route: {weighted_clusters: {clusters: [{name: c, weight: 0}]}}}]}]`, "add up to zero"},
		{"cluster header", `virtual_hosts: [{name: a, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster_header: x-cluster}}]}]`, "not supported"},
		{"direct body over Envoy's default 4096", `virtual_hosts: [{name: a, domains: ["*"], routes: [{name: big, match: {prefix: /}, direct_response: {status: 200, body: {inline_string: "` + strings.Repeat("x", 4097) + `"}}}]}]`,
			`route "big": direct_response.body: 4097 bytes is over the limit of 4096`},
		{"direct body over the configured limit", `max_direct_response_body_size_bytes: 10
virtual_hosts: [{name: a, domains: ["*"], routes: [{name: big, match: {prefix: /}, direct_response: {status: 200, body: {inline_string: "01234567890"}}}]}]`,
			"11 bytes is over the limit of 10"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(parseRC(t, tc.yaml), targets)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Compile() error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
