package cors_test

import (
	"net/http/httptest"
	"testing"

	"github.com/meshgate/meshgate/internal/filtertest"
	"github.com/meshgate/meshgate/server/filters/cors"
	"github.com/meshgate/meshgate/server/httpfilter"
)

const routes = `
virtual_hosts:
- name: app
  domains: ["*"]
  typed_per_filter_config:
    envoy.filters.http.cors:
      "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
      allow_origin_string_match: [ { exact: "https://app.example" } ]
  routes:
  - { match: { prefix: /pkg.Svc/, grpc: {} }, route: { cluster: grpc } }
  - match: { prefix: /strict }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.cors:
        "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
        allow_origin_string_match: [ { exact: "https://admin.example" } ]
        forward_not_matching_preflights: false
  - { match: { prefix: / }, route: { cluster: web } }
`

func TestCORS_Decode(t *testing.T) {
	table := filtertest.Table(t, routes)
	f := filtertest.Filter(t, cors.Name, nil)
	tests := []struct {
		name, method, path, origin, preflightMethod string
		want                                        httpfilter.Status
		code                                        int    // answered status (0: not answered)
		allow                                       string // Access-Control-Allow-Origin set
	}{
		{name: "no origin", method: "GET", path: "/", want: httpfilter.Continue},
		{name: "simple request, allowed", method: "GET", path: "/x", origin: "https://app.example", want: httpfilter.Continue, allow: "https://app.example"},
		{name: "simple request, other origin", method: "GET", path: "/x", origin: "https://evil.example", want: httpfilter.Continue},
		{name: "preflight of a gRPC-only route: the virtual host answers", method: "OPTIONS", path: "/pkg.Svc/M", origin: "https://app.example",
			preflightMethod: "POST", want: httpfilter.Stop, code: 200, allow: "https://app.example"},
		{name: "preflight of another origin goes on (Envoy's forward_not_matching_preflights default)", method: "OPTIONS", path: "/x",
			origin: "https://evil.example", preflightMethod: "POST", want: httpfilter.Continue},
		{name: "the route's policy wins and refuses", method: "OPTIONS", path: "/strict", origin: "https://app.example", preflightMethod: "GET", want: httpfilter.Stop, code: 403},
		{name: "the route's policy allows its own", method: "OPTIONS", path: "/strict", origin: "https://admin.example", preflightMethod: "GET", want: httpfilter.Stop, code: 200, allow: "https://admin.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.path, nil)
			if tt.origin != "" {
				r.Header.Set("Origin", tt.origin)
			}
			if tt.preflightMethod != "" {
				r.Header.Set("Access-Control-Request-Method", tt.preflightMethod)
			}
			st, rec := filtertest.Run(f, table, r)
			if st != tt.want {
				t.Fatalf("Decode = %v, want %v", st, tt.want)
			}
			if tt.code != 0 && rec.Code != tt.code {
				t.Errorf("answered %d %s, want %d", rec.Code, rec.Body, tt.code)
			}
			if got := rec.Header().Get("Access-Control-Allow-Origin"); got != tt.allow {
				t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, tt.allow)
			}
		})
	}
}

// Without a route table (routes not arrived) a preflight goes on.
func TestCORS_NoTable(t *testing.T) {
	r := httptest.NewRequest("OPTIONS", "/", nil)
	r.Header.Set("Origin", "https://app.example")
	r.Header.Set("Access-Control-Request-Method", "GET")
	if st, _ := filtertest.Run(filtertest.Filter(t, cors.Name, nil), nil, r); st != httpfilter.Continue {
		t.Errorf("Decode = %v, want Continue", st)
	}
}
