package cluster

import (
	"fmt"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"

	"github.com/meshgate/meshgate/governance"
)

// lbConfig is a cluster's balancing policy, read from Envoy's fields.
type lbConfig struct {
	builder   governance.Builder
	opts      governance.LBOptions
	slowStart slowStart
}

type slowStart struct {
	window                 time.Duration
	aggression, minPercent float64
}

// lbFromCluster reads lb_policy with its config, common_lb_config and slow
// start.
func lbFromCluster(c *clusterv3.Cluster) (lbConfig, error) {
	var out lbConfig
	switch c.GetLbPolicy() {
	case clusterv3.Cluster_ROUND_ROBIN:
		out.builder = governance.RoundRobin{}
		out.slowStart = readSlowStart(c.GetRoundRobinLbConfig().GetSlowStartConfig())
	case clusterv3.Cluster_LEAST_REQUEST:
		cfg := c.GetLeastRequestLbConfig()
		out.builder = governance.LeastRequest{ChoiceCount: int(cfg.GetChoiceCount().GetValue())}
		out.slowStart = readSlowStart(cfg.GetSlowStartConfig())
	case clusterv3.Cluster_RANDOM:
		out.builder = governance.Random{}
	case clusterv3.Cluster_RING_HASH:
		cfg := c.GetRingHashLbConfig()
		if cfg.GetHashFunction() != clusterv3.Cluster_RingHashLbConfig_XX_HASH {
			return out, fmt.Errorf("ring_hash_lb_config.hash_function %v is not supported (XX_HASH is)", cfg.GetHashFunction())
		}
		out.builder = governance.RingHash{
			MinRingSize: cfg.GetMinimumRingSize().GetValue(),
			MaxRingSize: cfg.GetMaximumRingSize().GetValue(),
		}
	case clusterv3.Cluster_CLUSTER_PROVIDED:
		if c.GetType() != clusterv3.Cluster_ORIGINAL_DST {
			return out, fmt.Errorf("lb_policy CLUSTER_PROVIDED needs an ORIGINAL_DST cluster")
		}
		out.builder = governance.RoundRobin{} // never used: the cluster refuses requests
	case clusterv3.Cluster_MAGLEV:
		out.builder = governance.Maglev{TableSize: c.GetMaglevLbConfig().GetTableSize().GetValue()}
	default:
		return out, fmt.Errorf("lb_policy %v is not supported", c.GetLbPolicy())
	}
	if c.GetLoadBalancingPolicy() != nil {
		return out, fmt.Errorf("load_balancing_policy (typed policies) is not supported yet; use lb_policy")
	}
	common := c.GetCommonLbConfig()
	if p := common.GetHealthyPanicThreshold(); p != nil {
		out.opts.PanicThreshold = p.GetValue()
		if out.opts.PanicThreshold == 0 {
			out.opts.PanicThreshold = -1 // Envoy: 0 turns panic mode off
		}
	}
	out.opts.LocalityWeighted = common.GetLocalityWeightedLbConfig() != nil
	return out, nil
}

func readSlowStart(s *clusterv3.Cluster_SlowStartConfig) slowStart {
	if s == nil {
		return slowStart{}
	}
	out := slowStart{window: s.GetSlowStartWindow().AsDuration(), aggression: 1, minPercent: 10}
	if a := s.GetAggression(); a != nil {
		out.aggression = a.GetDefaultValue()
	}
	if m := s.GetMinWeightPercent(); m != nil {
		out.minPercent = m.GetValue()
	}
	return out
}
