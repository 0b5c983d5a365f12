package tlsconf_test

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshgate/meshgate/internal/testpki"
	"github.com/meshgate/meshgate/server/secrets"
	"github.com/meshgate/meshgate/server/tlsconf"
)

const backendID = "spiffe://cluster.local/ns/default/sa/backend"

func inline(b []byte) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
}

func certSecret(t *testing.T, name string, l *testpki.Leaf) *secrets.Secret {
	t.Helper()
	s, err := secrets.Parse(&tlsv3.Secret{Name: name, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: inline(l.CertPEM), PrivateKey: inline(l.KeyPEM)}}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func rootSecret(t *testing.T, name string, ca *testpki.CA) *secrets.Secret {
	t.Helper()
	s, err := secrets.Parse(&tlsv3.Secret{Name: name, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		TrustedCa: inline(ca.CertPEM)}}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// istioMutual is the client context istiod renders for ISTIO_MUTUAL: the
// workload certificate and the mesh root over SDS, the peer's SPIFFE id
// checked.
func istioMutual(san string) *tlsv3.UpstreamTlsContext {
	return &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "default"}},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
			DefaultValidationContext: &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
				SanType: tlsv3.SubjectAltNameMatcher_URI,
				Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: san}}}}},
			ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: "ROOTCA"}}},
		AlpnProtocols: []string{"istio-peer-exchange", "istio"}}}
}

// handshake runs a TLS handshake between the two configs and returns each
// side's error and the server's view.
func handshake(t *testing.T, client, server *tls.Config) (st tls.ConnectionState, clientErr, serverErr error) {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	done := make(chan error, 1)
	srv := tls.Server(b, server)
	go func() {
		err := srv.Handshake()
		st = srv.ConnectionState()
		if err != nil {
			_ = b.Close()
		}
		done <- err
	}()
	c := tls.Client(a, client)
	_ = a.SetDeadline(time.Now().Add(5 * time.Second))
	clientErr = c.Handshake()
	// In TLS 1.3 the client finishes first; the server's verdict on the
	// client certificate (an alert) arrives with the first read, so read
	// while the server decides, and give the client that alert as its error.
	alert := make(chan error, 1)
	if clientErr != nil {
		_ = a.Close()
		alert <- nil
	} else {
		go func() { _, err := c.Read(make([]byte, 1)); alert <- err }()
	}
	serverErr = <-done
	_ = b.Close()
	if err := <-alert; clientErr == nil && serverErr != nil {
		clientErr = err
	}
	return st, clientErr, serverErr
}

func TestClient_SDSAndSANs(t *testing.T) {
	mesh := testpki.NewCA(t, "mesh")
	other := testpki.NewCA(t, "other")
	gw := mesh.Issue(t, testpki.LeafOptions{URIs: []string{"spiffe://cluster.local/ns/istio-system/sa/meshgate"}})
	good := mesh.Issue(t, testpki.LeafOptions{URIs: []string{backendID}})
	tests := []struct {
		name       string
		ctx        *tlsv3.UpstreamTlsContext
		server     tls.Certificate
		noSecrets  bool
		wantErr    string // in the client's handshake error
		clientCert bool   // the server saw the gateway's certificate
	}{
		{name: "ISTIO_MUTUAL: the mesh's backend", ctx: istioMutual(backendID), server: good.TLS, clientCert: true},
		{name: "another SPIFFE id", ctx: istioMutual("spiffe://cluster.local/ns/default/sa/other"), server: good.TLS, wantErr: "match none"},
		{name: "a certificate from another root", ctx: istioMutual(backendID),
			server: other.Issue(t, testpki.LeafOptions{URIs: []string{backendID}}).TLS, wantErr: "unknown authority"},
		{name: "an expired certificate", ctx: istioMutual(backendID),
			server:  mesh.Issue(t, testpki.LeafOptions{URIs: []string{backendID}, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}).TLS,
			wantErr: "expired"},
		{name: "secrets not arrived", ctx: istioMutual(backendID), server: good.TLS, noSecrets: true, wantErr: `SDS secret "ROOTCA" have not arrived`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			table := secrets.NewTable()
			if !tt.noSecrets {
				table.Put("default", certSecret(t, "default", gw))
				table.Put("ROOTCA", rootSecret(t, "ROOTCA", mesh))
			}
			client, err := tlsconf.Client(tt.ctx, table)
			if err != nil {
				t.Fatal(err)
			}
			server := &tls.Config{Certificates: []tls.Certificate{tt.server}, ClientAuth: tls.RequestClientCert}
			st, cerr, _ := handshake(t, client, server)
			switch {
			case tt.wantErr == "" && cerr != nil:
				t.Fatalf("handshake: %v", cerr)
			case tt.wantErr != "" && (cerr == nil || !strings.Contains(cerr.Error(), tt.wantErr)):
				t.Fatalf("handshake error %v, want one saying %q", cerr, tt.wantErr)
			}
			if tt.clientCert && (len(st.PeerCertificates) == 0 || st.PeerCertificates[0].URIs[0].String() != "spiffe://cluster.local/ns/istio-system/sa/meshgate") {
				t.Errorf("the server did not get the gateway's workload certificate: %v", st.PeerCertificates)
			}
		})
	}
}

// A rotated workload certificate is what the next handshake presents, with
// no new config.
func TestClient_RotationWithoutRecompile(t *testing.T) {
	mesh := testpki.NewCA(t, "mesh")
	table := secrets.NewTable()
	table.Put("ROOTCA", rootSecret(t, "ROOTCA", mesh))
	first := mesh.Issue(t, testpki.LeafOptions{URIs: []string{"spiffe://cluster.local/ns/istio-system/sa/meshgate"}, CommonName: "first"})
	table.Put("default", certSecret(t, "default", first))
	client, err := tlsconf.Client(istioMutual(backendID), table)
	if err != nil {
		t.Fatal(err)
	}
	server := &tls.Config{Certificates: []tls.Certificate{mesh.Issue(t, testpki.LeafOptions{URIs: []string{backendID}}).TLS}, ClientAuth: tls.RequireAnyClientCert}
	for _, want := range []string{"first", "second"} {
		if want == "second" {
			table.Put("default", certSecret(t, "default", mesh.Issue(t, testpki.LeafOptions{URIs: []string{"spiffe://cluster.local/ns/istio-system/sa/meshgate"}, CommonName: "second"})))
		}
		st, cerr, serr := handshake(t, client, server)
		if cerr != nil || serr != nil {
			t.Fatalf("handshake: %v / %v", cerr, serr)
		}
		if got := st.PeerCertificates[0].Subject.CommonName; got != want {
			t.Errorf("presented %q, want %q", got, want)
		}
	}
}

func TestServer_SDSAndClientCertificates(t *testing.T) {
	mesh := testpki.NewCA(t, "mesh")
	other := testpki.NewCA(t, "other")
	table := secrets.NewTable()
	table.Put("kubernetes://gw-cert", certSecret(t, "kubernetes://gw-cert", mesh.Issue(t, testpki.LeafOptions{DNS: []string{"gw.example.com"}})))
	table.Put("kubernetes://gw-cert-cacert", rootSecret(t, "kubernetes://gw-cert-cacert", mesh))
	mutual := &tlsv3.DownstreamTlsContext{RequireClientCertificate: wrapperspb.Bool(true), CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "kubernetes://gw-cert"}},
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
			ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: "kubernetes://gw-cert-cacert"}}}}
	server, err := tlsconf.Server(mutual, table)
	if err != nil {
		t.Fatal(err)
	}
	roots := mesh.Pool()
	tests := []struct {
		name    string
		client  []tls.Certificate
		wantErr bool
	}{
		{"a client of the mesh root", []tls.Certificate{mesh.Issue(t, testpki.LeafOptions{CommonName: "alice"}).TLS}, false},
		{"no client certificate", nil, true},
		{"a client of another root", []tls.Certificate{other.Issue(t, testpki.LeafOptions{CommonName: "mallory"}).TLS}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := &tls.Config{Certificates: tt.client, RootCAs: roots, ServerName: "gw.example.com"}
			st, _, serr := handshake(t, client, server)
			if (serr != nil) != tt.wantErr {
				t.Fatalf("server handshake error %v, want error %v", serr, tt.wantErr)
			}
			if !tt.wantErr && st.PeerCertificates[0].Subject.CommonName != "alice" {
				t.Errorf("peer %v", st.PeerCertificates[0].Subject)
			}
		})
	}
}

func TestConfigs_Refused(t *testing.T) {
	tests := []struct {
		name string
		ctx  *tlsv3.UpstreamTlsContext
		want string
	}{
		{"SAN matchers without trust anchors", &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{SanType: tlsv3.SubjectAltNameMatcher_DNS,
					Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "x"}}}}}}}}, "need trust anchors"},
		{"pinning", &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				VerifyCertificateSpki: []string{"abc"}}}}}, "pinning"},
		{"two SDS certificates", &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "a"}, {Name: "b"}}}}, "one secret"},
		{"an OTHER_NAME SAN", &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: "r"}},
		}}, ""},
	}
	for _, tt := range tests {
		_, err := tlsconf.Client(tt.ctx, secrets.NewTable())
		if tt.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one saying %q", tt.name, err, tt.want)
		}
	}
}

func TestParse_Refused(t *testing.T) {
	for _, s := range []*tlsv3.Secret{
		{Name: "empty"},
		{Name: "generic", Type: &tlsv3.Secret_GenericSecret{GenericSecret: &tlsv3.GenericSecret{}}},
		{Name: "no ca", Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{}}},
		{Name: "bad pem", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: inline([]byte("nope")), PrivateKey: inline([]byte("nope"))}}},
	} {
		if _, err := secrets.Parse(s); err == nil {
			t.Errorf("secret %q parsed", s.GetName())
		}
	}
}
