package config

import (
	faultcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
)

// FaultFilter is Envoy's fault injection HTTP filter; a route's fault is
// its typed_per_filter_config.
const FaultFilter = "envoy.filters.http.fault"

// FaultConfig injects faults into a route's requests (Envoy's HTTPFault,
// what an Istio VirtualService's fault becomes): a delay and an abort, each
// on a percentage of requests (default 100).
type FaultConfig struct {
	Delay        *Duration `json:"delay,omitempty"`
	DelayPercent *float64  `json:"delay_percent,omitempty"`
	// AbortStatus is the HTTP status answered; AbortGRPCStatus the gRPC
	// code (a gRPC caller gets it as grpc-status). One of them.
	AbortStatus     uint32   `json:"abort_status,omitempty"`
	AbortGRPCStatus *uint32  `json:"abort_grpc_status,omitempty"`
	AbortPercent    *float64 `json:"abort_percent,omitempty"`
}

func (t *translator) fault(path string, c *FaultConfig) *faultv3.HTTPFault {
	percent := func(p string, v *float64) *typev3.FractionalPercent {
		if v == nil {
			return &typev3.FractionalPercent{Numerator: 1_000_000, Denominator: typev3.FractionalPercent_MILLION}
		}
		if *v < 0 || *v > 100 {
			t.errf(p, "want a percentage from 0 to 100, got %v", *v)
		}
		return &typev3.FractionalPercent{Numerator: uint32(*v * 10_000), Denominator: typev3.FractionalPercent_MILLION}
	}
	out := &faultv3.HTTPFault{}
	if c.Delay != nil {
		out.Delay = &faultcommonv3.FaultDelay{
			FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(c.Delay.Duration)},
			Percentage:         percent(path+".delay_percent", c.DelayPercent),
		}
	}
	switch {
	case c.AbortStatus != 0 && c.AbortGRPCStatus != nil:
		t.errf(path, "give abort_status or abort_grpc_status, not both")
	case c.AbortStatus != 0:
		if c.AbortStatus < 200 || c.AbortStatus > 599 {
			t.errf(path+".abort_status", "%d is not an HTTP status", c.AbortStatus)
		}
		out.Abort = &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: c.AbortStatus},
			Percentage: percent(path+".abort_percent", c.AbortPercent)}
	case c.AbortGRPCStatus != nil:
		out.Abort = &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_GrpcStatus{GrpcStatus: *c.AbortGRPCStatus},
			Percentage: percent(path+".abort_percent", c.AbortPercent)}
	}
	if out.Delay == nil && out.Abort == nil {
		t.errf(path, "needs a delay or an abort")
	}
	return out
}
