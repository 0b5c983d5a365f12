package router

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/anypb"
)

// FaultType is the type URL of Envoy's HTTP fault injection config (what
// an Istio VirtualService's fault becomes).
const FaultType = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"

// Envoy's request headers that control header faults.
const (
	faultAbortHeader     = "x-envoy-fault-abort-request"
	faultAbortGRPCHeader = "x-envoy-fault-abort-grpc-request"
	faultDelayHeader     = "x-envoy-fault-delay-request"
	faultAbortPctHeader  = "x-envoy-fault-abort-request-percentage"
	faultDelayPctHeader  = "x-envoy-fault-delay-request-percentage"
)

// Fault is a compiled HTTPFault: a delay and an abort, each on a share of
// requests, or taken from the request's headers (header_delay,
// header_abort).
type Fault struct {
	Delay         time.Duration
	DelayFraction float64
	HeaderDelay   bool

	AbortHTTP     int         // 0: none
	AbortGRPC     *codes.Code // nil: none
	AbortFraction float64
	HeaderAbort   bool
}

// CompileFault builds a Fault from Envoy's HTTPFault; nil when it injects
// nothing (Istio's listener-level filter carries no fault of its own).
func CompileFault(a *anypb.Any) (*Fault, error) {
	var c faultv3.HTTPFault
	if err := a.UnmarshalTo(&c); err != nil {
		return nil, err
	}
	switch {
	case len(c.GetHeaders()) > 0:
		return nil, errors.New("fault: headers (which requests get faults) is not supported")
	case c.GetUpstreamCluster() != "" || len(c.GetDownstreamNodes()) > 0:
		return nil, errors.New("fault: upstream_cluster and downstream_nodes are not supported")
	case c.GetResponseRateLimit() != nil:
		return nil, errors.New("fault: response_rate_limit is not supported")
	}
	f := &Fault{}
	if d := c.GetDelay(); d != nil {
		switch {
		case d.GetHeaderDelay() != nil:
			f.HeaderDelay = true
		case d.GetFixedDelay() != nil:
			f.Delay = d.GetFixedDelay().AsDuration()
		}
		f.DelayFraction = fractionalPercent(d.GetPercentage())
	}
	if ab := c.GetAbort(); ab != nil {
		switch e := ab.GetErrorType().(type) {
		case *faultv3.FaultAbort_HttpStatus:
			if e.HttpStatus < 200 || e.HttpStatus > 599 {
				return nil, fmt.Errorf("fault: abort.http_status %d is not an HTTP status", e.HttpStatus)
			}
			f.AbortHTTP = int(e.HttpStatus)
		case *faultv3.FaultAbort_GrpcStatus:
			code := codes.Code(e.GrpcStatus)
			f.AbortGRPC = &code
		case *faultv3.FaultAbort_HeaderAbort_:
			f.HeaderAbort = true
		}
		f.AbortFraction = fractionalPercent(ab.GetPercentage())
	}
	if f.Delay == 0 && !f.HeaderDelay && f.AbortHTTP == 0 && f.AbortGRPC == nil && !f.HeaderAbort {
		return nil, nil
	}
	return f, nil
}

// fractionalPercent reads a FractionalPercent; unset is 0, as in Envoy.
func fractionalPercent(p *typev3.FractionalPercent) float64 {
	if p == nil {
		return 0
	}
	den := map[typev3.FractionalPercent_DenominatorType]float64{
		typev3.FractionalPercent_HUNDRED:      100,
		typev3.FractionalPercent_TEN_THOUSAND: 10_000,
		typev3.FractionalPercent_MILLION:      1_000_000,
	}[p.GetDenominator()]
	return min(1, float64(p.GetNumerator())/den)
}

// Decision is what a Fault does to one request.
type Decision struct {
	Delay     time.Duration
	AbortHTTP int         // 0: no HTTP abort
	AbortGRPC *codes.Code // nil: no gRPC abort
}

// Decide rolls the dice for one request (headers first where the fault
// takes them from the request).
func (f *Fault) Decide(h http.Header) Decision {
	var d Decision
	delayShare, abortShare := f.DelayFraction, f.AbortFraction
	if f.HeaderDelay {
		if v, err := strconv.ParseUint(h.Get(faultDelayHeader), 10, 32); err == nil {
			d.Delay = time.Duration(v) * time.Millisecond
		}
		if p, ok := headerPercent(h, faultDelayPctHeader); ok {
			delayShare = min(delayShare, p)
		}
	} else {
		d.Delay = f.Delay
	}
	if d.Delay > 0 && !(delayShare > 0 && rand.Float64() < delayShare) {
		d.Delay = 0
	}
	if f.HeaderAbort {
		if v, err := strconv.Atoi(h.Get(faultAbortHeader)); err == nil && v >= 200 && v <= 599 {
			d.AbortHTTP = v
		} else if v, err := strconv.Atoi(h.Get(faultAbortGRPCHeader)); err == nil && v >= 0 {
			code := codes.Code(v)
			d.AbortGRPC = &code
		}
		if p, ok := headerPercent(h, faultAbortPctHeader); ok {
			abortShare = min(abortShare, p)
		}
	} else {
		d.AbortHTTP, d.AbortGRPC = f.AbortHTTP, f.AbortGRPC
	}
	if (d.AbortHTTP != 0 || d.AbortGRPC != nil) && !(abortShare > 0 && rand.Float64() < abortShare) {
		d.AbortHTTP, d.AbortGRPC = 0, nil
	}
	return d
}

// headerPercent reads a percentage header (0-100).
func headerPercent(h http.Header, name string) (float64, bool) {
	v, err := strconv.ParseUint(h.Get(name), 10, 32)
	if err != nil {
		return 0, false
	}
	return min(1, float64(v)/100), true
}
