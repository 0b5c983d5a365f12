// Package overload sheds load before the process runs out of memory, as
// Envoy's overload manager does: a monitor reads the Go heap against a
// limit every interval, and each action turns on while the heap's share
// of the limit is at or past the action's threshold.
package overload

import (
	"context"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Action is an overload action, under Envoy's name.
type Action int

const (
	// DisableHTTPKeepalive: HTTP/1.x answers carry Connection: close and
	// idle HTTP/1.x connections close; open HTTP/2 connections get GOAWAY
	// (envoy.overload_actions.disable_http_keepalive).
	DisableHTTPKeepalive Action = iota
	// StopAcceptingRequests: new requests and streams are answered 503
	// (gRPC: RESOURCE_EXHAUSTED) without going upstream; those in flight
	// finish (envoy.overload_actions.stop_accepting_requests).
	StopAcceptingRequests
	numActions
)

// Name is the action's Envoy name.
func (a Action) Name() string {
	switch a {
	case DisableHTTPKeepalive:
		return "envoy.overload_actions.disable_http_keepalive"
	case StopAcceptingRequests:
		return "envoy.overload_actions.stop_accepting_requests"
	}
	return "unknown"
}

// Defaults of Config.
const (
	DefaultInterval          = time.Second // Envoy's refresh_interval
	DefaultKeepaliveShare    = 0.90
	DefaultStopRequestsShare = 0.95
)

// Config configures a Manager.
type Config struct {
	// Thresholds are each action's share of the limit (0: its default).
	Thresholds [numActions]float64
	// Interval is how often the heap is read (0: DefaultInterval).
	Interval time.Duration
}

// Limit is the heap limit when the config gives none: GOMEMLIMIT when set, else the
// cgroup v2 memory.max of the process, else 0 (no limit known: no
// overload manager). from says where it came from.
func Limit() (limit uint64, from string) {
	if l := debug.SetMemoryLimit(-1); l > 0 && l < math.MaxInt64 {
		return uint64(l), "GOMEMLIMIT"
	}
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && v > 0 {
			return v, "cgroup memory.max"
		}
	}
	return 0, ""
}

// Manager runs the actions. Active is safe to call from any goroutine,
// and cheap (one atomic load): the request path calls it.
type Manager struct {
	limit      uint64
	thresholds [numActions]float64
	interval   time.Duration
	active     [numActions]atomic.Bool
	// onChange is told of each action turning on or off (from Run's
	// goroutine).
	onChange func(Action, bool)
	// heap reads the heap in bytes (runtime/metrics; a test may replace it).
	heap func() uint64

	pressure prometheus.Gauge
	state    *prometheus.GaugeVec
	shed     prometheus.Counter
}

// New returns a Manager for limit bytes of heap (limit > 0). Its metrics
// go to reg.
func New(limit uint64, cfg Config, onChange func(Action, bool), reg prometheus.Registerer) *Manager {
	m := &Manager{
		limit:    limit,
		interval: cfg.Interval,
		onChange: onChange,
		heap:     readHeap,
		pressure: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshgate_overload_heap_pressure",
			Help: "The Go heap's share of the overload manager's limit (Envoy's fixed_heap monitor).",
		}),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshgate_overload_action_active",
			Help: "1 while an overload action is on, by its Envoy name.",
		}, []string{"action"}),
		shed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshgate_overload_rejected_requests_total",
			Help: "Requests answered 503 / RESOURCE_EXHAUSTED by envoy.overload_actions.stop_accepting_requests.",
		}),
	}
	if m.interval <= 0 {
		m.interval = DefaultInterval
	}
	for a := range numActions {
		m.thresholds[a] = cfg.Thresholds[a]
		if m.thresholds[a] <= 0 {
			m.thresholds[a] = DefaultKeepaliveShare
			if a == StopAcceptingRequests {
				m.thresholds[a] = DefaultStopRequestsShare
			}
		}
		m.state.WithLabelValues(a.Name()).Set(0)
	}
	if reg != nil {
		reg.MustRegister(m.pressure, m.state, m.shed)
	}
	return m
}

// Active reports whether an action is on. A nil Manager has none on.
func (m *Manager) Active(a Action) bool { return m != nil && m.active[a].Load() }

// Shed counts a request the stop_accepting_requests action answered.
func (m *Manager) Shed() { m.shed.Inc() }

// Threshold is an action's share of the limit.
func (m *Manager) Threshold(a Action) float64 { return m.thresholds[a] }

// Run reads the heap every interval until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		m.Update(m.sample())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sample reads the heap. A reading past the lowest threshold may be
// garbage not yet collected (Go's heap grows to twice its live size
// between collections): it is read again after a collection, so that
// actions follow the live heap. That collection runs at most once per
// interval, and only near the limit.
func (m *Manager) sample() uint64 {
	h := m.heap()
	if float64(h)/float64(m.limit) >= slices.Min(m.thresholds[:]) {
		runtime.GC()
		h = m.heap()
	}
	return h
}

// Update applies one heap reading: each action turns on at or past its
// threshold and off below it.
func (m *Manager) Update(heap uint64) {
	p := float64(heap) / float64(m.limit)
	m.pressure.Set(p)
	for a := range numActions {
		on := p >= m.thresholds[a]
		if m.active[a].Swap(on) != on {
			v := 0.0
			if on {
				v = 1
			}
			m.state.WithLabelValues(a.Name()).Set(v)
			if m.onChange != nil {
				m.onChange(a, on)
			}
		}
	}
}

// readHeap is the bytes of heap objects, live or not yet swept, as
// runtime/metrics counts them (no stop-the-world, unlike ReadMemStats).
func readHeap() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// ConnLimit caps the open downstream connections over every listener
// (Envoy's envoy.resource_monitors.downstream_connections): a connection
// past the cap is closed as it is accepted.
type ConnLimit struct {
	max      int64
	open     atomic.Int64
	rejected prometheus.Counter
}

// NewConnLimit returns a cap of max connections (max > 0); its metric
// goes to reg.
func NewConnLimit(max int64, reg prometheus.Registerer) *ConnLimit {
	l := &ConnLimit{max: max, rejected: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "meshgate_downstream_cx_overload_reject_total",
		Help: "Downstream connections closed as accepted: max_active_downstream_connections were open.",
	})}
	if reg != nil {
		reg.MustRegister(l.rejected)
	}
	return l
}

// Admit counts a new connection in; false (counted as rejected): the cap
// is reached, close it.
func (l *ConnLimit) Admit() bool {
	if l.open.Add(1) > l.max {
		l.open.Add(-1)
		l.rejected.Inc()
		return false
	}
	return true
}

// Release counts an admitted connection out.
func (l *ConnLimit) Release() { l.open.Add(-1) }
