package cluster

import (
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/governance"
	breakerv1 "github.com/meshgate/meshgate/proto/meshgate/extensions/upstreams/breaker/v1"
)

// outlierConfig reads Envoy's OutlierDetection over Envoy's defaults.
func outlierConfig(od *clusterv3.OutlierDetection) governance.OutlierConfig {
	cfg := governance.DefaultOutlierConfig()
	type u32 interface{ GetValue() uint32 }
	for dst, v := range map[*uint32]u32{
		&cfg.Consecutive5xx:                         od.GetConsecutive_5Xx(),
		&cfg.EnforcingConsecutive5xx:                od.GetEnforcingConsecutive_5Xx(),
		&cfg.ConsecutiveGatewayFailure:              od.GetConsecutiveGatewayFailure(),
		&cfg.EnforcingConsecutiveGatewayFailure:     od.GetEnforcingConsecutiveGatewayFailure(),
		&cfg.ConsecutiveLocalOriginFailure:          od.GetConsecutiveLocalOriginFailure(),
		&cfg.EnforcingConsecutiveLocalOriginFailure: od.GetEnforcingConsecutiveLocalOriginFailure(),
		&cfg.MaxEjectionPercent:                     od.GetMaxEjectionPercent(),
		&cfg.SuccessRateMinimumHosts:                od.GetSuccessRateMinimumHosts(),
		&cfg.SuccessRateRequestVolume:               od.GetSuccessRateRequestVolume(),
		&cfg.SuccessRateStdevFactor:                 od.GetSuccessRateStdevFactor(),
		&cfg.EnforcingSuccessRate:                   od.GetEnforcingSuccessRate(),
		&cfg.FailurePercentageThreshold:             od.GetFailurePercentageThreshold(),
		&cfg.EnforcingFailurePercentage:             od.GetEnforcingFailurePercentage(),
		&cfg.FailurePercentageMinimumHosts:          od.GetFailurePercentageMinimumHosts(),
		&cfg.FailurePercentageRequestVolume:         od.GetFailurePercentageRequestVolume(),
	} {
		// A nil wrapper inside the interface is not nil: test the value.
		if w, ok := v.(interface{ ProtoReflect() protoreflect.Message }); ok && w.ProtoReflect().IsValid() {
			*dst = v.GetValue()
		}
	}
	cfg.SplitExternalLocalOriginErrors = od.GetSplitExternalLocalOriginErrors()
	if d := od.GetInterval(); d != nil && d.AsDuration() > 0 {
		cfg.Interval = d.AsDuration()
	}
	if d := od.GetBaseEjectionTime(); d != nil {
		cfg.BaseEjectionTime = d.AsDuration()
	}
	if d := od.GetMaxEjectionTime(); d != nil {
		cfg.MaxEjectionTime = d.AsDuration()
	}
	return cfg
}

// endpointBreaker reads meshgate's per-endpoint breaker extension.
func endpointBreaker(c *clusterv3.Cluster) (governance.BreakerConfig, error) {
	a := c.GetTypedExtensionProtocolOptions()[config.EndpointBreakerOptions]
	if a == nil {
		return governance.BreakerConfig{}, nil
	}
	var b breakerv1.EndpointBreaker
	if err := a.UnmarshalTo(&b); err != nil {
		return governance.BreakerConfig{}, fmt.Errorf("typed_extension_protocol_options[%s]: %w", config.EndpointBreakerOptions, err)
	}
	if b.GetFailureRatio() < 0 || b.GetFailureRatio() > 1 {
		return governance.BreakerConfig{}, fmt.Errorf("endpoint breaker: failure_ratio %v is not between 0 and 1", b.GetFailureRatio())
	}
	return governance.BreakerConfig{
		ConsecutiveFailures: b.GetConsecutiveFailures(),
		FailureRatio:        b.GetFailureRatio(),
		MinRequests:         b.GetMinRequests(),
		Interval:            b.GetInterval().AsDuration(),
		OpenFor:             b.GetOpenDuration().AsDuration(),
		HalfOpenRequests:    b.GetHalfOpenRequests(),
	}, nil
}

// outlierTick runs the detector's interval work and re-arms itself.
func (c *Cluster) outlierTick() {
	c.outlier.Tick()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.outlierT.Reset(c.outlier.Interval())
	}
}

// healthChecker builds the active health checker of health_checks (one is
// supported), or returns nil without one.
func healthChecker(c *clusterv3.Cluster, tlsConf *tls.Config, onChange func()) (*governance.HealthChecker, error) {
	hcs := c.GetHealthChecks()
	if len(hcs) == 0 {
		return nil, nil
	}
	if len(hcs) > 1 {
		return nil, errors.New("health_checks: only one health check per cluster is supported")
	}
	h := hcs[0]
	cfg := governance.HealthCheckConfig{
		Timeout:               h.GetTimeout().AsDuration(),
		Interval:              h.GetInterval().AsDuration(),
		IntervalJitter:        h.GetIntervalJitter().AsDuration(),
		IntervalJitterPercent: h.GetIntervalJitterPercent(),
		InitialJitter:         h.GetInitialJitter().AsDuration(),
		UnhealthyInterval:     h.GetUnhealthyInterval().AsDuration(),
		UnhealthyThreshold:    h.GetUnhealthyThreshold().GetValue(),
		HealthyThreshold:      h.GetHealthyThreshold().GetValue(),
	}
	var probe governance.Probe
	switch k := h.GetHealthChecker().(type) {
	case *corev3.HealthCheck_HttpHealthCheck_:
		hh := k.HttpHealthCheck
		p := &governance.HTTPProbe{Path: hh.GetPath(), Host: hh.GetHost(), TLS: tlsConf,
			HTTP2: hh.GetCodecClientType() == typev3.CodecClientType_HTTP2}
		for _, r := range hh.GetExpectedStatuses() {
			p.Expected = append(p.Expected, [2]int{int(r.GetStart()), int(r.GetEnd())})
		}
		probe = p
	case *corev3.HealthCheck_TcpHealthCheck_:
		p := &governance.TCPProbe{TLS: tlsConf}
		var err error
		if p.Send, err = payload(k.TcpHealthCheck.GetSend()); err != nil {
			return nil, fmt.Errorf("health_checks[0].tcp_health_check.send: %w", err)
		}
		for i, r := range k.TcpHealthCheck.GetReceive() {
			b, err := payload(r)
			if err != nil {
				return nil, fmt.Errorf("health_checks[0].tcp_health_check.receive[%d]: %w", i, err)
			}
			p.Receive = append(p.Receive, b)
		}
		probe = p
	case *corev3.HealthCheck_GrpcHealthCheck_:
		probe = &governance.GRPCProbe{Service: k.GrpcHealthCheck.GetServiceName(), Authority: k.GrpcHealthCheck.GetAuthority(), TLS: tlsConf}
	default:
		return nil, fmt.Errorf("health_checks[0]: %T is not supported (http, tcp and grpc are)", k)
	}
	return governance.NewHealthChecker(cfg, probe, onChange), nil
}

// payload decodes an Envoy health check payload (text is hex).
func payload(p *corev3.HealthCheck_Payload) ([]byte, error) {
	switch v := p.GetPayload().(type) {
	case *corev3.HealthCheck_Payload_Text:
		return hex.DecodeString(v.Text)
	case *corev3.HealthCheck_Payload_Binary:
		return v.Binary, nil
	}
	return nil, nil
}
