package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/meshgate/meshgate/config"
	limitsv1 "github.com/meshgate/meshgate/proto/meshgate/extensions/filters/http/limits/v1"
	"github.com/meshgate/meshgate/server/cluster"
	"github.com/meshgate/meshgate/server/httpfilter"

	"github.com/meshgate/meshgate/server/router"
	"github.com/meshgate/meshgate/server/tlsconf"
)

// Defaults that Envoy documents for an HttpConnectionManager.
const (
	defaultMaxHeaderBytes = 60 << 10
	defaultIdleTimeout    = time.Hour
	defaultStreamIdle     = 5 * time.Minute
)

// compiledListener is a Listener resource made ready to serve.
type compiledListener struct {
	// notes say what of the listener's config is not done as asked.
	notes          []string
	address        string
	state          *listenerState
	maxHeaderBytes int
	idleTimeout    time.Duration
	// headersTimeout is the HTTP/1.x server's: the longest of the chains'
	// request_headers_timeout (net/http has one per port).
	headersTimeout time.Duration
}

// routeTables are the RDS route configurations of a Set, compiled once
// each; a listener takes its table from here by name.
type routeTables map[string]*router.Table[*cluster.Cluster]

// compileListener checks a Listener and builds its chains. Route tables
// come from the inline route_config or, for RDS, from routes (a name
// missing there serves "not available yet" until it arrives).
func (s *Server) compileListener(l *listenerv3.Listener, routes routeTables, resolve router.Resolver[*cluster.Cluster], keep keeper) (*compiledListener, error) {
	sa := l.GetAddress().GetSocketAddress()
	if sa == nil {
		return nil, errors.New("address: needs a socket_address")
	}
	if sa.GetProtocol() != 0 {
		return nil, errors.New("address.socket_address.protocol: only TCP is supported")
	}
	out := &compiledListener{
		address: net.JoinHostPort(sa.GetAddress(), strconv.FormatUint(uint64(sa.GetPortValue()), 10)),
		state:   &listenerState{name: l.GetName(), inbound: l.GetTrafficDirection() == corev3.TrafficDirection_INBOUND},
	}
	for i, lf := range l.GetListenerFilters() {
		if lf.GetName() != config.TLSInspectorFilter {
			return nil, fmt.Errorf("listener_filters[%d]: %q is not supported (only %s)", i, lf.GetName(), config.TLSInspectorFilter)
		}
	}
	chains := l.GetFilterChains()
	if dfc := l.GetDefaultFilterChain(); dfc != nil {
		chains = append(chains[:len(chains):len(chains)], dfc)
	}
	if len(chains) == 0 {
		return nil, errors.New("filter_chains: needs at least one")
	}
	for i, fc := range chains {
		if proxy, ok := config.DubboProxy(fc); ok {
			if fc.GetTransportSocket() != nil || out.state.dubbo != nil {
				return nil, fmt.Errorf("filter_chains[%d]: one cleartext dubbo_proxy chain per listener", i)
			}
			dp, err := compileDubboProxy(s, l.GetName(), proxy, resolve)
			if err != nil {
				return nil, fmt.Errorf("filter_chains[%d]: %w", i, err)
			}
			out.state.dubbo = dp
			continue
		}
		m := fc.GetFilterChainMatch()
		switch {
		case m == nil:
		case m.GetTransportProtocol() != "" && m.GetTransportProtocol() != "tls" && m.GetTransportProtocol() != "raw_buffer":
			return nil, fmt.Errorf("filter_chains[%d].filter_chain_match.transport_protocol: %q is not supported", i, m.GetTransportProtocol())
		case len(m.GetApplicationProtocols()) > 0 || m.GetDestinationPort() != nil ||
			len(m.GetPrefixRanges()) > 0 || len(m.GetSourcePrefixRanges()) > 0 || len(m.GetSourcePorts()) > 0:
			return nil, fmt.Errorf("filter_chains[%d].filter_chain_match: only transport_protocol and server_names are supported", i)
		case len(m.GetServerNames()) > 0 && fc.GetTransportSocket().GetName() != config.TLSTransportSocket:
			return nil, fmt.Errorf("filter_chains[%d].filter_chain_match.server_names: only a TLS chain can match on server names", i)
		}
		ch, tlsConf, err := s.compileChain(l.GetName(), fc, routes, resolve, keep)
		if err != nil {
			return nil, fmt.Errorf("filter_chains[%d]: %w", i, err)
		}
		if b := l.GetPerConnectionBufferLimitBytes(); b != nil {
			ch.limits.capBuffers(b.GetValue())
		}
		if tlsConf != nil {
			if err := out.state.addTLSChain(tlsChain{names: m.GetServerNames(), ch: &ch.chain, conf: tlsConf}); err != nil {
				return nil, fmt.Errorf("filter_chains[%d]: %w", i, err)
			}
		} else {
			if out.state.plain != nil {
				return nil, fmt.Errorf("filter_chains[%d]: a second cleartext chain", i)
			}
			out.state.plain = &ch.chain
		}
		for _, n := range ch.notes {
			out.notes = append(out.notes, fmt.Sprintf("filter_chains[%d].%s", i, n))
		}
		out.maxHeaderBytes = max(out.maxHeaderBytes, ch.maxHeaderBytes)
		out.headersTimeout = max(out.headersTimeout, ch.limits.headersTimeout)
		if t := ch.idle; t > 0 {
			out.idleTimeout = t
		}
	}
	if out.idleTimeout == 0 {
		out.idleTimeout = defaultIdleTimeout
	}
	return out, nil
}

// compileChain builds one filter chain; tlsConf is nil for cleartext.
func (s *Server) compileChain(listener string, fc *listenerv3.FilterChain, routes routeTables,
	resolve router.Resolver[*cluster.Cluster], keep keeper) (*chainBuild, *tls.Config, error) {
	var tlsConf *tls.Config
	if ts := fc.GetTransportSocket(); ts != nil && ts.GetName() != "envoy.transport_sockets.raw_buffer" {
		var dtc tlsv3.DownstreamTlsContext
		if tc := ts.GetTypedConfig(); tc == nil || tc.UnmarshalTo(&dtc) != nil {
			return nil, nil, fmt.Errorf("transport_socket %q: want a DownstreamTlsContext", ts.GetName())
		}
		var err error
		if tlsConf, err = tlsconf.Server(&dtc, s.secrets); err != nil {
			return nil, nil, fmt.Errorf("transport_socket: %w", err)
		}
	}
	hcm, err := config.HTTPConnectionManager(fc)
	if err != nil {
		return nil, nil, err
	}
	if hcm.GetCodecType() == hcmv3.HttpConnectionManager_HTTP3 {
		return nil, nil, errors.New("codec_type HTTP3 is not supported")
	}
	ch := &chainBuild{chain: chain{srv: s, listener: listener, maxHeaderBytes: defaultMaxHeaderBytes, resolve: resolve}}
	if kb := hcm.GetMaxRequestHeadersKb(); kb != nil {
		ch.maxHeaderBytes = int(kb.GetValue()) << 10
	}
	if t := hcm.GetCommonHttpProtocolOptions().GetIdleTimeout(); t != nil {
		ch.idle = t.AsDuration()
	}
	ch.xfcc = hcm.GetForwardClientCertDetails()
	ch.xfccSet = newXFCCDetails(hcm.GetSetCurrentClientCertDetails())
	ch.localCert = localCertOf(tlsConf)
	ch.streamIdle = defaultStreamIdle
	if t := hcm.GetStreamIdleTimeout(); t != nil {
		ch.streamIdle = t.AsDuration()
	}
	if ch.limits, err = compileConnLimits(hcm); err != nil {
		return nil, nil, err
	}
	if t := hcm.GetRequestTimeout(); t != nil {
		ch.requestTimeout = t.AsDuration()
	}
	ch.genRequestID = hcm.GetGenerateRequestId() == nil || hcm.GetGenerateRequestId().GetValue()
	logs, notes, err := s.compileAccessLogs(hcm.GetAccessLog())
	if err != nil {
		return nil, nil, err
	}
	ch.accessLogs = logs
	for _, l := range logs {
		ch.logsResponse = ch.logsResponse || l.format.ReadsResponseHeaders()
	}
	for _, n := range notes {
		ch.notes = append(ch.notes, "filters[envoy.filters.network.http_connection_manager].typed_config."+n)
	}
	ch.idInResponse = hcm.GetAlwaysSetRequestIdInResponse()
	tr, notes, err := s.compileTracing(hcm)
	if err != nil {
		return nil, nil, err
	}
	ch.tracing = tr
	for _, n := range notes {
		ch.notes = append(ch.notes, "filters[envoy.filters.network.http_connection_manager].typed_config."+n)
	}
	if err := s.compileHTTPFilters(listener, hcm, &ch.chain, &ch.notes, keep); err != nil {
		return nil, nil, err
	}
	switch spec := hcm.GetRouteSpecifier().(type) {
	case *hcmv3.HttpConnectionManager_RouteConfig:
		table, err := compileRoutes(spec.RouteConfig, resolve)
		if err != nil {
			return nil, nil, err
		}
		ch.routes = table
	case *hcmv3.HttpConnectionManager_Rds:
		// A route configuration that failed to compile is reported on its
		// own; the listener waits for a good one, as Envoy's does.
		ch.routes = routes[spec.Rds.GetRouteConfigName()]
		if ch.routes == nil {
			ch.missingRoutes = spec.Rds.GetRouteConfigName()
		}
	default:
		return nil, nil, fmt.Errorf("http_connection_manager: route specifier %T is not supported (want route_config or rds)", spec)
	}
	ch.relayable = ch.routes != nil && relayableChain(ch.filters)
	return ch, tlsConf, nil
}

// compileRoutes compiles one route configuration for the data plane.
func compileRoutes(rc *routev3.RouteConfiguration, resolve router.Resolver[*cluster.Cluster]) (*router.Table[*cluster.Cluster], error) {
	return router.Compile(rc, resolve, router.WithPerFilter(httpfilter.CompilePerFilter))
}

// chainBuild is a chain plus the connection settings it asks for and
// notes on what of its config is not done.
type chainBuild struct {
	chain
	idle  time.Duration
	notes []string
}

// compileHTTPFilters builds the listener's HTTP filters in their order,
// from the registry (httpfilter.Register). The router must come last;
// meshgate's limits filter (the listener's body limits) and the router's
// settings are read first: the filters that read bodies or answer for the
// upstream take them. A filter the registry does not
// know is skipped (with a note) when marked optional or telemetry-only,
// and fails the listener otherwise, so that a filter that guards traffic
// is never dropped silently.
func (s *Server) compileHTTPFilters(listener string, hcm *hcmv3.HttpConnectionManager, ch *chain, notes *[]string, keep keeper) error {
	filters := hcm.GetHttpFilters()
	if len(filters) == 0 {
		return errors.New("http_filters: needs the router filter (" + config.RouterFilter + ")")
	}
	for i, f := range filters {
		tc := f.GetTypedConfig()
		switch {
		case f.GetDisabled():
		case f.GetName() == config.LimitsFilter:
			var l limitsv1.Limits
			if tc == nil || tc.UnmarshalTo(&l) != nil {
				return fmt.Errorf("http_filters[%d] (%s): want a %s", i, f.GetName(), (&l).ProtoReflect().Descriptor().FullName())
			}
			ch.maxBody, ch.maxMsg = l.GetMaxRequestBodyBytes(), l.GetMaxGrpcMessageBytes()
		case i == len(filters)-1 && isRouter(f):
			// Read first too: filters that answer for upstream honour it.
			var rc routerv3.Router
			if tc != nil {
				if err := tc.UnmarshalTo(&rc); err != nil {
					return fmt.Errorf("http_filters[%d] (%s): %w", i, f.GetName(), err)
				}
			}
			ch.suppressEnvoyHeaders = rc.GetSuppressEnvoyHeaders()
		}
	}
	for i, f := range filters {
		tc := f.GetTypedConfig()
		typeURL := tc.GetTypeUrl()
		if f.GetDisabled() && i != len(filters)-1 {
			// Envoy leaves a disabled filter out unless a route enables it
			// (FilterConfig in typed_per_filter_config), which meshgate
			// does not read.
			*notes = append(*notes, fmt.Sprintf("http_filters[%s]: disabled: left out (enabling it per route is not supported)", f.GetName()))
			continue
		}
		switch fac := httpfilter.Lookup(f.GetName(), tc); {
		case isRouter(f):
			if i != len(filters)-1 {
				return fmt.Errorf("http_filters[%d]: the router filter must be the last", i)
			}
			return nil // read above
		case f.GetName() == config.LimitsFilter:
			// Read above.
		case fac != nil:
			flt, more, err := httpfilter.New(fac, tc, httpfilter.Build{
				Listener: listener, Name: f.GetName(), Chain: filters, Index: i, Log: s.log, Cluster: ch.resolve,
				Keep: func(key string, fresh func() any) any { return keep(listener+"\x00"+key, fresh) },
				Go:   s.goBackground, MaxBody: ch.maxBody, SuppressEnvoyHeaders: ch.suppressEnvoyHeaders,
			})
			if err != nil {
				return fmt.Errorf("http_filters[%d] (%s): %w", i, f.GetName(), err)
			}
			for _, n := range more {
				*notes = append(*notes, fmt.Sprintf("http_filters[%s]: %s", f.GetName(), n))
			}
			if flt != nil {
				ch.filters = append(ch.filters, flt)
			}
		case f.GetIsOptional():
			*notes = append(*notes, fmt.Sprintf("http_filters[%s]: optional filter %s is not implemented: skipped", f.GetName(), typeURL))
		case inert(f.GetName()):
			*notes = append(*notes, fmt.Sprintf("http_filters[%s]: skipped: %s", f.GetName(), inertFilters[f.GetName()]))
		default:
			return fmt.Errorf("http_filters[%d]: filter %q (%s) is not supported; mark it is_optional to skip it", i, f.GetName(), typeURL)
		}
	}
	return errors.New("http_filters: the router filter (" + config.RouterFilter + ") must be the last")
}

// isRouter tells the router filter, by name or config type.
func isRouter(f *hcmv3.HttpFilter) bool {
	return f.GetName() == config.RouterFilter || f.GetTypedConfig().GetTypeUrl() == httpfilter.TypeURL(&routerv3.Router{})
}

// inertFilters are HTTP filters a control plane (Istio above all) puts in
// every HTTP connection manager that only observe traffic (telemetry, peer
// metadata). They are skipped even when not marked optional, each with a note
// saying what is not done; any other unknown filter fails the listener, so
// that a filter that guards traffic (RBAC, authn) is never silently
// dropped.
var inertFilters = map[string]string{
	"istio.metadata_exchange":       "peer metadata is not exchanged",
	"istio.alpn":                    "not run as a filter: clusters whose TLS context names Istio's ALPN offer istio-h2/istio-http/1.1, istio and h2/http/1.1 themselves",
	"istio.stats":                   "Istio's standard metrics (istio_requests_total, ...) are not produced",
	"envoy.filters.http.grpc_stats": "per-method gRPC stats are not kept",
}

// inert reports whether a filter can be skipped without changing what a
// request gets.
func inert(name string) bool { _, ok := inertFilters[name]; return ok }
