package governance

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
)

// BreakerConfig configures a per-endpoint circuit breaker. It trips on
// ConsecutiveFailures in a row, or when FailureRatio of at least
// MinRequests requests failed within Interval; it then stays open for
// OpenFor and lets HalfOpenRequests probes through before closing again.
type BreakerConfig struct {
	ConsecutiveFailures uint32
	FailureRatio        float64
	MinRequests         uint32
	// Interval clears the closed-state counts periodically (0: never).
	Interval time.Duration
	// OpenFor defaults to 30s, HalfOpenRequests to 1.
	OpenFor          time.Duration
	HalfOpenRequests uint32
}

// Enabled reports whether the config trips on anything.
func (c BreakerConfig) Enabled() bool { return c.ConsecutiveFailures > 0 || c.FailureRatio > 0 }

// EndpointBreaker is one host's breaker, on sony/gobreaker.
type EndpointBreaker struct {
	cb *gobreaker.TwoStepCircuitBreaker[struct{}]
	// Opens counts transitions to open.
	Opens atomic.Uint64
}

// errFailed marks a failed request to gobreaker.
var errFailed = errors.New("request failed")

// NewEndpointBreaker returns a breaker named after its host. onChange is
// called on every state change (from gobreaker's lock: it must not call
// back into the breaker).
func NewEndpointBreaker(name string, cfg BreakerConfig, onChange func(from, to string)) *EndpointBreaker {
	b := &EndpointBreaker{}
	st := gobreaker.Settings{
		Name:        name,
		MaxRequests: max(cfg.HalfOpenRequests, 1),
		Interval:    cfg.Interval,
		Timeout:     cfg.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			if cfg.ConsecutiveFailures > 0 && c.ConsecutiveFailures >= cfg.ConsecutiveFailures {
				return true
			}
			return cfg.FailureRatio > 0 && c.Requests >= max(cfg.MinRequests, 1) &&
				float64(c.TotalFailures)/float64(c.Requests) >= cfg.FailureRatio
		},
		OnStateChange: func(_ string, from, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				b.Opens.Add(1)
			}
			if onChange != nil {
				onChange(from.String(), to.String())
			}
		},
	}
	if st.Timeout == 0 {
		st.Timeout = 30 * time.Second
	}
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](st)
	return b
}

// Allow asks to send one request. When it may, done must be called with the
// outcome; when it may not (open, or half-open with its probes out), ok is
// false and another host should be chosen.
func (b *EndpointBreaker) Allow() (done func(Outcome), ok bool) {
	d, err := b.cb.Allow()
	if err != nil {
		return nil, false
	}
	return func(o Outcome) {
		if o.Failed() {
			d(errFailed)
		} else {
			d(nil)
		}
	}, true
}

// State is "closed", "half-open" or "open"; reading it lets an open
// breaker whose time is up move to half-open.
func (b *EndpointBreaker) State() string { return b.cb.State().String() }

// Open reports whether the breaker refuses requests now.
func (b *EndpointBreaker) Open() bool { return b.cb.State() == gobreaker.StateOpen }
