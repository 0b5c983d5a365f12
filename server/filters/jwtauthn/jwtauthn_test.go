package jwtauthn_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/meshgate/meshgate/internal/filtertest"
	"github.com/meshgate/meshgate/server/httpfilter"
)

const (
	mainIss   = "https://issuer.example.com"
	fwdIss    = "https://fwd.example.com"
	customIss = "https://custom.example.com"
	cookieIss = "https://cookie.example.com"
)

// testConfig is a filter config with a provider for each way of finding
// and forwarding a token, and rules for each kind of requirement.
func testConfig(jwks string) string {
	local := `local_jwks: { inline_string: ` + quoted(jwks) + ` }`
	return `
providers:
  main:
    issuer: ` + mainIss + `
    audiences: [api.example.com]
    ` + local + `
    payload_in_metadata: payload
    header_in_metadata: header
  fwd:
    issuer: ` + fwdIss + `
    forward: true
    ` + local + `
  custom:
    issuer: ` + customIss + `
    from_headers: [{ name: x-jwt, value_prefix: "Bearer " }]
    from_params: [jwt]
    forward_payload_header: x-jwt-payload
    claim_to_headers:
    - { header_name: x-sub, claim_name: sub }
    - { header_name: x-tenant, claim_name: org.tenant }
    - { header_name: x-n, claim_name: "n" }
    - { header_name: x-ratio, claim_name: ratio }
    - { header_name: x-roles, claim_name: roles }
    - { header_name: x-flag, claim_path: [{ key: "https://example.com/flag" }] }
    - { header_name: x-absent, claim_name: nothing.here }
    ` + local + `
  cookie:
    issuer: ` + cookieIss + `
    from_cookies: [session]
    ` + local + `
rules:
- match: { prefix: /public }
- match: { prefix: /api }
  requires: { provider_name: main }
- match: { prefix: /optional }
  requires: { requires_any: { requirements: [ { provider_name: main }, { allow_missing: {} } ] } }
- match: { prefix: /lenient }
  requires: { allow_missing_or_failed: {} }
- match: { prefix: /fwd }
  requires: { provider_name: fwd }
- match: { prefix: /custom }
  requires: { provider_name: custom }
- match: { prefix: /cookie }
  requires: { provider_name: cookie }
- match: { prefix: /all }
  requires: { requires_all: { requirements: [ { provider_name: main }, { provider_name: custom } ] } }
- match: { prefix: /any }
  requires: { requires_any: { requirements: [ { provider_name: main }, { provider_name: custom } ] } }
- match: { prefix: /aud }
  requires: { provider_and_audiences: { provider_name: main, audiences: [other.example.com] } }
- match: { safe_regex: { regex: "/re/[0-9]+" } }
  requires: { provider_name: main }
- match: { prefix: /hdr, headers: [ { name: x-need-jwt, string_match: { exact: "yes" } } ] }
  requires: { provider_name: main }
- match: { path: /exact }
  requires: { provider_name: main }
requirement_map:
  main_only: { provider_name: main }
  custom_only: { provider_name: custom }
`
}

const (
	missingChallenge = `Bearer realm="http://example.com/api"`
	invalidChallenge = `Bearer realm="http://example.com/api", error="invalid_token"`
)

// b64 is base64url without padding, as JWTs carry their parts.
func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestDecode(t *testing.T) {
	k := keys(t)
	f, _ := newFilter(t, parseConfig(t, testConfig(k.jwks)), httpfilter.Build{})
	now := time.Now().Unix()
	scoped := map[string]any{"scope": "read write"}
	good := sign(t, k.rsa, jose.RS256, "rsa1", claims(mainIss, "api.example.com", scoped))
	parts := strings.Split(good, ".")
	tamperedPayload := parts[0] + "." + b64(`{"iss":"`+mainIss+`","sub":"mallory","aud":"api.example.com"}`) + "." + parts[2]
	sig := []byte(parts[2])
	if sig[100] == 'A' {
		sig[100] = 'B'
	} else {
		sig[100] = 'A'
	}
	tamperedSig := parts[0] + "." + parts[1] + "." + string(sig)
	payload := b64(`{"iss":"` + mainIss + `","aud":"api.example.com"}`)
	algNone := b64(`{"alg":"none","typ":"JWT"}`) + "." + payload + "."
	algNoneSigned := b64(`{"alg":"none","typ":"JWT"}`) + "." + payload + ".c2ln"
	mainTok := func(key any, alg jose.SignatureAlgorithm, kid string, more map[string]any) string {
		return sign(t, key, alg, kid, claims(mainIss, "api.example.com", more))
	}
	customTok := sign(t, k.rsa, jose.RS256, "rsa1", claims(customIss, "", map[string]any{
		"org": map[string]any{"tenant": "acme"}, "n": 42, "ratio": 1.5, "roles": []string{"a", "b"},
		"https://example.com/flag": true}))
	bearer := func(tok string) string { return "Authorization: Bearer " + tok }

	tests := []struct {
		name      string
		method    string // GET when empty
		target    string
		headers   []string
		want      httpfilter.Status
		code      int    // when rejected
		body      string // when rejected
		challenge string // when rejected: the WWW-Authenticate header ("" for none)
		check     func(t *testing.T, r *http.Request, res result)
	}{
		{name: "a valid RS256 token: payload and header in the metadata, the token removed",
			target: "/api", headers: []string{bearer(good)}, want: httpfilter.Continue,
			check: func(t *testing.T, r *http.Request, res result) {
				p, _ := res.metadata["payload"].(map[string]any)
				if p["iss"] != mainIss || p["sub"] != "alice" || p["aud"] != "api.example.com" || p["scope"] != "read write" {
					t.Errorf("payload metadata = %v", res.metadata["payload"])
				}
				if exp, _ := p["exp"].(float64); int64(exp) < now+3500 {
					t.Errorf("payload exp = %v, want a number an hour ahead", p["exp"])
				}
				h, _ := res.metadata["header"].(map[string]any)
				if h["alg"] != "RS256" || h["kid"] != "rsa1" {
					t.Errorf("header metadata = %v", res.metadata["header"])
				}
				if got := r.Header.Get("Authorization"); got != "" {
					t.Errorf("Authorization forwarded: %q (forward is false)", got)
				}
			}},
		{name: "ES256", target: "/api", headers: []string{bearer(mainTok(k.ec, jose.ES256, "ec1", nil))}, want: httpfilter.Continue},
		{name: "PS256", target: "/api", headers: []string{bearer(mainTok(k.rsa2, jose.PS256, "rsa2", nil))}, want: httpfilter.Continue},
		{name: "EdDSA", target: "/api", headers: []string{bearer(mainTok(k.ed, jose.EdDSA, "ed1", nil))}, want: httpfilter.Continue},
		{name: "no kid: the keys of its alg are tried", target: "/api", headers: []string{bearer(mainTok(k.rsa, jose.RS256, "", nil))}, want: httpfilter.Continue},
		{name: "exp within the clock skew", target: "/api",
			headers: []string{bearer(mainTok(k.rsa, jose.RS256, "rsa1", map[string]any{"exp": now - 30}))}, want: httpfilter.Continue},
		{name: "a token with forward: true stays", target: "/fwd",
			headers: []string{bearer(sign(t, k.rsa, jose.RS256, "rsa1", claims(fwdIss, "", nil)))}, want: httpfilter.Continue,
			check: func(t *testing.T, r *http.Request, res result) {
				if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ey") {
					t.Errorf("Authorization = %q, want the token kept", r.Header.Get("Authorization"))
				}
				if len(res.metadata) != 0 {
					t.Errorf("metadata %v without payload_in_metadata", res.metadata)
				}
			}},

		{name: "missing token", target: "/api", want: httpfilter.Stop, code: 401, body: "Jwt is missing", challenge: missingChallenge},
		{name: "not a Bearer token: missing", target: "/api", headers: []string{"Authorization: Basic YWxpY2U6cHc="},
			want: httpfilter.Stop, code: 401, body: "Jwt is missing", challenge: missingChallenge},
		{name: "missing token, allow_missing", target: "/optional", want: httpfilter.Continue},
		{name: "a bad token, allow_missing: rejected", target: "/optional", headers: []string{bearer(tamperedSig)},
			want: httpfilter.Stop, code: 401, body: "Jwt verification fails"},
		{name: "a bad token, allow_missing_or_failed", target: "/lenient", headers: []string{bearer(tamperedSig)}, want: httpfilter.Continue,
			check: func(t *testing.T, r *http.Request, res result) {
				if _, ok := res.metadata["payload"]; ok {
					t.Errorf("payload of a failed token in the metadata: %v", res.metadata)
				}
			}},
		{name: "a good token, allow_missing_or_failed: its payload", target: "/lenient", headers: []string{bearer(good)}, want: httpfilter.Continue,
			check: func(t *testing.T, r *http.Request, res result) {
				if p, _ := res.metadata["payload"].(map[string]any); p["sub"] != "alice" {
					t.Errorf("payload metadata = %v", res.metadata)
				}
			}},
		{name: "tampered signature", target: "/api", headers: []string{bearer(tamperedSig)},
			want: httpfilter.Stop, code: 401, body: "Jwt verification fails", challenge: invalidChallenge},
		{name: "tampered payload", target: "/api", headers: []string{bearer(tamperedPayload)},
			want: httpfilter.Stop, code: 401, body: "Jwt verification fails", challenge: invalidChallenge},
		{name: "signed by another key under a known kid", target: "/api", headers: []string{bearer(mainTok(k.attacker, jose.RS256, "rsa1", nil))},
			want: httpfilter.Stop, code: 401, body: "Jwt verification fails", challenge: invalidChallenge},
		{name: "expired beyond the clock skew", target: "/api",
			headers: []string{bearer(mainTok(k.rsa, jose.RS256, "rsa1", map[string]any{"exp": now - 120}))},
			want:    httpfilter.Stop, code: 401, body: "Jwt is expired", challenge: invalidChallenge},
		{name: "not yet valid (nbf)", target: "/api",
			headers: []string{bearer(mainTok(k.rsa, jose.RS256, "rsa1", map[string]any{"nbf": now + 300}))},
			want:    httpfilter.Stop, code: 401, body: "Jwt not yet valid", challenge: invalidChallenge},
		{name: "wrong issuer", target: "/api",
			headers: []string{bearer(sign(t, k.rsa, jose.RS256, "rsa1", claims("https://evil.example.com", "api.example.com", nil)))},
			want:    httpfilter.Stop, code: 401, body: "Jwt issuer is not configured", challenge: invalidChallenge},
		{name: "wrong audience: 403", target: "/api",
			headers: []string{bearer(sign(t, k.rsa, jose.RS256, "rsa1", claims(mainIss, "other.example.com", nil)))},
			want:    httpfilter.Stop, code: 403, body: "Audiences in Jwt are not allowed", challenge: `Bearer realm="http://example.com/api", error="invalid_token"`},
		{name: "audiences of provider_and_audiences replace the provider's", target: "/aud",
			headers: []string{bearer(sign(t, k.rsa, jose.RS256, "rsa1", claims(mainIss, "https://other.example.com/", nil)))},
			want:    httpfilter.Continue},
		{name: "unknown kid", target: "/api", headers: []string{bearer(mainTok(k.rsa, jose.RS256, "nope", nil))},
			want: httpfilter.Stop, code: 401, body: "Jwks doesn't have key to match kid or alg from Jwt", challenge: invalidChallenge},
		{name: "HS256 under an RSA key's kid", target: "/api",
			headers: []string{bearer(mainTok(k.rsa.PublicKey.N.Bytes(), jose.HS256, "rsa1", nil))},
			want:    httpfilter.Stop, code: 401, body: "Jwks doesn't have key to match kid or alg from Jwt", challenge: invalidChallenge},
		{name: "alg none, no signature", target: "/api", headers: []string{bearer(algNone)},
			want: httpfilter.Stop, code: 401, body: "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections", challenge: invalidChallenge},
		{name: "alg none, a signature", target: "/api", headers: []string{bearer(algNoneSigned)},
			want: httpfilter.Stop, code: 401, body: "Jwt header [alg] is not supported", challenge: invalidChallenge},
		{name: "garbage", target: "/api", headers: []string{bearer("not-a-token")},
			want: httpfilter.Stop, code: 401, body: "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections", challenge: invalidChallenge},
		{name: "a good and a bad token: rejected", target: "/api?access_token=" + tamperedSig, headers: []string{bearer(good)},
			want: httpfilter.Stop, code: 401, body: "Jwt verification fails",
			// Envoy's realm keeps the first 256 bytes of the path.
			challenge: `Bearer realm="http://example.com` + ("/api?access_token=" + tamperedSig)[:256] + `", error="invalid_token"`},
		{name: "the default query parameter", target: "/api?access_token=" + good + "&x=1", want: httpfilter.Continue,
			check: func(t *testing.T, r *http.Request, res result) {
				if r.RequestURI != "/api?x=1" || r.URL.RawQuery != "x=1" {
					t.Errorf("after the token left the query: %q (raw query %q), want /api?x=1", r.RequestURI, r.URL.RawQuery)
				}
			}},

		{name: "a custom header with a prefix: claims to headers, payload header", target: "/custom",
			headers: []string{"X-Jwt: Bearer " + customTok, "X-Sub: spoofed"}, want: httpfilter.Continue,
			check: func(t *testing.T, r *http.Request, res result) {
				want := map[string]string{
					"X-Sub": "alice", "X-Tenant": "acme", "X-N": "42", "X-Ratio": "1.500000",
					"X-Roles": base64.StdEncoding.EncodeToString([]byte(`["a","b"]`)), "X-Flag": "true",
					"X-Jwt-Payload": strings.Split(customTok, ".")[1],
				}
				for h, v := range want {
					if got := r.Header.Values(h); len(got) != 1 || got[0] != v {
						t.Errorf("%s = %q, want [%q]", h, got, v)
					}
				}
				if _, ok := r.Header["X-Absent"]; ok {
					t.Error("X-Absent set for a claim the token has not")
				}
				if _, ok := r.Header["X-Jwt"]; ok {
					t.Error("X-Jwt forwarded (forward is false)")
				}
			}},
		{name: "a custom header: the prefix anywhere, the token's characters taken", target: "/custom",
			headers: []string{`X-Jwt: {"Bearer ": "` + customTok + `", "x": 1}`}, want: httpfilter.Continue},
		{name: "a custom header without its prefix: missing", target: "/custom", headers: []string{"X-Jwt: " + customTok},
			want: httpfilter.Stop, code: 401, body: "Jwt is missing", challenge: `Bearer realm="http://example.com/custom"`},
		{name: "a custom provider ignores the default locations", target: "/custom", headers: []string{bearer(customTok)},
			want: httpfilter.Stop, code: 401, body: "Jwt is missing", challenge: `Bearer realm="http://example.com/custom"`},
		{name: "a query parameter", target: "/custom?a=b&jwt=" + customTok, want: httpfilter.Continue,
			check: func(t *testing.T, r *http.Request, res result) {
				if r.RequestURI != "/custom?a=b" {
					t.Errorf("RequestURI = %q, want the token removed", r.RequestURI)
				}
				if r.Header.Get("X-Sub") != "alice" {
					t.Errorf("X-Sub = %q", r.Header.Get("X-Sub"))
				}
			}},
		{name: "a cookie (kept: Envoy does not remove cookies)", target: "/cookie",
			headers: []string{"Cookie: a=b; session=" + sign(t, k.rsa, jose.RS256, "rsa1", claims(cookieIss, "", nil))}, want: httpfilter.Continue,
			check: func(t *testing.T, r *http.Request, res result) {
				if !strings.Contains(r.Header.Get("Cookie"), "session=ey") {
					t.Errorf("Cookie = %q", r.Header.Get("Cookie"))
				}
			}},
		{name: "claim headers a client sends are dropped on any path", target: "/public",
			headers: []string{"X-Sub: admin", "X-Jwt-Payload: e30", "X-Other: kept"}, want: httpfilter.Continue,
			check: func(t *testing.T, r *http.Request, res result) {
				if r.Header.Get("X-Sub") != "" || r.Header.Get("X-Jwt-Payload") != "" || r.Header.Get("X-Other") != "kept" {
					t.Errorf("headers after: %v", r.Header)
				}
			}},

		{name: "requires_all: both", target: "/all", headers: []string{bearer(good), "X-Jwt: Bearer " + customTok}, want: httpfilter.Continue},
		{name: "requires_all: one missing", target: "/all", headers: []string{bearer(good)},
			want: httpfilter.Stop, code: 401, body: "Jwt is missing", challenge: `Bearer realm="http://example.com/all"`},
		{name: "requires_all: one bad", target: "/all", headers: []string{bearer(good), "X-Jwt: Bearer " + tamperedSig},
			want: httpfilter.Stop, code: 401, body: "Jwt issuer is not configured"},
		{name: "requires_any: the second", target: "/any", headers: []string{"X-Jwt: Bearer " + customTok}, want: httpfilter.Continue},
		{name: "requires_any: the first", target: "/any", headers: []string{bearer(good)}, want: httpfilter.Continue},
		{name: "requires_any: none", target: "/any", want: httpfilter.Stop, code: 401, body: "Jwt is missing"},
		{name: "requires_any: a bad one is the answer, not missing", target: "/any", headers: []string{bearer(tamperedSig)},
			want: httpfilter.Stop, code: 401, body: "Jwt verification fails"},

		{name: "rules: a path without requirement", target: "/public/x", want: httpfilter.Continue},
		{name: "rules: a path no rule matches", target: "/elsewhere", want: httpfilter.Continue},
		{name: "rules: safe_regex", target: "/re/42", want: httpfilter.Stop, code: 401, body: "Jwt is missing"},
		{name: "rules: safe_regex must match the whole path", target: "/re/42x", want: httpfilter.Continue},
		{name: "rules: path, with a query", target: "/exact?q=1", want: httpfilter.Stop, code: 401, body: "Jwt is missing"},
		{name: "rules: path is exact", target: "/exact/more", want: httpfilter.Continue},
		{name: "rules: headers, matching", target: "/hdr", headers: []string{"X-Need-Jwt: yes"}, want: httpfilter.Stop, code: 401, body: "Jwt is missing"},
		{name: "rules: headers, not matching", target: "/hdr", want: httpfilter.Continue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			r := request(method, tt.target, tt.headers...)
			res := run(f, nil, r)
			if res.status != tt.want {
				t.Fatalf("Decode = %v (answered %d %q), want %v", res.status, res.rec.Code, res.rec.Body.String(), tt.want)
			}
			if tt.want == httpfilter.Stop {
				if res.rec.Code != tt.code || res.rec.Body.String() != tt.body {
					t.Errorf("answered %d %q, want %d %q", res.rec.Code, res.rec.Body.String(), tt.code, tt.body)
				}
				if ct := res.rec.Header().Get("Content-Type"); ct != "text/plain" {
					t.Errorf("Content-Type %q, want text/plain", ct)
				}
				if tt.challenge != "" {
					if got := res.rec.Header().Get("WWW-Authenticate"); got != tt.challenge {
						t.Errorf("WWW-Authenticate %q, want %q", got, tt.challenge)
					}
				}
			}
			if tt.check != nil {
				tt.check(t, r, res)
			}
		})
	}
}

// A gRPC caller gets the failure as a gRPC status: UNAUTHENTICATED (16),
// PERMISSION_DENIED (7) for an audience not allowed.
func TestDecode_GRPC(t *testing.T) {
	k := keys(t)
	f, _ := newFilter(t, parseConfig(t, testConfig(k.jwks)), httpfilter.Build{})
	otherAud := sign(t, k.rsa, jose.RS256, "rsa1", claims(mainIss, "other.example.com", nil))
	for _, tt := range []struct {
		name, auth, code, msg string
	}{
		{"missing", "", "16", "Jwt is missing"},
		{"expired", "Bearer " + sign(t, k.rsa, jose.RS256, "rsa1", claims(mainIss, "api.example.com", map[string]any{"exp": time.Now().Unix() - 3600})), "16", "Jwt is expired"},
		{"audience", "Bearer " + otherAud, "7", "Audiences in Jwt are not allowed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := request(http.MethodPost, "/api/pkg.Svc/Method", "Content-Type: application/grpc")
			if tt.auth != "" {
				r.Header.Set("Authorization", tt.auth)
			}
			res := run(f, nil, r)
			h := res.rec.Header()
			if res.status != httpfilter.Stop || res.rec.Code != 200 || h.Get("Grpc-Status") != tt.code || h.Get("Grpc-Message") != tt.msg {
				t.Errorf("got %v %d grpc-status %q grpc-message %q, want Stop 200 %q %q",
					res.status, res.rec.Code, h.Get("Grpc-Status"), h.Get("Grpc-Message"), tt.code, tt.msg)
			}
			if h.Get("Content-Type") != "application/grpc" {
				t.Errorf("Content-Type %q", h.Get("Content-Type"))
			}
		})
	}
}

// A route's PerRouteConfig turns the filter off or names a requirement of
// requirement_map; a name not in it is refused with 403.
func TestDecode_PerRoute(t *testing.T) {
	k := keys(t)
	f, _ := newFilter(t, parseConfig(t, testConfig(k.jwks)), httpfilter.Build{})
	table := filtertest.Table(t, `
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: /api/off }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.jwt_authn:
        "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig
        disabled: true
  - match: { prefix: /public/named }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.jwt_authn:
        "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig
        requirement_name: custom_only
  - match: { prefix: /wrong }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.jwt_authn:
        "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig
        requirement_name: nosuch
  - { match: { prefix: / }, route: { cluster: web } }
`)
	customTok := sign(t, k.rsa, jose.RS256, "rsa1", claims(customIss, "", nil))
	mainTok := sign(t, k.rsa, jose.RS256, "rsa1", claims(mainIss, "api.example.com", nil))
	tests := []struct {
		name    string
		target  string
		headers []string
		want    httpfilter.Status
		code    int
		body    string
	}{
		{"disabled on a path the rules guard", "/api/off", nil, httpfilter.Continue, 0, ""},
		{"requirement_name on a path the rules leave open: missing", "/public/named", nil, httpfilter.Stop, 401, "Jwt is missing"},
		{"requirement_name, its provider's token", "/public/named", []string{"X-Jwt: Bearer " + customTok}, httpfilter.Continue, 0, ""},
		{"requirement_name, another provider's token", "/public/named", []string{"Authorization: Bearer " + mainTok}, httpfilter.Stop, 401, "Jwt is missing"},
		{"a requirement_name not in requirement_map", "/wrong", []string{"Authorization: Bearer " + mainTok}, httpfilter.Stop, 403,
			"Failed JWT authentication: Wrong requirement_name: nosuch. It should be one of [custom_only,main_only]"},
		{"no per-route config: the rules", "/api/x", nil, httpfilter.Stop, 401, "Jwt is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := run(f, table, request(http.MethodGet, tt.target, tt.headers...))
			if res.status != tt.want {
				t.Fatalf("Decode = %v (%d %q), want %v", res.status, res.rec.Code, res.rec.Body.String(), tt.want)
			}
			if tt.want == httpfilter.Stop && (res.rec.Code != tt.code || res.rec.Body.String() != tt.body) {
				t.Errorf("answered %d %q, want %d %q", res.rec.Code, res.rec.Body.String(), tt.code, tt.body)
			}
		})
	}
}

// Provider options beyond the basics: subjects, lifetime, padding, failed
// status and payload normalisation, CORS preflights, stripped answers.
func TestDecode_ProviderOptions(t *testing.T) {
	k := keys(t)
	local := `local_jwks: { inline_string: ` + quoted(k.jwks) + ` }`
	f, _ := newFilter(t, parseConfig(t, `
providers:
  p:
    issuer: `+mainIss+`
    subjects: { prefix: "spiffe://example.com/" }
    max_lifetime: 3600s
    forward_payload_header: x-payload
    pad_forward_payload_header: true
    failed_status_in_metadata: failure
    payload_in_metadata: payload
    normalize_payload_in_metadata: { space_delimited_claims: [scope, perm] }
    clock_skew_seconds: 5
    `+local+`
  exp:
    issuer: https://exp.example.com
    require_expiration: true
    from_headers: [{ name: x-exp }]
    `+local+`
bypass_cors_preflight: true
rules:
- match: { prefix: /exp }
  requires: { provider_name: exp }
- match: { prefix: / }
  requires: { provider_name: p }
`), httpfilter.Build{})
	strip, _ := newFilter(t, parseConfig(t, `
providers:
  p: { issuer: `+mainIss+`, `+local+` }
strip_failure_response: true
rules: [ { match: { prefix: / }, requires: { provider_name: p } } ]
`), httpfilter.Build{})
	now := time.Now().Unix()
	tok := func(more map[string]any) string {
		return sign(t, k.rsa, jose.RS256, "rsa1", claims(mainIss, "", more))
	}
	spiffe := map[string]any{"sub": "spiffe://example.com/ns/a", "scope": "read  write", "perm": 7}
	good := tok(spiffe)
	tests := []struct {
		name    string
		f       httpfilter.Filter
		method  string
		target  string
		headers []string
		want    httpfilter.Status
		code    int
		body    string
		check   func(t *testing.T, r *http.Request, res result)
	}{
		{name: "subject allowed; padded payload header; normalised payload", f: f, target: "/",
			headers: []string{"Authorization: Bearer " + good}, want: httpfilter.Continue,
			check: func(t *testing.T, r *http.Request, res result) {
				seg := strings.Split(good, ".")[1]
				if pad := (4 - len(seg)%4) % 4; r.Header.Get("X-Payload") != seg+strings.Repeat("=", pad) {
					t.Errorf("X-Payload %q, want %q padded", r.Header.Get("X-Payload"), seg)
				}
				p, _ := res.metadata["payload"].(map[string]any)
				if got, _ := json.Marshal(p["scope"]); string(got) != `["read","write"]` {
					t.Errorf("scope in metadata = %s, want [read write]", got)
				}
				if p["perm"] != float64(7) {
					t.Errorf("a non-string claim changed: perm = %v", p["perm"])
				}
				if _, ok := res.metadata["failure"]; ok {
					t.Errorf("failed status for a good token: %v", res.metadata["failure"])
				}
			}},
		{name: "subject not allowed", f: f, target: "/", headers: []string{"Authorization: Bearer " + tok(nil)},
			want: httpfilter.Stop, code: 401, body: "Jwt verification fails"},
		{name: "lifetime over max_lifetime", f: f, target: "/",
			headers: []string{"Authorization: Bearer " + tok(map[string]any{"sub": "spiffe://example.com/a", "exp": now + 7200})},
			want:    httpfilter.Stop, code: 401, body: "Jwt verification fails"},
		{name: "no exp with max_lifetime", f: f, target: "/",
			headers: []string{"Authorization: Bearer " + tok(map[string]any{"sub": "spiffe://example.com/a", "exp": nil})},
			want:    httpfilter.Stop, code: 401, body: "Jwt verification fails"},
		{name: "clock_skew_seconds: 5", f: f, target: "/",
			headers: []string{"Authorization: Bearer " + tok(map[string]any{"sub": "spiffe://example.com/a", "exp": now - 30})},
			want:    httpfilter.Stop, code: 401, body: "Jwt is expired",
			check: func(t *testing.T, r *http.Request, res result) {
				want := map[string]any{"code": "3", "message": "Jwt is expired"}
				if got, _ := res.metadata["failure"].(map[string]any); got["code"] != want["code"] || got["message"] != want["message"] {
					t.Errorf("failed status metadata = %v, want %v", res.metadata["failure"], want)
				}
			}},
		{name: "require_expiration without exp", f: f, target: "/exp",
			headers: []string{"X-Exp: " + sign(t, k.rsa, jose.RS256, "rsa1", claims("https://exp.example.com", "", map[string]any{"exp": nil}))},
			want:    httpfilter.Stop, code: 401, body: "Jwt verification fails"},
		{name: "require_expiration with exp", f: f, target: "/exp",
			headers: []string{"X-Exp: " + sign(t, k.rsa, jose.RS256, "rsa1", claims("https://exp.example.com", "", nil))},
			want:    httpfilter.Continue},
		{name: "CORS preflight bypassed", f: f, method: http.MethodOptions, target: "/",
			headers: []string{"Origin: https://app.example.com", "Access-Control-Request-Method: POST"}, want: httpfilter.Continue},
		{name: "OPTIONS without preflight headers is not bypassed", f: f, method: http.MethodOptions, target: "/",
			want: httpfilter.Stop, code: 401, body: "Jwt is missing"},
		{name: "strip_failure_response", f: strip, target: "/", want: httpfilter.Stop, code: 401, body: "",
			check: func(t *testing.T, r *http.Request, res result) {
				if h := res.rec.Header().Get("WWW-Authenticate"); h != "" {
					t.Errorf("WWW-Authenticate %q with strip_failure_response", h)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			r := request(method, tt.target, tt.headers...)
			res := run(tt.f, nil, r)
			if res.status != tt.want {
				t.Fatalf("Decode = %v (%d %q), want %v", res.status, res.rec.Code, res.rec.Body.String(), tt.want)
			}
			if tt.want == httpfilter.Stop && (res.rec.Code != tt.code || res.rec.Body.String() != tt.body) {
				t.Errorf("answered %d %q, want %d %q", res.rec.Code, res.rec.Body.String(), tt.code, tt.body)
			}
			if tt.check != nil {
				tt.check(t, r, res)
			}
		})
	}
}

// What the filter does not do is refused by name, so that the listener is
// refused rather than run open; what only observes is noted.
func TestBuild(t *testing.T) {
	k := keys(t)
	local := `local_jwks: { inline_string: ` + quoted(k.jwks) + ` }`
	prov := `providers: { p: { issuer: x, ` + local + ` } }
`
	for _, tt := range []struct {
		name, config, err string
	}{
		{"filter_state_rules", prov + `filter_state_rules: { name: sel, requires: { a: { provider_name: p } } }`, "filter_state_rules"},
		{"an unknown provider", prov + `rules: [ { match: { prefix: / }, requires: { provider_name: q } } ]`, "required provider ['q'] is not configured"},
		{"an unknown provider, nested", prov + `rules: [ { match: { prefix: / }, requires: { requires_any: { requirements: [ { provider_name: p }, { provider_name: q } ] } } } ]`, "requires_any[1]"},
		{"an unknown requirement_name", prov + `rules: [ { match: { prefix: / }, requirement_name: r } ]`, "wrong requirement_name: r"},
		{"extract_only_without_validation", prov + `rules: [ { match: { prefix: / }, requires: { extract_only_without_validation: {} } } ]`, "extract_only_without_validation"},
		{"runtime_fraction", prov + `rules: [ { match: { prefix: /, runtime_fraction: { default_value: { numerator: 1 }, runtime_key: k } }, requires: { provider_name: p } } ]`, "match.runtime_fraction"},
		{"dynamic_metadata match", prov + `rules: [ { match: { prefix: /, dynamic_metadata: [ { filter: f, path: [ { key: k } ], value: { present_match: true } } ] }, requires: { provider_name: p } } ]`, "match.dynamic_metadata"},
		{"a bad regex", prov + `rules: [ { match: { safe_regex: { regex: "(" } }, requires: { provider_name: p } } ]`, "safe_regex"},
		{"requires_any of one (Envoy wants two)", prov + `rules: [ { match: { prefix: / }, requires: { requires_any: { requirements: [ { provider_name: p } ] } } } ]`, "Requirements"},
		{"claim_name and claim_path", `providers: { p: { issuer: x, ` + local + `, claim_to_headers: [ { header_name: x-a, claim_name: a, claim_path: [ { key: a } ] } ] } }`, "claim_to_headers[0]"},
		{"a remote JWKS with an invalid URI", `providers: { p: { remote_jwks: { http_uri: { uri: "not a uri", cluster: c, timeout: 1s } } } }`, "invalid URI"},
		{"a retry_on not done", `providers: { p: { remote_jwks: { http_uri: { uri: "https://a/jwks", cluster: c, timeout: 1s }, retry_policy: { retry_on: "retriable-4xx" } } } }`, "retry_on"},
		{"a local JWKS file that is not there", `providers: { p: { local_jwks: { filename: /nonexistent/jwks.json } } }`, "local_jwks"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := buildFilter(parseConfig(t, tt.config), httpfilter.Build{})
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("Build error %v, want one naming %q", err, tt.err)
			}
		})
	}

	_, notes := newFilter(t, parseConfig(t, `
providers:
  p: { issuer: x, `+local+`, jwt_cache_config: { jwt_cache_size: 10 } }
  bad: { issuer: "y", local_jwks: { inline_string: "{\"keys\": 3}" } }
stat_prefix: mine
`), httpfilter.Build{})
	for _, want := range []string{"jwt_cache_config", "stat_prefix", "providers[bad].local_jwks"} {
		found := false
		for _, n := range notes {
			found = found || strings.Contains(n, want)
		}
		if !found {
			t.Errorf("notes %q: none about %s", notes, want)
		}
	}
}

// A provider whose local JWKS is invalid loads (as Envoy's) and fails every
// token of its: closed.
func TestDecode_InvalidLocalJWKS(t *testing.T) {
	k := keys(t)
	f, _ := newFilter(t, parseConfig(t, `
providers: { p: { issuer: `+mainIss+`, local_jwks: { inline_string: "not json" } } }
rules: [ { match: { prefix: / }, requires: { provider_name: p } } ]
`), httpfilter.Build{})
	res := run(f, nil, request(http.MethodGet, "/", "Authorization: Bearer "+sign(t, k.rsa, jose.RS256, "rsa1", claims(mainIss, "", nil))))
	if res.status != httpfilter.Stop || res.rec.Code != 401 || res.rec.Body.String() != "Jwks doesn't have any valid public key" {
		t.Errorf("got %v %d %q, want Stop 401 with no valid key", res.status, res.rec.Code, res.rec.Body.String())
	}
}

// clear_route_cache: a route matching a claim header is taken once the
// token set it; without it the route matched before stays. A client's
// claim header, dropped, no longer picks the route either.
func TestDecode_ClearRouteCache(t *testing.T) {
	k := keys(t)
	table := filtertest.Table(t, `
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - name: alice
    match: { prefix: /, headers: [ { name: x-sub, string_match: { exact: alice } } ] }
    route: { cluster: web }
  - { name: others, match: { prefix: / }, route: { cluster: web } }
`)
	build := func(clear bool) httpfilter.Filter {
		c := "false"
		if clear {
			c = "true"
		}
		f, _ := newFilter(t, parseConfig(t, `
providers:
  p:
    issuer: `+mainIss+`
    local_jwks: { inline_string: `+quoted(k.jwks)+` }
    claim_to_headers: [ { header_name: x-sub, claim_name: sub } ]
    clear_route_cache: `+c+`
rules: [ { match: { prefix: / }, requires: { requires_any: { requirements: [ { provider_name: p }, { allow_missing: {} } ] } } } ]
`), httpfilter.Build{})
		return f
	}
	tok := "Authorization: Bearer " + sign(t, k.rsa, jose.RS256, "rsa1", claims(mainIss, "", nil))
	for _, tt := range []struct {
		name    string
		clear   bool
		headers []string
		route   string
	}{
		{"cleared: the claim's route", true, []string{tok}, "alice"},
		{"not cleared: the route matched before", false, []string{tok}, "others"},
		{"a client's claim header is dropped and the route matched again", false, []string{"X-Sub: alice"}, "others"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := run(build(tt.clear), table, request(http.MethodGet, "/books", tt.headers...))
			if res.status != httpfilter.Continue {
				t.Fatalf("Decode = %v (%d %q)", res.status, res.rec.Code, res.rec.Body.String())
			}
			if res.route == nil || res.route.Name != tt.route {
				t.Errorf("route %v, want %s", res.route, tt.route)
			}
		})
	}
}
