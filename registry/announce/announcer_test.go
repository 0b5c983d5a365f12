package announce

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recorder is a Registrar that records what it is asked.
type recorder struct {
	mu     sync.Mutex
	events []string
	up     bool
	closed bool
}

func (r *recorder) Name() string { return "recorder" }

func (r *recorder) Register(_ context.Context, p *Provider, m *MetadataInfo, _ Mode) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.up {
		r.events = append(r.events, "register "+p.App+" "+m.Revision[:6])
	}
	r.up = true
	return nil
}

func (r *recorder) Deregister(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, "deregister")
	r.up = false
	return nil
}

func (r *recorder) Close() { r.mu.Lock(); r.closed = true; r.mu.Unlock() }

func (r *recorder) state() (bool, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.up, append([]string(nil), r.events...)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The registration follows the app's health check (withdrawn after
// unhealthy_threshold failures, back after healthy_threshold passes) and
// is withdrawn when Run ends.
func TestAnnouncer_FollowsHealth(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	var checks atomic.Int32
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		checks.Add(1)
		if r.URL.Path != "/health" || !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer app.Close()
	rec := &recorder{}
	a := NewAnnouncer(testProvider())
	a.Registrars, a.Interval, a.UnhealthyThreshold, a.HealthyThreshold = []Registrar{rec}, 10*time.Millisecond, 3, 2
	a.Check, a.Log = HTTPCheck(app.Client(), app.URL+"/health", time.Second), slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()

	waitFor(t, "the registration", func() bool { up, _ := rec.state(); return up })
	if n := checks.Load(); n < 2 {
		t.Errorf("registered after %d checks, want the healthy threshold (2)", n)
	}
	healthy.Store(false)
	before := checks.Load()
	waitFor(t, "the withdrawal", func() bool { up, _ := rec.state(); return !up })
	if n := checks.Load() - before; n < 3 {
		t.Errorf("withdrawn after %d failed checks, want the unhealthy threshold (3)", n)
	}
	healthy.Store(true)
	waitFor(t, "the registration again", func() bool { up, _ := rec.state(); return up })
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	up, events := rec.state()
	rev := testProvider().Metadata().Revision[:6]
	want := []string{"register py-app " + rev, "deregister", "register py-app " + rev, "deregister"}
	if up || len(events) != len(want) || !rec.closed {
		t.Fatalf("events %v (up %v, closed %v), want %v and closed", events, up, rec.closed, want)
	}
	for i := range want {
		if events[i] != want[i] {
			t.Errorf("event %d: %q, want %q", i, events[i], want[i])
		}
	}
}

// An app that never passes its check is never announced; stopping then
// withdraws nothing.
func TestAnnouncer_NeverHealthy(t *testing.T) {
	rec := &recorder{}
	var checks atomic.Int32
	a := NewAnnouncer(testProvider())
	a.Registrars, a.Interval, a.Log = []Registrar{rec}, 5*time.Millisecond, slog.New(slog.DiscardHandler)
	a.Check = func(context.Context) error { checks.Add(1); return context.DeadlineExceeded }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	waitFor(t, "a few checks", func() bool { return checks.Load() >= 5 })
	cancel()
	<-done
	if _, events := rec.state(); len(events) != 0 {
		t.Errorf("events %v, want none", events)
	}
}

// Suspect runs the checks at once: with an interval far longer than the
// test, two suspicions withdraw a provider whose app stopped answering.
func TestAnnouncer_Suspect(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	rec := &recorder{}
	a := NewAnnouncer(testProvider())
	a.Registrars, a.Interval, a.UnhealthyThreshold, a.Log = []Registrar{rec}, time.Hour, 2, slog.New(slog.DiscardHandler)
	a.Check = func(context.Context) error {
		if healthy.Load() {
			return nil
		}
		return context.DeadlineExceeded
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the registration", func() bool { up, _ := rec.state(); return up })
	healthy.Store(false)
	deadline := time.Now().Add(5 * time.Second)
	for up, _ := rec.state(); up; up, _ = rec.state() {
		if time.Now().After(deadline) {
			t.Fatal("still registered 5s after the app went: suspicions ran no check")
		}
		a.Suspect()
		time.Sleep(5 * time.Millisecond)
	}
}

// halfWriter is a Registrar whose Register fails after writing part of the
// registration, and whose first withdrawal fails.
type halfWriter struct {
	mu                   sync.Mutex
	written              bool // some of the registration is there
	withdrawals, refused int
}

func (h *halfWriter) Name() string { return "half" }

func (h *halfWriter) Register(context.Context, *Provider, *MetadataInfo, Mode) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.written = true
	return context.DeadlineExceeded // the rest timed out
}

func (h *halfWriter) Deregister(context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.withdrawals++
	if h.refused == 0 {
		h.refused++
		return context.DeadlineExceeded
	}
	h.written = false
	return nil
}

func (h *halfWriter) Close() {}

// What a failed registration may have written is withdrawn when the app
// goes unhealthy, and a withdrawal that failed is tried again.
func TestAnnouncer_WithdrawsHalfWritten(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	h := &halfWriter{}
	a := NewAnnouncer(testProvider())
	a.Registrars, a.Interval, a.UnhealthyThreshold, a.HealthyThreshold = []Registrar{h}, 5*time.Millisecond, 1, 1
	a.Check = func(context.Context) error {
		if healthy.Load() {
			return nil
		}
		return context.DeadlineExceeded
	}
	a.Log = slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "a half-written registration", func() bool { h.mu.Lock(); defer h.mu.Unlock(); return h.written })
	healthy.Store(false)
	waitFor(t, "its withdrawal, after one refused", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return !h.written && h.withdrawals >= 2
	})
}
