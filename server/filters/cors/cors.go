// Package cors is Envoy's envoy.filters.http.cors filter: it answers CORS
// preflights and decorates answers to allowed origins, by the policy of
// the matched route (typed_per_filter_config), else of its virtual host.
// A preflight matches no gRPC-only route (it is an OPTIONS without the
// gRPC content type): the virtual host's policy answers it, so that
// browsers can call gRPC-Web and Connect routes.
package cors

import (
	"fmt"
	"net/http"

	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshgate/meshgate/server/httpfilter"
	"github.com/meshgate/meshgate/server/router"
	"github.com/meshgate/meshgate/server/wire"
)

// Name is the filter's name, as Envoy spells it.
const Name = "envoy.filters.http.cors"

func init() {
	httpfilter.Register(&httpfilter.Factory{
		Name:         Name,
		Config:       &corsv3.Cors{},
		PerRouteType: httpfilter.TypeURL(&corsv3.CorsPolicy{}),
		PerRoute:     func(cfg *anypb.Any) (any, error) { return router.CompileCORS(cfg) },
		Build: func(_ proto.Message, b httpfilter.Build) (httpfilter.Filter, []string, error) {
			return filter{name: b.Name}, nil, nil
		},
	})
}

// filter reads its policies under its name in the chain.
type filter struct{ name string }

// PassesGRPCThrough: a request without Origin is not CORS's (see
// httpfilter.GRPCPassThrough).
func (f filter) PassesGRPCThrough(r *http.Request, _ *httpfilter.Route) bool {
	return r.Header["Origin"] == nil
}

func (f filter) Decode(s *httpfilter.Stream) httpfilter.Status {
	origin := s.R.Header.Get("Origin")
	if origin == "" {
		return httpfilter.Continue
	}
	policy, _ := s.PerFilter(f.name).(*router.CORS)
	if !router.Preflight(s.R) {
		if policy != nil && policy.Allowed(origin) {
			policy.Decorate(s.W.Header(), origin)
		}
		return httpfilter.Continue
	}
	if policy == nil && s.Table() != nil {
		policy, _ = s.Table().VirtualHostPerFilter(s.R, f.name).(*router.CORS)
	}
	switch {
	case policy == nil:
		return httpfilter.Continue
	case policy.Allowed(origin):
		policy.AnswerPreflight(s.W, origin)
		return httpfilter.Stop
	case !policy.ForwardNotMatching:
		wire.WriteError(s.W, s.R, http.StatusForbidden, codes.PermissionDenied, fmt.Sprintf("origin %q is not allowed", origin))
		return httpfilter.Stop
	}
	return httpfilter.Continue
}
