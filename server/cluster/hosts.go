package cluster

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	"github.com/meshgate/meshgate/governance"
)

// Host is one upstream endpoint: where it is, what EDS says of it, and its
// counters. Hosts are kept by address across endpoint updates.
type Host struct {
	Address        string
	Weight         uint32
	Priority       uint32
	Locality       string
	LocalityWeight uint32
	// EDSHealth is the health status the endpoint assignment gave.
	EDSHealth corev3.HealthStatus
	// Added is when the host joined the cluster (slow start counts from it).
	Added time.Time

	RqTotal       atomic.Uint64
	RqActive      atomic.Int64
	RqError       atomic.Uint64
	CxTotal       atomic.Uint64
	CxActive      atomic.Int64
	CxConnectFail atomic.Uint64
}

// Healthy reports whether the host takes traffic outside panic mode.
func (h *Host) Healthy() bool {
	switch h.EDSHealth {
	case corev3.HealthStatus_UNKNOWN, corev3.HealthStatus_HEALTHY:
		return true
	}
	return false
}

// HealthFlags describes the host's health the way Envoy's /clusters does
// ("healthy", or "/"-joined reasons such as "/eds_health_unhealthy").
func (h *Host) HealthFlags() string {
	var flags []string
	if !h.Healthy() {
		flags = append(flags, "/eds_health_"+strings.ToLower(h.EDSHealth.String()))
	}
	if len(flags) == 0 {
		return "healthy"
	}
	return strings.Join(flags, "")
}

type hostSet struct {
	hosts  []*Host
	picker governance.Picker
}

// Pick chooses a host for one request, avoiding the hosts in tried (the
// hosts earlier attempts of the request used) when it can.
func (c *Cluster) Pick(info governance.PickInfo, tried []*Host) (*Host, error) {
	hs := c.hosts.Load()
	if len(tried) > 0 {
		info.Exclude = func(i int) bool { return slices.Contains(tried, hs.hosts[i]) }
	}
	i, err := hs.picker.Pick(info)
	if err != nil || i < 0 || i >= len(hs.hosts) {
		c.Stats.NoHealthyUpstrm.Add(1)
		return nil, fmt.Errorf("cluster %q: %w", c.Name, ErrNoHealthyUpstream)
	}
	return hs.hosts[i], nil
}

// Hosts returns the current hosts.
func (c *Cluster) Hosts() []*Host { return c.hosts.Load().hosts }

// SetEndpoints replaces the host set from a ClusterLoadAssignment: every
// endpoint with its weight, priority, locality and health. A nil
// assignment empties the cluster.
func (c *Cluster) SetEndpoints(cla *endpointv3.ClusterLoadAssignment) {
	c.mu.Lock()
	defer c.mu.Unlock()
	known := make(map[string]*Host, len(c.members))
	for _, h := range c.members {
		known[h.Address] = h
	}
	now := c.now()
	var members []*Host
	seen := map[string]bool{}
	for _, lle := range cla.GetEndpoints() {
		loc := lle.GetLocality()
		locality := loc.GetRegion() + "/" + loc.GetZone() + "/" + loc.GetSubZone()
		for _, lbe := range lle.GetLbEndpoints() {
			sa := lbe.GetEndpoint().GetAddress().GetSocketAddress()
			if sa == nil {
				continue
			}
			addr := net.JoinHostPort(sa.GetAddress(), strconv.FormatUint(uint64(sa.GetPortValue()), 10))
			if seen[addr] {
				continue
			}
			seen[addr] = true
			h := known[addr]
			if h == nil {
				h = &Host{Address: addr, Added: now}
			}
			// Fields a picker reads are rewritten only here, under c.mu,
			// before the new picker is published.
			h.Weight = max(lbe.GetLoadBalancingWeight().GetValue(), 1)
			h.Priority = lle.GetPriority()
			h.Locality = locality
			h.LocalityWeight = lle.GetLoadBalancingWeight().GetValue()
			h.EDSHealth = lbe.GetHealthStatus()
			members = append(members, h)
		}
	}
	c.members = members
	c.overprovisioning = 0
	if f := cla.GetPolicy().GetOverprovisioningFactor(); f != nil {
		c.overprovisioning = float64(f.GetValue()) / 100
	}
	c.Stats.MembershipTotal.Store(int64(len(members)))
	c.rebuildLocked()
}

// rebuildLocked publishes a new picker over the members. While a host is
// in its slow-start window the picker is rebuilt every second as its
// weight grows.
func (c *Cluster) rebuildLocked() {
	now := c.now()
	hs := make([]governance.Host, len(c.members))
	ramping := false
	for i, h := range c.members {
		w := h.Weight
		if ss := c.lb.slowStart; ss.window > 0 {
			age := now.Sub(h.Added)
			// Weights are scaled so that a fraction of weight 1 still counts.
			w = governance.SlowStartWeight(w*100, age, ss.window, ss.aggression, ss.minPercent)
			ramping = ramping || age < ss.window
		}
		hs[i] = governance.Host{
			Endpoint: governance.Endpoint{
				Address: h.Address, Weight: w, Priority: h.Priority,
				Locality: h.Locality, LocalityWeight: h.LocalityWeight, Active: &h.RqActive,
			},
			Healthy: h.Healthy(),
		}
	}
	opts := c.lb.opts
	opts.Overprovisioning = c.overprovisioning
	c.hosts.Store(&hostSet{hosts: slices.Clone(c.members), picker: governance.NewPicker(c.lb.builder, hs, opts)})
	if ramping && !c.closed {
		if c.timer == nil {
			c.timer = time.AfterFunc(time.Second, c.rebuild)
		} else {
			c.timer.Reset(time.Second)
		}
	}
}

func (c *Cluster) rebuild() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.rebuildLocked()
	}
}
