package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"

	"google.golang.org/protobuf/proto"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/server/secrets"
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
// cleartext one, with notes on what it could not do as asked.
func upstreamTLS(c *clusterv3.Cluster, table *secrets.Table) (*tls.Config, []string, error) {
	ts := c.GetTransportSocket()
	var notes []string
	if ms := c.GetTransportSocketMatches(); len(ms) > 0 {
		var err error
		if ts, notes, err = matchedSocket(c.GetTransportSocket(), ms, table); err != nil {
			return nil, nil, err
		}
	}
	conf, err := socketTLS(ts, table)
	if err != nil {
		return nil, nil, fmt.Errorf("transport_socket: %w", err)
	}
	return conf, notes, nil
}

// socketTLS builds a transport socket's client TLS config: nil for
// plaintext.
func socketTLS(ts *corev3.TransportSocket, table *secrets.Table) (*tls.Config, error) {
	if ts == nil || ts.GetName() == rawSocket {
		return nil, nil
	}
	var utc tlsv3.UpstreamTlsContext
	if tc := ts.GetTypedConfig(); tc == nil || tc.UnmarshalTo(&utc) != nil {
		return nil, fmt.Errorf("%q: want an UpstreamTlsContext", ts.GetName())
	}
	return tlsconf.Client(&utc, table)
}

// matchedSocket picks the one transport socket a cluster uses for all its
// endpoints from its transport_socket_matches. Envoy picks per endpoint the
// first match whose criteria the endpoint's metadata holds (the cluster's
// transport_socket when none does); meshgate dials every endpoint of a
// cluster alike, so it uses the socket that catches every endpoint (the
// match with empty criteria, else transport_socket) and accepts the other
// matches only when they come to the same: a match that needs SDS (Istio's
// tlsMode-istio mTLS, until meshgate has a workload identity) is reached in
// plaintext when a plaintext match covers its endpoints too (Istio's
// PERMISSIVE fallback, tlsMode-disabled), and says so in a note; any other
// difference is refused.
func matchedSocket(fallback *corev3.TransportSocket, ms []*clusterv3.Cluster_TransportSocketMatch, table *secrets.Table) (*corev3.TransportSocket, []string, error) {
	catchAll, catchName := fallback, "transport_socket"
	last := len(ms)
	for i, m := range ms {
		if len(m.GetMatch().GetFields()) == 0 {
			catchAll, catchName, last = m.GetTransportSocket(), "transport_socket_matches["+m.GetName()+"]", i
			break
		}
	}
	catchConf, catchErr := socketTLS(catchAll, table)
	if catchErr != nil {
		return nil, nil, fmt.Errorf("%s: %w", catchName, catchErr)
	}
	var notes []string
	for _, m := range ms[:last] {
		where := "transport_socket_matches[" + m.GetName() + "]"
		conf, err := socketTLS(m.GetTransportSocket(), table)
		switch {
		case needsSDS(m.GetTransportSocket()) && !sameSocket(m.GetTransportSocket(), catchAll):
			if cover := plainCover(m, ms); cover != "" {
				notes = append(notes, fmt.Sprintf("%s: its endpoints are reached in plaintext (%s) until per-endpoint transport sockets are supported", where, cover))
				continue
			}
			return nil, nil, fmt.Errorf("%s: per-endpoint transport sockets are not supported yet, and no plaintext match covers its endpoints", where)
		case err != nil:
			return nil, nil, fmt.Errorf("%s: %w", where, err)
		case (conf == nil) != (catchConf == nil) || conf != nil && !sameSocket(m.GetTransportSocket(), catchAll):
			return nil, nil, fmt.Errorf("%s: different transport sockets for different endpoints of one cluster are not supported yet (this one and %s)", where, catchName)
		}
	}
	return catchAll, notes, nil
}

// plainCover names a plaintext match after m whose criteria every
// endpoint m matches also meets ("" if none). The cluster's own
// transport_socket does not count: Envoy uses it only for endpoints no
// match takes.
func plainCover(m *clusterv3.Cluster_TransportSocketMatch, ms []*clusterv3.Cluster_TransportSocketMatch) string {
	after := false
	for _, o := range ms {
		if o == m {
			after = true
			continue
		}
		if !after || !isPlain(o.GetTransportSocket()) {
			continue
		}
		covers := true
		for k, v := range o.GetMatch().GetFields() {
			mv, ok := m.GetMatch().GetFields()[k]
			covers = covers && ok && proto.Equal(mv, v)
		}
		if covers {
			return "transport_socket_matches[" + o.GetName() + "]"
		}
	}
	return ""
}

func isPlain(ts *corev3.TransportSocket) bool { return ts == nil || ts.GetName() == rawSocket }

func sameSocket(a, b *corev3.TransportSocket) bool { return proto.Equal(a, b) }

// needsSDS reports whether a TLS socket takes its certificates or trust
// anchors over SDS.
func needsSDS(ts *corev3.TransportSocket) bool {
	var utc tlsv3.UpstreamTlsContext
	if ts.GetTypedConfig().UnmarshalTo(&utc) != nil {
		return false
	}
	common := utc.GetCommonTlsContext()
	return len(common.GetTlsCertificateSdsSecretConfigs()) > 0 || common.GetValidationContextSdsSecretConfig() != nil ||
		common.GetCombinedValidationContext().GetValidationContextSdsSecretConfig() != nil
}
