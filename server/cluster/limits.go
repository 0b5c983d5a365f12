package cluster

import (
	"errors"
	"fmt"
	"math"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// ErrOverflow is returned when a circuit breaker threshold refuses a
// request; the error says which one.
var ErrOverflow = errors.New("upstream overflow")

// Thresholds are Envoy's circuit_breakers thresholds for one routing
// priority, with Envoy's defaults.
type Thresholds struct {
	MaxConnections     int64
	MaxPendingRequests int64
	MaxRequests        int64
	MaxRetries         int64
	// Retry budget: retries in flight may be BudgetPercent of the requests
	// in flight, and at least MinRetryConcurrency. Off when BudgetPercent < 0.
	BudgetPercent       float64
	MinRetryConcurrency int64
}

func defaultThresholds() Thresholds {
	return Thresholds{MaxConnections: 1024, MaxPendingRequests: 1024, MaxRequests: 1024, MaxRetries: 3, BudgetPercent: -1}
}

// thresholdsFromCluster reads circuit_breakers, one set per routing
// priority (DEFAULT, HIGH).
func thresholdsFromCluster(c *clusterv3.Cluster) ([2]Thresholds, error) {
	out := [2]Thresholds{defaultThresholds(), defaultThresholds()}
	for i, t := range c.GetCircuitBreakers().GetThresholds() {
		p := t.GetPriority()
		if p != corev3.RoutingPriority_DEFAULT && p != corev3.RoutingPriority_HIGH {
			return out, fmt.Errorf("circuit_breakers.thresholds[%d].priority %v is not supported", i, p)
		}
		th := &out[p]
		if v := t.GetMaxConnections(); v != nil {
			th.MaxConnections = int64(v.GetValue())
		}
		if v := t.GetMaxPendingRequests(); v != nil {
			th.MaxPendingRequests = int64(v.GetValue())
		}
		if v := t.GetMaxRequests(); v != nil {
			th.MaxRequests = int64(v.GetValue())
		}
		if v := t.GetMaxRetries(); v != nil {
			th.MaxRetries = int64(v.GetValue())
		}
		if b := t.GetRetryBudget(); b != nil {
			th.BudgetPercent = 20
			if v := b.GetBudgetPercent(); v != nil {
				th.BudgetPercent = v.GetValue()
			}
			th.MinRetryConcurrency = 3
			if v := b.GetMinRetryConcurrency(); v != nil {
				th.MinRetryConcurrency = int64(v.GetValue())
			}
		}
	}
	return out, nil
}

// overflowKind is which request threshold a new request would pass.
type overflowKind int

const (
	noOverflow overflowKind = iota
	maxRequestsOverflow
	maxPendingOverflow
)

// overflow checks the request thresholds for a new request at a routing
// priority (0 DEFAULT, 1 HIGH). An HTTP/1.1 cluster carries one request
// per connection, so requests beyond max_connections wait for one and
// count against max_pending_requests.
func (c *Cluster) overflow(priority int) (*Thresholds, overflowKind) {
	th := &c.thresholds[min(max(priority, 0), 1)]
	active := c.Stats.RqActive.Load()
	switch {
	case active >= th.MaxRequests:
		return th, maxRequestsOverflow
	case c.Protocol == HTTP1 && active >= th.MaxConnections && active-th.MaxConnections >= th.MaxPendingRequests:
		return th, maxPendingOverflow
	}
	return th, noOverflow
}

// Admits says whether Admit would let a request in, counting nothing.
func (c *Cluster) Admits(priority int) bool {
	_, kind := c.overflow(priority)
	return kind == noOverflow
}

// Admit lets a new request in, or counts and says which threshold refused
// it.
func (c *Cluster) Admit(priority int) error {
	th, kind := c.overflow(priority)
	switch kind {
	case maxRequestsOverflow:
		c.Stats.RqOverflow.Add(1)
		return fmt.Errorf("%w: cluster %q reached max_requests (%d)", ErrOverflow, c.Name, th.MaxRequests)
	case maxPendingOverflow:
		c.Stats.RqPendingOverflow.Add(1)
		return fmt.Errorf("%w: cluster %q reached max_pending_requests (%d) with max_connections (%d) busy",
			ErrOverflow, c.Name, th.MaxPendingRequests, th.MaxConnections)
	}
	return nil
}

// AcquireRetry reserves a retry under max_retries and the retry budget; it
// returns a release func, or false when the retry must not happen.
func (c *Cluster) AcquireRetry(priority int) (release func(), ok bool) {
	th := &c.thresholds[min(max(priority, 0), 1)]
	limit := th.MaxRetries
	if th.BudgetPercent >= 0 {
		budget := int64(math.Floor(float64(c.Stats.RqActive.Load()) * th.BudgetPercent / 100))
		limit = max(budget, th.MinRetryConcurrency)
	}
	if n := c.Stats.RetriesActive.Add(1); n > limit {
		c.Stats.RetriesActive.Add(-1)
		c.Stats.RetryOverflow.Add(1)
		return nil, false
	}
	c.Stats.RqRetry.Add(1)
	return func() { c.Stats.RetriesActive.Add(-1) }, true
}
