package cluster

import (
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/meshgate/meshgate/server/secrets"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
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

// Istio's auto mTLS (tlsMode-istio with SDS, then a plaintext catch-all)
// and its variants: one socket for the whole cluster, and a note or a
// refusal whenever that is not what Envoy would do per endpoint.
func TestUpstreamTLS_TransportSocketMatches(t *testing.T) {
	sds := tlsSocket(t, &tlsv3.UpstreamTlsContext{Sni: "outbound_.80_._.svc", CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "default"}},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
			DefaultValidationContext:         &tlsv3.CertificateValidationContext{},
			ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: "ROOTCA"}}}}})
	plainTLS := tlsSocket(t, &tlsv3.UpstreamTlsContext{Sni: "backend"})
	raw := &corev3.TransportSocket{Name: "envoy.transport_sockets.raw_buffer"}
	istio := map[string]any{"tlsMode": "istio"}
	tests := []struct {
		name      string
		cluster   *clusterv3.Cluster
		wantTLS   bool
		wantNotes []string
		wantErr   string
	}{
		{name: "Istio auto mTLS: plaintext, said so",
			cluster: &clusterv3.Cluster{TransportSocketMatches: []*clusterv3.Cluster_TransportSocketMatch{
				match(t, "tlsMode-istio", istio, sds), match(t, "tlsMode-disabled", nil, raw)}},
			wantNotes: []string{"transport_socket_matches[tlsMode-istio]: its endpoints are reached in plaintext (transport_socket_matches[tlsMode-disabled]) until per-endpoint transport sockets are supported"}},
		{name: "SDS match with nothing plaintext after it",
			cluster: &clusterv3.Cluster{TransportSocketMatches: []*clusterv3.Cluster_TransportSocketMatch{match(t, "tlsMode-istio", istio, sds)}},
			wantErr: "transport_socket_matches[tlsMode-istio]: per-endpoint transport sockets are not supported yet, and no plaintext match covers its endpoints"},
		{name: "a plaintext match that covers only other endpoints does not count",
			cluster: &clusterv3.Cluster{TransportSocketMatches: []*clusterv3.Cluster_TransportSocketMatch{
				match(t, "mtls", istio, sds), match(t, "other", map[string]any{"tlsMode": "disabled"}, raw), match(t, "tls-all", nil, plainTLS)}},
			wantErr: "no plaintext match covers"},
		{name: "file TLS for some endpoints, plaintext for the rest",
			cluster: &clusterv3.Cluster{TransportSocketMatches: []*clusterv3.Cluster_TransportSocketMatch{
				match(t, "tls", istio, plainTLS), match(t, "plain", nil, raw)}},
			wantErr: "different transport sockets for different endpoints"},
		{name: "every match the same TLS socket",
			cluster: &clusterv3.Cluster{TransportSocketMatches: []*clusterv3.Cluster_TransportSocketMatch{
				match(t, "a", istio, plainTLS), match(t, "all", nil, plainTLS)}},
			wantTLS: true},
		{name: "no catch-all: the cluster's transport_socket",
			cluster: &clusterv3.Cluster{TransportSocket: plainTLS, TransportSocketMatches: []*clusterv3.Cluster_TransportSocketMatch{
				match(t, "a", istio, plainTLS)}},
			wantTLS: true},
		{name: "SDS as the cluster's own socket (DestinationRule ISTIO_MUTUAL)",
			cluster: &clusterv3.Cluster{TransportSocket: sds},
			wantTLS: true},
		{name: "the same SDS socket for every endpoint",
			cluster: &clusterv3.Cluster{TransportSocketMatches: []*clusterv3.Cluster_TransportSocketMatch{
				match(t, "tlsMode-istio", istio, sds), match(t, "all", nil, sds)}},
			wantTLS: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf, notes, err := upstreamTLS(tt.cluster, secrets.NewTable())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("upstreamTLS = %v, want an error saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (conf != nil) != tt.wantTLS {
				t.Errorf("TLS = %v, want %v", conf != nil, tt.wantTLS)
			}
			if diff := cmp.Diff(notes, tt.wantNotes); diff != "" {
				t.Errorf("notes (-got +want):\n%s", diff)
			}
		})
	}
}
