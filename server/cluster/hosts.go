package cluster

import (
	"crypto/tls"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/governance"
)

// Host is one upstream endpoint: where it is, what EDS says of it, and its
// counters. Hosts are kept by address across endpoint updates.
type Host struct {
	Address string
	// Added is when the host joined the cluster (slow start counts from it).
	Added time.Time
	// spec is what the endpoint assignment says of the host; an update
	// swaps it whole, so readers never see half of one.
	spec atomic.Pointer[HostSpec]

	RqTotal       atomic.Uint64
	RqActive      atomic.Int64
	RqError       atomic.Uint64
	CxTotal       atomic.Uint64
	CxActive      atomic.Int64
	CxConnectFail atomic.Uint64

	outlier *governance.OutlierHost     // nil without outlier detection
	breaker *governance.EndpointBreaker // nil without an endpoint breaker
	hc      *governance.HealthState     // nil without active health checks
}

// HostSpec is what an endpoint assignment says of a host.
type HostSpec struct {
	Weight         uint32
	Priority       uint32
	Locality       string // region/zone/sub_zone
	LocalityWeight uint32
	// EDSHealth is the health status the assignment gave.
	EDSHealth corev3.HealthStatus
	// TLS is the endpoint's transport socket (nil: plaintext), chosen by
	// its metadata from the cluster's transport_socket_matches.
	TLS *tls.Config
	// Workload is who the endpoint is, from istiod's endpoint metadata
	// (filter_metadata istio.workload); zero when not sent.
	Workload Workload
	// DubboParams are a Dubbo provider's URL parameters (its endpoint's
	// meshgate.dubbo metadata), which Dubbo's traffic rules match on; nil
	// for other endpoints.
	DubboParams map[string]string
}

// dubboParamsOf reads a Dubbo provider's parameters from its endpoint's
// metadata.
func dubboParamsOf(lbe *endpointv3.LbEndpoint) map[string]string {
	fields := lbe.GetMetadata().GetFilterMetadata()[config.DubboMetadata].GetFields()["params"].GetStructValue().GetFields()
	if len(fields) == 0 {
		return nil
	}
	out := make(map[string]string, len(fields))
	for k, v := range fields {
		out[k] = v.GetStringValue()
	}
	return out
}

// Workload is an endpoint's workload as istiod describes it in EDS
// metadata: "name;namespace;canonical service;canonical revision;cluster".
type Workload struct {
	Name, Namespace, App, Version, Cluster string
}

// workloadOf reads an endpoint's istio.workload metadata.
func workloadOf(lbe *endpointv3.LbEndpoint) Workload {
	v := lbe.GetMetadata().GetFilterMetadata()["istio"].GetFields()["workload"].GetStringValue()
	if v == "" {
		return Workload{}
	}
	p := strings.SplitN(v, ";", 5)
	for len(p) < 5 {
		p = append(p, "")
	}
	if p[3] == "" {
		p[3] = "latest" // istiod leaves out its default revision
	}
	return Workload{Name: p[0], Namespace: p[1], App: p[2], Version: p[3], Cluster: p[4]}
}

// Spec returns the host's current weight, priority, locality and EDS
// health.
func (h *Host) Spec() *HostSpec { return h.spec.Load() }

func (h *Host) edsHealthy() bool {
	switch h.Spec().EDSHealth {
	case corev3.HealthStatus_UNKNOWN, corev3.HealthStatus_HEALTHY:
		return true
	}
	return false
}

// Healthy reports whether the host takes traffic outside panic mode: EDS
// calls it healthy, outlier detection has not ejected it, and its breaker
// is not open.
func (h *Host) Healthy() bool {
	return h.edsHealthy() && !h.Ejected() && (h.breaker == nil || !h.breaker.Open()) && (h.hc == nil || h.hc.Healthy())
}

// FailedActiveHealthCheck reports whether active health checks fail (or
// have not passed yet) for the host.
func (h *Host) FailedActiveHealthCheck() bool { return h.hc != nil && !h.hc.Healthy() }

// PendingActiveHealthCheck reports whether no active check has passed yet.
func (h *Host) PendingActiveHealthCheck() bool { return h.hc != nil && h.hc.Pending() }

// Ejected reports whether outlier detection holds the host out.
func (h *Host) Ejected() bool { return h.outlier != nil && h.outlier.Ejected() }

// BreakerState is the endpoint breaker's state ("closed", "open",
// "half-open"), or "" without a breaker.
func (h *Host) BreakerState() string {
	if h.breaker == nil {
		return ""
	}
	return h.breaker.State()
}

// BreakerOpens counts the endpoint breaker's trips.
func (h *Host) BreakerOpens() uint64 {
	if h.breaker == nil {
		return 0
	}
	return h.breaker.Opens.Load()
}

// HealthFlags describes the host's health the way Envoy's /clusters does
// ("healthy", or "/"-joined reasons: "/eds_health_unhealthy",
// "/failed_outlier_check", and meshgate's "/breaker_open").
func (h *Host) HealthFlags() string {
	var flags []string
	if !h.edsHealthy() {
		flags = append(flags, "/eds_health_"+strings.ToLower(h.Spec().EDSHealth.String()))
	}
	if h.hc != nil && !h.hc.Healthy() {
		flags = append(flags, "/failed_active_hc")
		if h.hc.Pending() {
			flags = append(flags, "/pending_active_hc")
		}
	}
	if h.Ejected() {
		flags = append(flags, "/failed_outlier_check")
	}
	if h.breaker != nil && h.breaker.Open() {
		flags = append(flags, "/breaker_open")
	}
	if len(flags) == 0 {
		return "healthy"
	}
	return strings.Join(flags, "")
}

type hostSet struct {
	hosts  []*Host
	picker governance.Picker
	// views are the hosts as Dubbo's traffic rules see them (built on
	// first use).
	views providerViews
}

// Pick chooses a host for one request, avoiding the hosts in tried (the
// hosts earlier attempts of the request used) when it can.
func (c *Cluster) Pick(info governance.PickInfo, tried []*Host) (*Host, error) {
	if c.unsupported != "" {
		return nil, fmt.Errorf("cluster %q: %s", c.Name, c.unsupported)
	}
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
	socketChanged := false
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
				if c.breakerCfg.Enabled() {
					h.breaker = governance.NewEndpointBreaker(c.Name+"/"+addr, c.breakerCfg, c.breakerChanged)
				}
			}
			sock := c.socks.forEndpoint(lbe, lle)
			if old := h.Spec(); old != nil && old.TLS != sock {
				// Its pooled connections are of its old socket.
				socketChanged = true
			}
			h.spec.Store(&HostSpec{
				Weight:         max(lbe.GetLoadBalancingWeight().GetValue(), 1),
				Priority:       lle.GetPriority(),
				Locality:       locality,
				LocalityWeight: lle.GetLoadBalancingWeight().GetValue(),
				EDSHealth:      lbe.GetHealthStatus(),
				TLS:            sock,
				Workload:       workloadOf(lbe),
				DubboParams:    dubboParamsOf(lbe),
			})
			members = append(members, h)
		}
	}
	c.members = members
	if c.outlier != nil {
		addrs := make([]string, len(members))
		for i, h := range members {
			addrs[i] = h.Address
		}
		for i, oh := range c.outlier.SetHosts(addrs) {
			if members[i].outlier == nil { // set once, before the host is published
				members[i].outlier = oh
			}
		}
	}
	if c.hc != nil {
		addrs := make([]string, len(members))
		for i, h := range members {
			addrs[i] = h.Address
		}
		for i, hs := range c.hc.SetHosts(addrs) {
			if members[i].hc == nil { // set once, before the host is published
				members[i].hc = hs
			}
		}
	}
	c.overprovisioning = 0
	if f := cla.GetPolicy().GetOverprovisioningFactor(); f != nil {
		c.overprovisioning = float64(f.GetValue()) / 100
	}
	c.Stats.MembershipTotal.Store(int64(len(members)))
	c.rebuildLocked()
	if socketChanged {
		// An endpoint moved between plaintext and mTLS (its tlsMode label
		// changed): idle connections go; busy ones finish and stay
		// pooled until idle (a known gap).
		c.CloseIdle()
	}
	if c.Dubbo != nil {
		c.Dubbo.Forget(seen) // providers that left: their connections drain and close
	}
}

// rebuildLocked publishes a new picker over the members. While a host is
// in its slow-start window the picker is rebuilt every second as its
// weight grows.
func (c *Cluster) rebuildLocked() {
	now := c.now()
	hs := make([]governance.Host, len(c.members))
	ramping := false
	for i, h := range c.members {
		spec := h.Spec()
		w := spec.Weight
		if ss := c.lb.slowStart; ss.window > 0 {
			age := now.Sub(h.Added)
			// Weights are scaled so that a fraction of weight 1 still counts.
			w = governance.SlowStartWeight(w*100, age, ss.window, ss.aggression, ss.minPercent)
			ramping = ramping || age < ss.window
		}
		hs[i] = governance.Host{
			Endpoint: governance.Endpoint{
				Address: h.Address, Weight: w, Priority: spec.Priority,
				Locality: spec.Locality, LocalityWeight: spec.LocalityWeight, Active: &h.RqActive,
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

// breakerChanged runs inside gobreaker's lock: the rebuild, which reads
// breaker states, happens on its own. An open breaker gets another rebuild
// when it may turn half-open, so its host is probed again.
func (c *Cluster) breakerChanged(_, to string) {
	time.AfterFunc(0, c.rebuild)
	if to == "open" {
		openFor := c.breakerCfg.OpenFor
		if openFor == 0 {
			openFor = 30 * time.Second // gobreaker's default, as NewEndpointBreaker sets it
		}
		time.AfterFunc(openFor, c.rebuild)
	}
}

func (c *Cluster) rebuild() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.rebuildLocked()
	}
}

// Attempt is one try of a request at one host. End must be called once.
type Attempt struct {
	Host        *Host
	c           *Cluster
	breakerDone func(governance.Outcome)
}

// Begin picks a host for one attempt (avoiding tried hosts when it can,
// and hosts whose breaker refuses) and counts it as in flight.
func (c *Cluster) Begin(info governance.PickInfo, tried []*Host) (*Attempt, error) {
	return c.beginWith(tried, "every host tried", func(excluded []*Host) (*Host, error) { return c.Pick(info, excluded) })
}

// beginWith counts an attempt at the host pick chooses, picking again
// (the refused host excluded) when its breaker refuses, a few times.
func (c *Cluster) beginWith(tried []*Host, which string, pick func(excluded []*Host) (*Host, error)) (*Attempt, error) {
	excluded := tried
	for range 4 {
		h, err := pick(excluded)
		if err != nil {
			return nil, err
		}
		if a, ok := c.BeginOn(h); ok {
			return a, nil
		}
		excluded = append(slices.Clip(excluded), h)
	}
	c.Stats.NoHealthyUpstrm.Add(1)
	return nil, fmt.Errorf("cluster %q: the endpoint breakers refused %s: %w", c.Name, which, ErrNoHealthyUpstream)
}

// BeginOn counts an attempt at h, a host Pick chose, as in flight; false
// when h's breaker refuses it (nothing counted).
func (c *Cluster) BeginOn(h *Host) (*Attempt, bool) {
	var done func(governance.Outcome)
	if h.breaker != nil {
		d, ok := h.breaker.Allow()
		if !ok {
			return nil, false
		}
		done = d
	}
	c.Stats.RqTotal.Add(1)
	c.Stats.RqActive.Add(1)
	h.RqTotal.Add(1)
	h.RqActive.Add(1)
	return &Attempt{Host: h, c: c, breakerDone: done}, true
}

// End records how the attempt ended. With judge false (the client went
// away), the outcome is not held against the host.
func (a *Attempt) End(out governance.Outcome, judge bool) {
	a.c.Stats.RqActive.Add(-1)
	a.Host.RqActive.Add(-1)
	if !judge {
		out = governance.Outcome{Status: 200}
	}
	if out.Failed() {
		a.Host.RqError.Add(1)
		a.c.Stats.Rq5xx.Add(1)
	}
	if judge && a.Host.outlier != nil {
		a.c.outlier.Report(a.Host.outlier, out)
	}
	if a.breakerDone != nil {
		a.breakerDone(out)
	}
}
