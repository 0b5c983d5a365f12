package cluster

import (
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
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
