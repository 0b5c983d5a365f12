package integration

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meshgate/meshgate/internal/testpki"
)

// istioAPIRoutes sends api.example.com through the gateway to the echo
// backend (istioEchoService).
const istioAPIRoutes = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: routes, namespace: default }
spec:
  hosts: ["api.example.com"]
  gateways: [istio-system/gw]
  http:
  - route: [ { destination: { host: echo.example.com, port: { number: 80 } } } ]
`

// istioHTTPSConfig: an HTTPS Gateway server whose certificate is the
// Kubernetes secret gw-cert (credentialName), routing to echo.
const istioHTTPSConfig = `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw, namespace: istio-system }
spec:
  selector: { istio: ingressgateway }
  servers:
  - port: { number: {{.Port}}, name: https, protocol: HTTPS }
    hosts: ["api.example.com"]
    tls: { mode: SIMPLE, credentialName: gw-cert }
---
` + istioEchoService + istioAPIRoutes

// An HTTPS Gateway with credentialName: istiod sends the Kubernetes secret
// over SDS on the secure xDS stream, the listener serves it for its SNI
// name, and a rotated secret is served at the next handshake.
func TestIstio_GatewayCredentialName(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs Istio's discovery server; skipped with -short")
	}
	ist := startIstiodWith(t, "", istiodOptions{Secure: true})
	certs := testpki.NewCA(t, "public certs")
	put := func(cn string) {
		l := certs.Issue(t, testpki.LeafOptions{DNS: []string{"api.example.com"}, CommonName: cn})
		ist.putSecret("istio-system", "gw-cert", l.CertPEM, l.KeyPEM, nil)
	}
	put("first")
	backend := startBackend(t, "v1")
	data := struct{ Port, Backend string }{port(freeAddr(t)), port(backend.HTTPAddr)}
	ist.apply(string(render(t, istioHTTPSConfig, data)))
	srv, _ := startSecureGateway(t, ist)

	listener := "0.0.0.0_" + data.Port
	served := func() (string, error) {
		addr := srv.ListenerAddr(listener)
		tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: "api.example.com", RootCAs: certs.Pool()}}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest("GET", "https://"+addr+"/echo", nil)
		req.Host = "api.example.com"
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return "", &statusError{resp.StatusCode}
		}
		return resp.TLS.PeerCertificates[0].Subject.CommonName, nil
	}
	waitFor(t, "the HTTPS listener to serve gw-cert", func() bool {
		cn, err := served()
		if err != nil {
			t.Logf("not yet: %v", err)
		}
		return err == nil && cn == "first"
	})
	put("second")
	waitFor(t, "the rotated certificate", func() bool {
		cn, err := served()
		return err == nil && cn == "second"
	})
}

type statusError struct{ code int }

func (e *statusError) Error() string { return http.StatusText(e.code) }

// istioMutualGatewayConfig: a MUTUAL HTTPS Gateway server (certificate and
// client CA from the secret gw-mtls) with an AuthorizationPolicy that
// allows one client identity (source principal) only.
const istioMutualGatewayConfig = `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw, namespace: istio-system }
spec:
  selector: { istio: ingressgateway }
  servers:
  - port: { number: {{.Port}}, name: https, protocol: HTTPS }
    hosts: ["api.example.com"]
    tls: { mode: MUTUAL, credentialName: gw-mtls }
---
` + istioEchoService + istioAPIRoutes + `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-client, namespace: istio-system }
spec:
  selector: { matchLabels: { istio: ingressgateway } }
  action: ALLOW
  rules: [ { from: [ { source: { principals: ["cluster.local/ns/default/sa/client"] } } ] } ]
`

// A MUTUAL Gateway: client certificates are verified against the
// credentialName secret's CA (kubernetes://gw-mtls-cacert over SDS), and
// the verified peer identity is what AuthorizationPolicy's principals
// match: the allowed SPIFFE ID passes, another identity of the same CA is
// denied with Envoy's 403, and no certificate or one of another CA fails
// the handshake.
func TestIstio_MutualGatewayAllowsByPrincipal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs Istio's discovery server; skipped with -short")
	}
	ist := startIstiodWith(t, "", istiodOptions{Secure: true})
	serverCA := testpki.NewCA(t, "public certs")
	clientCA := testpki.NewCA(t, "client certs")
	strangerCA := testpki.NewCA(t, "not trusted")
	srvLeaf := serverCA.Issue(t, testpki.LeafOptions{DNS: []string{"api.example.com"}})
	ist.putSecret("istio-system", "gw-mtls", srvLeaf.CertPEM, srvLeaf.KeyPEM, clientCA.CertPEM)
	backend := startBackend(t, "v1")
	data := struct{ Port, Backend string }{port(freeAddr(t)), port(backend.HTTPAddr)}
	ist.apply(string(render(t, istioMutualGatewayConfig, data)))
	srv, _ := startSecureGateway(t, ist)
	listener := "0.0.0.0_" + data.Port
	var addr string
	waitFor(t, "the MUTUAL listener", func() bool {
		addr = srv.ListenerAddr(listener)
		return addr != ""
	})

	get := func(client *testpki.Leaf) (int, string, error) {
		cfg := &tls.Config{ServerName: "api.example.com", RootCAs: serverCA.Pool()}
		if client != nil {
			cert, err := tls.X509KeyPair(client.CertPEM, client.KeyPEM)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		tr := &http.Transport{TLSClientConfig: cfg}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest("GET", "https://"+addr+"/echo", nil)
		req.Host = "api.example.com"
		req.Header.Set("X-Forwarded-Client-Cert", "URI=spiffe://cluster.local/ns/default/sa/forged")
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), nil
	}
	allowed := clientCA.Issue(t, testpki.LeafOptions{URIs: []string{"spiffe://cluster.local/ns/default/sa/client"}})
	var echoed string
	waitFor(t, "the allowed client to pass", func() bool {
		code, body, err := get(allowed)
		if err != nil || code != 200 {
			t.Logf("not yet: %d %q %v", code, body, err)
		}
		echoed = body
		return err == nil && code == 200
	})
	// Istio's MUTUAL gateway: SANITIZE_SET with subject, URI and DNS, so
	// the backend sees the verified client, not what the client claimed.
	var seen struct {
		Headers map[string]string `json:"headers"`
	}
	if err := json.Unmarshal([]byte(echoed), &seen); err != nil {
		t.Fatalf("echo body %q: %v", echoed, err)
	}
	sum := sha256.Sum256(allowed.TLS.Certificate[0])
	xfcc := seen.Headers["x-forwarded-client-cert"]
	if !strings.Contains(xfcc, "Hash="+hex.EncodeToString(sum[:])) || !strings.Contains(xfcc, "URI=spiffe://cluster.local/ns/default/sa/client") ||
		strings.Contains(xfcc, "forged") {
		t.Errorf("the backend saw x-forwarded-client-cert %q, want the allowed client's hash and URI only", xfcc)
	}
	other := clientCA.Issue(t, testpki.LeafOptions{URIs: []string{"spiffe://cluster.local/ns/default/sa/intruder"}})
	if code, body, err := get(other); err != nil || code != 403 || !strings.Contains(body, "RBAC: access denied") {
		t.Errorf("another identity of the client CA: %d %q %v, want 403 RBAC: access denied", code, body, err)
	}
	if code, _, err := get(nil); err == nil {
		t.Errorf("no client certificate: answered %d, want the handshake refused", code)
	}
	stranger := strangerCA.Issue(t, testpki.LeafOptions{URIs: []string{"spiffe://cluster.local/ns/default/sa/client"}})
	if code, _, err := get(stranger); err == nil {
		t.Errorf("the allowed identity from an untrusted CA: answered %d, want the handshake refused", code)
	}
}
