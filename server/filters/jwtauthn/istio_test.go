package jwtauthn_test

import (
	"encoding/json"
	"net/http"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/meshgate/meshgate/server/httpfilter"
)

// istioSingle is the JwtAuthentication Istio renders for one
// RequestAuthentication rule with inline jwks (pilot/pkg/security/authn
// convertToEnvoyJwtConfig; policy_applier_test "Single JWT policy"): a rule
// on "/" requiring the provider or allow_missing, the payload under
// "payload" for RBAC, scope and permission split, CORS preflights bypassed.
func istioSingle(jwks string) string {
	return `
providers:
  origins-0:
    issuer: https://secret.foo.com
    local_jwks:
      inline_string: ` + quoted(jwks) + `
    payload_in_metadata: payload
    normalize_payload_in_metadata:
      space_delimited_claims: [permission, scope]
rules:
- match: { prefix: / }
  requires:
    requires_any:
      requirements:
      - provider_name: origins-0
      - allow_missing: {}
bypass_cors_preflight: true
`
}

// istioMulti is Istio's rendering for two rules (issuers sorted), the
// second with a jwksUri on a mesh cluster: any provider, or all of
// {provider or allow_missing}; claims to headers and a payload header as
// outputClaimToHeaders and outputPayloadToHeader render.
func istioMulti(jwks string) string {
	return `
providers:
  origins-0:
    issuer: https://auth.example.com
    audiences: [bookstore]
    remote_jwks:
      http_uri:
        uri: http://jwt-token-issuer.mesh:7443/jwks
        cluster: outbound|7443||jwt-token-issuer.mesh.svc.cluster.local
        timeout: 5s
      cache_duration: 300s
    forward_payload_header: x-jwt-payload
    payload_in_metadata: payload
    normalize_payload_in_metadata:
      space_delimited_claims: [permission, scope]
    claim_to_headers:
    - { header_name: x-jwt-sub, claim_name: sub }
  origins-1:
    issuer: https://secret.foo.com
    forward: true
    from_headers: [{ name: x-secret-token, value_prefix: "Token " }]
    from_params: [token]
    local_jwks:
      inline_string: ` + quoted(jwks) + `
    payload_in_metadata: payload
    normalize_payload_in_metadata:
      space_delimited_claims: [permission, scope]
rules:
- match: { prefix: / }
  requires:
    requires_any:
      requirements:
      - provider_name: origins-0
      - provider_name: origins-1
      - requires_all:
          requirements:
          - requires_any:
              requirements:
              - provider_name: origins-0
              - allow_missing: {}
          - requires_any:
              requirements:
              - provider_name: origins-1
              - allow_missing: {}
bypass_cors_preflight: true
`
}

func TestIstioRequestAuthentication(t *testing.T) {
	k := keys(t)
	srv := newJWKSServer(t, k.jwks)
	const istioCluster = "outbound|7443||jwt-token-issuer.mesh.svc.cluster.local"
	e := newEnv(t, newCluster(t, istioCluster, srv.Listener.Addr().String()))
	single, notes := newFilter(t, parseConfig(t, istioSingle(k.jwks)), e.build())
	if len(notes) != 0 {
		t.Errorf("notes for Istio's config: %q", notes)
	}
	multi, notes := newFilter(t, parseConfig(t, istioMulti(k.jwks)), e.build())
	if len(notes) != 0 {
		t.Errorf("notes for Istio's config: %q", notes)
	}
	secret := sign(t, k.ec, jose.ES256, "ec1", claims("https://secret.foo.com", "", map[string]any{"scope": "read write", "permission": "admin"}))
	auth := sign(t, k.rsa, jose.RS256, "rsa1", claims("https://auth.example.com", "bookstore", nil))
	stranger := sign(t, k.rsa, jose.RS256, "rsa1", claims("https://stranger.example.com", "", nil))
	expired := sign(t, k.rsa, jose.RS256, "rsa1", claims("https://secret.foo.com", "", map[string]any{"exp": 1000}))
	forged := sign(t, k.attacker, jose.RS256, "rsa1", claims("https://secret.foo.com", "", nil))

	tests := []struct {
		name    string
		f       httpfilter.Filter
		method  string
		headers []string
		target  string
		want    httpfilter.Status
		body    string
		check   func(t *testing.T, r *http.Request, res result)
	}{
		{name: "single: no token passes (authorization decides)", f: single, want: httpfilter.Continue,
			check: func(t *testing.T, r *http.Request, res result) {
				if len(res.metadata) != 0 {
					t.Errorf("metadata without a token: %v", res.metadata)
				}
			}},
		{name: "single: a valid token, its payload for RBAC", f: single, headers: []string{"Authorization: Bearer " + secret},
			want: httpfilter.Continue,
			check: func(t *testing.T, r *http.Request, res result) {
				p, _ := res.metadata["payload"].(map[string]any)
				got, _ := json.Marshal(map[string]any{"iss": p["iss"], "sub": p["sub"], "scope": p["scope"], "permission": p["permission"]})
				if want := `{"iss":"https://secret.foo.com","permission":["admin"],"scope":["read","write"],"sub":"alice"}`; string(got) != want {
					t.Errorf("payload = %s, want %s", got, want)
				}
				if r.Header.Get("Authorization") != "" {
					t.Error("the token was forwarded (forwardOriginalToken is false)")
				}
			}},
		{name: "single: an expired token fails", f: single, headers: []string{"Authorization: Bearer " + expired},
			want: httpfilter.Stop, body: "Jwt is expired"},
		{name: "single: a forged token fails", f: single, headers: []string{"Authorization: Bearer " + forged},
			want: httpfilter.Stop, body: "Jwt verification fails"},
		{name: "single: another issuer fails", f: single, headers: []string{"Authorization: Bearer " + stranger},
			want: httpfilter.Stop, body: "Jwt issuer is not configured"},
		{name: "single: a CORS preflight passes with a bad token", f: single, method: http.MethodOptions,
			headers: []string{"Authorization: Bearer " + forged, "Origin: https://a.example.com", "Access-Control-Request-Method: GET"},
			want:    httpfilter.Continue},

		{name: "multi: no token passes", f: multi, want: httpfilter.Continue},
		{name: "multi: the remote provider's token", f: multi, headers: []string{"Authorization: Bearer " + auth, "X-Jwt-Sub: spoofed"},
			want: httpfilter.Continue,
			check: func(t *testing.T, r *http.Request, res result) {
				if got := r.Header.Values("X-Jwt-Sub"); len(got) != 1 || got[0] != "alice" {
					t.Errorf("X-Jwt-Sub = %q, want [alice]", got)
				}
				if r.Header.Get("X-Jwt-Payload") == "" {
					t.Error("no X-Jwt-Payload")
				}
				if p, _ := res.metadata["payload"].(map[string]any); p["iss"] != "https://auth.example.com" {
					t.Errorf("payload = %v", res.metadata["payload"])
				}
			}},
		{name: "multi: the local provider's token in its header, forwarded", f: multi, headers: []string{"X-Secret-Token: Token " + secret},
			want: httpfilter.Continue,
			check: func(t *testing.T, r *http.Request, res result) {
				if r.Header.Get("X-Secret-Token") == "" {
					t.Error("the token was removed (forwardOriginalToken is true)")
				}
			}},
		{name: "multi: the local provider's token in its query parameter", f: multi, target: "/?token=" + secret, want: httpfilter.Continue},
		{name: "multi: the local provider's token at the default location is not its", f: multi,
			headers: []string{"Authorization: Bearer " + secret}, want: httpfilter.Stop, body: "Jwt issuer is not configured"},
		{name: "multi: the remote provider's token with another audience", f: multi,
			headers: []string{"Authorization: Bearer " + sign(t, k.rsa, jose.RS256, "rsa1", claims("https://auth.example.com", "other", nil))},
			want:    httpfilter.Stop, body: "Audiences in Jwt are not allowed"},
		{name: "multi: a stranger's token fails", f: multi, headers: []string{"Authorization: Bearer " + stranger},
			want: httpfilter.Stop, body: "Jwt issuer is not configured"},
		{name: "multi: a forged token in the local provider's header fails", f: multi, headers: []string{"X-Secret-Token: Token " + forged},
			want: httpfilter.Stop, body: "Jwt verification fails"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method, target := tt.method, tt.target
			if method == "" {
				method = http.MethodGet
			}
			if target == "" {
				target = "/books"
			}
			r := request(method, target, tt.headers...)
			res := run(tt.f, nil, r)
			if res.status != tt.want {
				t.Fatalf("Decode = %v (%d %q), want %v", res.status, res.rec.Code, res.rec.Body.String(), tt.want)
			}
			if tt.want == httpfilter.Stop && res.rec.Body.String() != tt.body {
				t.Errorf("answered %d %q, want %q", res.rec.Code, res.rec.Body.String(), tt.body)
			}
			if tt.check != nil {
				tt.check(t, r, res)
			}
		})
	}
	if got := srv.hits.Load(); got != 1 {
		t.Errorf("%d JWKS fetches through %s, want 1", got, istioCluster)
	}
}
