// Package dubbo is meshgate's Dubbo bridge filter
// (meshgate.filters.http.dubbo): on a route whose typed_per_filter_config
// holds a DubboRoute under the filter's name, it answers the request itself
// by calling a Dubbo2 or Triple method on a provider of the route's cluster
// (with the route's timeout and retries and the cluster's balancer,
// breakers and outlier detection) and turns the answer into the caller's
// form: JSON for HTTP, a message for gRPC, gRPC-Web and Triple. The router
// never runs for it. Other routes pass through to the router. How requests
// map onto calls is the bridge subpackage.
package dubbo

import (
	"net/http"

	"google.golang.org/protobuf/proto"

	dubbov1 "github.com/meshgate/meshgate/proto/meshgate/extensions/filters/http/dubbo/v1"
	"github.com/meshgate/meshgate/server/cluster"
	"github.com/meshgate/meshgate/server/filters/dubbo/bridge"
	"github.com/meshgate/meshgate/server/httpfilter"
)

// Name is the filter's name, the key of its per-route configs.
const Name = "meshgate.filters.http.dubbo"

func init() {
	httpfilter.Register(&httpfilter.Factory{
		Name:         Name,
		Config:       &dubbov1.Dubbo{},
		PerRouteType: bridge.TypeURL,
		PerRoute:     bridge.Compile,
		Build: func(_ proto.Message, b httpfilter.Build) (httpfilter.Filter, []string, error) {
			f := &filter{name: b.Name, resolve: b.Cluster, maxBody: b.MaxBody, suppressEnvoyHeaders: b.SuppressEnvoyHeaders}
			if f.maxBody == 0 {
				f.maxBody = defaultMaxBody
			}
			return f, nil, nil
		},
	})
}

type filter struct {
	name    string // its name in the chain: the key of its per-route configs
	resolve func(name string) (*cluster.Cluster, bool)
	// maxBody bounds a request's body, which the bridge reads whole.
	maxBody              uint64
	suppressEnvoyHeaders bool
}

// PassesGRPCThrough: a route without a Dubbo bridge config is not the
// bridge's (see httpfilter.GRPCPassThrough).
func (f *filter) PassesGRPCThrough(_ *http.Request, rt *httpfilter.Route) bool {
	_, bridged := rt.PerFilter[f.name].(*bridge.Route)
	return !bridged
}

func (f *filter) Decode(s *httpfilter.Stream) httpfilter.Status {
	b, ok := s.PerFilter(f.name).(*bridge.Route)
	if !ok {
		return httpfilter.Continue
	}
	rt := s.Route()
	if rt.Forward == nil {
		return httpfilter.Continue // a direct response or a redirect: the router's
	}
	f.serve(s, rt, b)
	return httpfilter.Stop
}

// markOverloaded says on an answer that a circuit breaker refused the call
// (Envoy's x-envoy-overloaded), unless the router suppresses such headers.
func (f *filter) markOverloaded(w http.ResponseWriter) {
	if !f.suppressEnvoyHeaders {
		w.Header().Set("X-Envoy-Overloaded", "true")
	}
}
