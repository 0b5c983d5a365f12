package cluster

import "strings"

// ServicePrefix names a Dubbo service independent of protocol in a route's
// cluster: service|<interface>|<version>|<group>. The call goes to the
// registry's tri|... or dubbo|... cluster of that service, whichever has
// providers.
const ServicePrefix = "service|"

// ResolveService resolves a service|... name with resolve: the name and
// cluster of the service's Triple providers, else of its Dubbo2 ones (the
// other way round when preferDubbo), preferring a cluster with hosts; c is
// nil when neither is known yet. ok is false for a name without the
// prefix.
func ResolveService(resolve func(string) (*Cluster, bool), name string, preferDubbo bool) (target string, c *Cluster, ok bool) {
	rest, ok := strings.CutPrefix(name, ServicePrefix)
	if !ok || resolve == nil {
		return "", nil, false
	}
	order := [2]string{"tri|", "dubbo|"}
	if preferDubbo {
		order = [2]string{"dubbo|", "tri|"}
	}
	for _, proto := range order {
		if cl, found := resolve(proto + rest); found {
			if len(cl.Hosts()) > 0 {
				return proto + rest, cl, true
			}
			if c == nil {
				target, c = proto+rest, cl
			}
		}
	}
	if c == nil {
		return name, nil, true // neither is known yet: "not configured"
	}
	return target, c, true
}
