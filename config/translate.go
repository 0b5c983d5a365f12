package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	bridgev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/connect_grpc_bridge/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	grpcwebv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/grpc_web/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshgate/meshgate/dubbo"
	"github.com/meshgate/meshgate/governance"
	dubbov1 "github.com/meshgate/meshgate/proto/meshgate/extensions/filters/http/dubbo/v1"
	limitsv1 "github.com/meshgate/meshgate/proto/meshgate/extensions/filters/http/limits/v1"
	breakerv1 "github.com/meshgate/meshgate/proto/meshgate/extensions/upstreams/breaker/v1"
)

// Translate turns the friendly format into Envoy v3 resources. Relative file
// paths (certificates) are resolved against baseDir. Every problem found is
// reported, each naming its field.
func (f *File) Translate(baseDir string) ([]proto.Message, error) {
	t := &translator{baseDir: baseDir}
	var out []proto.Message
	clusters := map[string]bool{}
	for i := range f.Clusters {
		c := &f.Clusters[i]
		p := fmt.Sprintf("clusters[%d]", i)
		if clusters[c.Name] {
			t.errf(p+".name", "cluster %q is defined twice", c.Name)
		}
		clusters[c.Name] = true
		out = append(out, t.cluster(p, c))
	}
	routeTables := map[string]bool{}
	for i := range f.RouteConfigs {
		rc := &f.RouteConfigs[i]
		p := fmt.Sprintf("route_configs[%d]", i)
		if rc.Name == "" {
			t.errf(p+".name", "must not be empty")
		}
		if routeTables[rc.Name] {
			t.errf(p+".name", "route config %q is defined twice", rc.Name)
		}
		routeTables[rc.Name] = true
		out = append(out, t.routeConfiguration(p, rc.Name, rc.VirtualHosts, &rc.HeaderEdits))
	}
	// Envoy applies a route's fault only where its filter is in the chain.
	for _, vhs := range allVirtualHosts(f) {
		for _, vh := range vhs {
			t.usesRateLimit = t.usesRateLimit || vh.RateLimit != nil
			for _, r := range vh.Routes {
				t.usesFault = t.usesFault || r.Fault != nil
				t.usesRateLimit = t.usesRateLimit || r.RateLimit != nil
			}
		}
	}
	listeners := map[string]bool{}
	for i := range f.Listeners {
		l := &f.Listeners[i]
		p := fmt.Sprintf("listeners[%d]", i)
		if listeners[l.Name] {
			t.errf(p+".name", "listener %q is defined twice", l.Name)
		}
		listeners[l.Name] = true
		if l.RouteConfig != "" && !routeTables[l.RouteConfig] {
			t.errf(p+".route_config", "route config %q is not defined in route_configs", l.RouteConfig)
		}
		out = append(out, t.listener(p, l))
	}
	for i := range f.DubboListeners {
		l := &f.DubboListeners[i]
		p := fmt.Sprintf("dubbo_listeners[%d]", i)
		if listeners[l.Name] {
			t.errf(p+".name", "listener %q is defined twice", l.Name)
		}
		listeners[l.Name] = true
		out = append(out, t.dubboListener(p, l))
	}
	if f.XDS != nil {
		f.xdsSettings = t.xds("xds", f.XDS)
	}
	f.registrySettings = t.registries("registries", f.Registries)
	if err := errors.Join(t.errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// Bootstrap returns the process settings of the file, with defaults.
// Translate must have run.
func (f *File) Bootstrap() Bootstrap {
	b := DefaultBootstrap()
	if f.Admin != nil {
		b.AdminAddress = f.Admin.Address
		b.ReadinessAddress = f.Admin.ReadinessAddress
	}
	if f.DrainTimeout != nil {
		b.DrainTimeout = f.DrainTimeout.Duration
	}
	b.XDS = f.xdsSettings
	b.Registries = f.registrySettings
	return b
}

type translator struct {
	baseDir string
	errs    []error
	// usesFault, usesRateLimit: some route or virtual host injects faults
	// or limits the rate, so listeners carry that filter (Envoy ignores
	// per-route configs of filters not in the chain).
	usesFault, usesRateLimit bool
}

// allVirtualHosts are the virtual hosts of the file's route configs and
// of its listeners' inline route tables.
func allVirtualHosts(f *File) [][]VirtualHostConfig {
	var out [][]VirtualHostConfig
	for _, rc := range f.RouteConfigs {
		out = append(out, rc.VirtualHosts)
	}
	for _, l := range f.Listeners {
		out = append(out, l.VirtualHosts)
	}
	return out
}

func (t *translator) errf(path, format string, args ...any) {
	t.errs = append(t.errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

func (t *translator) file(name string) string {
	if name == "" || filepath.IsAbs(name) || t.baseDir == "" {
		return name
	}
	return filepath.Join(t.baseDir, name)
}

func (t *translator) socketAddress(path, addr string) *corev3.Address {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		t.errf(path, "want host:port, got %q", addr)
		return nil
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		t.errf(path, "port %q is not a number from 0 to 65535", portStr)
		return nil
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)},
	}}}
}

func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(fmt.Sprintf("config: marshal %T: %v", m, err)) // only on a broken proto registry
	}
	return a
}

func (t *translator) listener(path string, l *ListenerConfig) *listenerv3.Listener {
	if l.Name == "" {
		t.errf(path+".name", "must not be empty")
	}
	if l.Address == "" {
		t.errf(path+".address", "must not be empty")
	}
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: l.Name,
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
	}
	switch {
	case l.RouteConfig != "" && len(l.VirtualHosts) > 0:
		t.errf(path, "give either route_config or virtual_hosts, not both")
	case l.RouteConfig != "":
		hcm.RouteSpecifier = &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: l.RouteConfig,
			ConfigSource:    &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}},
		}}
	case len(l.VirtualHosts) > 0:
		hcm.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{
			RouteConfig: t.routeConfiguration(path, l.Name, l.VirtualHosts, nil),
		}
	default:
		t.errf(path, "needs route_config or virtual_hosts")
	}
	if l.MaxRequestHeadersKB > 0 {
		hcm.MaxRequestHeadersKb = wrapperspb.UInt32(l.MaxRequestHeadersKB)
	}
	if l.IdleTimeout != nil {
		hcm.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{IdleTimeout: durationpb.New(l.IdleTimeout.Duration)}
	}
	if l.StreamIdleTimeout != nil {
		hcm.StreamIdleTimeout = durationpb.New(l.StreamIdleTimeout.Duration)
	}
	// gRPC-Web, Connect and CORS are on for every friendly listener:
	// browsers and Connect clients are among the callers meshgate is for.
	// The transcoder comes before CORS, whose policy is the route's the
	// transcoded call takes.
	hcm.HttpFilters = append(hcm.HttpFilters,
		&hcmv3.HttpFilter{Name: GRPCWebFilter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&grpcwebv3.GrpcWeb{})}},
		&hcmv3.HttpFilter{Name: ConnectFilter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&bridgev3.FilterConfig{})}})
	if l.GRPCJSON != nil {
		hcm.HttpFilters = append(hcm.HttpFilters, t.grpcJSONFilters(path+".grpc_json", l.GRPCJSON)...)
	}
	hcm.HttpFilters = append(hcm.HttpFilters,
		&hcmv3.HttpFilter{Name: CORSFilter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&corsv3.Cors{})}})
	switch {
	case l.RateLimit != nil:
		hcm.HttpFilters = append(hcm.HttpFilters, &hcmv3.HttpFilter{
			Name:       LocalRateLimitFilter,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t.rateLimit(path+".rate_limit", l.RateLimit))},
		})
	case t.usesRateLimit:
		// No limit of the listener's own: the routes' and virtual hosts'.
		hcm.HttpFilters = append(hcm.HttpFilters, &hcmv3.HttpFilter{
			Name:       LocalRateLimitFilter,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&ratelimitv3.LocalRateLimit{StatPrefix: "http_local_rate_limiter"})},
		})
	}
	if t.usesFault {
		hcm.HttpFilters = append(hcm.HttpFilters, &hcmv3.HttpFilter{
			Name:       FaultFilter,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&faultv3.HTTPFault{})},
		})
	}
	if l.MaxRequestBodyBytes > 0 || l.MaxGRPCMessageBytes > 0 {
		hcm.HttpFilters = append(hcm.HttpFilters, &hcmv3.HttpFilter{
			Name: LimitsFilter,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&limitsv1.Limits{
				MaxRequestBodyBytes: l.MaxRequestBodyBytes,
				MaxGrpcMessageBytes: l.MaxGRPCMessageBytes,
			})},
		})
	}
	hcm.HttpFilters = append(hcm.HttpFilters, &hcmv3.HttpFilter{
		Name:       RouterFilter,
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})},
	})
	network := []*listenerv3.Filter{{
		Name:       HTTPConnectionManagerFilter,
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)},
	}}
	out := &listenerv3.Listener{
		Name:    l.Name,
		Address: t.socketAddress(path+".address", l.Address),
	}
	if l.TLS == nil {
		out.FilterChains = []*listenerv3.FilterChain{{Filters: network}}
		return out
	}
	tlsChain := &listenerv3.FilterChain{
		Name:            "tls",
		Filters:         network,
		TransportSocket: t.downstreamTLS(path+".tls", l.TLS),
	}
	if !l.TLS.AllowPlaintext {
		out.FilterChains = []*listenerv3.FilterChain{tlsChain}
		return out
	}
	// Envoy's way to serve TLS and cleartext on one port: the TLS inspector
	// tells them apart and the chain that matches "tls" terminates TLS.
	tlsChain.FilterChainMatch = &listenerv3.FilterChainMatch{TransportProtocol: "tls"}
	out.ListenerFilters = []*listenerv3.ListenerFilter{{
		Name:       TLSInspectorFilter,
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&tlsinspectorv3.TlsInspector{})},
	}}
	out.FilterChains = []*listenerv3.FilterChain{tlsChain, {Name: "plaintext", Filters: network}}
	return out
}

func (t *translator) downstreamTLS(path string, c *ServerTLSConfig) *corev3.TransportSocket {
	if c.CertFile == "" || c.KeyFile == "" {
		t.errf(path, "cert_file and key_file are required")
	}
	ctx := &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificates: []*tlsv3.TlsCertificate{{
			CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: t.file(c.CertFile)}},
			PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: t.file(c.KeyFile)}},
		}},
		AlpnProtocols: []string{"h2", "http/1.1"},
	}}
	if c.ClientCAFile != "" {
		ctx.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{
			ValidationContext: &tlsv3.CertificateValidationContext{
				TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: t.file(c.ClientCAFile)}},
			},
		}
	}
	if c.RequireClientCert {
		if c.ClientCAFile == "" {
			t.errf(path+".require_client_cert", "needs client_ca_file")
		}
		ctx.RequireClientCertificate = wrapperspb.Bool(true)
	}
	return &corev3.TransportSocket{
		Name:       TLSTransportSocket,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(ctx)},
	}
}

func (t *translator) routeConfiguration(path, name string, vhosts []VirtualHostConfig, edits *HeaderEdits) *routev3.RouteConfiguration {
	rc := &routev3.RouteConfiguration{Name: name}
	if edits != nil {
		rc.RequestHeadersToAdd, rc.RequestHeadersToRemove, rc.ResponseHeadersToAdd, rc.ResponseHeadersToRemove = headerEdits(edits)
	}
	names := map[string]bool{}
	for i := range vhosts {
		vh := &vhosts[i]
		p := fmt.Sprintf("%s.virtual_hosts[%d]", path, i)
		vname := vh.Name
		if vname == "" {
			vname = fmt.Sprintf("vhost-%d", i)
		}
		if names[vname] {
			t.errf(p+".name", "virtual host %q is defined twice", vname)
		}
		names[vname] = true
		domains := vh.Domains
		if len(domains) == 0 {
			domains = []string{"*"}
		}
		out := &routev3.VirtualHost{Name: vname, Domains: domains}
		if vh.Retries != nil {
			out.RetryPolicy = t.retryPolicy(p+".retries", vh.Retries)
		}
		if vh.RateLimit != nil || vh.CORS != nil {
			out.TypedPerFilterConfig = map[string]*anypb.Any{}
		}
		if vh.RateLimit != nil {
			out.TypedPerFilterConfig[LocalRateLimitFilter] = mustAny(t.rateLimit(p+".rate_limit", vh.RateLimit))
		}
		if vh.CORS != nil {
			out.TypedPerFilterConfig[CORSFilter] = mustAny(t.cors(p+".cors", vh.CORS))
		}
		out.RequestHeadersToAdd, out.RequestHeadersToRemove, out.ResponseHeadersToAdd, out.ResponseHeadersToRemove = headerEdits(&vh.HeaderEdits)
		if len(vh.Routes) == 0 {
			t.errf(p+".routes", "needs at least one route")
		}
		for j := range vh.Routes {
			out.Routes = append(out.Routes, t.route(fmt.Sprintf("%s.routes[%d]", p, j), &vh.Routes[j]))
		}
		rc.VirtualHosts = append(rc.VirtualHosts, out)
	}
	return rc
}

func headerEdits(e *HeaderEdits) (reqAdd []*corev3.HeaderValueOption, reqRemove []string, respAdd []*corev3.HeaderValueOption, respRemove []string) {
	return headerOptions(e.RequestHeadersToSet, e.RequestHeadersToAdd), e.RequestHeadersToRemove,
		headerOptions(e.ResponseHeadersToSet, e.ResponseHeadersToAdd), e.ResponseHeadersToRemove
}

func headerOptions(set, add map[string]string) []*corev3.HeaderValueOption {
	var out []*corev3.HeaderValueOption
	for _, k := range sortedKeys(set) {
		out = append(out, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: k, Value: set[k]},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	for _, k := range sortedKeys(add) {
		out = append(out, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: k, Value: add[k]},
			AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD,
		})
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (t *translator) route(path string, r *RouteConfig) *routev3.Route {
	out := &routev3.Route{Name: r.Name, Match: t.match(path+".match", &r.Match)}
	out.RequestHeadersToAdd, out.RequestHeadersToRemove, out.ResponseHeadersToAdd, out.ResponseHeadersToRemove = headerEdits(&r.HeaderEdits)

	actions := 0
	for _, set := range []bool{r.Cluster != "", len(r.WeightedClusters) > 0, r.DirectResponse != nil, r.Redirect != nil} {
		if set {
			actions++
		}
	}
	if actions != 1 {
		t.errf(path, "needs exactly one of cluster, weighted_clusters, direct_response, redirect (has %d)", actions)
		return out
	}
	switch {
	case r.DirectResponse != nil:
		d := r.DirectResponse
		if d.Status < 200 || d.Status > 599 {
			t.errf(path+".direct_response.status", "want an HTTP status from 200 to 599, got %d", d.Status)
		}
		dr := &routev3.DirectResponseAction{Status: d.Status}
		if d.Body != "" {
			dr.Body = &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: d.Body}}
		}
		out.Action = &routev3.Route_DirectResponse{DirectResponse: dr}
		return out
	case r.Redirect != nil:
		out.Action = &routev3.Route_Redirect{Redirect: t.redirect(path+".redirect", r.Redirect)}
		return out
	}

	ra := &routev3.RouteAction{}
	if r.Cluster != "" {
		ra.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: r.Cluster}
	} else {
		wc := &routev3.WeightedCluster{}
		for i, w := range r.WeightedClusters {
			if w.Cluster == "" {
				t.errf(fmt.Sprintf("%s.weighted_clusters[%d].cluster", path, i), "must not be empty")
			}
			wc.Clusters = append(wc.Clusters, &routev3.WeightedCluster_ClusterWeight{Name: w.Cluster, Weight: wrapperspb.UInt32(w.Weight)})
		}
		ra.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: wc}
	}
	if r.PrefixRewrite != "" {
		if r.Match.Regex != "" {
			t.errf(path+".prefix_rewrite", "works with a prefix or path match, not regex; use regex_rewrite")
		}
		ra.PrefixRewrite = r.PrefixRewrite
	}
	if r.RegexRewrite != nil {
		if r.PrefixRewrite != "" {
			t.errf(path+".regex_rewrite", "give either prefix_rewrite or regex_rewrite, not both")
		}
		if _, err := regexp.Compile(r.RegexRewrite.Pattern); err != nil {
			t.errf(path+".regex_rewrite.pattern", "%v", err)
		}
		ra.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{
			Pattern:      &matcherv3.RegexMatcher{Regex: r.RegexRewrite.Pattern},
			Substitution: r.RegexRewrite.Substitution,
		}
	}
	switch {
	case r.HostRewrite != "" && r.AutoHostRewrite:
		t.errf(path, "give either host_rewrite or auto_host_rewrite, not both")
	case r.HostRewrite != "":
		ra.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: r.HostRewrite}
	case r.AutoHostRewrite:
		ra.HostRewriteSpecifier = &routev3.RouteAction_AutoHostRewrite{AutoHostRewrite: wrapperspb.Bool(true)}
	}
	if r.Timeout != nil {
		if r.Timeout.Duration < 0 {
			t.errf(path+".timeout", "must not be negative")
		}
		ra.Timeout = durationpb.New(r.Timeout.Duration)
	}
	for i, h := range r.HashPolicy {
		p := fmt.Sprintf("%s.hash_policy[%d]", path, i)
		hp := &routev3.RouteAction_HashPolicy{Terminal: h.Terminal}
		n := 0
		if h.Header != "" {
			n++
			hp.PolicySpecifier = &routev3.RouteAction_HashPolicy_Header_{Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: strings.ToLower(h.Header)}}
		}
		if h.Cookie != "" {
			n++
			hp.PolicySpecifier = &routev3.RouteAction_HashPolicy_Cookie_{Cookie: &routev3.RouteAction_HashPolicy_Cookie{Name: h.Cookie}}
		}
		if h.Query != "" {
			n++
			hp.PolicySpecifier = &routev3.RouteAction_HashPolicy_QueryParameter_{QueryParameter: &routev3.RouteAction_HashPolicy_QueryParameter{Name: h.Query}}
		}
		if h.SourceIP {
			n++
			hp.PolicySpecifier = &routev3.RouteAction_HashPolicy_ConnectionProperties_{ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true}}
		}
		if n != 1 {
			t.errf(p, "give exactly one of header, cookie, query, source_ip")
		}
		ra.HashPolicy = append(ra.HashPolicy, hp)
	}
	if r.Retries != nil {
		ra.RetryPolicy = t.retryPolicy(path+".retries", r.Retries)
	}
	if r.RateLimit != nil || r.Dubbo != nil || r.CORS != nil || r.Fault != nil {
		out.TypedPerFilterConfig = map[string]*anypb.Any{}
	}
	if r.Fault != nil {
		out.TypedPerFilterConfig[FaultFilter] = mustAny(t.fault(path+".fault", r.Fault))
	}
	if r.CORS != nil {
		out.TypedPerFilterConfig[CORSFilter] = mustAny(t.cors(path+".cors", r.CORS))
	}
	if r.RateLimit != nil {
		out.TypedPerFilterConfig[LocalRateLimitFilter] = mustAny(t.rateLimit(path+".rate_limit", r.RateLimit))
	}
	if r.Dubbo != nil {
		out.TypedPerFilterConfig[DubboFilter] = mustAny(t.dubboRoute(path+".dubbo", r.Dubbo))
	}
	switch strings.ToLower(r.Priority) {
	case "", "default":
	case "high":
		ra.Priority = corev3.RoutingPriority_HIGH
	default:
		t.errf(path+".priority", "want default or high, got %q", r.Priority)
	}
	if r.IdleTimeout != nil {
		ra.IdleTimeout = durationpb.New(r.IdleTimeout.Duration)
	}
	if r.GRPCTimeoutMax != nil {
		ra.MaxStreamDuration = &routev3.RouteAction_MaxStreamDuration{GrpcTimeoutHeaderMax: durationpb.New(r.GRPCTimeoutMax.Duration)}
	}
	out.Action = &routev3.Route_Route{Route: ra}
	return out
}

func (t *translator) dubboRoute(path string, d *DubboRouteConfig) *dubbov1.DubboRoute {
	out := &dubbov1.DubboRoute{
		Interface: d.Interface, Version: d.Version, Group: d.Group, Method: d.Method, PathTemplate: d.PathTemplate,
		KeepClass: d.KeepClass, LongsAsStrings: d.LongsAsStr, ExceptionStatus: d.Exceptions, Types: d.Types,
		HashArguments: d.HashArgs,
	}
	if d.ProtoDescriptor != "" {
		b, err := os.ReadFile(t.file(d.ProtoDescriptor))
		if err != nil {
			t.errf(path+".proto_descriptor", "%v", err)
		} else {
			out.ProtoDescriptorBin = b
		}
	}
	if len(d.Types) > 0 && len(d.Params) > 0 {
		t.errf(path+".types", "give the types in params when the route maps them")
	}
	for i, p := range d.Params {
		out.Params = append(out.Params, &dubbov1.Param{From: p.From, Type: p.Type, Optional: p.Optional})
		if _, err := dubbo.ParseSource(p.From); err != nil {
			t.errf(fmt.Sprintf("%s.params[%d].from", path, i), "%v", err)
		}
	}
	for k, s := range d.Exceptions {
		if s < 200 || s > 599 {
			t.errf(path+".exception_status."+k, "want an HTTP status from 200 to 599, got %d", s)
		}
	}
	if a := d.Attachments; a != nil {
		out.Attachments = &dubbov1.Attachments{Headers: a.Headers, HeaderPrefix: a.HeaderPrefix}
	}
	return out
}

func (t *translator) rateLimit(path string, r *RateLimitConfig) *ratelimitv3.LocalRateLimit {
	if r.Requests == 0 {
		t.errf(path+".requests", "must be positive")
	}
	if r.Per.Duration < time.Millisecond {
		t.errf(path+".per", "must be at least 1ms")
	}
	burst := r.Burst
	if burst == 0 {
		burst = r.Requests
	}
	all := &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED}}
	return &ratelimitv3.LocalRateLimit{
		StatPrefix: "local_rate_limit",
		TokenBucket: &typev3.TokenBucket{
			MaxTokens:     burst,
			TokensPerFill: wrapperspb.UInt32(r.Requests),
			FillInterval:  durationpb.New(r.Per.Duration),
		},
		FilterEnabled:  all,
		FilterEnforced: all,
	}
}

func (t *translator) retryPolicy(path string, r *RetryConfig) *routev3.RetryPolicy {
	if _, err := governance.ParseRetryOn(r.RetryOn); err != nil || strings.TrimSpace(r.RetryOn) == "" {
		if err == nil {
			err = errors.New("must list at least one condition")
		}
		t.errf(path+".retry_on", "%v", err)
	}
	out := &routev3.RetryPolicy{RetryOn: r.RetryOn, RetriableStatusCodes: r.RetriableStatusCodes}
	if r.NumRetries != nil {
		out.NumRetries = wrapperspb.UInt32(*r.NumRetries)
	}
	if r.PerTryTimeout != nil {
		out.PerTryTimeout = durationpb.New(r.PerTryTimeout.Duration)
	}
	if b := r.Backoff; b != nil {
		if b.Base.Duration <= 0 {
			t.errf(path+".backoff.base", "must be positive")
		}
		out.RetryBackOff = &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(b.Base.Duration)}
		if b.Max != nil {
			out.RetryBackOff.MaxInterval = durationpb.New(b.Max.Duration)
		}
	}
	if r.SkipPreviousHosts {
		out.RetryHostPredicate = []*routev3.RetryPolicy_RetryHostPredicate{{Name: "envoy.retry_host_predicates.previous_hosts"}}
	}
	return out
}

func (t *translator) redirect(path string, r *RedirectConfig) *routev3.RedirectAction {
	out := &routev3.RedirectAction{HostRedirect: r.Host, PortRedirect: r.Port, StripQuery: r.StripQuery}
	if r.Scheme != "" {
		out.SchemeRewriteSpecifier = &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: r.Scheme}
	}
	switch {
	case r.Path != "" && r.PrefixRewrite != "":
		t.errf(path, "give either path or prefix_rewrite, not both")
	case r.Path != "":
		out.PathRewriteSpecifier = &routev3.RedirectAction_PathRedirect{PathRedirect: r.Path}
	case r.PrefixRewrite != "":
		out.PathRewriteSpecifier = &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: r.PrefixRewrite}
	}
	codes := map[uint32]routev3.RedirectAction_RedirectResponseCode{
		0:   routev3.RedirectAction_MOVED_PERMANENTLY,
		301: routev3.RedirectAction_MOVED_PERMANENTLY,
		302: routev3.RedirectAction_FOUND,
		303: routev3.RedirectAction_SEE_OTHER,
		307: routev3.RedirectAction_TEMPORARY_REDIRECT,
		308: routev3.RedirectAction_PERMANENT_REDIRECT,
	}
	code, ok := codes[r.Code]
	if !ok {
		t.errf(path+".code", "want 301, 302, 303, 307 or 308, got %d", r.Code)
	}
	out.ResponseCode = code
	return out
}

func (t *translator) match(path string, m *MatchConfig) *routev3.RouteMatch {
	out := &routev3.RouteMatch{}
	switch {
	case m.Path != "":
		out.PathSpecifier = &routev3.RouteMatch_Path{Path: m.Path}
	case m.Regex != "":
		if _, err := regexp.Compile(m.Regex); err != nil {
			t.errf(path+".regex", "%v", err)
		}
		out.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: m.Regex}}
	case m.Prefix != "":
		out.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: m.Prefix}
	default:
		out.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: "/"}
	}
	if (m.Path != "") && (m.Regex != "" || m.Prefix != "") || (m.Regex != "" && m.Prefix != "") {
		t.errf(path, "give at most one of prefix, path, regex")
	}
	if m.CaseInsensitive {
		out.CaseSensitive = wrapperspb.Bool(false)
	}
	if m.GRPC {
		out.Grpc = &routev3.RouteMatch_GrpcRouteMatchOptions{}
	}
	for i := range m.Headers {
		h := &m.Headers[i]
		p := fmt.Sprintf("%s.headers[%d]", path, i)
		hm := &routev3.HeaderMatcher{Name: strings.ToLower(h.Name), InvertMatch: h.Invert}
		if h.Name == "" {
			t.errf(p+".name", "must not be empty")
		}
		if sm := t.stringMatch(p, h); sm != nil {
			hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: sm}
		} else {
			present := h.Present == nil || *h.Present
			hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: present}
		}
		out.Headers = append(out.Headers, hm)
	}
	for i := range m.Query {
		q := &m.Query[i]
		p := fmt.Sprintf("%s.query[%d]", path, i)
		if q.Name == "" {
			t.errf(p+".name", "must not be empty")
		}
		if q.Invert {
			t.errf(p+".invert", "is not supported on query parameters (Envoy has no such field)")
		}
		qm := &routev3.QueryParameterMatcher{Name: q.Name}
		if sm := t.stringMatch(p, q); sm != nil {
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_StringMatch{StringMatch: sm}
		} else {
			if q.Present != nil && !*q.Present {
				t.errf(p+".present", "query parameters can only be required, not forbidden")
			}
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}
		}
		out.QueryParameters = append(out.QueryParameters, qm)
	}
	return out
}

// stringMatch translates the value condition of h, or returns nil when h
// only asks for presence.
func (t *translator) stringMatch(path string, h *HeaderMatchConfig) *matcherv3.StringMatcher {
	sm := &matcherv3.StringMatcher{IgnoreCase: h.IgnoreCase}
	n := 0
	if h.Exact != nil {
		n++
		sm.MatchPattern = &matcherv3.StringMatcher_Exact{Exact: *h.Exact}
	}
	if h.Prefix != "" {
		n++
		sm.MatchPattern = &matcherv3.StringMatcher_Prefix{Prefix: h.Prefix}
	}
	if h.Suffix != "" {
		n++
		sm.MatchPattern = &matcherv3.StringMatcher_Suffix{Suffix: h.Suffix}
	}
	if h.Contains != "" {
		n++
		sm.MatchPattern = &matcherv3.StringMatcher_Contains{Contains: h.Contains}
	}
	if h.Regex != "" {
		n++
		if _, err := regexp.Compile(h.Regex); err != nil {
			t.errf(path+".regex", "%v", err)
		}
		sm.MatchPattern = &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: h.Regex}}
	}
	if n > 1 || (n == 1 && h.Present != nil) {
		t.errf(path, "give at most one of exact, prefix, suffix, contains, regex, present")
	}
	if n == 0 {
		return nil
	}
	return sm
}

func (t *translator) cluster(path string, c *ClusterConfig) *clusterv3.Cluster {
	if c.Name == "" {
		t.errf(path+".name", "must not be empty")
	}
	out := &clusterv3.Cluster{Name: c.Name, ConnectTimeout: durationpb.New(5 * time.Second)}
	if c.ConnectTimeout != nil {
		if c.ConnectTimeout.Duration <= 0 {
			t.errf(path+".connect_timeout", "must be positive")
		}
		out.ConnectTimeout = durationpb.New(c.ConnectTimeout.Duration)
	}
	var slowStart *clusterv3.Cluster_SlowStartConfig
	if ss := c.SlowStart; ss != nil {
		if ss.Window.Duration <= 0 {
			t.errf(path+".slow_start.window", "must be positive")
		}
		slowStart = &clusterv3.Cluster_SlowStartConfig{SlowStartWindow: durationpb.New(ss.Window.Duration)}
		if ss.Aggression > 0 {
			slowStart.Aggression = &corev3.RuntimeDouble{DefaultValue: ss.Aggression, RuntimeKey: "meshgate.slow_start.aggression"}
		}
		if ss.MinWeightPercent > 0 {
			slowStart.MinWeightPercent = &typev3.Percent{Value: ss.MinWeightPercent}
		}
	}
	switch strings.ToLower(c.LBPolicy) {
	case "", "round_robin":
		out.LbPolicy = clusterv3.Cluster_ROUND_ROBIN
		if slowStart != nil {
			out.LbConfig = &clusterv3.Cluster_RoundRobinLbConfig_{RoundRobinLbConfig: &clusterv3.Cluster_RoundRobinLbConfig{SlowStartConfig: slowStart}}
		}
	case "least_request":
		out.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
		if slowStart != nil {
			out.LbConfig = &clusterv3.Cluster_LeastRequestLbConfig_{LeastRequestLbConfig: &clusterv3.Cluster_LeastRequestLbConfig{SlowStartConfig: slowStart}}
		}
	case "random":
		out.LbPolicy = clusterv3.Cluster_RANDOM
	case "ring_hash":
		out.LbPolicy = clusterv3.Cluster_RING_HASH
		if c.MinRingSize > 0 {
			out.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{MinimumRingSize: wrapperspb.UInt64(c.MinRingSize)}}
		}
	case "maglev":
		out.LbPolicy = clusterv3.Cluster_MAGLEV
	default:
		t.errf(path+".lb_policy", "unknown policy %q (want round_robin, least_request, random, ring_hash or maglev)", c.LBPolicy)
	}
	if slowStart != nil && out.LbPolicy != clusterv3.Cluster_ROUND_ROBIN && out.LbPolicy != clusterv3.Cluster_LEAST_REQUEST {
		t.errf(path+".slow_start", "works with round_robin and least_request only")
	}
	if c.MinRingSize > 0 && out.LbPolicy != clusterv3.Cluster_RING_HASH {
		t.errf(path+".min_ring_size", "works with ring_hash only")
	}
	if c.PanicThreshold != nil || c.LocalityWeighted {
		out.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{}
		if c.PanicThreshold != nil {
			if *c.PanicThreshold < 0 || *c.PanicThreshold > 100 {
				t.errf(path+".panic_threshold", "want a percentage from 0 to 100")
			}
			out.CommonLbConfig.HealthyPanicThreshold = &typev3.Percent{Value: *c.PanicThreshold}
		}
		if c.LocalityWeighted {
			out.CommonLbConfig.LocalityConfigSpecifier = &clusterv3.Cluster_CommonLbConfig_LocalityWeightedLbConfig_{
				LocalityWeightedLbConfig: &clusterv3.Cluster_CommonLbConfig_LocalityWeightedLbConfig{},
			}
		}
	}
	switch strings.ToLower(c.Protocol) {
	case "", "http1", "http/1.1":
	case "http2", "h2", "grpc":
		opts := &httpv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
			},
		}}
		out.TypedExtensionProtocolOptions = map[string]*anypb.Any{HTTPProtocolOptions: mustAny(opts)}
	case "dubbo":
		out.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			DubboMetadata: {Fields: map[string]*structpb.Value{"protocol": structpb.NewStringValue("dubbo")}},
		}}
	case "tri", "triple":
		out.TypedExtensionProtocolOptions = map[string]*anypb.Any{HTTPProtocolOptions: mustAny(&httpv3.HttpProtocolOptions{
			UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
			}},
		})}
		out.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			DubboMetadata: {Fields: map[string]*structpb.Value{"protocol": structpb.NewStringValue("tri")}},
		}}
	default:
		t.errf(path+".protocol", "unknown protocol %q (want http1, http2, grpc, dubbo or tri)", c.Protocol)
	}
	switch strings.ToLower(c.Type) {
	case "", "static":
		out.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
		cla := &endpointv3.ClusterLoadAssignment{ClusterName: c.Name}
		// Endpoints group by priority and locality, in order of appearance.
		groups := map[string]*endpointv3.LocalityLbEndpoints{}
		for i, e := range c.Endpoints {
			p := fmt.Sprintf("%s.endpoints[%d]", path, i)
			addr := t.socketAddress(p, e.Address)
			if addr == nil {
				continue
			}
			key := fmt.Sprintf("%d|%s", e.Priority, e.Locality)
			g := groups[key]
			if g == nil {
				g = &endpointv3.LocalityLbEndpoints{Priority: e.Priority}
				if e.Locality != "" {
					parts := append(strings.SplitN(e.Locality, "/", 3), "", "")
					g.Locality = &corev3.Locality{Region: parts[0], Zone: parts[1], SubZone: parts[2]}
				}
				groups[key] = g
				cla.Endpoints = append(cla.Endpoints, g)
			}
			if e.LocalityWeight > 0 {
				if g.LoadBalancingWeight != nil && g.LoadBalancingWeight.GetValue() != e.LocalityWeight {
					t.errf(p+".locality_weight", "locality %q has weight %d already", e.Locality, g.LoadBalancingWeight.GetValue())
				}
				g.LoadBalancingWeight = wrapperspb.UInt32(e.LocalityWeight)
			}
			lbe := &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: addr}}}
			if e.Weight > 0 {
				lbe.LoadBalancingWeight = wrapperspb.UInt32(e.Weight)
			}
			g.LbEndpoints = append(g.LbEndpoints, lbe)
		}
		out.LoadAssignment = cla
	case "strict_dns", "logical_dns":
		// Endpoints are names (or addresses) resolved again every 5s.
		if c.Type == "strict_dns" {
			out.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}
		} else {
			out.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_LOGICAL_DNS}
		}
		cla := &endpointv3.ClusterLoadAssignment{ClusterName: c.Name}
		lle := &endpointv3.LocalityLbEndpoints{}
		for i, e := range c.Endpoints {
			addr := t.socketAddress(fmt.Sprintf("%s.endpoints[%d]", path, i), e.Address)
			if addr == nil {
				continue
			}
			lbe := &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: addr}}}
			if e.Weight > 0 {
				lbe.LoadBalancingWeight = wrapperspb.UInt32(e.Weight)
			}
			lle.LbEndpoints = append(lle.LbEndpoints, lbe)
		}
		cla.Endpoints = []*endpointv3.LocalityLbEndpoints{lle}
		out.LoadAssignment = cla
	case "eds":
		if len(c.Endpoints) > 0 {
			t.errf(path+".endpoints", "an eds cluster takes its endpoints from xDS or a registry; remove them or use type static")
		}
		out.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}
		out.EdsClusterConfig = &clusterv3.Cluster_EdsClusterConfig{
			EdsConfig: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}},
		}
	default:
		t.errf(path+".type", "unknown type %q (want static, strict_dns, logical_dns or eds)", c.Type)
	}
	if cb := c.CircuitBreakers; cb != nil {
		th := &clusterv3.CircuitBreakers_Thresholds{}
		set := func(dst **wrapperspb.UInt32Value, v uint32) {
			if v > 0 {
				*dst = wrapperspb.UInt32(v)
			}
		}
		set(&th.MaxConnections, cb.MaxConnections)
		set(&th.MaxPendingRequests, cb.MaxPendingRequests)
		set(&th.MaxRequests, cb.MaxRequests)
		set(&th.MaxRetries, cb.MaxRetries)
		if rb := cb.RetryBudget; rb != nil {
			th.RetryBudget = &clusterv3.CircuitBreakers_Thresholds_RetryBudget{}
			if rb.BudgetPercent > 0 {
				th.RetryBudget.BudgetPercent = &typev3.Percent{Value: rb.BudgetPercent}
			}
			set(&th.RetryBudget.MinRetryConcurrency, rb.MinRetryConcurrency)
		}
		out.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{th}}
	}
	if od := c.OutlierDetection; od != nil {
		out.OutlierDetection = outlierDetection(od)
	}
	if hc := c.HealthCheck; hc != nil {
		out.HealthChecks = []*corev3.HealthCheck{t.healthCheck(path+".health_check", hc)}
	}
	if eb := c.EndpointBreaker; eb != nil {
		if eb.ConsecutiveFailures == 0 && eb.FailureRatio == 0 {
			t.errf(path+".endpoint_breaker", "needs consecutive_failures or failure_ratio")
		}
		if eb.FailureRatio < 0 || eb.FailureRatio > 1 {
			t.errf(path+".endpoint_breaker.failure_ratio", "want a fraction from 0 to 1")
		}
		b := &breakerv1.EndpointBreaker{
			ConsecutiveFailures: eb.ConsecutiveFailures, FailureRatio: eb.FailureRatio,
			MinRequests: eb.MinRequests, HalfOpenRequests: eb.HalfOpenRequests,
		}
		if eb.Interval != nil {
			b.Interval = durationpb.New(eb.Interval.Duration)
		}
		if eb.OpenFor != nil {
			b.OpenDuration = durationpb.New(eb.OpenFor.Duration)
		}
		if out.TypedExtensionProtocolOptions == nil {
			out.TypedExtensionProtocolOptions = map[string]*anypb.Any{}
		}
		out.TypedExtensionProtocolOptions[EndpointBreakerOptions] = mustAny(b)
	}
	if c.TLS != nil {
		ctx := &tlsv3.UpstreamTlsContext{Sni: c.TLS.SNI, CommonTlsContext: &tlsv3.CommonTlsContext{}}
		// Unlike Envoy, the friendly format never skips verification: without
		// a CA file the system roots verify the server.
		vc := &tlsv3.CertificateValidationContext{SystemRootCerts: &tlsv3.CertificateValidationContext_SystemRootCerts{}}
		if c.TLS.CAFile != "" {
			vc = &tlsv3.CertificateValidationContext{
				TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: t.file(c.TLS.CAFile)}},
			}
		}
		ctx.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc}
		if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
			t.errf(path+".tls", "cert_file and key_file go together")
		}
		if c.TLS.CertFile != "" {
			ctx.CommonTlsContext.TlsCertificates = []*tlsv3.TlsCertificate{{
				CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: t.file(c.TLS.CertFile)}},
				PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: t.file(c.TLS.KeyFile)}},
			}}
		}
		out.TransportSocket = &corev3.TransportSocket{
			Name:       TLSTransportSocket,
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(ctx)},
		}
	}
	return out
}

func (t *translator) healthCheck(path string, hc *HealthCheckConfig) *corev3.HealthCheck {
	dur := func(d *Duration, def time.Duration) *durationpb.Duration {
		if d == nil {
			return durationpb.New(def)
		}
		return durationpb.New(d.Duration)
	}
	out := &corev3.HealthCheck{
		Interval:           dur(hc.Interval, 5*time.Second),
		Timeout:            dur(hc.Timeout, time.Second),
		UnhealthyThreshold: wrapperspb.UInt32(max(hc.UnhealthyThreshold, 1)),
		HealthyThreshold:   wrapperspb.UInt32(max(hc.HealthyThreshold, 1)),
	}
	if hc.UnhealthyThreshold == 0 {
		out.UnhealthyThreshold = wrapperspb.UInt32(3)
	}
	if hc.HealthyThreshold == 0 {
		out.HealthyThreshold = wrapperspb.UInt32(2)
	}
	if hc.IntervalJitter != nil {
		out.IntervalJitter = durationpb.New(hc.IntervalJitter.Duration)
	}
	kinds := 0
	if h := hc.HTTP; h != nil {
		kinds++
		if !strings.HasPrefix(h.Path, "/") {
			t.errf(path+".http.path", "must start with /")
		}
		hh := &corev3.HealthCheck_HttpHealthCheck{Path: h.Path, Host: h.Host}
		for _, st := range h.ExpectedStatuses {
			hh.ExpectedStatuses = append(hh.ExpectedStatuses, &typev3.Int64Range{Start: int64(st), End: int64(st) + 1})
		}
		if h.HTTP2 {
			hh.CodecClientType = typev3.CodecClientType_HTTP2
		}
		out.HealthChecker = &corev3.HealthCheck_HttpHealthCheck_{HttpHealthCheck: hh}
	}
	if g := hc.GRPC; g != nil {
		kinds++
		out.HealthChecker = &corev3.HealthCheck_GrpcHealthCheck_{GrpcHealthCheck: &corev3.HealthCheck_GrpcHealthCheck{ServiceName: g.Service, Authority: g.Authority}}
	}
	if tc := hc.TCP; tc != nil {
		kinds++
		th := &corev3.HealthCheck_TcpHealthCheck{}
		if tc.Send != "" {
			th.Send = &corev3.HealthCheck_Payload{Payload: &corev3.HealthCheck_Payload_Text{Text: hex.EncodeToString([]byte(tc.Send))}}
		}
		for _, r := range tc.Receive {
			th.Receive = append(th.Receive, &corev3.HealthCheck_Payload{Payload: &corev3.HealthCheck_Payload_Text{Text: hex.EncodeToString([]byte(r))}})
		}
		out.HealthChecker = &corev3.HealthCheck_TcpHealthCheck_{TcpHealthCheck: th}
	}
	if kinds != 1 {
		t.errf(path, "give exactly one of http, grpc, tcp")
	}
	return out
}

func outlierDetection(od *OutlierConfig) *clusterv3.OutlierDetection {
	u32 := func(v *uint32) *wrapperspb.UInt32Value {
		if v == nil {
			return nil
		}
		return wrapperspb.UInt32(*v)
	}
	dur := func(v *Duration) *durationpb.Duration {
		if v == nil {
			return nil
		}
		return durationpb.New(v.Duration)
	}
	return &clusterv3.OutlierDetection{
		Consecutive_5Xx:                    u32(od.Consecutive5xx),
		ConsecutiveGatewayFailure:          u32(od.ConsecutiveGatewayFailure),
		EnforcingConsecutiveGatewayFailure: u32(od.EnforcingConsecutiveGatewayFailure),
		SplitExternalLocalOriginErrors:     od.SplitLocalOriginErrors,
		ConsecutiveLocalOriginFailure:      u32(od.ConsecutiveLocalOriginFailure),
		Interval:                           dur(od.Interval),
		BaseEjectionTime:                   dur(od.BaseEjectionTime),
		MaxEjectionTime:                    dur(od.MaxEjectionTime),
		MaxEjectionPercent:                 u32(od.MaxEjectionPercent),
		EnforcingSuccessRate:               u32(od.EnforcingSuccessRate),
		SuccessRateMinimumHosts:            u32(od.SuccessRateMinimumHosts),
		SuccessRateRequestVolume:           u32(od.SuccessRateRequestVolume),
		SuccessRateStdevFactor:             u32(od.SuccessRateStdevFactor),
		FailurePercentageThreshold:         u32(od.FailurePercentageThreshold),
		EnforcingFailurePercentage:         u32(od.EnforcingFailurePercentage),
		FailurePercentageMinimumHosts:      u32(od.FailurePercentageMinimumHosts),
		FailurePercentageRequestVolume:     u32(od.FailurePercentageRequestVolume),
	}
}
