package server

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/internal/testpki"
)

// Over a listener that asks for client certificates, x-forwarded-client-cert
// carries the client's details as Envoy writes them (By, Hash, Cert,
// Chain, Subject, URI, DNS), set or appended as forward_client_cert_details
// says, and never a value a client sent unless told to forward it.
func TestServer_XFCCFromClientCertificate(t *testing.T) {
	ca := testpki.NewCA(t, "mesh")
	serving := ca.Issue(t, testpki.LeafOptions{URIs: []string{"spiffe://cluster.local/ns/istio-system/sa/gateway"}, DNS: []string{"gw.example.com"}})
	client := ca.Issue(t, testpki.LeafOptions{CommonName: "alice", URIs: []string{"spiffe://cluster.local/ns/default/sa/alice"},
		DNS: []string{"a.example.com", "b.example.com"}})
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	certFile, keyFile, caFile := write("cert.pem", serving.CertPEM), write("key.pem", serving.KeyPEM), write("ca.pem", ca.CertPEM)
	leaf, err := x509.ParseCertificate(client.TLS.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(leaf.Raw)
	hash := hex.EncodeToString(sum[:])

	seen := make(chan []string, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Values("X-Forwarded-Client-Cert")
	}))
	t.Cleanup(backend.Close)
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(backend.URL, "http://"))

	const forged = "By=spiffe://evil/ns/x/sa/y;Hash=00"
	tests := []struct {
		name, hcm string
		withCert  bool
		want      string
	}{
		{name: "SANITIZE_SET, subject uri dns", hcm: "forward_client_cert_details: SANITIZE_SET, set_current_client_cert_details: { subject: true, uri: true, dns: true }",
			withCert: true, want: `By=spiffe://cluster.local/ns/istio-system/sa/gateway;Hash=` + hash + `;Subject="` + leaf.Subject.String() +
				`";URI=spiffe://cluster.local/ns/default/sa/alice;DNS=a.example.com;DNS=b.example.com`},
		{name: "SANITIZE_SET, hash only", hcm: "forward_client_cert_details: SANITIZE_SET",
			withCert: true, want: `By=spiffe://cluster.local/ns/istio-system/sa/gateway;Hash=` + hash},
		{name: "APPEND_FORWARD", hcm: "forward_client_cert_details: APPEND_FORWARD, set_current_client_cert_details: { uri: true }",
			withCert: true, want: forged + `,By=spiffe://cluster.local/ns/istio-system/sa/gateway;Hash=` + hash + `;URI=spiffe://cluster.local/ns/default/sa/alice`},
		{name: "FORWARD_ONLY with a client certificate", hcm: "forward_client_cert_details: FORWARD_ONLY", withCert: true, want: forged},
		{name: "SANITIZE with a client certificate", hcm: "forward_client_cert_details: SANITIZE", withCert: true, want: ""},
		{name: "SANITIZE_SET without a client certificate", hcm: "forward_client_cert_details: SANITIZE_SET", want: ""},
		{name: "APPEND_FORWARD without a client certificate", hcm: "forward_client_cert_details: APPEND_FORWARD", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := New(Options{})
			t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
			l, err := config.Load([]byte(`
static_resources:
  listeners:
  - name: web
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificates: [ { certificate_chain: { filename: `+certFile+` }, private_key: { filename: `+keyFile+` } } ]
            validation_context: { trusted_ca: { filename: `+caFile+` } }
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: web
          `+strings.ReplaceAll(tt.hcm, ", set_current", "\n          set_current")+`
          route_config: { virtual_hosts: [ { name: all, domains: ["*"], routes: [ { match: { prefix: / }, route: { cluster: be } } ] } ] }
          http_filters: [ { name: envoy.filters.http.router, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } } ]
  clusters:
  - name: be
    type: STATIC
    load_assignment: { cluster_name: be, endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: `+host+`, port_value: `+port+` } } } } ] } ] }
`), "")
			if err != nil {
				t.Fatal(err)
			}
			if err := config.NewStore(srv).Apply(context.Background(), config.Update{Source: "file", Replace: config.ResourceTypes, Resources: l.Resources}); err != nil {
				t.Fatal(err)
			}
			conf := &tls.Config{RootCAs: ca.Pool(), ServerName: "gw.example.com"}
			if tt.withCert {
				conf.Certificates = []tls.Certificate{client.TLS}
			}
			tr := &http.Transport{TLSClientConfig: conf}
			defer tr.CloseIdleConnections()
			req, _ := http.NewRequest("GET", "https://"+srv.ListenerAddr("web")+"/", nil)
			req.Header.Set("X-Forwarded-Client-Cert", forged)
			resp, err := (&http.Client{Transport: tr}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := strings.Join(<-seen, ","); got != tt.want {
				t.Errorf("the backend saw x-forwarded-client-cert\n%q, want\n%q", got, tt.want)
			}
		})
	}
}

// Cert and Chain are the PEM, percent-encoded except RFC 3986's
// unreserved characters.
func TestURLEncodePEM(t *testing.T) {
	ca := testpki.NewCA(t, "mesh")
	leaf := ca.Issue(t, testpki.LeafOptions{CommonName: "x"})
	c, err := x509.ParseCertificate(leaf.TLS.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	got := urlEncodePEM([]*x509.Certificate{c})
	if !strings.HasPrefix(got, "-----BEGIN%20CERTIFICATE-----%0A") || !strings.HasSuffix(got, "-----END%20CERTIFICATE-----%0A") {
		t.Errorf("encoded PEM = %.60q...%q", got, got[len(got)-40:])
	}
	for _, bad := range []string{"+", "/", "=", "\n", " "} {
		if strings.Contains(got, bad) {
			t.Errorf("encoded PEM contains %q", bad)
		}
	}
}
