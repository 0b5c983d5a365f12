package integration

import (
	"crypto/tls"
	"net/http"
	"testing"

	"github.com/meshgate/meshgate/internal/testpki"
)

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
  hosts: ["api.example.com"]
  gateways: [istio-system/gw]
  http:
  - route: [ { destination: { host: echo.example.com, port: { number: 80 } } } ]
`

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
