package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/meshgate/meshgate/config"
)

// The pieces the configs of these tests share: an HTTP Gateway server on
// {{.Port}} for all hosts, the echo backend ({{.Backend}}) as a
// ServiceEntry, and a VirtualService sending everything to it.
const (
	istioGatewayHTTP = `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw, namespace: istio-system }
spec:
  selector: { istio: ingressgateway }
  servers:
  - port: { number: {{.Port}}, name: http, protocol: HTTP }
    hosts: ["*"]
---
`
	istioEchoService = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: echo, namespace: default }
spec:
  hosts: [echo.example.com]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [ { number: 80, name: http, protocol: HTTP } ]
  endpoints: [ { address: 127.0.0.1, ports: { http: {{.Backend}} } } ]
---
`
	istioEchoRoutes = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: routes, namespace: default }
spec:
  hosts: ["*"]
  gateways: [istio-system/gw]
  http:
  - route: [ { destination: { host: echo.example.com, port: { number: 80 } } } ]
---
`
	istioEchoGateway = istioGatewayHTTP + istioEchoService + istioEchoRoutes
)

// istioAuthzConfig: a Gateway in front of the echo backend with Istio's
// security policies for the gateway: AuthorizationPolicy DENY on /admin,
// RequestAuthentication with an inline JWKS, an AuthorizationPolicy ALLOW
// that asks for a request principal on /private (and lets the rest
// through), and, with Custom, a CUSTOM policy whose provider the mesh
// config does not define.
const istioAuthzConfig = istioEchoGateway + `
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
	addr := g.listenerOn(t, data.Port)

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

// istioRemoteJWKSConfig: RequestAuthentication with two jwksUri issuers,
// each a ServiceEntry (istiod, with PILOT_JWT_ENABLE_REMOTE_JWKS=envoy,
// sends them as remote_jwks through the entry's cluster): "up" serves the
// keys, "down" points at a port where nothing listens.
const istioRemoteJWKSConfig = istioGatewayHTTP + istioEchoService + `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: jwks, namespace: default }
spec:
  hosts: [jwks.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [ { number: 80, name: http, protocol: HTTP } ]
  endpoints: [ { address: 127.0.0.1, ports: { http: {{.JWKSPort}} } } ]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: jwks-down, namespace: default }
spec:
  hosts: [jwks-down.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [ { number: 80, name: http, protocol: HTTP } ]
  endpoints: [ { address: 127.0.0.1, ports: { http: {{.DownPort}} } } ]
---
` + istioEchoRoutes + `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: { name: jwt, namespace: istio-system }
spec:
  selector: { matchLabels: { istio: ingressgateway } }
  jwtRules:
  - issuer: https://up.example.com
    jwksUri: http://jwks.example.com/keys
  - issuer: https://down.example.com
    jwksUri: http://jwks-down.example.com/keys
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: require-jwt, namespace: istio-system }
spec:
  selector: { matchLabels: { istio: ingressgateway } }
  action: ALLOW
  rules: [ { from: [ { source: { requestPrincipals: ["*"] } } ] } ]
`

// A jwksUri that meshgate fetches itself (istiod's remote_jwks, through
// the ServiceEntry's cluster): keys that arrive verify tokens and are
// cached; a JWKS server that cannot be reached fails its tokens closed
// with Envoy's 401 "Jwks remote fetch is failed", and the other issuer
// keeps working.
func TestIstio_RemoteJWKS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs Istio's discovery server; skipped with -short")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	var fetches atomic.Int32
	keys := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/keys" || r.Host != "jwks.example.com" {
			http.Error(w, "unexpected "+r.Host+r.URL.Path, http.StatusNotFound)
			return
		}
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	}))
	t.Cleanup(keys.Close)
	token := func(iss string) string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(map[string]any{"iss": iss, "sub": "alice", "exp": time.Now().Add(10 * time.Minute).Unix()})
		obj, err := s.Sign(b)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := obj.CompactSerialize()
		return out
	}

	backend := startBackend(t, "v1")
	data := struct{ Port, Backend, JWKSPort, DownPort string }{
		port(freeAddr(t)), port(backend.HTTPAddr), port(keys.Listener.Addr().String()), port(freeAddr(t))}
	ist := startIstiodWith(t, string(render(t, istioRemoteJWKSConfig, data)),
		istiodOptions{Env: []string{"PILOT_JWT_ENABLE_REMOTE_JWKS=envoy"}})
	g := startIstioGateway(t, ist.xds, false)
	addr := g.listenerOn(t, data.Port)

	hc := httpClient(t)
	tests := []struct {
		name, token string
		want        int
		body        string
	}{
		{name: "no token", want: 403, body: "RBAC: access denied"},
		{name: "token of the reachable JWKS", token: token("https://up.example.com"), want: 200},
		{name: "token of the unreachable JWKS", token: token("https://down.example.com"), want: 401, body: "Jwks remote fetch is failed"},
		{name: "reachable again (cached keys)", token: token("https://up.example.com"), want: 200},
	}
	for _, tt := range tests {
		req := newReq(t, "GET", "http://"+addr+"/echo", nil)
		if tt.token != "" {
			req.Header.Set("Authorization", "Bearer "+tt.token)
		}
		resp, body := do(t, hc, req)
		if resp.StatusCode != tt.want || !strings.Contains(string(body), tt.body) {
			t.Errorf("%s: /echo = %d %q, want %d %q", tt.name, resp.StatusCode, body, tt.want, tt.body)
		}
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("the JWKS was fetched %d times, want once (cache_duration is istiod's 5 minutes)", n)
	}
}

// ext-authz providers for istioCustomConfig's mesh config.
const istioExtAuthzMesh = `
extensionProviders:
- name: my-ext-authz
  envoyExtAuthzHttp:
    service: authz.example.com
    port: 9000
`

// istioCustomConfig: a CUSTOM AuthorizationPolicy whose provider is
// defined in the mesh config (istiod renders envoy.filters.http.ext_authz).
const istioCustomConfig = istioGatewayHTTP + istioEchoService + `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: authz, namespace: default }
spec:
  hosts: [authz.example.com]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [ { number: 9000, name: http, protocol: HTTP } ]
  endpoints: [ { address: 127.0.0.1 } ]
---
` + istioEchoRoutes + `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: custom, namespace: istio-system }
spec:
  selector: { matchLabels: { istio: ingressgateway } }
  action: CUSTOM
  provider: { name: my-ext-authz }
  rules: [ { to: [ { operation: { paths: ["/ext*"] } } ] } ]
`

// A CUSTOM AuthorizationPolicy with a defined provider needs an external
// authorization service (envoy.filters.http.ext_authz), which meshgate
// does not implement: the listener is refused with an error that names the
// filter (shown in istiod's sync status as a NACK) and nothing is served on
// its port, rather than serving it without the check.
func TestIstio_CustomAuthorizationRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs Istio's discovery server; skipped with -short")
	}
	backend := startBackend(t, "v1")
	data := struct{ Port, Backend string }{port(freeAddr(t)), port(backend.HTTPAddr)}
	ist := startIstiodWith(t, string(render(t, istioCustomConfig, data)), istiodOptions{Mesh: istioExtAuthzMesh})
	g := startIstioGateway(t, ist.xds, false)
	listener := "0.0.0.0_" + data.Port
	var f config.Failure
	waitFor(t, "the listener to be refused", func() bool {
		var ok bool
		f, ok = g.client.Failures()[config.ListenerType][listener]
		return ok
	})
	if !strings.Contains(f.Details, "envoy.filters.http.ext_authz") {
		t.Errorf("refusal = %q, want it to name envoy.filters.http.ext_authz", f.Details)
	}
	if a := g.srv.ListenerAddr(listener); a != "" {
		t.Errorf("the refused listener serves on %s", a)
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+data.Port, time.Second); err == nil {
		c.Close()
		t.Errorf("something accepts connections on the refused listener's port %s", data.Port)
	}
	waitFor(t, "istiod to record the NACK", func() bool {
		return strings.Contains(ist.lastNACKs(t)["type.googleapis.com/envoy.config.listener.v3.Listener"], "envoy.filters.http.ext_authz")
	})
}
