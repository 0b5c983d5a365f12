package config

import (
	"fmt"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	bridgev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/connect_grpc_bridge/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	grpcwebv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/grpc_web/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	dubbov1 "github.com/meshgate/meshgate/proto/meshgate/extensions/filters/http/dubbo/v1"
	limitsv1 "github.com/meshgate/meshgate/proto/meshgate/extensions/filters/http/limits/v1"
)

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
	common := &corev3.HttpProtocolOptions{}
	if l.IdleTimeout != nil {
		common.IdleTimeout = durationpb.New(l.IdleTimeout.Duration)
	}
	if l.MaxRequestsPerConnection > 0 {
		common.MaxRequestsPerConnection = wrapperspb.UInt32(l.MaxRequestsPerConnection)
	}
	if l.MaxConnectionDuration != nil {
		common.MaxConnectionDuration = durationpb.New(l.MaxConnectionDuration.Duration)
	}
	if l.MaxHeadersCount > 0 {
		common.MaxHeadersCount = wrapperspb.UInt32(l.MaxHeadersCount)
	}
	if proto.Size(common) > 0 {
		hcm.CommonHttpProtocolOptions = common
	}
	if l.MaxConcurrentStreams > 0 {
		hcm.Http2ProtocolOptions = &corev3.Http2ProtocolOptions{MaxConcurrentStreams: wrapperspb.UInt32(l.MaxConcurrentStreams)}
	}
	if l.StreamIdleTimeout != nil {
		hcm.StreamIdleTimeout = durationpb.New(l.StreamIdleTimeout.Duration)
	}
	for i, al := range l.AccessLog {
		p := fmt.Sprintf("%s.access_log[%d]", path, i)
		if al.Path == "" {
			t.errf(p+".path", "must not be empty (use /dev/stdout for the process's output)")
			continue
		}
		f := &filev3.FileAccessLog{Path: al.Path}
		switch {
		case al.Format != "" && len(al.JSONFormat) > 0:
			t.errf(p, "format and json_format: one or the other")
			continue
		case al.Format != "":
			f.AccessLogFormat = &filev3.FileAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
				Format: &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: &corev3.DataSource{
					Specifier: &corev3.DataSource_InlineString{InlineString: al.Format}}}}}
		case len(al.JSONFormat) > 0:
			fields := map[string]any{}
			for k, v := range al.JSONFormat {
				fields[k] = v
			}
			st, err := structpb.NewStruct(fields)
			if err != nil {
				t.errf(p+".json_format", "%v", err)
				continue
			}
			f.AccessLogFormat = &filev3.FileAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
				Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: st}}}
		}
		hcm.AccessLog = append(hcm.AccessLog, &accesslogv3.AccessLog{Name: "envoy.access_loggers.file",
			ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: mustAny(f)}})
	}
	if tc := l.Tracing; tc != nil {
		p := path + ".tracing"
		sampling := 100.0
		if tc.RandomSampling != nil {
			sampling = *tc.RandomSampling
		}
		switch {
		case tc.OTLPEndpoint == "":
			t.errf(p+".otlp_endpoint", "must name the collector (host:port)")
		case sampling < 0 || sampling > 100:
			t.errf(p+".random_sampling", "must be a percentage, 0 to 100")
		default:
			otel := &tracev3.OpenTelemetryConfig{ServiceName: tc.ServiceName, GrpcService: &corev3.GrpcService{
				TargetSpecifier: &corev3.GrpcService_GoogleGrpc_{GoogleGrpc: &corev3.GrpcService_GoogleGrpc{
					TargetUri: tc.OTLPEndpoint, StatPrefix: "otlp"}}}}
			hcm.Tracing = &hcmv3.HttpConnectionManager_Tracing{
				RandomSampling: &typev3.Percent{Value: sampling},
				Provider: &tracev3.Tracing_Http{Name: "envoy.tracers.opentelemetry",
					ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(otel)}},
			}
		}
	}
	if l.RequestTimeout != nil {
		hcm.RequestTimeout = durationpb.New(l.RequestTimeout.Duration)
	}
	if l.RequestHeadersTimeout != nil {
		hcm.RequestHeadersTimeout = durationpb.New(l.RequestHeadersTimeout.Duration)
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
	if t.usesDubbo {
		// Last before the router: it answers the routes that call Dubbo
		// methods, as the router would forward.
		hcm.HttpFilters = append(hcm.HttpFilters, &hcmv3.HttpFilter{
			Name:       DubboFilter,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&dubbov1.Dubbo{})},
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
