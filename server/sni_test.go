package server

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/internal/testpki"
)

func certSecret(name string, l *testpki.Leaf) *tlsv3.Secret {
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: l.CertPEM}},
		PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: l.KeyPEM}}}}}
}

func rootsSecret(name string, ca *testpki.CA) *tlsv3.Secret {
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: ca.CertPEM}}}}}
}

// downstreamTLS is the transport socket istiod renders for a Gateway
// server with credentialName: the certificate (and for MUTUAL the client
// CA, "<name>-cacert") over ADS.
func downstreamTLS(t *testing.T, cert, cacert string) *corev3.TransportSocket {
	ads := &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}
	dtc := &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: cert, SdsConfig: ads}}}}
	if cacert != "" {
		dtc.RequireClientCertificate = wrapperspb.Bool(true)
		dtc.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
			ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: cacert, SdsConfig: ads}}
	}
	a, err := anypb.New(dtc)
	if err != nil {
		t.Fatal(err)
	}
	return &corev3.TransportSocket{Name: config.TLSTransportSocket, ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: a}}
}

// An HTTPS gateway port with certificates from SDS: the chain is picked by
// SNI (exact name, then the longest wildcard, then the chain without
// names), MUTUAL asks for a client certificate of its CA, and a rotated
// secret is served at the next handshake without touching the listener.
func TestServer_SNIChainsWithSDSCertificates(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(backend.Close)
	srv := New(Options{})
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	store := config.NewStore(srv)
	l, err := config.Load([]byte(`
listeners: [{name: https, address: "127.0.0.1:0", virtual_hosts: [{routes: [{match: {prefix: /}, cluster: svc}]}]}]
clusters: [{name: svc, endpoints: ["`+strings.TrimPrefix(backend.URL, "http://")+`"]}]
`), "")
	if err != nil {
		t.Fatal(err)
	}
	ca := testpki.NewCA(t, "gateway certs")
	clientCA := testpki.NewCA(t, "clients")
	issue := func(dns string) *testpki.Leaf {
		return ca.Issue(t, testpki.LeafOptions{DNS: []string{dns}, CommonName: dns})
	}
	secretsV1 := []proto.Message{
		certSecret("kubernetes://exact", issue("api.example.com")),
		certSecret("kubernetes://wild", issue("*.example.com")),
		certSecret("kubernetes://any", issue("fallback")),
		certSecret("kubernetes://mtls", issue("mtls.example.com")),
		rootsSecret("kubernetes://mtls-cacert", clientCA),
	}
	var resources []proto.Message
	for _, m := range l.Resources {
		if ln, ok := m.(*listenerv3.Listener); ok {
			tmpl := ln.GetFilterChains()[0]
			chain := func(names []string, sock *corev3.TransportSocket) *listenerv3.FilterChain {
				fc := proto.Clone(tmpl).(*listenerv3.FilterChain)
				fc.FilterChainMatch = &listenerv3.FilterChainMatch{ServerNames: names}
				fc.TransportSocket = sock
				return fc
			}
			ln.FilterChains = []*listenerv3.FilterChain{
				chain([]string{"*.example.com"}, downstreamTLS(t, "kubernetes://wild", "")),
				chain([]string{"api.example.com"}, downstreamTLS(t, "kubernetes://exact", "")),
				chain([]string{"mtls.example.com"}, downstreamTLS(t, "kubernetes://mtls", "kubernetes://mtls-cacert")),
				chain(nil, downstreamTLS(t, "kubernetes://any", "")),
			}
		}
		resources = append(resources, m)
	}
	apply := func(secrets []proto.Message) {
		t.Helper()
		if err := store.Apply(context.Background(), config.Update{Source: "xds", Replace: config.ResourceTypes,
			Resources: append(append([]proto.Message{}, resources...), secrets...)}); err != nil {
			t.Fatal(err)
		}
	}
	apply(secretsV1)
	addr := srv.ListenerAddr("https")

	// served dials with SNI and returns the name the gateway's certificate
	// is for, after a request through it.
	served := func(sni string, client *tls.Certificate) (string, error) {
		// Which certificate is served is the question, not whether it
		// fits the name: the subject is returned and compared.
		conf := &tls.Config{ServerName: sni, InsecureSkipVerify: true} //nolint:gosec // see above
		if client != nil {
			conf.Certificates = []tls.Certificate{*client}
		}
		tr := &http.Transport{TLSClientConfig: conf}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get("https://" + addr + "/")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		if b, _ := io.ReadAll(resp.Body); string(b) != "ok" {
			return "", &httpError{resp.StatusCode, string(b)}
		}
		return resp.TLS.PeerCertificates[0].Subject.CommonName, nil
	}
	clientCert := clientCA.Issue(t, testpki.LeafOptions{CommonName: "client"}).TLS
	tests := []struct {
		sni    string
		client *tls.Certificate
		want   string
		err    string
	}{
		{sni: "api.example.com", want: "api.example.com"},
		{sni: "www.example.com", want: "*.example.com"},
		{sni: "other.test", want: "fallback"},
		{sni: "", want: "fallback"},
		{sni: "mtls.example.com", client: &clientCert, want: "mtls.example.com"},
		{sni: "mtls.example.com", err: "certificate required"},
	}
	for _, tt := range tests {
		got, err := served(tt.sni, tt.client)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("SNI %q: %q, %v; want an error saying %q", tt.sni, got, err, tt.err)
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("SNI %q: served %q, %v; want %q", tt.sni, got, err, tt.want)
		}
	}

	// Rotation: a new certificate for the same secret name.
	secretsV2 := append([]proto.Message{}, secretsV1...)
	secretsV2[0] = certSecret("kubernetes://exact", ca.Issue(t, testpki.LeafOptions{DNS: []string{"api.example.com"}, CommonName: "api.example.com v2"}))
	apply(secretsV2)
	if got, err := served("api.example.com", nil); err != nil || got != "api.example.com v2" {
		t.Errorf("after rotation: served %q, %v; want the new certificate", got, err)
	}
	if srv.ListenerAddr("https") != addr {
		t.Errorf("the listener moved from %s to %s", addr, srv.ListenerAddr("https"))
	}
}

type httpError struct {
	code int
	body string
}

func (e *httpError) Error() string { return http.StatusText(e.code) + ": " + e.body }
