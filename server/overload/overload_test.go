package overload

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Each action turns on at its threshold's share of the limit and off
// below it, tells onChange only of changes, and shows in its gauge.
func TestManager_Update(t *testing.T) {
	type change struct {
		a  Action
		on bool
	}
	var changes []change
	reg := prometheus.NewRegistry()
	var cfg Config
	cfg.Thresholds[StopAcceptingRequests] = 0.8
	cfg.Thresholds[DisableHTTPKeepalive] = 0.6
	m := New(1000, cfg, func(a Action, on bool) { changes = append(changes, change{a, on}) }, reg)
	tests := []struct {
		heap               uint64
		keepaliveOff, stop bool
		wantChanges        []change
	}{
		{heap: 100},
		{heap: 600, keepaliveOff: true, wantChanges: []change{{DisableHTTPKeepalive, true}}},
		{heap: 700, keepaliveOff: true},
		{heap: 800, keepaliveOff: true, stop: true, wantChanges: []change{{StopAcceptingRequests, true}}},
		{heap: 5000, keepaliveOff: true, stop: true},
		{heap: 599, wantChanges: []change{{DisableHTTPKeepalive, false}, {StopAcceptingRequests, false}}},
	}
	for _, tc := range tests {
		changes = nil
		m.Update(tc.heap)
		if m.Active(DisableHTTPKeepalive) != tc.keepaliveOff || m.Active(StopAcceptingRequests) != tc.stop {
			t.Errorf("heap %d of 1000: keep-alive off %v, stop %v; want %v, %v", tc.heap,
				m.Active(DisableHTTPKeepalive), m.Active(StopAcceptingRequests), tc.keepaliveOff, tc.stop)
		}
		if len(changes) != len(tc.wantChanges) {
			t.Errorf("heap %d: changes %v, want %v", tc.heap, changes, tc.wantChanges)
			continue
		}
		for i := range changes {
			if changes[i] != tc.wantChanges[i] {
				t.Errorf("heap %d: changes %v, want %v", tc.heap, changes, tc.wantChanges)
			}
		}
		stopGauge := testutil.ToFloat64(m.state.WithLabelValues(StopAcceptingRequests.Name()))
		if (stopGauge == 1) != tc.stop {
			t.Errorf("heap %d: meshgate_overload_action_active{%s} = %v", tc.heap, StopAcceptingRequests.Name(), stopGauge)
		}
	}
	var nilManager *Manager
	if nilManager.Active(StopAcceptingRequests) {
		t.Error("a nil Manager reports an action on")
	}
}

func TestNew_Defaults(t *testing.T) {
	m := New(1, Config{}, nil, nil)
	if m.Threshold(DisableHTTPKeepalive) != DefaultKeepaliveShare || m.Threshold(StopAcceptingRequests) != DefaultStopRequestsShare || m.interval != DefaultInterval {
		t.Errorf("defaults: %v %v %v", m.Threshold(DisableHTTPKeepalive), m.Threshold(StopAcceptingRequests), m.interval)
	}
}

// The connection cap admits up to max, counts the rest as rejected, and
// frees a place on Release.
func TestConnLimit(t *testing.T) {
	l := NewConnLimit(2, nil)
	got := []bool{l.Admit(), l.Admit(), l.Admit()}
	if !got[0] || !got[1] || got[2] {
		t.Fatalf("admits %v, want true true false", got)
	}
	if testutil.ToFloat64(l.rejected) != 1 || l.open.Load() != 2 {
		t.Errorf("rejected %v, open %d; want 1, 2", testutil.ToFloat64(l.rejected), l.open.Load())
	}
	l.Release()
	if !l.Admit() {
		t.Error("no place after a Release")
	}
}

// readHeap reads a heap size (the runtime/metrics name exists).
func TestReadHeap(t *testing.T) {
	if readHeap() == 0 {
		t.Error("readHeap = 0")
	}
}
