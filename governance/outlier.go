package governance

import (
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// OutlierConfig is Envoy's OutlierDetection, with its defaults applied by
// DefaultOutlierConfig. Percentages are 0-100.
type OutlierConfig struct {
	Consecutive5xx                     uint32
	EnforcingConsecutive5xx            uint32
	ConsecutiveGatewayFailure          uint32
	EnforcingConsecutiveGatewayFailure uint32
	// SplitExternalLocalOriginErrors counts local failures (connect,
	// timeout, reset) apart from the host's own 5xx answers.
	SplitExternalLocalOriginErrors         bool
	ConsecutiveLocalOriginFailure          uint32
	EnforcingConsecutiveLocalOriginFailure uint32

	Interval           time.Duration
	BaseEjectionTime   time.Duration
	MaxEjectionTime    time.Duration
	MaxEjectionPercent uint32

	SuccessRateMinimumHosts        uint32
	SuccessRateRequestVolume       uint32
	SuccessRateStdevFactor         uint32 // divided by 1000
	EnforcingSuccessRate           uint32
	FailurePercentageThreshold     uint32
	EnforcingFailurePercentage     uint32
	FailurePercentageMinimumHosts  uint32
	FailurePercentageRequestVolume uint32
}

// DefaultOutlierConfig returns Envoy's defaults.
func DefaultOutlierConfig() OutlierConfig {
	return OutlierConfig{
		Consecutive5xx: 5, EnforcingConsecutive5xx: 100,
		ConsecutiveGatewayFailure: 5, EnforcingConsecutiveGatewayFailure: 0,
		ConsecutiveLocalOriginFailure: 5, EnforcingConsecutiveLocalOriginFailure: 100,
		Interval: 10 * time.Second, BaseEjectionTime: 30 * time.Second, MaxEjectionTime: 300 * time.Second,
		MaxEjectionPercent:      10,
		SuccessRateMinimumHosts: 5, SuccessRateRequestVolume: 100, SuccessRateStdevFactor: 1900, EnforcingSuccessRate: 100,
		FailurePercentageThreshold: 85, EnforcingFailurePercentage: 0,
		FailurePercentageMinimumHosts: 5, FailurePercentageRequestVolume: 50,
	}
}

// EjectionKind says why a host was ejected.
type EjectionKind uint8

// The reasons for an ejection, as Envoy counts them.
const (
	EjectConsecutive5xx EjectionKind = iota
	EjectConsecutiveGatewayFailure
	EjectConsecutiveLocalOriginFailure
	EjectSuccessRate
	EjectFailurePercentage
	numEjectionKinds
)

func (k EjectionKind) String() string {
	return [...]string{"consecutive_5xx", "consecutive_gateway_failure", "consecutive_local_origin_failure",
		"success_rate", "failure_percentage"}[k]
}

// Outlier is a cluster's outlier detector. Report is called on the request
// path; Tick every Interval. It calls onChange (outside its lock) whenever a
// host is ejected or returned, so the cluster can rebuild its picker.
type Outlier struct {
	cfg      OutlierConfig
	now      func() time.Time
	rand     func() uint64
	onChange func()

	mu    sync.Mutex
	hosts map[string]*OutlierHost

	// Ejections counts enforced ejections by kind; Active is how many hosts
	// are ejected now.
	Ejections [numEjectionKinds]atomic.Uint64
	Active    atomic.Int64
}

// OutlierHost is one host's detector state.
type OutlierHost struct {
	consec5xx, consecGateway, consecLocal atomic.Uint32
	// Interval counters: answers from the host, and local outcomes.
	total, failed, localTotal, localFailed atomic.Uint64

	ejected   atomic.Bool
	ejectedAt time.Time // under Outlier.mu
	times     int       // ejections so far, decays while healthy; under mu
}

// Ejected reports whether the host is out of rotation.
func (h *OutlierHost) Ejected() bool { return h.ejected.Load() }

// NewOutlier returns a detector; onChange may be nil.
func NewOutlier(cfg OutlierConfig, onChange func()) *Outlier {
	return &Outlier{cfg: cfg, now: time.Now, rand: rand.Uint64, onChange: onChange, hosts: map[string]*OutlierHost{}}
}

// Interval is how often Tick should run.
func (o *Outlier) Interval() time.Duration { return o.cfg.Interval }

// SetHosts makes the detector track exactly these addresses, keeping the
// state of those it already knew, and returns their state in order.
func (o *Outlier) SetHosts(addrs []string) []*OutlierHost {
	o.mu.Lock()
	defer o.mu.Unlock()
	next := make(map[string]*OutlierHost, len(addrs))
	out := make([]*OutlierHost, len(addrs))
	for i, a := range addrs {
		h := o.hosts[a]
		if h == nil {
			h = &OutlierHost{}
		}
		next[a] = h
		out[i] = h
	}
	for a, h := range o.hosts {
		if next[a] == nil && h.ejected.Load() {
			o.Active.Add(-1)
		}
	}
	o.hosts = next
	return out
}

// Report records one request's outcome and ejects the host when a
// consecutive-failure rule says so.
func (o *Outlier) Report(h *OutlierHost, out Outcome) {
	local := out.Local != NoLocalFailure
	if local && o.cfg.SplitExternalLocalOriginErrors {
		h.localTotal.Add(1)
		h.localFailed.Add(1)
		if n := h.consecLocal.Add(1); o.cfg.ConsecutiveLocalOriginFailure > 0 && n >= o.cfg.ConsecutiveLocalOriginFailure {
			h.consecLocal.Store(0)
			o.eject(h, EjectConsecutiveLocalOriginFailure, o.cfg.EnforcingConsecutiveLocalOriginFailure)
		}
		return
	}
	if o.cfg.SplitExternalLocalOriginErrors {
		h.localTotal.Add(1)
		h.consecLocal.Store(0)
	}
	h.total.Add(1)
	if out.Failed() {
		h.failed.Add(1)
	}
	if out.Failed() {
		if n := h.consec5xx.Add(1); o.cfg.Consecutive5xx > 0 && n >= o.cfg.Consecutive5xx {
			h.consec5xx.Store(0)
			o.eject(h, EjectConsecutive5xx, o.cfg.EnforcingConsecutive5xx)
		}
	} else {
		h.consec5xx.Store(0)
	}
	if out.gatewayFailure() {
		if n := h.consecGateway.Add(1); o.cfg.ConsecutiveGatewayFailure > 0 && n >= o.cfg.ConsecutiveGatewayFailure {
			h.consecGateway.Store(0)
			o.eject(h, EjectConsecutiveGatewayFailure, o.cfg.EnforcingConsecutiveGatewayFailure)
		}
	} else {
		h.consecGateway.Store(0)
	}
}

// eject takes h out when the enforcing percentage and max_ejection_percent
// allow it (one host may always be ejected, as in Envoy).
func (o *Outlier) eject(h *OutlierHost, kind EjectionKind, enforcing uint32) {
	if enforcing == 0 || (enforcing < 100 && o.rand()%100 >= uint64(enforcing)) {
		return
	}
	o.mu.Lock()
	ok := o.ejectLocked(h, kind)
	o.mu.Unlock()
	if ok && o.onChange != nil {
		o.onChange()
	}
}

func (o *Outlier) ejectLocked(h *OutlierHost, kind EjectionKind) bool {
	if h.ejected.Load() || o.hosts == nil {
		return false
	}
	active := o.Active.Load()
	if active > 0 && float64(active+1)*100/float64(len(o.hosts)) > float64(o.cfg.MaxEjectionPercent) {
		return false
	}
	h.ejected.Store(true)
	h.ejectedAt = o.now()
	h.times++
	o.Active.Add(1)
	o.Ejections[kind].Add(1)
	return true
}

// ejectionTime is base * times, at most max (but never below base).
func (o *Outlier) ejectionTime(h *OutlierHost) time.Duration {
	d := o.cfg.BaseEjectionTime * time.Duration(h.times)
	return min(d, max(o.cfg.MaxEjectionTime, o.cfg.BaseEjectionTime))
}

// Tick runs the interval work: returns hosts whose ejection time is over,
// lets healthy hosts' ejection count decay, and applies the success-rate
// and failure-percentage rules to the interval's counts.
func (o *Outlier) Tick() {
	o.mu.Lock()
	changed := false
	now := o.now()
	type sample struct {
		h             *OutlierHost
		total, failed uint64
	}
	var samples []sample
	for _, h := range o.hosts {
		total, failed := h.total.Swap(0), h.failed.Swap(0)
		h.localTotal.Swap(0)
		h.localFailed.Swap(0)
		if h.ejected.Load() {
			if now.Sub(h.ejectedAt) >= o.ejectionTime(h) {
				h.ejected.Store(false)
				o.Active.Add(-1)
				h.consec5xx.Store(0)
				h.consecGateway.Store(0)
				h.consecLocal.Store(0)
				changed = true
			}
			continue
		}
		if h.times > 0 {
			h.times--
		}
		samples = append(samples, sample{h, total, failed})
	}
	// Success rate: hosts far below the mean go.
	var rates []float64
	var rated []*OutlierHost
	for _, s := range samples {
		if s.total >= uint64(o.cfg.SuccessRateRequestVolume) && s.total > 0 {
			rates = append(rates, 100*float64(s.total-s.failed)/float64(s.total))
			rated = append(rated, s.h)
		}
	}
	if o.cfg.EnforcingSuccessRate > 0 && len(rates) >= int(max(o.cfg.SuccessRateMinimumHosts, 1)) {
		mean, stdev := meanStdev(rates)
		threshold := mean - stdev*float64(o.cfg.SuccessRateStdevFactor)/1000
		for i, r := range rates {
			if r < threshold && o.enforced(o.cfg.EnforcingSuccessRate) && o.ejectLocked(rated[i], EjectSuccessRate) {
				changed = true
			}
		}
	}
	// Failure percentage: hosts failing too often go, whatever the others do.
	var eligible []sample
	for _, s := range samples {
		if s.total >= uint64(o.cfg.FailurePercentageRequestVolume) && s.total > 0 {
			eligible = append(eligible, s)
		}
	}
	if o.cfg.EnforcingFailurePercentage > 0 && len(eligible) >= int(max(o.cfg.FailurePercentageMinimumHosts, 1)) {
		for _, s := range eligible {
			if 100*float64(s.failed)/float64(s.total) >= float64(o.cfg.FailurePercentageThreshold) &&
				o.enforced(o.cfg.EnforcingFailurePercentage) && o.ejectLocked(s.h, EjectFailurePercentage) {
				changed = true
			}
		}
	}
	o.mu.Unlock()
	if changed && o.onChange != nil {
		o.onChange()
	}
}

func (o *Outlier) enforced(pct uint32) bool { return pct >= 100 || o.rand()%100 < uint64(pct) }

func meanStdev(xs []float64) (mean, stdev float64) {
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	for _, x := range xs {
		stdev += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(stdev / float64(len(xs)))
}
