package server

import (
	"testing"

	dubbov3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/dubbo_proxy/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/meshgate/meshgate/dubbo"
	"github.com/meshgate/meshgate/server/cluster"
)

func testDubboRoute(method, clusterName string) *dubbov3.Route {
	r := &dubbov3.Route{Match: &dubbov3.RouteMatch{}, Route: &dubbov3.RouteAction{ClusterSpecifier: &dubbov3.RouteAction_Cluster{Cluster: clusterName}}}
	if method != "" {
		r.Match.Method = &dubbov3.MethodMatch{Name: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: method}}}
	}
	return r
}

func TestDubboProxyRoutes(t *testing.T) {
	cfg := &dubbov3.DubboProxy{RouteSpecifier: &dubbov3.DubboProxy_MultipleRouteConfig{MultipleRouteConfig: &dubbov3.MultipleRouteConfiguration{RouteConfig: []*dubbov3.RouteConfiguration{
		{Interface: "org.x.A", Version: "1.0", Group: "g", Routes: []*dubbov3.Route{testDubboRoute("add", "a-add"), testDubboRoute("", "a-rest")}},
		{Interface: "org.x.A", Routes: []*dubbov3.Route{testDubboRoute("", "a-any-version")}},
		{Interface: "*", Routes: []*dubbov3.Route{testDubboRoute("", "fallback")}},
	}}}}
	resolve := func(name string) (*cluster.Cluster, bool) { return nil, name != "missing" }
	p, err := compileDubboProxy(nil, "l", cfg, resolve)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		svc  dubbo.Service
		want string
	}{
		{dubbo.Service{Interface: "org.x.A", Version: "1.0", Group: "g", Method: "add"}, "a-add"},
		{dubbo.Service{Interface: "org.x.A", Version: "1.0", Group: "g", Method: "sub"}, "a-rest"},
		{dubbo.Service{Interface: "org.x.A", Version: "2.0", Group: "g", Method: "add"}, "a-any-version"},
		{dubbo.Service{Interface: "org.x.B", Method: "m"}, "fallback"},
	} {
		if got := p.route(tt.svc); got == nil || got.Name != tt.want {
			t.Errorf("route(%+v) = %v, want %s", tt.svc, got, tt.want)
		}
	}
	for _, bad := range []*dubbov3.DubboProxy{
		{ProtocolType: dubbov3.ProtocolType_Dubbo, SerializationType: 99},
		multi([]*dubbov3.Route{{Match: &dubbov3.RouteMatch{}, Route: &dubbov3.RouteAction{}}}),
		multi([]*dubbov3.Route{{Match: &dubbov3.RouteMatch{Method: &dubbov3.MethodMatch{
			Name: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "a"}}}}, Route: &dubbov3.RouteAction{ClusterSpecifier: &dubbov3.RouteAction_Cluster{Cluster: "c"}}}}),
	} {
		if _, err := compileDubboProxy(nil, "l", bad, resolve); err == nil {
			t.Errorf("compiled %v", bad)
		}
	}
}

func multi(routes []*dubbov3.Route) *dubbov3.DubboProxy {
	return &dubbov3.DubboProxy{RouteSpecifier: &dubbov3.DubboProxy_MultipleRouteConfig{MultipleRouteConfig: &dubbov3.MultipleRouteConfiguration{
		RouteConfig: []*dubbov3.RouteConfiguration{{Routes: routes}}}}}
}
