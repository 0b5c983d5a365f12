package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/server/tlsconf"
)

const rawSocket = "envoy.transport_sockets.raw_buffer"

// protocol reads the upstream HTTP version the way Envoy does: from the
// typed HttpProtocolOptions, else the deprecated http2_protocol_options.
func protocol(c *clusterv3.Cluster) (Protocol, error) {
	if a := c.GetTypedExtensionProtocolOptions()[config.HTTPProtocolOptions]; a != nil {
		var o httpv3.HttpProtocolOptions
		if err := a.UnmarshalTo(&o); err != nil {
			return 0, fmt.Errorf("typed_extension_protocol_options[%s]: %w", config.HTTPProtocolOptions, err)
		}
		switch p := o.GetUpstreamProtocolOptions().(type) {
		case *httpv3.HttpProtocolOptions_ExplicitHttpConfig_:
			if p.ExplicitHttpConfig.GetHttp2ProtocolOptions() != nil {
				return HTTP2, nil
			}
			if p.ExplicitHttpConfig.GetHttp3ProtocolOptions() != nil {
				return 0, errors.New("HTTP/3 upstreams are not supported")
			}
			return HTTP1, nil
		case *httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig:
			return Downstream, nil
		case *httpv3.HttpProtocolOptions_AutoConfig:
			// Envoy negotiates by ALPN; meshgate offers h2 over TLS and
			// speaks HTTP/1.1 in the clear.
			if c.GetTransportSocket().GetName() == config.TLSTransportSocket {
				return HTTP2, nil
			}
			return HTTP1, nil
		}
		return HTTP1, nil
	}
	//lint:ignore SA1019 Envoy still accepts the deprecated field.
	if c.GetHttp2ProtocolOptions() != nil {
		return HTTP2, nil
	}
	return HTTP1, nil
}

// upstreamTLS builds the client TLS config of a cluster, or nil for a
// cleartext one.
func upstreamTLS(c *clusterv3.Cluster) (*tls.Config, error) {
	ts := c.GetTransportSocket()
	if ms := c.GetTransportSocketMatches(); len(ms) > 0 {
		var err error
		if ts, err = matchedSocket(c.GetName(), ms); err != nil {
			return nil, err
		}
	}
	if ts == nil || ts.GetName() == rawSocket {
		return nil, nil
	}
	var utc tlsv3.UpstreamTlsContext
	if tc := ts.GetTypedConfig(); tc == nil || tc.UnmarshalTo(&utc) != nil {
		return nil, fmt.Errorf("transport_socket %q: want an UpstreamTlsContext", ts.GetName())
	}
	conf, err := tlsconf.Client(&utc)
	if err != nil {
		return nil, fmt.Errorf("transport_socket: %w", err)
	}
	return conf, nil
}

// matchedSocket picks one transport socket of transport_socket_matches for
// the whole cluster: the catch-all match (Istio's tlsMode-disabled), or the
// first TLS one whose certificates are files or inline. Istio's mTLS match
// takes its certificates over SDS, which meshgate does not speak yet; its
// endpoints are then reached in plaintext, which Istio's PERMISSIVE mode
// accepts.
func matchedSocket(cluster string, ms []*clusterv3.Cluster_TransportSocketMatch) (*corev3.TransportSocket, error) {
	for _, m := range ms {
		if len(m.GetMatch().GetFields()) == 0 {
			return m.GetTransportSocket(), nil
		}
	}
	for _, m := range ms {
		ts := m.GetTransportSocket()
		if ts.GetName() != config.TLSTransportSocket {
			continue
		}
		var utc tlsv3.UpstreamTlsContext
		if ts.GetTypedConfig().UnmarshalTo(&utc) == nil && len(utc.GetCommonTlsContext().GetTlsCertificateSdsSecretConfigs()) == 0 {
			return ts, nil
		}
	}
	return nil, fmt.Errorf("transport_socket_matches: none usable for cluster %q (SDS certificates are not supported yet)", cluster)
}
