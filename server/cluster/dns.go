package cluster

import (
	"context"
	"net"
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"
)

// dnsLoop resolves a STRICT_DNS or LOGICAL_DNS cluster's hostnames every
// dns_refresh_rate (default 5s, as Envoy) and sets its endpoints: every
// address of every name (STRICT_DNS) or the first address of each
// (LOGICAL_DNS). A failed lookup keeps the last known addresses.
func (c *Cluster) dnsLoop(ctx context.Context) {
	refresh := 5 * time.Second
	//lint:ignore SA1019 Envoy (and Istio) still send the deprecated field.
	if r := c.dnsSpec.GetDnsRefreshRate(); r != nil && r.AsDuration() > 0 {
		refresh = r.AsDuration()
	}
	logical := c.dnsSpec.GetType() == clusterv3.Cluster_LOGICAL_DNS
	network := "ip"
	switch c.dnsSpec.GetDnsLookupFamily() {
	case clusterv3.Cluster_V4_ONLY, clusterv3.Cluster_V4_PREFERRED:
		network = "ip4"
	case clusterv3.Cluster_V6_ONLY:
		network = "ip6"
	}
	var resolver net.Resolver
	known := map[string][]string{}
	for {
		next := proto.Clone(c.dnsSpec.GetLoadAssignment()).(*endpointv3.ClusterLoadAssignment)
		for _, lle := range next.GetEndpoints() {
			var eps []*endpointv3.LbEndpoint
			for _, lbe := range lle.GetLbEndpoints() {
				sa := lbe.GetEndpoint().GetAddress().GetSocketAddress()
				if sa == nil {
					continue
				}
				name := sa.GetAddress()
				ips := []string{name}
				if net.ParseIP(name) == nil {
					lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					addrs, err := resolver.LookupNetIP(lctx, network, name)
					cancel()
					if err == nil && len(addrs) > 0 {
						ips = ips[:0]
						for _, a := range addrs {
							ips = append(ips, a.Unmap().String())
						}
						known[name] = ips
					} else {
						ips = known[name] // keep the last answer
					}
				}
				if logical && len(ips) > 1 {
					ips = ips[:1]
				}
				for _, ip := range ips {
					e := proto.Clone(lbe).(*endpointv3.LbEndpoint)
					e.GetEndpoint().Address = &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
						Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: sa.GetPortValue()},
					}}}
					e.GetEndpoint().Hostname = name + ":" + strconv.FormatUint(uint64(sa.GetPortValue()), 10)
					eps = append(eps, e)
				}
			}
			lle.LbEndpoints = eps
		}
		c.SetEndpoints(next)
		select {
		case <-ctx.Done():
			return
		case <-time.After(refresh):
		}
	}
}
