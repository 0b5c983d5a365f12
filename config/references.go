package config

import (
	"errors"
	"fmt"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
)

// HTTPConnectionManager decodes the HttpConnectionManager of a filter
// chain. It fails when the chain has other network filters or none.
func HTTPConnectionManager(fc *listenerv3.FilterChain) (*hcmv3.HttpConnectionManager, error) {
	if len(fc.GetFilters()) != 1 {
		return nil, fmt.Errorf("filter chain %q: want exactly one network filter (%s), got %d",
			fc.GetName(), HTTPConnectionManagerFilter, len(fc.GetFilters()))
	}
	f := fc.GetFilters()[0]
	tc := f.GetTypedConfig()
	if tc == nil {
		return nil, fmt.Errorf("filter chain %q: filter %q has no typed_config", fc.GetName(), f.GetName())
	}
	hcm := &hcmv3.HttpConnectionManager{}
	if err := tc.UnmarshalTo(hcm); err != nil {
		return nil, fmt.Errorf("filter chain %q: filter %q: want an HttpConnectionManager, got %s",
			fc.GetName(), f.GetName(), tc.GetTypeUrl())
	}
	return hcm, nil
}

// CheckReferences checks that a self-contained set of resources (one file)
// refers only to what it defines: listeners to route configurations, routes
// to clusters. provided, when set, names clusters that come from
// elsewhere (a registry's).
func CheckReferences(resources []proto.Message, provided func(cluster string) bool) error {
	routes := map[string]*routev3.RouteConfiguration{}
	clusters := map[string]bool{}
	var listeners []*listenerv3.Listener
	for _, m := range resources {
		switch r := m.(type) {
		case *routev3.RouteConfiguration:
			routes[r.GetName()] = r
		case *clusterv3.Cluster:
			clusters[r.GetName()] = true
		case *listenerv3.Listener:
			listeners = append(listeners, r)
		}
	}
	var errs []error
	var tables []*routev3.RouteConfiguration
	for _, l := range listeners {
		for _, fc := range l.GetFilterChains() {
			if proxy, ok := DubboProxy(fc); ok {
				for _, rc := range DubboRouteConfigs(proxy) {
					for j, r := range rc.GetRoutes() {
						if c := r.GetRoute().GetCluster(); c != "" && !clusters[c] && (provided == nil || !provided(c)) {
							errs = append(errs, fmt.Errorf("listener %q: dubbo route %q routes[%d]: cluster %q is not defined", l.GetName(), rc.GetName(), j, c))
						}
					}
				}
				continue
			}
			hcm, err := HTTPConnectionManager(fc)
			if err != nil {
				errs = append(errs, fmt.Errorf("listener %q: %w", l.GetName(), err))
				continue
			}
			if rc := hcm.GetRouteConfig(); rc != nil {
				tables = append(tables, rc)
			}
			if rds := hcm.GetRds(); rds != nil && routes[rds.GetRouteConfigName()] == nil {
				errs = append(errs, fmt.Errorf("listener %q: route config %q is not defined", l.GetName(), rds.GetRouteConfigName()))
			}
		}
	}
	for _, rc := range routes {
		tables = append(tables, rc)
	}
	seen := map[*routev3.RouteConfiguration]bool{}
	for _, rc := range tables {
		if seen[rc] {
			continue
		}
		seen[rc] = true
		for i, vh := range rc.GetVirtualHosts() {
			for j, r := range vh.GetRoutes() {
				for _, c := range routeClusters(r) {
					if !clusters[c] && (provided == nil || !provided(c)) {
						errs = append(errs, fmt.Errorf("route config %q: virtual_hosts[%d] (%s) routes[%d]: cluster %q is not defined",
							rc.GetName(), i, vh.GetName(), j, c))
					}
				}
			}
		}
	}
	return errors.Join(errs...)
}

func routeClusters(r *routev3.Route) []string {
	ra := r.GetRoute()
	if ra == nil {
		return nil
	}
	if c := ra.GetCluster(); c != "" {
		return []string{c}
	}
	var out []string
	for _, w := range ra.GetWeightedClusters().GetClusters() {
		out = append(out, w.GetName())
	}
	return out
}

// IsRegistryClusterName reports whether name has the shape of a cluster a
// Dubbo registry provides: <protocol>|<interface>|<version>|<group>.
func IsRegistryClusterName(name string) bool {
	parts := strings.Split(name, "|")
	return len(parts) == 4 && parts[0] != "" && parts[1] != ""
}
