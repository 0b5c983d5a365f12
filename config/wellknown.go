package config

// Names of the extensions meshgate understands, as Envoy spells them.
const (
	HTTPConnectionManagerFilter = "envoy.filters.network.http_connection_manager"
	RouterFilter                = "envoy.filters.http.router"
	TLSTransportSocket          = "envoy.transport_sockets.tls"
	TLSInspectorFilter          = "envoy.filters.listener.tls_inspector"
	HTTPProtocolOptions         = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	LocalRateLimitFilter        = "envoy.filters.http.local_ratelimit"
	GRPCWebFilter               = "envoy.filters.http.grpc_web"
	ConnectFilter               = "envoy.filters.http.connect_grpc_bridge"
	// LimitsFilter carries meshgate's request size limits
	// (meshgate.extensions.filters.http.limits.v1.Limits).
	LimitsFilter = "meshgate.filters.http.limits"
	// DubboFilter is the Dubbo bridge filter
	// (meshgate.extensions.filters.http.dubbo.v1.Dubbo), and the
	// typed_per_filter_config key of a route's call
	// (meshgate.extensions.filters.http.dubbo.v1.DubboRoute).
	DubboFilter = "meshgate.filters.http.dubbo"
	// DubboMetadata is the cluster filter_metadata namespace of Dubbo
	// facts: protocol ("dubbo" for Dubbo2 providers), interface, version,
	// group, methods and signatures.
	DubboMetadata = "meshgate.dubbo"
)

// EndpointBreakerOptions is the typed_extension_protocol_options key of a
// cluster's per-endpoint breaker
// (meshgate.extensions.upstreams.breaker.v1.EndpointBreaker).
const EndpointBreakerOptions = "meshgate.upstreams.endpoint_breaker"
