// Package localratelimit is Envoy's envoy.filters.http.local_ratelimit
// filter: a token bucket per listener, or per route / virtual host when
// their typed_per_filter_config has one; requests beyond it are answered
// at once (429 by default, RESOURCE_EXHAUSTED for gRPC).
package localratelimit

import (
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshgate/meshgate/server/httpfilter"
	"github.com/meshgate/meshgate/server/router"
	"github.com/meshgate/meshgate/server/wire"
)

// Name is the filter's name, as Envoy spells it.
const Name = "envoy.filters.http.local_ratelimit"

func init() {
	httpfilter.Register(&httpfilter.Factory{
		Name:         Name,
		Config:       &ratelimitv3.LocalRateLimit{},
		PerRouteType: httpfilter.TypeURL(&ratelimitv3.LocalRateLimit{}),
		PerRoute:     func(cfg *anypb.Any) (any, error) { return router.CompileLocalRateLimit(cfg) },
		Build: func(cfg proto.Message, b httpfilter.Build) (httpfilter.Filter, []string, error) {
			f := &filter{name: b.Name}
			if cfg != nil {
				a, err := anypb.New(cfg)
				if err != nil {
					return nil, nil, err
				}
				if f.own, err = router.CompileLocalRateLimit(a); err != nil {
					return nil, nil, err
				}
			}
			return f, nil, nil
		},
	})
}

type filter struct {
	name string                 // its name in the chain: the key of its per-route configs
	own  *router.LocalRateLimit // the listener's bucket; nil: routes' only
}

func (f *filter) Decode(s *httpfilter.Stream) httpfilter.Status {
	rl := f.own
	if rrl, ok := s.PerFilter(f.name).(*router.LocalRateLimit); ok {
		rl = rrl
	}
	if rl == nil || rl.Allow() {
		return httpfilter.Continue
	}
	wire.WriteError(s.W, s.R, rl.Status, codes.ResourceExhausted, "local rate limit exceeded")
	return httpfilter.Stop
}
