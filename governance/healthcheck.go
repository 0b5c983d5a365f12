package governance

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Probe checks one host once. It is called from the host's check loop,
// with the check's timeout on ctx.
type Probe interface {
	Check(ctx context.Context, address string) error
	// Forget releases what the probe keeps for a host (a connection).
	Forget(address string)
	// Close releases everything.
	Close()
}

// HealthCheckConfig is Envoy's HealthCheck timing and thresholds.
type HealthCheckConfig struct {
	Timeout  time.Duration
	Interval time.Duration
	// IntervalJitter adds up to this much to each interval, and
	// IntervalJitterPercent up to that share of the interval.
	IntervalJitter        time.Duration
	IntervalJitterPercent uint32
	// InitialJitter spreads the first checks of many hosts.
	InitialJitter time.Duration
	// UnhealthyInterval, when set, is the interval for unhealthy hosts.
	UnhealthyInterval time.Duration
	// UnhealthyThreshold failures in a row make a healthy host unhealthy;
	// HealthyThreshold successes make an unhealthy host healthy. A new
	// host needs one success.
	UnhealthyThreshold, HealthyThreshold uint32
}

// HealthChecker actively checks every host of a cluster, each on its own
// loop. onChange is called when a host's health flips.
type HealthChecker struct {
	cfg      HealthCheckConfig
	probe    Probe
	onChange func()

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	hosts map[string]*HealthState

	// Attempts, Successes and Failures count checks.
	Attempts, Successes, Failures atomic.Uint64
}

// HealthState is one host's active health.
type HealthState struct {
	healthy atomic.Bool
	pending atomic.Bool // no check has passed yet
	stop    context.CancelFunc
	// loop state, owned by the host's goroutine
	successes, failures uint32
}

// Healthy reports whether the last checks passed.
func (h *HealthState) Healthy() bool { return h.healthy.Load() }

// Pending reports whether the host has not passed a check yet.
func (h *HealthState) Pending() bool { return h.pending.Load() }

// NewHealthChecker starts nothing until SetHosts.
func NewHealthChecker(cfg HealthCheckConfig, probe Probe, onChange func()) *HealthChecker {
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	cfg.UnhealthyThreshold = max(cfg.UnhealthyThreshold, 1)
	cfg.HealthyThreshold = max(cfg.HealthyThreshold, 1)
	ctx, cancel := context.WithCancel(context.Background())
	return &HealthChecker{cfg: cfg, probe: probe, onChange: onChange, ctx: ctx, cancel: cancel, hosts: map[string]*HealthState{}}
}

// SetHosts checks exactly these addresses from now on and returns their
// states in order: known hosts keep theirs, new ones start pending.
func (hc *HealthChecker) SetHosts(addrs []string) []*HealthState {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	out := make([]*HealthState, len(addrs))
	next := make(map[string]*HealthState, len(addrs))
	for i, a := range addrs {
		h := hc.hosts[a]
		if h == nil && hc.ctx.Err() == nil {
			h = &HealthState{}
			h.pending.Store(true)
			ctx, stop := context.WithCancel(hc.ctx)
			h.stop = stop
			hc.wg.Add(1)
			go func() {
				defer hc.wg.Done()
				hc.loop(ctx, a, h)
			}()
		}
		if h == nil {
			h = &HealthState{}
		}
		next[a] = h
		out[i] = h
	}
	for a, h := range hc.hosts {
		if next[a] == nil {
			h.stop()
			hc.probe.Forget(a)
		}
	}
	hc.hosts = next
	return out
}

// Close stops every loop and waits for them.
func (hc *HealthChecker) Close() {
	hc.cancel()
	hc.wg.Wait()
	hc.probe.Close()
}

func (hc *HealthChecker) loop(ctx context.Context, addr string, h *HealthState) {
	wait := time.Duration(0)
	if hc.cfg.InitialJitter > 0 {
		wait = time.Duration(rand.Int64N(int64(hc.cfg.InitialJitter)))
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, hc.cfg.Timeout)
		err := hc.probe.Check(cctx, addr)
		cancel()
		if ctx.Err() != nil {
			return
		}
		hc.Attempts.Add(1)
		if hc.record(h, err == nil) && hc.onChange != nil {
			hc.onChange()
		}
		t.Reset(hc.next(h))
	}
}

// record applies one result and reports whether the host's health flipped.
func (hc *HealthChecker) record(h *HealthState, ok bool) bool {
	if ok {
		hc.Successes.Add(1)
		h.failures = 0
		h.successes++
		if h.healthy.Load() {
			return false
		}
		if h.pending.Load() || h.successes >= hc.cfg.HealthyThreshold {
			h.pending.Store(false)
			h.healthy.Store(true)
			return true
		}
		return false
	}
	hc.Failures.Add(1)
	h.successes = 0
	h.failures++
	if h.pending.Load() {
		return false
	}
	if h.healthy.Load() && h.failures >= hc.cfg.UnhealthyThreshold {
		h.healthy.Store(false)
		return true
	}
	return false
}

func (hc *HealthChecker) next(h *HealthState) time.Duration {
	d := hc.cfg.Interval
	if !h.healthy.Load() && hc.cfg.UnhealthyInterval > 0 {
		d = hc.cfg.UnhealthyInterval
	}
	jitter := hc.cfg.IntervalJitter
	if p := hc.cfg.IntervalJitterPercent; p > 0 {
		jitter += d * time.Duration(p) / 100
	}
	if jitter > 0 {
		d += time.Duration(rand.Int64N(int64(jitter)))
	}
	return d
}
