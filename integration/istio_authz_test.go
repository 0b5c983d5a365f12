package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/meshgate/meshgate/config"
)

// istioAuthzConfig: a Gateway in front of the echo backend with Istio's
// security policies for the gateway: AuthorizationPolicy DENY on /admin,
// RequestAuthentication with an inline JWKS, an AuthorizationPolicy ALLOW
// that asks for a request principal on /private (and lets the rest
// through), and, with Custom, a CUSTOM policy whose provider the mesh
// config does not define.
const istioAuthzConfig = `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw, namespace: istio-system }
spec:
  selector: { istio: ingressgateway }
  servers:
  - port: { number: {{.Port}}, name: http, protocol: HTTP }
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: echo, namespace: default }
spec:
  hosts: [echo.example.com]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [ { number: 80, name: http, protocol: HTTP } ]
  endpoints: [ { address: 127.0.0.1, ports: { http: {{.Backend}} } } ]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: routes, namespace: default }
spec:
  hosts: ["*"]
  gateways: [istio-system/gw]
  http:
  - route: [ { destination: { host: echo.example.com, port: { number: 80 } } } ]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-admin, namespace: istio-system }
spec:
  selector: { matchLabels: { istio: ingressgateway } }
  action: DENY
  rules: [ { to: [ { operation: { paths: ["/admin*"] } } ] } ]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: { name: jwt, namespace: istio-system }
spec:
  selector: { matchLabels: { istio: ingressgateway } }
  jwtRules:
  - issuer: https://issuer.example.com
    audiences: [meshgate]
    jwks: '{{.JWKS}}'
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: private, namespace: istio-system }
spec:
  selector: { matchLabels: { istio: ingressgateway } }
  action: ALLOW
  rules:
  - to: [ { operation: { notPaths: ["/private*"] } } ]
  - from: [ { source: { requestPrincipals: ["https://issuer.example.com/alice"] } } ]
    to: [ { operation: { paths: ["/private*"] } } ]
{{if .Custom}}---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: custom, namespace: istio-system }
spec:
  selector: { matchLabels: { istio: ingressgateway } }
  action: CUSTOM
  provider: { name: my-ext-authz }
  rules: [ { to: [ { operation: { paths: ["/ext*"] } } ] } ]
{{end}}`

// AuthorizationPolicy and RequestAuthentication as istiod renders them for
// a gateway (envoy.filters.http.jwt_authn, envoy.filters.http.rbac) are
// enforced with Envoy's statuses; a CUSTOM policy without a provider is
// denied, as istiod renders it.
func TestIstio_AuthorizationAndRequestAuthentication(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs Istio's discovery server; skipped with -short")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	token := func(k *ecdsa.PrivateKey, claims map[string]any) string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(claims)
		obj, err := s.Sign(b)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := obj.CompactSerialize()
		return out
	}
	now := time.Now().Unix()
	good := map[string]any{"iss": "https://issuer.example.com", "sub": "alice", "aud": "meshgate", "exp": now + 600}
	with := func(k string, v any) map[string]any {
		c := map[string]any{}
		for a, b := range good {
			c[a] = b
		}
		c[k] = v
		return c
	}

	backend := startBackend(t, "v1")
	data := struct {
		Port, Backend, JWKS string
		Custom              bool
	}{port(freeAddr(t)), port(backend.HTTPAddr), string(jwks), false}
	ist := startIstiod(t, string(render(t, istioAuthzConfig, data)))
	g := startIstioGateway(t, ist.xds, false)
	hc := httpClient(t)
	listener := "0.0.0.0_" + data.Port
	var addr string
	waitFor(t, "the gateway's listener", func() bool {
		addr = g.srv.ListenerAddr(listener)
		return addr != ""
	})
	if f := g.client.Failures()[config.ListenerType]; len(f) != 0 {
		t.Fatalf("listener rejected: %v", f)
	}

	tampered := token(key, good)
	tampered = tampered[:len(tampered)-4] + strings.Map(func(r rune) rune {
		if r == 'A' {
			return 'B'
		}
		return 'A'
	}, tampered[len(tampered)-4:])
	tests := []struct {
		name, path, token string
		want              int
		body              string
	}{
		{name: "open path", path: "/echo", want: 200},
		{name: "DENY path", path: "/admin/x", want: 403, body: "RBAC: access denied"},
		{name: "private without a token", path: "/private", want: 403, body: "RBAC: access denied"},
		{name: "private with alice's token", path: "/private", token: token(key, good), want: 200},
		{name: "private with bob's token", path: "/private", token: token(key, with("sub", "bob")), want: 403, body: "RBAC: access denied"},
		{name: "tampered token", path: "/echo", token: tampered, want: 401, body: "Jwt verification fails"},
		{name: "another key's token", path: "/private", token: token(other, good), want: 401, body: "Jwt verification fails"},
		{name: "expired token", path: "/private", token: token(key, with("exp", now-600)), want: 401, body: "Jwt is expired"},
		{name: "wrong audience", path: "/private", token: token(key, with("aud", "someone-else")), want: 403, body: "Audiences in Jwt are not allowed"},
	}
	for _, tt := range tests {
		req := newReq(t, "GET", "http://"+addr+tt.path, nil)
		if tt.token != "" {
			req.Header.Set("Authorization", "Bearer "+tt.token)
		}
		resp, body := do(t, hc, req)
		if resp.StatusCode != tt.want || !strings.Contains(string(body), tt.body) {
			t.Errorf("%s: %s = %d %q, want %d %q", tt.name, tt.path, resp.StatusCode, body, tt.want, tt.body)
		}
	}

	// CUSTOM with a provider the mesh config does not define: istiod fails
	// closed (it renders a deny for the policy's requests), and meshgate
	// enforces that.
	data.Custom = true
	ist.apply(string(render(t, istioAuthzConfig, data)))
	waitFor(t, "the CUSTOM policy's requests to be denied", func() bool {
		resp, _ := do(t, hc, newReq(t, "GET", "http://"+addr+"/ext", nil))
		return resp.StatusCode == 403
	})
	if resp, body := do(t, hc, newReq(t, "GET", "http://"+addr+"/echo", nil)); resp.StatusCode != 200 {
		t.Errorf("/echo beside the CUSTOM policy = %d %s, want 200", resp.StatusCode, body)
	}
}
