package cluster

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/meshgate/meshgate/internal/testpki"
	"github.com/meshgate/meshgate/server/secrets"
)

func tlsSocket(t *testing.T, utc *tlsv3.UpstreamTlsContext) *corev3.TransportSocket {
	t.Helper()
	a, err := anypb.New(utc)
	if err != nil {
		t.Fatal(err)
	}
	return &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: a}}
}

func match(t *testing.T, name string, criteria map[string]any, ts *corev3.TransportSocket) *clusterv3.Cluster_TransportSocketMatch {
	t.Helper()
	st, err := structpb.NewStruct(criteria)
	if err != nil {
		t.Fatal(err)
	}
	return &clusterv3.Cluster_TransportSocketMatch{Name: name, Match: st, TransportSocket: ts}
}

// meshSocket is the client context istiod renders for ISTIO_MUTUAL and
// auto mTLS: the workload certificate and mesh root over SDS, the peer's
// SPIFFE id checked, Istio's ALPN.
func meshSocket(t *testing.T, san string) *corev3.TransportSocket {
	return tlsSocket(t, &tlsv3.UpstreamTlsContext{Sni: "outbound_.80_._.svc", CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "default"}},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
			DefaultValidationContext: &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
				SanType: tlsv3.SubjectAltNameMatcher_URI, Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: san}}}}},
			ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: "ROOTCA"}}},
		AlpnProtocols: []string{"istio-peer-exchange", "istio"}}})
}

func endpointWith(md map[string]any) *endpointv3.LbEndpoint {
	lbe := &endpointv3.LbEndpoint{}
	if md != nil {
		st, _ := structpb.NewStruct(md)
		lbe.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{transportSocketMatch: st}}
	}
	return lbe
}

// Which socket each endpoint gets, as Envoy picks it: the first match its
// metadata holds, else the cluster's transport_socket; one socket for the
// whole cluster when the matches come to the same.
func TestUpstreamTLS_TransportSocketMatches(t *testing.T) {
	sds := meshSocket(t, "spiffe://cluster.local/ns/default/sa/backend")
	plainTLS := tlsSocket(t, &tlsv3.UpstreamTlsContext{Sni: "backend"})
	raw := &corev3.TransportSocket{Name: "envoy.transport_sockets.raw_buffer"}
	istio := map[string]any{"tlsMode": "istio"}
	type want struct {
		metadata map[string]any
		tls      bool
	}
	tests := []struct {
		name        string
		cluster     *clusterv3.Cluster
		perEndpoint bool
		endpoints   []want
	}{
		{name: "Istio auto mTLS: tlsMode istio endpoints mTLS, the others plaintext",
			cluster: &clusterv3.Cluster{TransportSocketMatches: []*clusterv3.Cluster_TransportSocketMatch{
				match(t, "tlsMode-istio", istio, sds), match(t, "tlsMode-disabled", nil, raw)}},
			perEndpoint: true,
			endpoints:   []want{{istio, true}, {nil, false}, {map[string]any{"tlsMode": "disabled"}, false}, {map[string]any{"tlsMode": "istio", "x": "y"}, true}}},
		{name: "no catch-all match: the cluster's transport_socket for the rest",
			cluster: &clusterv3.Cluster{TransportSocket: plainTLS, TransportSocketMatches: []*clusterv3.Cluster_TransportSocketMatch{
				match(t, "mtls", istio, sds)}},
			perEndpoint: true,
			endpoints:   []want{{istio, true}, {nil, true}}},
		{name: "no match and no transport_socket: plaintext",
			cluster: &clusterv3.Cluster{TransportSocketMatches: []*clusterv3.Cluster_TransportSocketMatch{
				match(t, "mtls", istio, sds)}},
			perEndpoint: true,
			endpoints:   []want{{istio, true}, {nil, false}}},
		{name: "every match the same TLS socket",
			cluster: &clusterv3.Cluster{TransportSocketMatches: []*clusterv3.Cluster_TransportSocketMatch{
				match(t, "a", istio, plainTLS), match(t, "all", nil, plainTLS)}},
			endpoints: []want{{istio, true}, {nil, true}}},
		{name: "SDS as the cluster's own socket (DestinationRule ISTIO_MUTUAL)",
			cluster:   &clusterv3.Cluster{TransportSocket: sds},
			endpoints: []want{{istio, true}, {nil, true}}},
		{name: "plaintext everywhere",
			cluster: &clusterv3.Cluster{TransportSocketMatches: []*clusterv3.Cluster_TransportSocketMatch{
				match(t, "a", istio, raw), match(t, "b", nil, nil)}},
			endpoints: []want{{istio, false}, {nil, false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			socks, err := upstreamTLS(tt.cluster, secrets.NewTable())
			if err != nil {
				t.Fatal(err)
			}
			if socks.perEndpoint != tt.perEndpoint {
				t.Errorf("perEndpoint = %v, want %v", socks.perEndpoint, tt.perEndpoint)
			}
			for _, e := range tt.endpoints {
				if got := socks.forEndpoint(endpointWith(e.metadata), nil) != nil; got != e.tls {
					t.Errorf("endpoint %v: TLS = %v, want %v", e.metadata, got, e.tls)
				}
			}
		})
	}
}

// Auto mTLS end to end: one cluster, a backend that requires a client
// certificate of the mesh (and whose own certificate carries its SPIFFE
// id) and a plaintext one beside it, over HTTP/1.1 and HTTP/2; a backend
// with the wrong identity is refused.
func TestCluster_PerEndpointMTLS(t *testing.T) {
	mesh := testpki.NewCA(t, "mesh")
	const backendID = "spiffe://cluster.local/ns/default/sa/backend"
	table := secrets.NewTable()
	gw := mesh.Issue(t, testpki.LeafOptions{URIs: []string{"spiffe://cluster.local/ns/istio-system/sa/meshgate"}})
	cert, err := secrets.Parse(&tlsv3.Secret{Name: "default", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: gw.CertPEM}},
		PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: gw.KeyPEM}}}}})
	if err != nil {
		t.Fatal(err)
	}
	table.Put("default", cert)
	table.Put("ROOTCA", &secrets.Secret{Name: "ROOTCA", Roots: mesh.Pool()})

	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "HTTP/1.1", true: "HTTP/2"}[h2], func(t *testing.T) {
			handler := func(name string) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					peer := "none"
					if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
						peer = r.TLS.PeerCertificates[0].URIs[0].String()
					}
					io.WriteString(w, name+" "+r.Proto+" "+peer)
				})
			}
			mtlsServer := func(name, id string) *httptest.Server {
				s := httptest.NewUnstartedServer(handler(name))
				s.EnableHTTP2 = h2
				s.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: mesh.Pool(),
					Certificates: []tls.Certificate{mesh.Issue(t, testpki.LeafOptions{URIs: []string{id}}).TLS}}
				s.StartTLS()
				t.Cleanup(s.Close)
				return s
			}
			secure := mtlsServer("secure", backendID)
			impostor := mtlsServer("impostor", "spiffe://cluster.local/ns/default/sa/other")
			plain := httptest.NewUnstartedServer(handler("plain"))
			if h2 {
				plain.Config.Protocols = new(http.Protocols)
				plain.Config.Protocols.SetUnencryptedHTTP2(true)
			}
			plain.Start()
			t.Cleanup(plain.Close)

			spec := &clusterv3.Cluster{Name: "svc", TransportSocketMatches: []*clusterv3.Cluster_TransportSocketMatch{
				match(t, "tlsMode-istio", map[string]any{"tlsMode": "istio"}, meshSocket(t, backendID)),
				match(t, "tlsMode-disabled", nil, &corev3.TransportSocket{Name: rawSocket})}}
			if h2 {
				//lint:ignore SA1019 the short form is enough here.
				spec.Http2ProtocolOptions = &corev3.Http2ProtocolOptions{}
			}
			c, err := New(spec, Options{Secrets: table})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			cla := &endpointv3.ClusterLoadAssignment{ClusterName: "svc", Endpoints: []*endpointv3.LocalityLbEndpoints{{}}}
			add := func(s *httptest.Server, md map[string]any) string {
				host, port, _ := net.SplitHostPort(s.Listener.Addr().String())
				p, _ := strconv.Atoi(port)
				lbe := endpointWith(md)
				lbe.HostIdentifier = &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{
					Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)}}}}}}
				cla.Endpoints[0].LbEndpoints = append(cla.Endpoints[0].LbEndpoints, lbe)
				return s.Listener.Addr().String()
			}
			istio := map[string]any{"tlsMode": "istio"}
			secureAddr, impostorAddr, plainAddr := add(secure, istio), add(impostor, istio), add(plain, nil)
			c.SetEndpoints(cla)

			proto := "HTTP/1.1"
			if h2 {
				proto = "HTTP/2.0"
			}
			call := func(addr string) (string, error) {
				req, _ := http.NewRequest("GET", c.Scheme()+"://"+addr+"/", nil)
				resp, err := c.Transport(h2).RoundTrip(req)
				if err != nil {
					return "", err
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				return string(b), err
			}
			if got, err := call(secureAddr); err != nil || got != "secure "+proto+" spiffe://cluster.local/ns/istio-system/sa/meshgate" {
				t.Errorf("mTLS endpoint: %q, %v; want it reached with the gateway's identity", got, err)
			}
			if got, err := call(plainAddr); err != nil || got != "plain "+proto+" none" {
				t.Errorf("plaintext endpoint: %q, %v; want it reached in plaintext", got, err)
			}
			if got, err := call(impostorAddr); err == nil || !strings.Contains(err.Error(), "subject alt name") {
				t.Errorf("endpoint with another identity: %q, %v; want the handshake refused for its SAN", got, err)
			}
		})
	}
}
