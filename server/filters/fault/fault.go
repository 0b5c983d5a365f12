// Package fault is Envoy's envoy.filters.http.fault filter: a fixed delay
// and an abort (an HTTP status, or a gRPC status for gRPC callers), each on
// a share of requests or as asked by x-envoy-fault-* headers, by the
// matched route's HTTPFault (typed_per_filter_config, what an Istio
// VirtualService's fault becomes), else the filter's own config.
package fault

import (
	"time"

	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshgate/meshgate/server/httpfilter"
	"github.com/meshgate/meshgate/server/router"
	"github.com/meshgate/meshgate/server/wire"
	"github.com/meshgate/meshgate/triple"
)

// Name is the filter's name, as Envoy spells it.
const Name = "envoy.filters.http.fault"

func init() {
	httpfilter.Register(&httpfilter.Factory{
		Name:         Name,
		Config:       &faultv3.HTTPFault{},
		PerRouteType: httpfilter.TypeURL(&faultv3.HTTPFault{}),
		PerRoute:     func(cfg *anypb.Any) (any, error) { return router.CompileFault(cfg) },
		Build: func(cfg proto.Message, b httpfilter.Build) (httpfilter.Filter, []string, error) {
			f := &filter{name: b.Name}
			if cfg != nil {
				// Istio's carries no fault of its own (faults come per
				// route); one that does applies to routes without their own.
				a, err := anypb.New(cfg)
				if err != nil {
					return nil, nil, err
				}
				if f.own, err = router.CompileFault(a); err != nil {
					return nil, nil, err
				}
			}
			return f, nil, nil
		},
	})
}

type filter struct {
	name string        // its name in the chain: the key of its per-route configs
	own  *router.Fault // nil: only routes' faults
}

func (f *filter) Decode(s *httpfilter.Stream) httpfilter.Status {
	flt := f.own
	if rf, ok := s.PerFilter(f.name).(*router.Fault); ok {
		flt = rf
	}
	if flt == nil {
		return httpfilter.Continue
	}
	if inject(s, flt) {
		return httpfilter.Continue
	}
	return httpfilter.Stop
}

// inject delays and aborts as the fault decides; false: the request was
// answered (aborted) or its caller left while delayed.
func inject(s *httpfilter.Stream, f *router.Fault) bool {
	r := s.R
	d := f.Decide(r.Header)
	if d.Delay > 0 {
		t := time.NewTimer(d.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return false // the caller left while delayed
		}
	}
	switch {
	case d.AbortGRPC != nil && router.IsGRPC(r):
		wire.WriteGRPCStatus(s.W, *d.AbortGRPC, "fault filter abort")
		return false
	case d.AbortGRPC != nil:
		wire.WriteError(s.W, r, wire.HTTPStatus(*d.AbortGRPC), *d.AbortGRPC, "fault filter abort")
		return false
	case d.AbortHTTP != 0:
		wire.WriteError(s.W, r, d.AbortHTTP, triple.CodeOfHTTP(d.AbortHTTP), "fault filter abort")
		return false
	}
	return true
}
