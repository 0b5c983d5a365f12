package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

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

// sockets are a cluster's transport sockets as crypto/tls configs (nil
// for plaintext): one for every endpoint, or, when transport_socket_matches
// differ, one per endpoint chosen by its metadata, as Envoy does (Istio's
// auto mTLS: tlsMode-istio endpoints get the mesh's mTLS, the others
// plaintext).
type sockets struct {
	// all is the config of every endpoint when perEndpoint is false.
	all         *tls.Config
	perEndpoint bool
	matches     []socketMatch
	// fallback is the cluster's transport_socket: for endpoints no match
	// takes.
	fallback *tls.Config
}

// socketMatch is one of transport_socket_matches.
type socketMatch struct {
	criteria map[string]*structpb.Value
	conf     *tls.Config
}

// transportSocketMatch is the endpoint (or locality) metadata filter that
// transport_socket_matches read.
const transportSocketMatch = "envoy.transport_socket_match"

// forEndpoint picks the socket of an endpoint: the first match whose every
// criterion its metadata (else its locality's) holds, else the cluster's
// transport_socket.
func (s *sockets) forEndpoint(lbe *endpointv3.LbEndpoint, lle *endpointv3.LocalityLbEndpoints) *tls.Config {
	if s == nil {
		return nil
	}
	if !s.perEndpoint {
		return s.all
	}
	md := lbe.GetMetadata().GetFilterMetadata()[transportSocketMatch]
	if md == nil {
		md = lle.GetMetadata().GetFilterMetadata()[transportSocketMatch]
	}
	for _, m := range s.matches {
		ok := true
		for k, v := range m.criteria {
			got, has := md.GetFields()[k]
			ok = ok && has && proto.Equal(got, v)
		}
		if ok {
			return m.conf
		}
	}
	return s.fallback
}

// upstreamTLS builds the client TLS configs of a cluster's transport
// sockets.
func upstreamTLS(c *clusterv3.Cluster, table *secrets.Table) (*sockets, error) {
	fallback, err := socketTLS(c.GetTransportSocket(), table)
	if err != nil {
		return nil, fmt.Errorf("transport_socket: %w", err)
	}
	out := &sockets{all: fallback, fallback: fallback}
	// One socket for every endpoint when each match is the socket of
	// the endpoints nothing matches, as in Istio's ISTIO_MUTUAL (no
	// matches) or a match list that comes to the same.
	catchAll, catchAllIndex := c.GetTransportSocket(), -1
	for i, m := range c.GetTransportSocketMatches() {
		if len(m.GetMatch().GetFields()) == 0 {
			catchAll, catchAllIndex = m.GetTransportSocket(), i
			break
		}
	}
	for i, m := range c.GetTransportSocketMatches() {
		conf, err := socketTLS(m.GetTransportSocket(), table)
		if err != nil {
			return nil, fmt.Errorf("transport_socket_matches[%s]: %w", m.GetName(), err)
		}
		out.matches = append(out.matches, socketMatch{criteria: m.GetMatch().GetFields(), conf: conf})
		if i == catchAllIndex {
			out.all = conf
		}
		if !proto.Equal(m.GetTransportSocket(), catchAll) && !(isPlain(m.GetTransportSocket()) && isPlain(catchAll)) {
			out.perEndpoint = true
		}
	}
	return out, nil
}

// alpn is what a connection offers for an HTTP protocol (h2, http/1.1).
// A context that names Istio's "istio" protocol is the mesh's mTLS: offer
// what Istio's own gateways offer (istio-h2, istio, h2), which a sidecar's
// inbound filter chains match on.
func alpn(conf *tls.Config, proto string) []string {
	if slices.Contains(conf.NextProtos, "istio") {
		return []string{"istio-" + proto, "istio", proto}
	}
	return []string{proto}
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

func isPlain(ts *corev3.TransportSocket) bool { return ts == nil || ts.GetName() == rawSocket }
