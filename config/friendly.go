package config

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// File is meshgate's friendly configuration format. Every part translates
// into Envoy v3 resources (see Translate); docs/config.md documents it.
type File struct {
	// Admin is the admin endpoint (default 127.0.0.1:9901).
	Admin *AdminConfig `json:"admin,omitempty"`
	// DrainTimeout bounds how long SIGTERM waits for in-flight requests
	// (default 15s).
	DrainTimeout *Duration `json:"drain_timeout,omitempty"`
	// DrainPeriod is how long the listeners keep accepting after SIGTERM
	// while telling every client to go (HTTP/1.x Connection: close,
	// HTTP/2 GOAWAY), before they stop accepting and drain_timeout runs
	// (default 5s, Istio's terminationDrainDuration; 0: stop at once).
	DrainPeriod *Duration `json:"drain_period,omitempty"`
	// Listeners are the ports the gateway serves.
	Listeners []ListenerConfig `json:"listeners,omitempty"`
	// DubboListeners are ports Dubbo2 consumers call over TCP.
	DubboListeners []DubboListenerConfig `json:"dubbo_listeners,omitempty"`
	// RouteConfigs are route tables that listeners name.
	RouteConfigs []RouteTableConfig `json:"route_configs,omitempty"`
	// Clusters are the upstreams that routes forward to.
	Clusters []ClusterConfig `json:"clusters,omitempty"`
	// XDS takes listeners, routes, clusters and endpoints from a control
	// plane too (alongside what this file defines).
	XDS *XDSConfig `json:"xds,omitempty"`
	// Registries are Dubbo registries (ZooKeeper, Nacos) whose providers
	// become clusters named <protocol>|<interface>|<version>|<group>.
	Registries []RegistryConfig `json:"registries,omitempty"`
	// Identity is where the gateway's workload certificate comes from
	// (istiod's CA or files); see IdentityConfig.
	Identity *IdentityConfig `json:"identity,omitempty"`
	// Overload sheds load before the process runs out of memory or
	// connections (Envoy's overload manager); see OverloadConfig.
	Overload *OverloadConfig `json:"overload,omitempty"`
	// IstioMetrics, when set, adds Istio's standard request metrics
	// (istio_requests_total, ...) to /stats/prometheus, this gateway being
	// the source workload it names.
	IstioMetrics *IstioWorkload `json:"istio_metrics,omitempty"`
	// Sidecar makes a local application without a Dubbo SDK a member of
	// a Dubbo cluster (see SidecarConfig): a shorthand for a cluster, a
	// Dubbo listener with a registered local_app, an outbound listener
	// and registries.
	Sidecar *SidecarConfig `json:"sidecar,omitempty"`

	xdsSettings      *XDSSettings       // set by Translate
	registrySettings []RegistrySettings // set by Translate
	identitySettings *IdentitySettings  // set by Translate
}

// AdminConfig places the admin endpoint.
type AdminConfig struct {
	// Address is host:port; "" disables the admin endpoint.
	Address string `json:"address"`
	// ReadinessAddress serves only the readiness probe (GET /healthz/ready
	// and /ready) on host:port, so that it can be exposed beyond loopback:
	// Istio's gateways use 0.0.0.0:15021. Default: off.
	ReadinessAddress string `json:"readiness_address,omitempty"`
}

// AccessLogConfig is one access log: Envoy's format strings as text or
// JSON, appended to a file or written to stdout.
type AccessLogConfig struct {
	// Path is the file ("/dev/stdout" and "/dev/stderr" are the
	// process's own); reopened on SIGUSR1.
	Path string `json:"path"`
	// Format is an Envoy format string (default: Envoy's default format);
	// JSONFormat, instead, makes each line a JSON object of these keys.
	Format     string            `json:"format,omitempty"`
	JSONFormat map[string]string `json:"json_format,omitempty"`
}

// TracingConfig is a listener's tracing.
type TracingConfig struct {
	// OTLPEndpoint is the collector's OTLP gRPC address (host:port, or
	// a gRPC target such as dns:///collector:4317), reached in cleartext.
	OTLPEndpoint string `json:"otlp_endpoint"`
	// ServiceName names the gateway in the spans (default "meshgate").
	ServiceName string `json:"service_name,omitempty"`
	// RandomSampling is the percentage of requests traced that bring no
	// sampling decision of their own (Envoy's default: 100).
	RandomSampling *float64 `json:"random_sampling,omitempty"`
}

// IstioWorkload names the gateway in Istio's metrics (source_* labels);
// an empty field is "unknown".
type IstioWorkload struct {
	Workload  string `json:"workload,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	App       string `json:"app,omitempty"`
	Version   string `json:"version,omitempty"`
	Principal string `json:"principal,omitempty"`
	Cluster   string `json:"cluster,omitempty"`
}

// OverloadConfig is the overload manager: actions that turn on as the Go
// heap nears a limit, and a cap on open downstream connections.
type OverloadConfig struct {
	// MaxHeapBytes is the heap limit the actions are shares of (default:
	// GOMEMLIMIT, else the cgroup's memory.max; neither and none given:
	// no heap actions).
	MaxHeapBytes uint64 `json:"max_heap_bytes,omitempty"`
	// DisableHTTPKeepalive is the share of the limit from which HTTP/1.x
	// connections close after each answer and HTTP/2 connections are told
	// to go (default 0.90).
	DisableHTTPKeepalive float64 `json:"disable_http_keepalive,omitempty"`
	// StopAcceptingRequests is the share from which new requests are
	// answered 503 / RESOURCE_EXHAUSTED (default 0.95).
	StopAcceptingRequests float64 `json:"stop_accepting_requests,omitempty"`
	// RefreshInterval is how often the heap is read (default 1s).
	RefreshInterval *Duration `json:"refresh_interval,omitempty"`
	// MaxActiveDownstreamConnections caps the open downstream connections
	// over all listeners; more are closed as accepted (0: no cap).
	MaxActiveDownstreamConnections int64 `json:"max_active_downstream_connections,omitempty"`
}

// ListenerConfig is one port that serves HTTP/1.1, cleartext HTTP/2 and,
// with TLS set, TLS with ALPN.
type ListenerConfig struct {
	Name string `json:"name"`
	// Address is host:port to bind, e.g. "0.0.0.0:8080".
	Address string           `json:"address"`
	TLS     *ServerTLSConfig `json:"tls,omitempty"`
	// MaxRequestHeadersKB limits the size of request headers (Envoy's
	// default: 60).
	MaxRequestHeadersKB uint32 `json:"max_request_headers_kb,omitempty"`
	// MaxRequestBodyBytes limits non-gRPC request bodies (413 beyond it);
	// 0 means no limit (bodies are streamed, never buffered whole).
	MaxRequestBodyBytes uint64 `json:"max_request_body_bytes,omitempty"`
	// MaxGRPCMessageBytes limits each gRPC message (RESOURCE_EXHAUSTED
	// beyond it); 0 means no limit.
	MaxGRPCMessageBytes uint64 `json:"max_grpc_message_bytes,omitempty"`
	// IdleTimeout closes a downstream connection idle this long (default 1h).
	IdleTimeout *Duration `json:"idle_timeout,omitempty"`
	// StreamIdleTimeout resets a request with no bytes either way this
	// long (Envoy's default 5m; 0s turns it off).
	StreamIdleTimeout *Duration `json:"stream_idle_timeout,omitempty"`
	// AccessLog lists where and how each request is logged (Envoy's file
	// access logger).
	AccessLog []AccessLogConfig `json:"access_log,omitempty"`
	// Tracing makes OpenTelemetry spans of the requests it samples and
	// sends them to an OTLP gRPC collector (Envoy's OpenTelemetry tracer).
	Tracing *TracingConfig `json:"tracing,omitempty"`
	// RequestTimeout bounds how long a request may take to arrive whole
	// (408 / DEADLINE_EXCEEDED), unless its answer began first; 0: none.
	RequestTimeout *Duration `json:"request_timeout,omitempty"`
	// RequestHeadersTimeout bounds how long an HTTP/1.x request's headers
	// may take to arrive (default 30s).
	RequestHeadersTimeout *Duration `json:"request_headers_timeout,omitempty"`
	// MaxRequestsPerConnection: the connection is told to go after this
	// many requests (HTTP/1.x Connection: close, HTTP/2 GOAWAY); 0: no
	// limit.
	MaxRequestsPerConnection uint32 `json:"max_requests_per_connection,omitempty"`
	// MaxConnectionDuration: a connection is told to go this long after
	// it opened (spreads long-lived gRPC clients over new endpoints).
	MaxConnectionDuration *Duration `json:"max_connection_duration,omitempty"`
	// MaxHeadersCount limits a request's header fields (431 beyond;
	// Envoy's default 100).
	MaxHeadersCount uint32 `json:"max_headers_count,omitempty"`
	// MaxConcurrentStreams limits the streams of one HTTP/2 connection
	// (default 1024).
	MaxConcurrentStreams uint32 `json:"max_concurrent_streams,omitempty"`
	// RateLimit limits every request of the listener (routes and virtual
	// hosts with their own limit use theirs).
	RateLimit *RateLimitConfig `json:"rate_limit,omitempty"`
	// GRPCJSON transcodes JSON calls to gRPC methods (Envoy's
	// grpc_json_transcoder with auto_mapping).
	GRPCJSON *GRPCJSONConfig `json:"grpc_json,omitempty"`
	// RouteConfig names an entry of route_configs; or give VirtualHosts
	// inline instead.
	RouteConfig  string              `json:"route_config,omitempty"`
	VirtualHosts []VirtualHostConfig `json:"virtual_hosts,omitempty"`
}

// ServerTLSConfig turns on TLS for a listener.
type ServerTLSConfig struct {
	CertFile string `json:"cert_file"`
	KeyFile  string `json:"key_file"`
	// ClientCAFile, when set, asks clients for a certificate signed by it.
	ClientCAFile string `json:"client_ca_file,omitempty"`
	// RequireClientCert rejects clients without a valid certificate.
	RequireClientCert bool `json:"require_client_cert,omitempty"`
	// AllowPlaintext also serves cleartext HTTP/1.1 and HTTP/2 on the port.
	AllowPlaintext bool `json:"allow_plaintext,omitempty"`
}

// RouteTableConfig is a named route table (an Envoy RouteConfiguration).
type RouteTableConfig struct {
	Name         string              `json:"name"`
	VirtualHosts []VirtualHostConfig `json:"virtual_hosts"`
	HeaderEdits
}

// HeaderEdits change request headers before forwarding and response headers
// before answering.
type HeaderEdits struct {
	// RequestHeadersToSet overwrite (or add) request headers.
	RequestHeadersToSet map[string]string `json:"request_headers_to_set,omitempty"`
	// RequestHeadersToAdd append a value to request headers.
	RequestHeadersToAdd    map[string]string `json:"request_headers_to_add,omitempty"`
	RequestHeadersToRemove []string          `json:"request_headers_to_remove,omitempty"`
	// ResponseHeadersToSet, ResponseHeadersToAdd and
	// ResponseHeadersToRemove do the same on the response.
	ResponseHeadersToSet    map[string]string `json:"response_headers_to_set,omitempty"`
	ResponseHeadersToAdd    map[string]string `json:"response_headers_to_add,omitempty"`
	ResponseHeadersToRemove []string          `json:"response_headers_to_remove,omitempty"`
}

// VirtualHostConfig groups the routes of a set of domains.
type VirtualHostConfig struct {
	Name string `json:"name"`
	// Domains match the Host / :authority header: exact names, "*.suffix",
	// "prefix.*", or "*" for any host. Default: ["*"].
	Domains []string      `json:"domains,omitempty"`
	Routes  []RouteConfig `json:"routes"`
	// Retries is the retry policy of routes that have none.
	Retries *RetryConfig `json:"retries,omitempty"`
	// RateLimit is one bucket shared by the routes without their own.
	RateLimit *RateLimitConfig `json:"rate_limit,omitempty"`
	// CORS is the policy of the routes without their own; it also answers
	// preflights that match no route.
	CORS *CORSConfig `json:"cors,omitempty"`
	HeaderEdits
}

// RouteConfig is one route: a match and exactly one action (cluster,
// weighted_clusters, direct_response or redirect).
type RouteConfig struct {
	Name  string      `json:"name,omitempty"`
	Match MatchConfig `json:"match"`

	Cluster          string                  `json:"cluster,omitempty"`
	WeightedClusters []WeightedClusterConfig `json:"weighted_clusters,omitempty"`
	DirectResponse   *DirectResponseConfig   `json:"direct_response,omitempty"`
	Redirect         *RedirectConfig         `json:"redirect,omitempty"`

	// PrefixRewrite replaces the matched prefix (or whole path).
	PrefixRewrite string              `json:"prefix_rewrite,omitempty"`
	RegexRewrite  *RegexRewriteConfig `json:"regex_rewrite,omitempty"`
	// HostRewrite sets the Host header sent upstream.
	HostRewrite string `json:"host_rewrite,omitempty"`
	// AutoHostRewrite sends the chosen endpoint's address as Host.
	AutoHostRewrite bool `json:"auto_host_rewrite,omitempty"`
	// Timeout bounds the whole call, streams included (Envoy's default:
	// 15s; 0s disables it, as long-lived streams need).
	Timeout *Duration `json:"timeout,omitempty"`
	// GRPCTimeoutMax caps a client's grpc-timeout header (0: no cap).
	GRPCTimeoutMax *Duration `json:"grpc_timeout_max,omitempty"`
	// HashPolicy gives ring_hash and maglev clusters the request's key.
	HashPolicy []HashPolicyConfig `json:"hash_policy,omitempty"`
	// Retries retry failed attempts (this route's policy wins over its
	// virtual host's).
	Retries *RetryConfig `json:"retries,omitempty"`
	// Priority "high" selects the cluster's HIGH circuit breaker thresholds.
	Priority string `json:"priority,omitempty"`
	// IdleTimeout resets a stream quiet both ways this long.
	IdleTimeout *Duration `json:"idle_timeout,omitempty"`
	// RateLimit limits this route's requests (a bucket of its own).
	RateLimit *RateLimitConfig `json:"rate_limit,omitempty"`
	// Dubbo calls a Dubbo2 method on the route's cluster (protocol dubbo)
	// instead of forwarding the request.
	Dubbo *DubboRouteConfig `json:"dubbo,omitempty"`
	// CORS is the route's CORS policy (else its virtual host's).
	CORS *CORSConfig `json:"cors,omitempty"`
	// Fault injects delays and aborts (for testing resilience).
	Fault *FaultConfig `json:"fault,omitempty"`
	HeaderEdits
}

// DubboRouteConfig is the Dubbo2 bridge of a route: which method it calls
// and where the arguments come from (see the DubboRoute proto).
type DubboRouteConfig struct {
	Interface    string             `json:"interface,omitempty"`
	Version      string             `json:"version,omitempty"`
	Group        string             `json:"group,omitempty"`
	Method       string             `json:"method,omitempty"`
	PathTemplate string             `json:"path_template,omitempty"`
	Params       []DubboParamConfig `json:"params,omitempty"`
	Types        []string           `json:"types,omitempty"`
	HashArgs     []uint32           `json:"hash_arguments,omitempty"`
	// ProtoDescriptor is a FileDescriptorSet file (buf build -o, protoc
	// --descriptor_set_out --include_imports) for gRPC and Triple callers.
	ProtoDescriptor string             `json:"proto_descriptor,omitempty"`
	Attachments     *DubboAttachConfig `json:"attachments,omitempty"`
	KeepClass       bool               `json:"keep_class,omitempty"`
	LongsAsStr      bool               `json:"longs_as_strings,omitempty"`
	Exceptions      map[string]uint32  `json:"exception_status,omitempty"`
}

// DubboParamConfig is one argument: its source and Java type.
type DubboParamConfig struct {
	From     string `json:"from"`
	Type     string `json:"type,omitempty"`
	Optional bool   `json:"optional,omitempty"`
}

// DubboAttachConfig maps headers to attachments.
type DubboAttachConfig struct {
	Headers      []string `json:"headers,omitempty"`
	HeaderPrefix string   `json:"header_prefix,omitempty"`
}

// MatchConfig selects requests. Give at most one of Prefix, Path, Regex
// (default: prefix "/"); every other condition must also hold.
type MatchConfig struct {
	Prefix string `json:"prefix,omitempty"`
	Path   string `json:"path,omitempty"`
	// Regex must match the whole path, without the query (RE2 syntax).
	Regex string `json:"regex,omitempty"`
	// CaseInsensitive makes Prefix and Path ignore case.
	CaseInsensitive bool `json:"case_insensitive,omitempty"`
	// GRPC matches only gRPC requests (content-type application/grpc*).
	GRPC    bool                `json:"grpc,omitempty"`
	Headers []HeaderMatchConfig `json:"headers,omitempty"`
	Query   []HeaderMatchConfig `json:"query,omitempty"`
}

// HeaderMatchConfig matches one header (or query parameter) by name. Give at
// most one of the value conditions; with none, the header must be present.
type HeaderMatchConfig struct {
	Name     string  `json:"name"`
	Exact    *string `json:"exact,omitempty"`
	Prefix   string  `json:"prefix,omitempty"`
	Suffix   string  `json:"suffix,omitempty"`
	Contains string  `json:"contains,omitempty"`
	Regex    string  `json:"regex,omitempty"`
	// Present: true requires the header, false requires its absence.
	Present    *bool `json:"present,omitempty"`
	IgnoreCase bool  `json:"ignore_case,omitempty"`
	// Invert negates the whole condition (headers only).
	Invert bool `json:"invert,omitempty"`
}

// HashPolicyConfig is one source of a request's hash key: give one of
// Header, Cookie, Query or SourceIP. Terminal stops at this one when it
// yields a value.
type HashPolicyConfig struct {
	Header   string `json:"header,omitempty"`
	Cookie   string `json:"cookie,omitempty"`
	Query    string `json:"query,omitempty"`
	SourceIP bool   `json:"source_ip,omitempty"`
	Terminal bool   `json:"terminal,omitempty"`
}

// WeightedClusterConfig is one target of a traffic split.
type WeightedClusterConfig struct {
	Cluster string `json:"cluster"`
	Weight  uint32 `json:"weight"`
}

// DirectResponseConfig answers without an upstream.
type DirectResponseConfig struct {
	Status uint32 `json:"status"`
	Body   string `json:"body,omitempty"`
}

// RedirectConfig answers with a redirect built from the request's URL.
type RedirectConfig struct {
	Scheme        string `json:"scheme,omitempty"`
	Host          string `json:"host,omitempty"`
	Port          uint32 `json:"port,omitempty"`
	Path          string `json:"path,omitempty"`
	PrefixRewrite string `json:"prefix_rewrite,omitempty"`
	// Code is 301 (default), 302, 303, 307 or 308.
	Code       uint32 `json:"code,omitempty"`
	StripQuery bool   `json:"strip_query,omitempty"`
}

// RegexRewriteConfig rewrites the path with a regular expression;
// Substitution may use \1 style group references.
type RegexRewriteConfig struct {
	Pattern      string `json:"pattern"`
	Substitution string `json:"substitution"`
}

// ClusterConfig is one upstream service.
type ClusterConfig struct {
	Name string `json:"name"`
	// Type is "static" (endpoints listed here, the default), "strict_dns"
	// (endpoint names resolved every 5s, all addresses), "logical_dns"
	// (the first address of each name) or "eds" (endpoints from xDS or a
	// registry).
	Type string `json:"type,omitempty"`
	// Protocol is "http1" (default), "http2", "grpc" (HTTP/2), "dubbo"
	// (Dubbo2 providers, reached through a route's dubbo bridge) or "tri"
	// (Triple providers: HTTP/2 for gRPC, the bridge for non-IDL methods).
	Protocol string `json:"protocol,omitempty"`
	// ConnectTimeout bounds each dial (default 5s, as Envoy).
	ConnectTimeout *Duration `json:"connect_timeout,omitempty"`
	// LBPolicy picks an endpoint: "round_robin" (default, smooth weighted),
	// "least_request", "random", "ring_hash" or "maglev" (the last two
	// hash by the route's hash_policy).
	LBPolicy string `json:"lb_policy,omitempty"`
	// PanicThreshold is the percentage of healthy hosts below which a
	// priority balances over all its hosts (default 50; 0 turns it off).
	PanicThreshold *float64 `json:"panic_threshold,omitempty"`
	// LocalityWeighted splits traffic between localities by their weight.
	LocalityWeighted bool `json:"locality_weighted,omitempty"`
	// SlowStart ramps a new host's share up over a window (round_robin and
	// least_request).
	SlowStart *SlowStartConfig `json:"slow_start,omitempty"`
	// MinRingSize is ring_hash's minimum number of ring points.
	MinRingSize uint64 `json:"min_ring_size,omitempty"`
	// CircuitBreakers are Envoy's per-cluster thresholds (defaults: 1024
	// connections, pending and requests, 3 retries).
	CircuitBreakers *CircuitBreakersConfig `json:"circuit_breakers,omitempty"`
	// OutlierDetection ejects failing hosts for a while (Envoy's fields
	// and defaults).
	OutlierDetection *OutlierConfig `json:"outlier_detection,omitempty"`
	// EndpointBreaker trips a breaker per host on its own failures.
	EndpointBreaker *EndpointBreakerConfig `json:"endpoint_breaker,omitempty"`
	// HealthCheck actively checks every host.
	HealthCheck *HealthCheckConfig `json:"health_check,omitempty"`
	TLS         *UpstreamTLSConfig `json:"tls,omitempty"`
	// Endpoints are "host:port" strings or {address, weight} objects.
	Endpoints []EndpointConfig `json:"endpoints,omitempty"`
}

// UpstreamTLSConfig makes the cluster dial TLS.
type UpstreamTLSConfig struct {
	// CAFile verifies the server; without it the system roots are used.
	CAFile string `json:"ca_file,omitempty"`
	// CertFile and KeyFile present a client certificate.
	CertFile string `json:"cert_file,omitempty"`
	KeyFile  string `json:"key_file,omitempty"`
	// SNI is the server name to ask for and verify.
	SNI string `json:"sni,omitempty"`
}

// CircuitBreakersConfig is Envoy's circuit_breakers thresholds for the
// DEFAULT routing priority. Zero fields keep Envoy's defaults.
type CircuitBreakersConfig struct {
	MaxConnections     uint32 `json:"max_connections,omitempty"`
	MaxPendingRequests uint32 `json:"max_pending_requests,omitempty"`
	MaxRequests        uint32 `json:"max_requests,omitempty"`
	MaxRetries         uint32 `json:"max_retries,omitempty"`
	// RetryBudget replaces max_retries with a share of active requests.
	RetryBudget *RetryBudgetConfig `json:"retry_budget,omitempty"`
}

// RetryBudgetConfig is Envoy's retry_budget (defaults 20% and 3).
type RetryBudgetConfig struct {
	BudgetPercent       float64 `json:"budget_percent,omitempty"`
	MinRetryConcurrency uint32  `json:"min_retry_concurrency,omitempty"`
}

// OutlierConfig is Envoy's OutlierDetection; unset fields keep Envoy's
// defaults (5 consecutive 5xx, 10s interval, 30s base ejection, 10% max).
type OutlierConfig struct {
	Consecutive5xx                     *uint32   `json:"consecutive_5xx,omitempty"`
	ConsecutiveGatewayFailure          *uint32   `json:"consecutive_gateway_failure,omitempty"`
	EnforcingConsecutiveGatewayFailure *uint32   `json:"enforcing_consecutive_gateway_failure,omitempty"`
	SplitLocalOriginErrors             bool      `json:"split_local_origin_errors,omitempty"`
	ConsecutiveLocalOriginFailure      *uint32   `json:"consecutive_local_origin_failure,omitempty"`
	Interval                           *Duration `json:"interval,omitempty"`
	BaseEjectionTime                   *Duration `json:"base_ejection_time,omitempty"`
	MaxEjectionTime                    *Duration `json:"max_ejection_time,omitempty"`
	MaxEjectionPercent                 *uint32   `json:"max_ejection_percent,omitempty"`
	EnforcingSuccessRate               *uint32   `json:"enforcing_success_rate,omitempty"`
	SuccessRateMinimumHosts            *uint32   `json:"success_rate_minimum_hosts,omitempty"`
	SuccessRateRequestVolume           *uint32   `json:"success_rate_request_volume,omitempty"`
	SuccessRateStdevFactor             *uint32   `json:"success_rate_stdev_factor,omitempty"`
	FailurePercentageThreshold         *uint32   `json:"failure_percentage_threshold,omitempty"`
	EnforcingFailurePercentage         *uint32   `json:"enforcing_failure_percentage,omitempty"`
	FailurePercentageMinimumHosts      *uint32   `json:"failure_percentage_minimum_hosts,omitempty"`
	FailurePercentageRequestVolume     *uint32   `json:"failure_percentage_request_volume,omitempty"`
}

// EndpointBreakerConfig is meshgate's per-host breaker (sony/gobreaker).
type EndpointBreakerConfig struct {
	ConsecutiveFailures uint32    `json:"consecutive_failures,omitempty"`
	FailureRatio        float64   `json:"failure_ratio,omitempty"`
	MinRequests         uint32    `json:"min_requests,omitempty"`
	Interval            *Duration `json:"interval,omitempty"`
	OpenFor             *Duration `json:"open_for,omitempty"`
	HalfOpenRequests    uint32    `json:"half_open_requests,omitempty"`
}

// RateLimitConfig is a local token bucket (Envoy's local_ratelimit):
// Requests tokens, refilled every Per; requests past it get 429 (gRPC:
// RESOURCE_EXHAUSTED).
type RateLimitConfig struct {
	Requests uint32   `json:"requests"`
	Per      Duration `json:"per"`
	// Burst is the bucket size (default: Requests).
	Burst uint32 `json:"burst,omitempty"`
}

// HealthCheckConfig is an active health check (Envoy's HealthCheck): give
// one of HTTP, GRPC or TCP. New hosts take traffic once a check passes.
type HealthCheckConfig struct {
	Interval *Duration `json:"interval,omitempty"` // default 5s
	Timeout  *Duration `json:"timeout,omitempty"`  // default 1s
	// IntervalJitter adds up to this much to each interval.
	IntervalJitter *Duration `json:"interval_jitter,omitempty"`
	// UnhealthyThreshold failures make a host unhealthy (default 3);
	// HealthyThreshold successes make it healthy again (default 2).
	UnhealthyThreshold uint32 `json:"unhealthy_threshold,omitempty"`
	HealthyThreshold   uint32 `json:"healthy_threshold,omitempty"`

	HTTP *HTTPHealthCheckConfig `json:"http,omitempty"`
	GRPC *GRPCHealthCheckConfig `json:"grpc,omitempty"`
	TCP  *TCPHealthCheckConfig  `json:"tcp,omitempty"`
}

// HTTPHealthCheckConfig checks with a GET.
type HTTPHealthCheckConfig struct {
	Path string `json:"path"`
	Host string `json:"host,omitempty"`
	// ExpectedStatuses pass (default [200]).
	ExpectedStatuses []uint32 `json:"expected_statuses,omitempty"`
	HTTP2            bool     `json:"http2,omitempty"`
}

// GRPCHealthCheckConfig asks grpc.health.v1.Health/Check.
type GRPCHealthCheckConfig struct {
	Service   string `json:"service,omitempty"`
	Authority string `json:"authority,omitempty"`
}

// TCPHealthCheckConfig connects, sends Send and expects each of Receive in
// the answer (plain text).
type TCPHealthCheckConfig struct {
	Send    string   `json:"send,omitempty"`
	Receive []string `json:"receive,omitempty"`
}

// RetryConfig is a route's (or virtual host's) retry policy.
type RetryConfig struct {
	// RetryOn lists Envoy retry_on conditions: 5xx, gateway-error, reset,
	// connect-failure, retriable-4xx, refused-stream,
	// retriable-status-codes, and the gRPC ones: cancelled,
	// deadline-exceeded, internal, resource-exhausted, unavailable.
	RetryOn       string    `json:"retry_on"`
	NumRetries    *uint32   `json:"num_retries,omitempty"` // default 1
	PerTryTimeout *Duration `json:"per_try_timeout,omitempty"`
	// Backoff between attempts: a jittered exponential from Base (25ms) up
	// to Max (10 x base).
	Backoff              *BackoffConfig `json:"backoff,omitempty"`
	RetriableStatusCodes []uint32       `json:"retriable_status_codes,omitempty"`
	// SkipPreviousHosts makes a retry go to a host not tried yet.
	SkipPreviousHosts bool `json:"skip_previous_hosts,omitempty"`
}

// BackoffConfig shapes retry backoff.
type BackoffConfig struct {
	Base Duration  `json:"base"`
	Max  *Duration `json:"max,omitempty"`
}

// SlowStartConfig is Envoy's slow_start_config.
type SlowStartConfig struct {
	Window Duration `json:"window"`
	// Aggression shapes the ramp: 1 (default) is linear.
	Aggression float64 `json:"aggression,omitempty"`
	// MinWeightPercent is the share a new host starts with (default 10).
	MinWeightPercent float64 `json:"min_weight_percent,omitempty"`
}

// EndpointConfig is one upstream host.
type EndpointConfig struct {
	Address string `json:"address"`
	Weight  uint32 `json:"weight,omitempty"`
	// Priority 0 is used first; higher priorities take traffic as lower
	// ones lose healthy hosts.
	Priority uint32 `json:"priority,omitempty"`
	// Locality is "region/zone/sub_zone"; LocalityWeight its share when the
	// cluster is locality_weighted.
	Locality       string `json:"locality,omitempty"`
	LocalityWeight uint32 `json:"locality_weight,omitempty"`
}

// UnmarshalJSON accepts "host:port" as well as an object.
func (e *EndpointConfig) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		e.Address = s
		return nil
	}
	type plain EndpointConfig
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.DisallowUnknownFields()
	return d.Decode((*plain)(e))
}

// Duration is a time.Duration written as "1.5s", "250ms" or a number of
// seconds.
type Duration struct{ time.Duration }

// UnmarshalJSON parses a Go duration string or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: want a value like \"1.5s\" or \"250ms\"", s)
		}
		d.Duration = v
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("duration %s: want a string like \"1.5s\" or a number of seconds", b)
	}
	d.Duration = time.Duration(f * float64(time.Second))
	return nil
}

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }
