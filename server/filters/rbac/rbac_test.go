package rbac_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/path/match/uri_template/v3" // Istio's path templates, in its goldens
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"sigs.k8s.io/yaml"

	"github.com/meshgate/meshgate/internal/filtertest"
	"github.com/meshgate/meshgate/server/filters/rbac"
	"github.com/meshgate/meshgate/server/httpfilter"
)

// req is a test case's request; zero fields take the defaults noted.
type req struct {
	method string            // GET
	target string            // "/"
	host   string            // example.com
	header map[string]string // more headers
	remote string            // the peer: 10.0.0.1:5000
	local  string            // the local address: 10.9.9.9:8080; "none": unknown
	tls    *tls.ConnectionState
	grpc   bool
	md     map[string]map[string]any // dynamic metadata set by earlier filters
}

func (q req) request(t testing.TB) *http.Request {
	t.Helper()
	method, target := q.method, q.target
	if method == "" {
		method = http.MethodGet
	}
	if target == "" {
		target = "/"
	}
	r := httptest.NewRequest(method, target, nil)
	if q.host != "" {
		r.Host = q.host
	}
	for k, v := range q.header {
		r.Header.Set(k, v)
	}
	if q.grpc {
		r.Header.Set("Content-Type", "application/grpc")
	}
	r.RemoteAddr = "10.0.0.1:5000"
	if q.remote != "" {
		r.RemoteAddr = q.remote
	}
	local := "10.9.9.9:8080"
	if q.local != "" {
		local = q.local
	}
	if local != "none" {
		ap := netip.MustParseAddrPort(local)
		// A 16-byte IPv4 address, as the net package hands a listener's.
		addr := &net.TCPAddr{IP: net.ParseIP(ap.Addr().String()), Port: int(ap.Port())}
		r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, addr))
	}
	r.TLS = q.tls
	return r
}

// run passes q through f (routes by table, which may be nil) and returns
// what f said, what was answered and the stream, for its metadata.
func run(t testing.TB, f httpfilter.Filter, table *httpfilter.Table, q req) (httpfilter.Status, *httptest.ResponseRecorder, *httpfilter.Stream) {
	t.Helper()
	rec := httptest.NewRecorder()
	s := &httpfilter.Stream{}
	s.Reset(rec, nil, q.request(t), table)
	for ns, kv := range q.md {
		for k, v := range kv {
			s.SetMetadata(ns, k, v)
		}
	}
	st := f.Decode(s)
	s.Finish()
	checkPassThrough(t, f, table, q, st, s)
	return st, rec, s
}

// checkPassThrough holds every test's case to what the gRPC relay relies
// on: PassesGRPCThrough says yes exactly when Decode lets the request by
// and records nothing (else the relay would let through what the chain
// denies). Cases with metadata from earlier filters are left out: a
// relayed call never has any.
func checkPassThrough(t testing.TB, f httpfilter.Filter, table *httpfilter.Table, q req, st httpfilter.Status, s *httpfilter.Stream) {
	t.Helper()
	pt, ok := f.(httpfilter.GRPCPassThrough)
	if !ok {
		t.Fatal("the RBAC filter does not say whether it lets gRPC by")
	}
	if len(q.md) > 0 {
		return
	}
	r := q.request(t)
	var rt *httpfilter.Route
	if table != nil {
		rt = table.Match(r)
	}
	want := st == httpfilter.Continue && len(s.Metadata(rbac.Name)) == 0 && len(s.Metadata(rbac.CommonNamespace)) == 0
	if got := pt.PassesGRPCThrough(r, rt); got != want {
		t.Errorf("PassesGRPCThrough = %v, but Decode said %v with metadata %v / %v: the relay and the chain would disagree",
			got, st, s.Metadata(rbac.Name), s.Metadata(rbac.CommonNamespace))
	}
}

// config compiles an RBAC filter config written as Envoy YAML.
func config(t testing.TB, y string) *rbacfilterv3.RBAC {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	c := &rbacfilterv3.RBAC{}
	if err := protojson.Unmarshal(js, c); err != nil {
		t.Fatalf("RBAC config: %v\n%s", err, y)
	}
	return c
}

// build builds the filter from Envoy YAML.
func build(t testing.TB, y string) httpfilter.Filter {
	t.Helper()
	return filtertest.Filter(t, rbac.Name, config(t, y))
}

// buildErr is what building the filter from Envoy YAML says.
func buildErr(t testing.TB, y string) error {
	t.Helper()
	a := filtertest.Any(t, config(t, y))
	_, _, err := httpfilter.New(httpfilter.Lookup(rbac.Name, a), a, httpfilter.Build{Name: rbac.Name})
	return err
}

// policy is an RBAC config with one policy "p".
func policy(action, permission, principal string) string {
	return fmt.Sprintf(`
rules:
  action: %s
  policies:
    p:
      permissions: [%s]
      principals: [%s]
`, action, permission, principal)
}

// newCert makes a self-signed certificate, as a peer presents it.
func newCert(t testing.TB, cn string, uris, dnsNames []string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"meshgate"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     dnsNames,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	for _, u := range uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// mtls is a TLS connection whose peer presented cert (none when nil).
func mtls(cert *x509.Certificate) *tls.ConnectionState {
	cs := &tls.ConnectionState{HandshakeComplete: true, Version: tls.VersionTLS13}
	if cert != nil {
		cs.PeerCertificates = []*x509.Certificate{cert}
	}
	return cs
}

const fooBar = "spiffe://cluster.local/ns/foo/sa/bar"

func TestRBAC_Actions(t *testing.T) {
	get := `{header: {name: ":method", string_match: {exact: GET}}}`
	tests := []struct {
		name    string
		config  string
		req     req
		want    httpfilter.Status
		wantLog any // envoy.common access_log_hint; nil: not set
	}{
		{name: "ALLOW, a policy matches", config: policy("ALLOW", get, "{any: true}"), req: req{}, want: httpfilter.Continue},
		{name: "ALLOW, none matches", config: policy("ALLOW", get, "{any: true}"), req: req{method: "POST"}, want: httpfilter.Stop},
		{name: "DENY, a policy matches", config: policy("DENY", get, "{any: true}"), req: req{}, want: httpfilter.Stop},
		{name: "DENY, none matches", config: policy("DENY", get, "{any: true}"), req: req{method: "POST"}, want: httpfilter.Continue},
		{name: "the action defaults to ALLOW", config: "rules: {policies: {p: {permissions: [" + get + "], principals: [{any: true}]}}}",
			req: req{method: "POST"}, want: httpfilter.Stop},
		{name: "LOG, a policy matches: logged, not denied", config: policy("LOG", get, "{any: true}"), req: req{}, want: httpfilter.Continue, wantLog: true},
		{name: "LOG, none matches: not logged, not denied", config: policy("LOG", get, "{any: true}"), req: req{method: "POST"}, want: httpfilter.Continue, wantLog: false},
		{name: "a policy needs a permission and a principal", config: policy("ALLOW", get, `{header: {name: x-user, present_match: true}}`),
			req: req{}, want: httpfilter.Stop},
		{name: "any permission of a policy", config: `
rules:
  policies:
    p:
      permissions: [{url_path: {path: {exact: /a}}}, {url_path: {path: {exact: /b}}}]
      principals: [{header: {name: x-user, present_match: true}}, {any: true}]
`, req: req{target: "/b"}, want: httpfilter.Continue},
		{name: "any of several policies", config: `
rules:
  policies:
    a: {permissions: [{url_path: {path: {exact: /a}}}], principals: [{any: true}]}
    b: {permissions: [{url_path: {path: {exact: /b}}}], principals: [{any: true}]}
`, req: req{target: "/b"}, want: httpfilter.Continue},
		{name: "ALLOW without policies denies all (Envoy: set but empty)", config: "rules: {}", req: req{}, want: httpfilter.Stop},
		{name: "DENY without policies allows all", config: "rules: {action: DENY}", req: req{}, want: httpfilter.Continue},
		{name: "no rules: the filter does nothing", config: "{}", req: req{}, want: httpfilter.Continue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := build(t, tt.config)
			st, rec, s := run(t, f, nil, tt.req)
			if st != tt.want {
				t.Fatalf("Decode = %v, want %v", st, tt.want)
			}
			if st == httpfilter.Continue && rec.Body.Len() != 0 {
				t.Errorf("an allowed request was answered: %d %q", rec.Code, rec.Body)
			}
			if st == httpfilter.Stop && rec.Code != 403 {
				t.Errorf("a denied request was answered %d, want 403", rec.Code)
			}
			got, ok := s.Metadata("envoy.common")["access_log_hint"]
			if !ok {
				got = nil
			}
			if got != tt.wantLog {
				t.Errorf("access_log_hint = %v, want %v", got, tt.wantLog)
			}
			if md := s.Metadata(rbac.Name); md != nil {
				t.Errorf("metadata under %s without shadow rules: %v", rbac.Name, md)
			}
		})
	}
}

func TestRBAC_Permissions(t *testing.T) {
	jwt := map[string]map[string]any{"envoy.filters.http.jwt_authn": {"payload": map[string]any{"scope": "admin"}}}
	tests := []struct {
		name       string
		permission string
		req        req
		want       bool // the permission matches: the request is allowed
	}{
		{"any", `{any: true}`, req{}, true},

		{"header :method", `{header: {name: ":method", string_match: {exact: GET}}}`, req{}, true},
		{"header :method, another", `{header: {name: ":method", string_match: {exact: GET}}}`, req{method: "DELETE"}, false},
		{"header :path has the query", `{header: {name: ":path", string_match: {exact: "/a?b=1"}}}`, req{target: "/a?b=1"}, true},
		{"header :path without the query does not match it", `{header: {name: ":path", string_match: {exact: "/a"}}}`, req{target: "/a?b=1"}, false},
		{"header :authority", `{header: {name: ":authority", string_match: {exact: api.example.com}}}`, req{host: "api.example.com"}, true},
		{"header :authority, another host", `{header: {name: ":authority", string_match: {exact: api.example.com}}}`, req{host: "www.example.com"}, false},
		{"header", `{header: {name: x-team, string_match: {prefix: pay}}}`, req{header: map[string]string{"X-Team": "payments"}}, true},
		{"header missing", `{header: {name: x-team, string_match: {prefix: pay}}}`, req{}, false},
		{"header present", `{header: {name: x-team, present_match: true}}`, req{header: map[string]string{"X-Team": ""}}, true},
		{"header inverted", `{header: {name: x-team, string_match: {exact: ops}, invert_match: true}}`, req{header: map[string]string{"X-Team": "dev"}}, true},

		{"url_path without the query", `{url_path: {path: {exact: /a}}}`, req{target: "/a?b=1"}, true},
		{"url_path, another path", `{url_path: {path: {exact: /a}}}`, req{target: "/a/b"}, false},
		{"url_path prefix, ignoring case", `{url_path: {path: {prefix: /Admin, ignore_case: true}}}`, req{target: "/admin/users"}, true},
		{"url_path is not decoded", `{url_path: {path: {exact: "/a%2Fb"}}}`, req{target: "/a%2Fb"}, true},
		{"url_path regex", `{url_path: {path: {safe_regex: {regex: "/v[0-9]+/.*"}}}}`, req{target: "/v2/items"}, true},
		{"url_path of a CONNECT: none", `{url_path: {path: {safe_regex: {regex: ".*"}}}}`, req{method: "CONNECT", target: "example.com:443"}, false},

		{"and_rules, all match", `{and_rules: {rules: [{header: {name: ":method", string_match: {exact: GET}}}, {url_path: {path: {prefix: /api}}}]}}`,
			req{target: "/api/x"}, true},
		{"and_rules, one does not", `{and_rules: {rules: [{header: {name: ":method", string_match: {exact: GET}}}, {url_path: {path: {prefix: /api}}}]}}`,
			req{method: "POST", target: "/api/x"}, false},
		{"or_rules, one matches", `{or_rules: {rules: [{url_path: {path: {exact: /a}}}, {url_path: {path: {exact: /b}}}]}}`, req{target: "/b"}, true},
		{"or_rules, none", `{or_rules: {rules: [{url_path: {path: {exact: /a}}}, {url_path: {path: {exact: /b}}}]}}`, req{target: "/c"}, false},
		{"not_rule", `{not_rule: {header: {name: ":method", string_match: {exact: GET}}}}`, req{method: "POST"}, true},
		{"not_rule, negated", `{not_rule: {header: {name: ":method", string_match: {exact: GET}}}}`, req{}, false},
		{"nested: /api but not /api/admin, or any DELETE",
			`{or_rules: {rules: [{and_rules: {rules: [{url_path: {path: {prefix: /api}}}, {not_rule: {url_path: {path: {prefix: /api/admin}}}}]}}, {header: {name: ":method", string_match: {exact: DELETE}}}]}}`,
			req{target: "/api/admin/x"}, false},
		{"nested, the DELETE branch",
			`{or_rules: {rules: [{and_rules: {rules: [{url_path: {path: {prefix: /api}}}, {not_rule: {url_path: {path: {prefix: /api/admin}}}}]}}, {header: {name: ":method", string_match: {exact: DELETE}}}]}}`,
			req{method: "DELETE", target: "/api/admin/x"}, true},

		{"destination_ip", `{destination_ip: {address_prefix: 10.9.0.0, prefix_len: 16}}`, req{}, true},
		{"destination_ip, outside", `{destination_ip: {address_prefix: 10.9.0.0, prefix_len: 16}}`, req{local: "10.8.1.1:8080"}, false},
		{"destination_ip, host bits masked", `{destination_ip: {address_prefix: 10.9.200.1, prefix_len: 16}}`, req{}, true},
		{"destination_ip, exact address", `{destination_ip: {address_prefix: 10.9.9.9, prefix_len: 32}}`, req{}, true},
		{"destination_ip without prefix_len: all of its family", `{destination_ip: {address_prefix: 192.168.0.1}}`, req{}, true},
		{"destination_ip IPv6", `{destination_ip: {address_prefix: "2001:db8::", prefix_len: 32}}`, req{local: "[2001:db8::1]:443"}, true},
		{"destination_ip IPv4 range, IPv6 address", `{destination_ip: {address_prefix: 0.0.0.0, prefix_len: 0}}`, req{local: "[2001:db8::1]:443"}, false},
		{"destination_ip, local address unknown", `{destination_ip: {address_prefix: 0.0.0.0, prefix_len: 0}}`, req{local: "none"}, false},
		{"destination_port", `{destination_port: 8080}`, req{}, true},
		{"destination_port, another", `{destination_port: 8081}`, req{}, false},
		{"destination_port_range, inside", `{destination_port_range: {start: 8000, end: 8081}}`, req{}, true},
		{"destination_port_range, end excluded", `{destination_port_range: {start: 8000, end: 8080}}`, req{}, false},
		{"destination_port_range, start included", `{destination_port_range: {start: 8080, end: 8081}}`, req{}, true},

		{"requested_server_name", `{requested_server_name: {exact: api.example.com}}`, req{tls: &tls.ConnectionState{ServerName: "api.example.com"}}, true},
		{"requested_server_name, suffix", `{requested_server_name: {suffix: .example.com}}`, req{tls: &tls.ConnectionState{ServerName: "www.example.com"}}, true},
		{"requested_server_name, plaintext", `{requested_server_name: {exact: api.example.com}}`, req{}, false},
		{"requested_server_name empty matches plaintext (Envoy: no SNI is \"\")", `{requested_server_name: {exact: ""}}`, req{}, true},

		{"metadata", `{metadata: {filter: envoy.filters.http.jwt_authn, path: [{key: payload}, {key: scope}], value: {string_match: {exact: admin}}}}`,
			req{md: jwt}, true},
		{"metadata absent", `{metadata: {filter: envoy.filters.http.jwt_authn, path: [{key: payload}, {key: scope}], value: {string_match: {exact: admin}}}}`,
			req{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := build(t, policy("ALLOW", tt.permission, "{any: true}"))
			st, _, _ := run(t, f, nil, tt.req)
			if got := st == httpfilter.Continue; got != tt.want {
				t.Errorf("permission %s matched = %v, want %v", tt.permission, got, tt.want)
			}
		})
	}
}

func TestRBAC_Principals(t *testing.T) {
	spiffe := newCert(t, "bar", []string{fooBar}, nil)
	twoURIs := newCert(t, "bar", []string{"spiffe://other.local/ns/x/sa/y", fooBar}, nil)
	dnsOnly := newCert(t, "bar", nil, []string{"bar.foo.svc.cluster.local"})
	subjectOnly := newCert(t, "bar", nil, nil)
	uriAndDNS := newCert(t, "bar", []string{fooBar}, []string{"bar.foo.svc.cluster.local"})
	exactFooBar := `{authenticated: {principal_name: {exact: "` + fooBar + `"}}}`
	tests := []struct {
		name      string
		principal string
		req       req
		want      bool // the principal matches: the request is allowed
	}{
		{"any", `{any: true}`, req{}, true},

		{"authenticated: the URI SAN", exactFooBar, req{tls: mtls(spiffe)}, true},
		{"authenticated: another identity", `{authenticated: {principal_name: {exact: "spiffe://cluster.local/ns/foo/sa/baz"}}}`, req{tls: mtls(spiffe)}, false},
		{"authenticated: plaintext", exactFooBar, req{}, false},
		{"authenticated: TLS without a client certificate", exactFooBar, req{tls: mtls(nil)}, false},
		{"authenticated: any URI SAN", exactFooBar, req{tls: mtls(twoURIs)}, true},
		{"authenticated: the DNS SAN", `{authenticated: {principal_name: {exact: bar.foo.svc.cluster.local}}}`, req{tls: mtls(dnsOnly)}, true},
		{"authenticated: a DNS SAN beside a URI SAN", `{authenticated: {principal_name: {exact: bar.foo.svc.cluster.local}}}`, req{tls: mtls(uriAndDNS)}, true},
		{"authenticated: the subject without SANs", `{authenticated: {principal_name: {exact: "CN=bar,O=meshgate"}}}`, req{tls: mtls(subjectOnly)}, true},
		{"authenticated: Istio's namespace regex", `{authenticated: {principal_name: {safe_regex: {regex: ".*/ns/foo/.*"}}}}`, req{tls: mtls(spiffe)}, true},
		{"authenticated: Istio's namespace regex, another namespace", `{authenticated: {principal_name: {safe_regex: {regex: ".*/ns/bar/.*"}}}}`, req{tls: mtls(spiffe)}, false},
		{"authenticated without a name: a TLS peer", `{authenticated: {}}`, req{tls: mtls(spiffe)}, true},
		{"authenticated without a name: TLS without a peer certificate (Envoy)", `{authenticated: {}}`, req{tls: mtls(nil)}, true},
		{"authenticated without a name: plaintext", `{authenticated: {}}`, req{}, false},

		{"source_ip", `{source_ip: {address_prefix: 10.0.0.0, prefix_len: 8}}`, req{}, true},
		{"source_ip, outside", `{source_ip: {address_prefix: 10.0.0.0, prefix_len: 8}}`, req{remote: "192.168.1.1:5000"}, false},
		{"direct_remote_ip", `{direct_remote_ip: {address_prefix: 10.0.0.1, prefix_len: 32}}`, req{}, true},
		{"direct_remote_ip, outside", `{direct_remote_ip: {address_prefix: 10.0.0.2, prefix_len: 32}}`, req{}, false},
		{"direct_remote_ip IPv6", `{direct_remote_ip: {address_prefix: "2001:db8::", prefix_len: 64}}`, req{remote: "[2001:db8::5]:5000"}, true},
		{"direct_remote_ip, an IPv4-mapped peer", `{direct_remote_ip: {address_prefix: 10.0.0.0, prefix_len: 8}}`, req{remote: "[::ffff:10.0.0.1]:5000"}, true},
		{"remote_ip", `{remote_ip: {address_prefix: 10.0.0.0, prefix_len: 8}}`, req{}, true},
		{"remote_ip is the peer, not X-Forwarded-For", `{remote_ip: {address_prefix: 10.0.0.0, prefix_len: 8}}`,
			req{remote: "192.168.1.1:5000", header: map[string]string{"X-Forwarded-For": "10.0.0.1"}}, false},

		{"header", `{header: {name: x-user, string_match: {exact: alice}}}`, req{header: map[string]string{"X-User": "alice"}}, true},
		{"header, another value", `{header: {name: x-user, string_match: {exact: alice}}}`, req{header: map[string]string{"X-User": "bob"}}, false},
		{"url_path", `{url_path: {path: {prefix: /public}}}`, req{target: "/public/x?y"}, true},
		{"metadata", `{metadata: {filter: envoy.filters.http.jwt_authn, path: [{key: payload}, {key: sub}], value: {string_match: {exact: alice}}}}`,
			req{md: map[string]map[string]any{"envoy.filters.http.jwt_authn": {"payload": map[string]any{"sub": "alice"}}}}, true},

		{"and_ids, all match", `{and_ids: {ids: [` + exactFooBar + `, {source_ip: {address_prefix: 10.0.0.0, prefix_len: 8}}]}}`, req{tls: mtls(spiffe)}, true},
		{"and_ids, one does not", `{and_ids: {ids: [` + exactFooBar + `, {source_ip: {address_prefix: 10.0.0.0, prefix_len: 8}}]}}`,
			req{tls: mtls(spiffe), remote: "192.168.1.1:5000"}, false},
		{"or_ids", `{or_ids: {ids: [` + exactFooBar + `, {source_ip: {address_prefix: 10.0.0.0, prefix_len: 8}}]}}`, req{}, true},
		{"or_ids, none", `{or_ids: {ids: [` + exactFooBar + `, {source_ip: {address_prefix: 10.0.0.0, prefix_len: 8}}]}}`,
			req{remote: "192.168.1.1:5000"}, false},
		{"not_id", `{not_id: {source_ip: {address_prefix: 10.0.0.0, prefix_len: 8}}}`, req{remote: "192.168.1.1:5000"}, true},
		{"not_id, negated", `{not_id: {source_ip: {address_prefix: 10.0.0.0, prefix_len: 8}}}`, req{}, false},
		{"not_id of an and_ids (Istio's notPrincipals)", `{not_id: {and_ids: {ids: [` + exactFooBar + `]}}}`, req{tls: mtls(spiffe)}, false},
		{"not_id of an and_ids, plaintext", `{not_id: {and_ids: {ids: [` + exactFooBar + `]}}}`, req{}, true},

		{"filter_state io.istio.peer_principal", `{filter_state: {key: io.istio.peer_principal, string_match: {exact: "` + fooBar + `"}}}`,
			req{tls: mtls(spiffe)}, true},
		{"filter_state io.istio.peer_principal, plaintext", `{filter_state: {key: io.istio.peer_principal, string_match: {safe_regex: {regex: ".*"}}}}`, req{}, false},
		{"filter_state io.istio.peer_principal, no URI SAN", `{filter_state: {key: io.istio.peer_principal, string_match: {safe_regex: {regex: ".*"}}}}`,
			req{tls: mtls(dnsOnly)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := build(t, policy("ALLOW", "{any: true}", tt.principal))
			st, _, _ := run(t, f, nil, tt.req)
			if got := st == httpfilter.Continue; got != tt.want {
				t.Errorf("principal %s matched = %v, want %v", tt.principal, got, tt.want)
			}
		})
	}
}

func TestRBAC_Metadata(t *testing.T) {
	const ns = "envoy.filters.http.jwt_authn"
	// payload is what jwt_authn records: the JWT's claims, as JSON decodes.
	payload := map[string]any{
		"iss":    "https://issuer.example.com",
		"sub":    "alice",
		"aud":    []any{"web", "api"},
		"groups": []string{"dev"},
		"admin":  true,
		"level":  float64(3),
		"count":  7,
		"nil":    nil,
		"nested": map[string]any{"team": map[string]any{"name": "payments"}},
	}
	md := map[string]map[string]any{ns: {"payload": payload}}
	pb, err := structpb.NewStruct(map[string]any{"team": "payments", "tags": []any{"a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	pbMD := map[string]map[string]any{ns: {"payload": pb, "value": structpb.NewStringValue("v")}}
	matcher := func(path, value string, invert bool) string {
		var keys []string
		for _, k := range strings.Split(path, ".") {
			keys = append(keys, "{key: "+k+"}")
		}
		return fmt.Sprintf(`{metadata: {filter: %s, path: [%s], value: %s, invert: %v}}`, ns, strings.Join(keys, ", "), value, invert)
	}
	tests := []struct {
		name   string
		path   string
		value  string
		invert bool
		md     map[string]map[string]any
		want   bool
	}{
		{"string", "payload.sub", `{string_match: {exact: alice}}`, false, md, true},
		{"string, another", "payload.sub", `{string_match: {exact: bob}}`, false, md, false},
		{"string, prefix", "payload.iss", `{string_match: {prefix: "https://"}}`, false, md, true},
		{"string against a number", "payload.level", `{string_match: {exact: "3"}}`, false, md, false},
		{"nested path", "payload.nested.team.name", `{string_match: {exact: payments}}`, false, md, true},
		{"missing key", "payload.email", `{string_match: {safe_regex: {regex: ".*"}}}`, false, md, false},
		{"missing key, inverted", "payload.email", `{string_match: {safe_regex: {regex: ".*"}}}`, true, md, true},
		{"through a value that is no map", "payload.sub.x", `{present_match: true}`, false, md, false},
		{"no metadata at all", "payload.sub", `{present_match: true}`, false, nil, false},
		{"another namespace", "payload.sub", `{present_match: true}`, false, map[string]map[string]any{"other": {"payload": payload}}, false},
		{"inverted match", "payload.sub", `{string_match: {exact: alice}}`, true, md, false},

		{"null_match on null", "payload.nil", `{null_match: {}}`, false, md, true},
		{"null_match on a missing value", "payload.none", `{null_match: {}}`, false, md, false},
		{"null_match on a string", "payload.sub", `{null_match: {}}`, false, md, false},
		{"double exact", "payload.level", `{double_match: {exact: 3}}`, false, md, true},
		{"double exact of an int", "payload.count", `{double_match: {exact: 7}}`, false, md, true},
		{"double exact, another", "payload.level", `{double_match: {exact: 4}}`, false, md, false},
		{"double range, start included", "payload.level", `{double_match: {range: {start: 3, end: 5}}}`, false, md, true},
		{"double range, end excluded", "payload.level", `{double_match: {range: {start: 1, end: 3}}}`, false, md, false},
		{"bool", "payload.admin", `{bool_match: true}`, false, md, true},
		{"bool false against true", "payload.admin", `{bool_match: false}`, false, md, false},
		{"bool against a string", "payload.sub", `{bool_match: true}`, false, md, false},
		{"present", "payload.sub", `{present_match: true}`, false, md, true},
		{"present, null is a value", "payload.nil", `{present_match: true}`, false, md, true},
		{"present, missing", "payload.none", `{present_match: true}`, false, md, false},
		{"present_match false never matches (Envoy)", "payload.none", `{present_match: false}`, false, md, false},
		{"present_match false on a value", "payload.sub", `{present_match: false}`, false, md, false},
		{"list one_of", "payload.aud", `{list_match: {one_of: {string_match: {exact: api}}}}`, false, md, true},
		{"list one_of, none", "payload.aud", `{list_match: {one_of: {string_match: {exact: admin}}}}`, false, md, false},
		{"list one_of, a []string", "payload.groups", `{list_match: {one_of: {string_match: {exact: dev}}}}`, false, md, true},
		{"list one_of on a scalar", "payload.sub", `{list_match: {one_of: {string_match: {exact: alice}}}}`, false, md, false},
		{"or_match, the second", "payload.sub", `{or_match: {value_matchers: [{bool_match: true}, {string_match: {exact: alice}}]}}`, false, md, true},
		{"or_match, none", "payload.sub", `{or_match: {value_matchers: [{bool_match: true}, {string_match: {exact: bob}}]}}`, false, md, false},
		{"Istio's audiences: or of list one_of", "payload.aud",
			`{or_match: {value_matchers: [{list_match: {one_of: {string_match: {exact: api}}}}, {string_match: {exact: api}}]}}`, false, md, true},

		{"a structpb.Struct", "payload.team", `{string_match: {exact: payments}}`, false, pbMD, true},
		{"a structpb list", "payload.tags", `{list_match: {one_of: {string_match: {exact: b}}}}`, false, pbMD, true},
		{"a structpb.Value", "value", `{string_match: {exact: v}}`, false, pbMD, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := matcher(tt.path, tt.value, tt.invert)
			f := build(t, policy("ALLOW", "{any: true}", m))
			st, _, _ := run(t, f, nil, req{md: tt.md})
			if got := st == httpfilter.Continue; got != tt.want {
				t.Errorf("%s matched = %v, want %v", m, got, tt.want)
			}
		})
	}
}

func TestRBAC_Shadow(t *testing.T) {
	const onlyGET = `
shadow_rules:
  policies:
    only-get: {permissions: [{header: {name: ":method", string_match: {exact: GET}}}], principals: [{any: true}]}
`
	tests := []struct {
		name    string
		config  string
		req     req
		want    httpfilter.Status
		wantMD  map[string]any // under envoy.filters.http.rbac
		wantLog any            // envoy.common access_log_hint
	}{
		{name: "shadow ALLOW matches", config: onlyGET, req: req{}, want: httpfilter.Continue,
			wantMD: map[string]any{"shadow_effective_policy_id": "only-get", "shadow_engine_result": "allowed"}},
		{name: "shadow ALLOW does not match: recorded, not enforced", config: onlyGET, req: req{method: "POST"}, want: httpfilter.Continue,
			wantMD: map[string]any{"shadow_engine_result": "denied"}},
		{name: "shadow DENY matches, keys prefixed", config: `
shadow_rules_stat_prefix: istio_dry_run_deny_
shadow_rules:
  action: DENY
  policies:
    b-blocked: {permissions: [{url_path: {path: {prefix: /blocked}}}], principals: [{any: true}]}
    a-other: {permissions: [{url_path: {path: {exact: /nothing}}}], principals: [{any: true}]}
`, req: req{target: "/blocked/x"}, want: httpfilter.Continue,
			wantMD: map[string]any{"istio_dry_run_deny_shadow_effective_policy_id": "b-blocked", "istio_dry_run_deny_shadow_engine_result": "denied"}},
		{name: "the first policy by name is the effective one", config: `
shadow_rules:
  policies:
    zz: {permissions: [{any: true}], principals: [{any: true}]}
    aa: {permissions: [{any: true}], principals: [{any: true}]}
    mm: {permissions: [{any: true}], principals: [{any: true}]}
`, req: req{}, want: httpfilter.Continue,
			wantMD: map[string]any{"shadow_effective_policy_id": "aa", "shadow_engine_result": "allowed"}},
		{name: "shadow LOG: allowed, no log hint", config: `
shadow_rules:
  action: LOG
  policies:
    all: {permissions: [{any: true}], principals: [{any: true}]}
`, req: req{}, want: httpfilter.Continue,
			wantMD: map[string]any{"shadow_effective_policy_id": "all", "shadow_engine_result": "allowed"}},
		{name: "shadow and enforced rules decide apart", config: `
rules:
  policies:
    posts: {permissions: [{header: {name: ":method", string_match: {exact: POST}}}], principals: [{any: true}]}
` + onlyGET, req: req{}, want: httpfilter.Stop,
			wantMD: map[string]any{"shadow_effective_policy_id": "only-get", "shadow_engine_result": "allowed"}},
		{name: "enforced LOG, a policy matches, beside shadow rules that do not", config: `
rules:
  action: LOG
  policies:
    posts: {permissions: [{header: {name: ":method", string_match: {exact: POST}}}], principals: [{any: true}]}
` + onlyGET, req: req{method: "POST"}, want: httpfilter.Continue, wantLog: true,
			wantMD: map[string]any{"shadow_engine_result": "denied"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := build(t, tt.config)
			st, rec, s := run(t, f, nil, tt.req)
			if st != tt.want {
				t.Fatalf("Decode = %v, want %v", st, tt.want)
			}
			if st == httpfilter.Continue && rec.Body.Len() != 0 {
				t.Errorf("an allowed request was answered: %q", rec.Body)
			}
			if diff := cmp.Diff(s.Metadata("envoy.filters.http.rbac"), tt.wantMD); diff != "" {
				t.Errorf("shadow metadata (-got +want):\n%s", diff)
			}
			got, ok := s.Metadata("envoy.common")["access_log_hint"]
			if !ok {
				got = nil
			}
			if got != tt.wantLog {
				t.Errorf("access_log_hint = %v, want %v", got, tt.wantLog)
			}
		})
	}
}

const perRouteRoutes = `
virtual_hosts:
- name: main
  domains: ["main.example.com"]
  routes:
  - match: { prefix: /open }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.rbac:
        "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute
  - match: { prefix: /empty }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.rbac:
        "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute
        rbac: {}
  - match: { prefix: /admin }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.rbac:
        "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute
        rbac:
          rules:
            action: ALLOW
            policies:
              admins:
                permissions: [{any: true}]
                principals: [{header: {name: x-role, string_match: {exact: admin}}}]
  - match: { prefix: /shadowed }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.rbac:
        "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute
        rbac:
          shadow_rules_stat_prefix: ignored_
          shadow_rules:
            action: DENY
            policies:
              all: {permissions: [{any: true}], principals: [{any: true}]}
  - match: { prefix: / }
    route: { cluster: web }
- name: other
  domains: ["*"]
  typed_per_filter_config:
    envoy.filters.http.rbac:
      "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute
      rbac:
        rules:
          action: DENY
          policies:
            internal: {permissions: [{url_path: {path: {prefix: /internal}}}], principals: [{any: true}]}
  routes:
  - match: { prefix: / }
    route: { cluster: web }
`

func TestRBAC_PerRoute(t *testing.T) {
	table := filtertest.Table(t, perRouteRoutes)
	f := build(t, `
rules:
  policies:
    public: {permissions: [{url_path: {path: {prefix: /public}}}], principals: [{any: true}]}
shadow_rules_stat_prefix: lst_
shadow_rules:
  policies:
    everyone: {permissions: [{any: true}], principals: [{any: true}]}
`)
	listenerShadow := map[string]any{"lst_shadow_effective_policy_id": "everyone", "lst_shadow_engine_result": "allowed"}
	admin := map[string]string{"X-Role": "admin"}
	tests := []struct {
		name   string
		req    req
		want   httpfilter.Status
		wantMD map[string]any
	}{
		{"the listener's rules: allowed", req{host: "main.example.com", target: "/public/x"}, httpfilter.Continue, listenerShadow},
		{"the listener's rules: denied", req{host: "main.example.com", target: "/private"}, httpfilter.Stop, listenerShadow},
		{"RBACPerRoute without rbac: off", req{host: "main.example.com", target: "/open/x"}, httpfilter.Continue, nil},
		{"RBACPerRoute with an empty rbac: off", req{host: "main.example.com", target: "/empty"}, httpfilter.Continue, nil},
		{"the route's rules replace the listener's", req{host: "main.example.com", target: "/admin", header: admin}, httpfilter.Continue, nil},
		{"the route's rules deny", req{host: "main.example.com", target: "/admin/public"}, httpfilter.Stop, nil},
		{"the route's shadow rules, keyed by the listener's prefix", req{host: "main.example.com", target: "/shadowed"}, httpfilter.Continue,
			map[string]any{"lst_shadow_effective_policy_id": "all", "lst_shadow_engine_result": "denied"}},
		{"the virtual host's config: denied", req{host: "other.example.com", target: "/internal/x"}, httpfilter.Stop, nil},
		{"the virtual host's config: allowed where the listener's would deny", req{host: "other.example.com", target: "/private"}, httpfilter.Continue, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, _, s := run(t, f, table, tt.req)
			if st != tt.want {
				t.Fatalf("Decode = %v, want %v", st, tt.want)
			}
			if diff := cmp.Diff(s.Metadata("envoy.filters.http.rbac"), tt.wantMD); diff != "" {
				t.Errorf("shadow metadata (-got +want):\n%s", diff)
			}
		})
	}
}

func TestRBAC_Denied(t *testing.T) {
	f := build(t, policy("DENY", "{any: true}", "{any: true}"))
	tests := []struct {
		name        string
		req         req
		contentType string
		code        int
		body        string
		grpcStatus  string
		grpcMessage string
	}{
		{name: "HTTP: 403 and Envoy's text", req: req{method: "POST", target: "/x"},
			code: 403, contentType: "text/plain", body: "RBAC: access denied"},
		{name: "gRPC: PERMISSION_DENIED", req: req{method: "POST", target: "/pkg.Svc/Method", grpc: true},
			code: 200, contentType: "application/grpc", grpcStatus: "7", grpcMessage: "RBAC: access denied"},
		{name: "gRPC+proto: PERMISSION_DENIED", req: req{method: "POST", target: "/pkg.Svc/Method",
			header: map[string]string{"Content-Type": "application/grpc+proto"}},
			code: 200, contentType: "application/grpc", grpcStatus: "7", grpcMessage: "RBAC: access denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, rec, _ := run(t, f, nil, tt.req)
			if st != httpfilter.Stop {
				t.Fatalf("Decode = %v, want Stop: a denied request must not reach the router", st)
			}
			if rec.Code != tt.code {
				t.Errorf("status %d, want %d", rec.Code, tt.code)
			}
			if got := rec.Header().Get("Content-Type"); got != tt.contentType {
				t.Errorf("content-type %q, want %q", got, tt.contentType)
			}
			if got := rec.Body.String(); got != tt.body {
				t.Errorf("body %q, want %q", got, tt.body)
			}
			if got := rec.Header().Get("Grpc-Status"); got != tt.grpcStatus {
				t.Errorf("grpc-status %q, want %q", got, tt.grpcStatus)
			}
			if got := rec.Header().Get("Grpc-Message"); got != tt.grpcMessage {
				t.Errorf("grpc-message %q, want %q", got, tt.grpcMessage)
			}
		})
	}
}

func TestRBAC_Refused(t *testing.T) {
	any2 := "{any: true}"
	ext := `{name: x, typed_config: {"@type": type.googleapis.com/google.protobuf.Struct, value: {}}}`
	xdsMatcher := `{on_no_match: {action: {name: a, typed_config: {"@type": type.googleapis.com/envoy.config.rbac.v3.Action, name: act, action: ALLOW}}}}`
	tests := []struct {
		name    string
		config  string
		wantErr string // in the error
	}{
		{"the matcher API", "matcher: " + xdsMatcher, "matcher"},
		{"the shadow matcher API", "shadow_matcher: " + xdsMatcher, "shadow_matcher"},
		{"a CEL condition", `rules: {policies: {p: {permissions: [{any: true}], principals: [{any: true}], condition: {const_expr: {bool_value: true}}}}}`,
			`rules.policies["p"].condition`},
		{"a checked CEL condition", `rules: {policies: {p: {permissions: [{any: true}], principals: [{any: true}], checked_condition: {expr: {const_expr: {bool_value: true}}}}}}`,
			`rules.policies["p"].checked_condition`},
		{"a CEL config", `rules: {policies: {p: {permissions: [{any: true}], principals: [{any: true}], cel_config: {enable_string_conversion: true}}}}`,
			`rules.policies["p"].cel_config`},
		{"a CEL condition in shadow rules", `shadow_rules: {policies: {p: {permissions: [{any: true}], principals: [{any: true}], condition: {const_expr: {bool_value: true}}}}}`,
			`shadow_rules.policies["p"].condition`},
		{"a custom matcher", policy("DENY", "{matcher: "+ext+"}", any2), "permissions[0].matcher"},
		{"a URI template", policy("ALLOW", `{uri_template: {name: t, typed_config: {"@type": type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig, path_template: "/a/*"}}}`, any2),
			"permissions[0].uri_template"},
		{"a URI template, nested", policy("DENY", `{and_rules: {rules: [{any: true}, {not_rule: {uri_template: {name: t, typed_config: {"@type": type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig, path_template: "/a/*"}}}}]}}`, any2),
			"permissions[0].and_rules.rules[1].not_rule.uri_template"},
		{"sourced_metadata in a permission", policy("DENY", `{sourced_metadata: {metadata_matcher: {filter: f, path: [{key: k}], value: {present_match: true}}}}`, any2),
			"permissions[0].sourced_metadata"},
		{"sourced_metadata in a principal", policy("DENY", any2, `{sourced_metadata: {metadata_matcher: {filter: f, path: [{key: k}], value: {present_match: true}}}}`),
			"principals[0].sourced_metadata"},
		{"a custom principal", policy("DENY", any2, "{custom: "+ext+"}"), "principals[0].custom"},
		{"another filter state key", policy("DENY", any2, `{filter_state: {key: envoy.network.application_protocol, string_match: {exact: h2}}}`),
			"principals[0].filter_state.key"},
		{"Istio's peer principal as an address", policy("DENY", any2, `{filter_state: {key: io.istio.peer_principal, address_match: {ranges: [{address_prefix: 10.0.0.0, prefix_len: 8}]}}}`),
			"principals[0].filter_state"},
		{"a custom string matcher", policy("ALLOW", "{url_path: {path: {custom: "+ext+"}}}", any2), "permissions[0].url_path.path"},
		{"a custom string matcher in metadata", policy("ALLOW", any2, "{metadata: {filter: f, path: [{key: k}], value: {string_match: {custom: "+ext+"}}}}"),
			"principals[0].metadata.value.string_match"},
		{"a bad regex", policy("ALLOW", `{url_path: {path: {safe_regex: {regex: "("}}}}`, any2), "permissions[0].url_path.path"},
		{"an unknown pseudo-header", policy("ALLOW", `{header: {name: ":foo", present_match: true}}`, any2), "permissions[0].header"},
		{"an address that is none", policy("ALLOW", any2, `{direct_remote_ip: {address_prefix: 10.0.0.300, prefix_len: 32}}`),
			"principals[0].direct_remote_ip.address_prefix"},
		{"a prefix longer than IPv4", policy("ALLOW", any2, `{remote_ip: {address_prefix: 10.0.0.0, prefix_len: 33}}`),
			"principals[0].remote_ip.prefix_len"},
		{"an empty port range", policy("ALLOW", `{destination_port_range: {start: 80, end: 80}}`, any2), "permissions[0].destination_port_range"},
		{"a port range past 65536", policy("ALLOW", `{destination_port_range: {start: 0, end: 70000}}`, any2), "permissions[0].destination_port_range"},
		{"a permission without a rule", policy("ALLOW", "{}", any2), "Rule"},
		{"a principal without an identifier", policy("ALLOW", any2, "{}"), "Identifier"},
		{"a policy without principals", `rules: {policies: {p: {permissions: [{any: true}]}}}`, "Principals"},
		{"a policy without permissions", `rules: {policies: {p: {principals: [{any: true}]}}}`, "Permissions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := buildErr(t, tt.config)
			if err == nil {
				t.Fatalf("built; want an error naming %s", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not name %q", err, tt.wantErr)
			}
			// A route's config is refused alike.
			pr := &rbacfilterv3.RBACPerRoute{Rbac: config(t, tt.config)}
			if _, err := httpfilter.CompilePerFilter(rbac.Name, filtertest.Any(t, pr)); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("per-route: error %v, want one naming %q", err, tt.wantErr)
			}
		})
	}
}

// TestRBAC_Notes checks that the fields meshgate accepts without doing
// (stats, audit logs) are noted, and only those.
func TestRBAC_Notes(t *testing.T) {
	tests := []struct {
		name   string
		config string
		want   []string // a note containing each
	}{
		{"plain rules", "rules: {action: DENY}", nil},
		{"a shadow prefix prefixes metadata keys", "shadow_rules_stat_prefix: x_\nshadow_rules: {action: DENY}", nil},
		{"stats", "rules_stat_prefix: x_\ntrack_per_rule_stats: true\nrules: {action: DENY}", []string{"stats are not kept"}},
		{"audit logging", "rules: {action: DENY, audit_logging_options: {audit_condition: ON_DENY}}", []string{"audit logs are not written"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := filtertest.Any(t, config(t, tt.config))
			f, notes, err := httpfilter.New(httpfilter.Lookup(rbac.Name, a), a, httpfilter.Build{Name: rbac.Name})
			if err != nil || f == nil {
				t.Fatalf("New = %v, %v", f, err)
			}
			if len(notes) != len(tt.want) {
				t.Fatalf("notes %q, want %d", notes, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(notes[i], w) {
					t.Errorf("note %q, want one saying %q", notes[i], w)
				}
			}
		})
	}
}

// TestRBAC_NoConfig checks that the filter without a typed_config, Envoy's
// RBAC without rules, does nothing.
func TestRBAC_NoConfig(t *testing.T) {
	f := filtertest.Filter(t, rbac.Name, nil)
	st, rec, s := run(t, f, nil, req{method: "DELETE"})
	if st != httpfilter.Continue || rec.Body.Len() != 0 || s.Metadata(rbac.Name) != nil {
		t.Errorf("Decode = %v, answered %q, metadata %v; want Continue, nothing", st, rec.Body, s.Metadata(rbac.Name))
	}
}

// istioFilter builds the filter from one of Istio's golden HttpFilters.
func istioFilter(t *testing.T, file string) (httpfilter.Filter, error) {
	t.Helper()
	y, err := os.ReadFile(filepath.Join("testdata", "istio", file))
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(y)
	if err != nil {
		t.Fatal(err)
	}
	hf := &hcmv3.HttpFilter{}
	if err := protojson.Unmarshal(js, hf); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if hf.GetName() != rbac.Name {
		t.Fatalf("%s: filter %q", file, hf.GetName())
	}
	a := hf.GetTypedConfig()
	fac := httpfilter.Lookup(hf.GetName(), a)
	if fac == nil {
		t.Fatalf("%s: no filter for %s", file, a.GetTypeUrl())
	}
	f, _, err := httpfilter.New(fac, a, httpfilter.Build{Name: hf.GetName()})
	return f, err
}

// TestRBAC_Istio loads RBAC configs exactly as istiod renders them for
// AuthorizationPolicies (its golden files) and checks each decides as the
// policy means.
func TestRBAC_Istio(t *testing.T) {
	spiffe := func(id string) *tls.ConnectionState { return mtls(newCert(t, "w", []string{id}, nil)) }
	jwt := func(claims map[string]any) map[string]map[string]any {
		return map[string]map[string]any{"envoy.filters.http.jwt_authn": {"payload": claims}}
	}
	load := func(files ...string) []httpfilter.Filter {
		var out []httpfilter.Filter
		for _, file := range files {
			f, err := istioFilter(t, file)
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			out = append(out, f)
		}
		return out
	}
	const shadowNS = "envoy.filters.http.rbac"
	type tc struct {
		name   string
		req    req
		want   httpfilter.Status
		wantMD map[string]any // under envoy.filters.http.rbac (checked when not nil)
		log    any            // envoy.common access_log_hint (checked when not nil)
	}
	// Neither GET nor POST, no path, host, port, peer or header any policy names.
	plain := req{method: "DELETE", target: "/x", host: "example.com", local: "10.9.9.9:8080", remote: "9.9.9.9:5000"}
	with := func(f func(*req)) req { r := plain; f(&r); return r }
	suites := []struct {
		name    string
		filters []httpfilter.Filter // run in order, as in a chain
		cases   []tc
	}{
		// ALLOW policies httpbin-1..9 of multiple-policies-in.yaml: each
		// allows by one thing (methods, paths, hosts, ports, principals,
		// requestPrincipals, namespaces, ipBlocks, a header).
		{"multiple-policies", load("multiple-policies-out.yaml"), []tc{
			{name: "nothing allowed", req: plain, want: httpfilter.Stop},
			{name: "httpbin-1: GET", req: with(func(r *req) { r.method = "GET" }), want: httpfilter.Continue},
			{name: "httpbin-2: path /v2", req: with(func(r *req) { r.target = "/v2" }), want: httpfilter.Continue},
			{name: "httpbin-2: path /v2/x is not /v2", req: with(func(r *req) { r.target = "/v2/x" }), want: httpfilter.Stop},
			{name: "httpbin-3: host, any case", req: with(func(r *req) { r.host = "HTTPBIN.org" }), want: httpfilter.Continue},
			{name: "httpbin-4: port 90", req: with(func(r *req) { r.local = "10.9.9.9:90" }), want: httpfilter.Continue},
			{name: "httpbin-5: principal", req: with(func(r *req) { r.tls = spiffe("spiffe://principals2") }), want: httpfilter.Continue},
			{name: "httpbin-5: another principal", req: with(func(r *req) { r.tls = spiffe("spiffe://principals3") }), want: httpfilter.Stop},
			{name: "httpbin-6: request principal (iss, empty sub)",
				req: with(func(r *req) { r.md = jwt(map[string]any{"iss": "requestPrincipals1", "sub": ""}) }), want: httpfilter.Continue},
			{name: "httpbin-6: request principal with a sub is another",
				req: with(func(r *req) { r.md = jwt(map[string]any{"iss": "requestPrincipals1", "sub": "alice"}) }), want: httpfilter.Stop},
			{name: "httpbin-6: no sub is not an empty one",
				req: with(func(r *req) { r.md = jwt(map[string]any{"iss": "requestPrincipals1"}) }), want: httpfilter.Stop},
			{name: "httpbin-7: namespace", req: with(func(r *req) { r.tls = spiffe("spiffe://cluster.local/ns/namespaces2/sa/x") }), want: httpfilter.Continue},
			{name: "httpbin-7: another namespace", req: with(func(r *req) { r.tls = spiffe("spiffe://cluster.local/ns/namespaces3/sa/x") }), want: httpfilter.Stop},
			{name: "httpbin-8: ipBlock", req: with(func(r *req) { r.remote = "5.6.7.200:5000" }), want: httpfilter.Continue},
			{name: "httpbin-8: outside the ipBlocks", req: with(func(r *req) { r.remote = "5.6.8.1:5000" }), want: httpfilter.Stop},
			{name: "httpbin-9: header", req: with(func(r *req) { r.header = map[string]string{"X-Abc": "abc2"} }), want: httpfilter.Continue},
		}},
		// deny-and-allow-in.yaml: DENY principal "deny", then ALLOW
		// principal "allow": two filters, the DENY one first.
		{"deny-and-allow", load("deny-and-allow-out1.yaml", "deny-and-allow-out2.yaml"), []tc{
			{name: "the allowed principal", req: with(func(r *req) { r.tls = spiffe("spiffe://allow") }), want: httpfilter.Continue},
			{name: "the denied principal", req: with(func(r *req) { r.tls = spiffe("spiffe://deny") }), want: httpfilter.Stop},
			{name: "another principal: not allowed", req: with(func(r *req) { r.tls = spiffe("spiffe://other") }), want: httpfilter.Stop},
			{name: "plaintext: not allowed", req: plain, want: httpfilter.Stop},
		}},
		// simple-policy-principal-with-wildcard-in.yaml: principals "*" (any
		// mTLS peer) or two SPIFFE IDs with wildcards.
		{"simple-policy-principal-with-wildcard", load("simple-policy-principal-with-wildcard-out.yaml"), []tc{
			{name: "an mTLS peer", req: with(func(r *req) { r.tls = spiffe("spiffe://cluster.local/ns/any/sa/any") }), want: httpfilter.Continue},
			{name: "plaintext", req: plain, want: httpfilter.Stop},
		}},
		// dry-run-mix-in.yaml: httpbin-1 (paths /allow) in dry run, httpbin-2
		// (paths /another) enforced.
		{"dry-run-mix", load("dry-run-mix-out.yaml"), []tc{
			{name: "the enforced policy allows; the dry run would deny", req: with(func(r *req) { r.target = "/another" }), want: httpfilter.Continue,
				wantMD: map[string]any{"istio_dry_run_allow_shadow_engine_result": "denied"}},
			{name: "the dry run would allow; the enforced policy denies", req: with(func(r *req) { r.target = "/allow" }), want: httpfilter.Stop,
				wantMD: map[string]any{
					"istio_dry_run_allow_shadow_effective_policy_id": "ns[foo]-policy[httpbin-1]-rule[0]",
					"istio_dry_run_allow_shadow_engine_result":       "allowed",
				}},
		}},
		// audit-full-rule-in.yaml: AUDIT everything.
		{"audit-full-rule", load("audit-full-rule-out.yaml"), []tc{
			{name: "audited, not denied", req: plain, want: httpfilter.Continue, log: true},
		}},
		// single-policy-in.yaml: two rules of everything; its remoteIpBlocks
		// and ipBlocks both name the peer, which meshgate reads as one
		// address: no request here can match them at once.
		{"single-policy", load("single-policy-out.yaml"), []tc{
			{name: "a request of none of its rules", req: with(func(r *req) { r.tls = spiffe("spiffe://cluster.local/ns/foo/sa/bar") }), want: httpfilter.Stop},
		}},
	}
	for _, suite := range suites {
		for _, c := range suite.cases {
			t.Run(suite.name+"/"+c.name, func(t *testing.T) {
				var st httpfilter.Status
				var s *httpfilter.Stream
				for _, f := range suite.filters {
					if st, _, s = run(t, f, nil, c.req); st == httpfilter.Stop {
						break
					}
				}
				if st != c.want {
					t.Fatalf("Decode = %v, want %v", st, c.want)
				}
				if c.wantMD != nil {
					if diff := cmp.Diff(s.Metadata(shadowNS), c.wantMD); diff != "" {
						t.Errorf("shadow metadata (-got +want):\n%s", diff)
					}
				}
				if c.log != nil {
					if got := s.Metadata("envoy.common")["access_log_hint"]; got != c.log {
						t.Errorf("access_log_hint = %v, want %v", got, c.log)
					}
				}
			})
		}
	}

	// Istio renders path templates ("/path/{*}") as uri_template, which
	// meshgate does not implement: the listener is refused, not opened.
	for _, file := range []string{"allow-path-out.yaml", "allow-full-rule-out.yaml"} {
		t.Run("refused/"+file, func(t *testing.T) {
			_, err := istioFilter(t, file)
			if err == nil || !strings.Contains(err.Error(), "uri_template") {
				t.Errorf("error %v, want one naming uri_template", err)
			}
		})
	}
}
