package config

import (
	"fmt"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	dubbov3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/dubbo_proxy/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	failoverv1 "github.com/meshgate/meshgate/proto/meshgate/extensions/filters/dubbo/failover/v1"
)

// DubboProxyFilter is Envoy's Dubbo2 network filter: a listener whose
// filter chain has it takes Dubbo2 consumers' TCP connections.
const DubboProxyFilter = "envoy.filters.network.dubbo_proxy"

// DubboFailoverFilter carries a Dubbo listener's failover (meshgate's own
// dubbo filter; Envoy's dubbo_proxy routes have no retry policy).
const DubboFailoverFilter = "meshgate.filters.dubbo.failover"

// DubboListenerConfig is a port Dubbo2 consumers call (hessian2 over TCP),
// routed by service and method to Dubbo2 or Triple providers.
type DubboListenerConfig struct {
	Name    string            `json:"name"`
	Address string            `json:"address"`
	Routes  []DubboRouteMatch `json:"routes"`
	// Retries: tries on another provider after a failed one (Dubbo's
	// failover: connection failures, provider error statuses, timeouts;
	// never the method's own exception, never a one-way call).
	Retries uint32 `json:"retries,omitempty"`
	// Timeout bounds each try when the consumer sends no "timeout"
	// attachment (default 15s).
	Timeout *Duration `json:"timeout,omitempty"`
}

// DubboRouteMatch sends the calls of one service (or of all, with an empty
// interface), and optionally one method, to a cluster.
type DubboRouteMatch struct {
	Interface string `json:"interface,omitempty"`
	Version   string `json:"version,omitempty"`
	Group     string `json:"group,omitempty"`
	Method    string `json:"method,omitempty"`
	Cluster   string `json:"cluster"`
}

// dubboListener translates a Dubbo2 listener into an Envoy Listener whose
// one filter is dubbo_proxy, its route_config one entry per service in the
// order first seen.
func (t *translator) dubboListener(path string, l *DubboListenerConfig) *listenerv3.Listener {
	if l.Name == "" {
		t.errf(path+".name", "must not be empty")
	}
	if len(l.Routes) == 0 {
		t.errf(path+".routes", "needs at least one")
	}
	routes := &dubbov3.MultipleRouteConfiguration{Name: l.Name}
	proxy := &dubbov3.DubboProxy{StatPrefix: l.Name, ProtocolType: dubbov3.ProtocolType_Dubbo, SerializationType: dubbov3.SerializationType_Hessian2,
		RouteSpecifier: &dubbov3.DubboProxy_MultipleRouteConfig{MultipleRouteConfig: routes}}
	byService := map[[3]string]*dubbov3.RouteConfiguration{}
	for i, r := range l.Routes {
		p := fmt.Sprintf("%s.routes[%d]", path, i)
		if r.Cluster == "" {
			t.errf(p+".cluster", "must not be empty")
		}
		key := [3]string{r.Interface, r.Version, r.Group}
		rc := byService[key]
		if rc == nil {
			rc = &dubbov3.RouteConfiguration{Name: fmt.Sprintf("%s/%d", l.Name, len(byService)), Interface: r.Interface, Version: r.Version, Group: r.Group}
			byService[key] = rc
			routes.RouteConfig = append(routes.RouteConfig, rc)
		}
		route := &dubbov3.Route{Match: &dubbov3.RouteMatch{}, Route: &dubbov3.RouteAction{ClusterSpecifier: &dubbov3.RouteAction_Cluster{Cluster: r.Cluster}}}
		if r.Method != "" {
			route.Match.Method = &dubbov3.MethodMatch{Name: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: r.Method}}}
		}
		rc.Routes = append(rc.Routes, route)
	}
	if l.Retries > 0 || l.Timeout != nil {
		fo := &failoverv1.Failover{Retries: l.Retries}
		if l.Timeout != nil {
			fo.Timeout = durationpb.New(l.Timeout.Duration)
		}
		proxy.DubboFilters = []*dubbov3.DubboFilter{
			{Name: DubboFailoverFilter, Config: mustAny(fo)},
			{Name: "envoy.filters.dubbo.router"},
		}
	}
	return &listenerv3.Listener{
		Name:    l.Name,
		Address: t.socketAddress(path+".address", l.Address),
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{Name: DubboProxyFilter, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(proxy)}}},
		}},
	}
}

// DubboProxy decodes a filter chain's dubbo_proxy filter; ok is false for a
// chain that is not one dubbo_proxy filter.
func DubboProxy(fc *listenerv3.FilterChain) (*dubbov3.DubboProxy, bool) {
	fs := fc.GetFilters()
	if len(fs) != 1 || fs[0].GetName() != DubboProxyFilter {
		return nil, false
	}
	var p dubbov3.DubboProxy
	if err := fs[0].GetTypedConfig().UnmarshalTo(&p); err != nil {
		return nil, false
	}
	return &p, true
}

// DubboRouteConfigs are a dubbo_proxy's route configurations: the
// multiple_route_config, or the deprecated route_config older configs use.
func DubboRouteConfigs(p *dubbov3.DubboProxy) []*dubbov3.RouteConfiguration {
	if m := p.GetMultipleRouteConfig(); m != nil {
		return m.GetRouteConfig()
	}
	//lint:ignore SA1019 Envoy configs written for older versions still use it.
	return p.GetRouteConfig()
}
