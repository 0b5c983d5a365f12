package router

import (
	"net/http"
	"testing"
	"time"

	faultcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

func pct(n uint32) *typev3.FractionalPercent {
	return &typev3.FractionalPercent{Numerator: n, Denominator: typev3.FractionalPercent_HUNDRED}
}

func mustFault(t *testing.T, f *faultv3.HTTPFault) *Fault {
	t.Helper()
	a, err := anypb.New(f)
	if err != nil {
		t.Fatal(err)
	}
	out, err := CompileFault(a)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestCompileFault(t *testing.T) {
	delay := &faultcommonv3.FaultDelay{FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(150 * time.Millisecond)}, Percentage: pct(100)}
	f := mustFault(t, &faultv3.HTTPFault{Delay: delay,
		Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_GrpcStatus{GrpcStatus: 14}, Percentage: pct(25)}})
	if f.Delay != 150*time.Millisecond || f.DelayFraction != 1 || f.AbortGRPC == nil || *f.AbortGRPC != codes.Unavailable || f.AbortFraction != 0.25 {
		t.Errorf("compiled %+v", f)
	}
	if f := mustFault(t, &faultv3.HTTPFault{}); f != nil {
		t.Errorf("a fault filter without a fault (Istio's listener-level one) compiled to %+v, want nil", f)
	}
	for _, bad := range []*faultv3.HTTPFault{
		{Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 99}}},
		{Delay: delay, UpstreamCluster: "x"},
		{Delay: delay, DownstreamNodes: []string{"n"}},
	} {
		a, _ := anypb.New(bad)
		if _, err := CompileFault(a); err == nil {
			t.Errorf("%v compiled", bad)
		}
	}
}

func TestFault_Decide(t *testing.T) {
	always := &Fault{Delay: time.Second, DelayFraction: 1, AbortHTTP: 503, AbortFraction: 1}
	if d := always.Decide(http.Header{}); d.Delay != time.Second || d.AbortHTTP != 503 {
		t.Errorf("100%%: %+v", d)
	}
	never := &Fault{Delay: time.Second, AbortHTTP: 503} // unset percentages are 0, as in Envoy
	if d := never.Decide(http.Header{}); d.Delay != 0 || d.AbortHTTP != 0 {
		t.Errorf("0%%: %+v", d)
	}
	// About a quarter of 4000 requests.
	quarter := &Fault{AbortHTTP: 500, AbortFraction: 0.25}
	n := 0
	for range 4000 {
		if quarter.Decide(http.Header{}).AbortHTTP != 0 {
			n++
		}
	}
	if n < 800 || n > 1200 {
		t.Errorf("25%% aborted %d of 4000", n)
	}
	// Header-controlled faults, capped by the configured share.
	hdr := &Fault{HeaderDelay: true, DelayFraction: 1, HeaderAbort: true, AbortFraction: 1}
	h := http.Header{}
	h.Set("X-Envoy-Fault-Delay-Request", "20")
	h.Set("X-Envoy-Fault-Abort-Request", "429")
	if d := hdr.Decide(h); d.Delay != 20*time.Millisecond || d.AbortHTTP != 429 {
		t.Errorf("header faults: %+v", d)
	}
	h = http.Header{}
	h.Set("X-Envoy-Fault-Abort-Grpc-Request", "8")
	if d := hdr.Decide(h); d.AbortGRPC == nil || *d.AbortGRPC != codes.ResourceExhausted || d.Delay != 0 {
		t.Errorf("gRPC header abort: %+v", d)
	}
	h.Set("X-Envoy-Fault-Abort-Request-Percentage", "0")
	if d := hdr.Decide(h); d.AbortGRPC != nil {
		t.Errorf("header abort at 0%%: %+v", d)
	}
	if d := hdr.Decide(http.Header{}); d.Delay != 0 || d.AbortHTTP != 0 || d.AbortGRPC != nil {
		t.Errorf("header faults without headers: %+v", d)
	}
}
