package config

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
)

// SecretRef is a secret that a listener or cluster names through SDS.
type SecretRef struct {
	Name string
	// ADS: the secret comes over the aggregated xDS stream (sds_config
	// ads, as istiod sends credentialName secrets); otherwise it comes
	// from another source (the gateway's own identity for Istio's
	// `default` and `ROOTCA` from the agent's sds-grpc cluster, or a file).
	ADS bool
}

// SecretRefs lists the SDS secrets that a Listener or Cluster names in
// its TLS transport sockets (every filter chain, every transport socket
// match), in order, without repeats.
func SecretRefs(m proto.Message) []SecretRef {
	var sockets []*corev3.TransportSocket
	switch r := m.(type) {
	case *clusterv3.Cluster:
		sockets = append(sockets, r.GetTransportSocket())
		for _, tm := range r.GetTransportSocketMatches() {
			sockets = append(sockets, tm.GetTransportSocket())
		}
	case *listenerv3.Listener:
		for _, fc := range r.GetFilterChains() {
			sockets = append(sockets, fc.GetTransportSocket())
		}
		if fc := r.GetDefaultFilterChain(); fc != nil {
			sockets = append(sockets, fc.GetTransportSocket())
		}
	}
	var out []SecretRef
	seen := map[string]bool{}
	for _, s := range sockets {
		for _, sds := range sdsConfigs(s) {
			if sds.GetName() == "" || seen[sds.GetName()] {
				continue
			}
			seen[sds.GetName()] = true
			out = append(out, SecretRef{Name: sds.GetName(), ADS: sds.GetSdsConfig().GetAds() != nil})
		}
	}
	return out
}

// sdsConfigs returns the SDS references of one TLS transport socket.
func sdsConfigs(s *corev3.TransportSocket) []*tlsv3.SdsSecretConfig {
	tc := s.GetTypedConfig()
	if tc == nil {
		return nil
	}
	var common *tlsv3.CommonTlsContext
	up, down := &tlsv3.UpstreamTlsContext{}, &tlsv3.DownstreamTlsContext{}
	switch {
	case tc.MessageIs(up):
		if tc.UnmarshalTo(up) != nil {
			return nil
		}
		common = up.GetCommonTlsContext()
	case tc.MessageIs(down):
		if tc.UnmarshalTo(down) != nil {
			return nil
		}
		common = down.GetCommonTlsContext()
	default:
		return nil
	}
	out := append([]*tlsv3.SdsSecretConfig(nil), common.GetTlsCertificateSdsSecretConfigs()...)
	if v := common.GetValidationContextSdsSecretConfig(); v != nil {
		out = append(out, v)
	}
	if v := common.GetCombinedValidationContext().GetValidationContextSdsSecretConfig(); v != nil {
		out = append(out, v)
	}
	return out
}
