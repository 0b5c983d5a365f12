package config

import (
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	breakerv1 "github.com/meshgate/meshgate/proto/meshgate/extensions/upstreams/breaker/v1"
)

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
	t.loadBalancing(path, c, out)
	t.clusterProtocol(path, c, out)
	t.clusterEndpoints(path, c, out)
	if cb := c.CircuitBreakers; cb != nil {
		out.CircuitBreakers = circuitBreakers(cb)
	}
	if od := c.OutlierDetection; od != nil {
		out.OutlierDetection = outlierDetection(od)
	}
	if hc := c.HealthCheck; hc != nil {
		out.HealthChecks = []*corev3.HealthCheck{t.healthCheck(path+".health_check", hc)}
	}
	if eb := c.EndpointBreaker; eb != nil {
		t.endpointBreaker(path, eb, out)
	}
	if c.TLS != nil {
		out.TransportSocket = t.upstreamTLS(path, c.TLS)
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

// loadBalancing sets the cluster's lb_policy and its settings.
func (t *translator) loadBalancing(path string, c *ClusterConfig, out *clusterv3.Cluster) {
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
}

// clusterProtocol sets what the cluster speaks to its hosts.
func (t *translator) clusterProtocol(path string, c *ClusterConfig, out *clusterv3.Cluster) {
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
}

// clusterEndpoints sets the cluster's discovery type and, for static and
// DNS clusters, its endpoints.
func (t *translator) clusterEndpoints(path string, c *ClusterConfig, out *clusterv3.Cluster) {
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
}

// circuitBreakers is the DEFAULT priority's thresholds.
func circuitBreakers(cb *CircuitBreakersConfig) *clusterv3.CircuitBreakers {
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
	return &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{th}}
}

// endpointBreaker adds meshgate's per-endpoint breaker to the cluster's
// typed_extension_protocol_options.
func (t *translator) endpointBreaker(path string, eb *EndpointBreakerConfig, out *clusterv3.Cluster) {
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

// upstreamTLS is the cluster's TLS transport socket.
func (t *translator) upstreamTLS(path string, tc *UpstreamTLSConfig) *corev3.TransportSocket {
	ctx := &tlsv3.UpstreamTlsContext{Sni: tc.SNI, CommonTlsContext: &tlsv3.CommonTlsContext{}}
	// Unlike Envoy, the friendly format never skips verification: without
	// a CA file the system roots verify the server.
	vc := &tlsv3.CertificateValidationContext{SystemRootCerts: &tlsv3.CertificateValidationContext_SystemRootCerts{}}
	if tc.CAFile != "" {
		vc = &tlsv3.CertificateValidationContext{
			TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: t.file(tc.CAFile)}},
		}
	}
	ctx.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc}
	if (tc.CertFile == "") != (tc.KeyFile == "") {
		t.errf(path+".tls", "cert_file and key_file go together")
	}
	if tc.CertFile != "" {
		ctx.CommonTlsContext.TlsCertificates = []*tlsv3.TlsCertificate{{
			CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: t.file(tc.CertFile)}},
			PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: t.file(tc.KeyFile)}},
		}}
	}
	return &corev3.TransportSocket{
		Name:       TLSTransportSocket,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(ctx)},
	}
}
