package governance

import (
	"fmt"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newTestOutlier(cfg OutlierConfig, n int) (*Outlier, []*OutlierHost, *fakeClock, *int) {
	changes := 0
	o := NewOutlier(cfg, func() { changes++ })
	clock := &fakeClock{t: time.Unix(0, 0)}
	o.now = clock.now
	o.rand = func() uint64 { return 0 }
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("h%d", i)
	}
	return o, o.SetHosts(addrs), clock, &changes
}

func report(o *Outlier, h *OutlierHost, n int, out Outcome) {
	for range n {
		o.Report(h, out)
	}
}

var (
	ok200  = Outcome{Status: 200}
	err500 = Outcome{Status: 500}
	err503 = Outcome{Status: 503}
	refuse = Outcome{Local: ConnectFailure}
)

func TestOutlier_Consecutive5xx(t *testing.T) {
	cfg := DefaultOutlierConfig()
	cfg.MaxEjectionPercent = 100
	o, hs, clock, changes := newTestOutlier(cfg, 3)
	h := hs[0]

	report(o, h, 4, err500)
	o.Report(h, ok200) // a success resets the run
	report(o, h, 4, err500)
	if h.Ejected() {
		t.Fatal("ejected after 4+4 failures with a success between")
	}
	o.Report(h, err500)
	if !h.Ejected() || o.Active.Load() != 1 || o.Ejections[EjectConsecutive5xx].Load() != 1 || *changes != 1 {
		t.Fatalf("after 5 failures in a row: ejected %v, active %d, counted %d, changes %d",
			h.Ejected(), o.Active.Load(), o.Ejections[EjectConsecutive5xx].Load(), *changes)
	}
	// Ejection time: 30s the first time.
	clock.add(29 * time.Second)
	o.Tick()
	if !h.Ejected() {
		t.Fatal("returned before the base ejection time")
	}
	clock.add(time.Second)
	o.Tick()
	if h.Ejected() || o.Active.Load() != 0 || *changes != 2 {
		t.Fatalf("after 30s: ejected %v, active %d, changes %d", h.Ejected(), o.Active.Load(), *changes)
	}
	// Ejected again at once: 60s this time.
	report(o, h, 5, refuse) // local failures count as 5xx when not split
	if !h.Ejected() {
		t.Fatal("local failures did not eject")
	}
	clock.add(59 * time.Second)
	o.Tick()
	if !h.Ejected() {
		t.Fatal("second ejection shorter than 2 x base")
	}
	clock.add(time.Second)
	o.Tick()
	if h.Ejected() {
		t.Fatal("second ejection longer than 2 x base")
	}
	// The count decays while the host stays healthy: 2 ticks bring it to 0.
	o.Tick()
	o.Tick()
	report(o, h, 5, err500)
	clock.add(30 * time.Second)
	o.Tick()
	if h.Ejected() {
		t.Fatal("after the count decayed, the next ejection was not back to the base time")
	}
}

func TestOutlier_MaxEjectionTimeCaps(t *testing.T) {
	cfg := DefaultOutlierConfig()
	cfg.MaxEjectionPercent = 100
	cfg.MaxEjectionTime = 45 * time.Second
	o, hs, clock, _ := newTestOutlier(cfg, 2)
	for range 3 {
		report(o, hs[0], 5, err500)
		clock.add(45 * time.Second)
		o.Tick()
		if hs[0].Ejected() {
			t.Fatal("an ejection lasted beyond max_ejection_time")
		}
	}
}

func TestOutlier_GatewayFailures(t *testing.T) {
	cfg := DefaultOutlierConfig()
	cfg.Consecutive5xx = 0 // only the gateway rule
	o, hs, _, _ := newTestOutlier(cfg, 2)
	report(o, hs[0], 10, err503)
	if hs[0].Ejected() {
		t.Fatal("gateway failures ejected with enforcing 0% (Envoy's default)")
	}
	cfg.EnforcingConsecutiveGatewayFailure = 100
	o, hs, _, _ = newTestOutlier(cfg, 2)
	report(o, hs[0], 10, err500)
	if hs[0].Ejected() {
		t.Fatal("500s counted as gateway failures")
	}
	report(o, hs[0], 5, err503)
	if !hs[0].Ejected() || o.Ejections[EjectConsecutiveGatewayFailure].Load() != 1 {
		t.Fatal("5 x 503 did not eject")
	}
}

func TestOutlier_MaxEjectionPercent(t *testing.T) {
	o, hs, _, _ := newTestOutlier(DefaultOutlierConfig(), 10) // 10%: one host of ten
	report(o, hs[0], 5, err500)
	report(o, hs[1], 5, err500)
	if !hs[0].Ejected() || hs[1].Ejected() || o.Active.Load() != 1 {
		t.Fatalf("ejected %v, %v (active %d); want only the first: 10%% of 10 hosts", hs[0].Ejected(), hs[1].Ejected(), o.Active.Load())
	}
	o2, hs2, _, _ := newTestOutlier(DefaultOutlierConfig(), 2) // 10% of 2 is 0, but one may always go
	report(o2, hs2[0], 5, err500)
	if !hs2[0].Ejected() {
		t.Fatal("no host ejected: Envoy always allows one")
	}
}

func TestOutlier_SplitLocalOrigin(t *testing.T) {
	cfg := DefaultOutlierConfig()
	cfg.SplitExternalLocalOriginErrors = true
	cfg.MaxEjectionPercent = 100
	o, hs, _, _ := newTestOutlier(cfg, 2)
	report(o, hs[0], 4, refuse)
	report(o, hs[0], 4, err500) // answers: the connection works, the local run resets
	if hs[0].Ejected() {
		t.Fatal("4 local + 4 upstream failures ejected: with split they count apart")
	}
	report(o, hs[0], 5, refuse)
	if !hs[0].Ejected() || o.Ejections[EjectConsecutiveLocalOriginFailure].Load() != 1 {
		t.Fatal("5 local failures did not eject as local origin")
	}
}

func TestOutlier_SuccessRate(t *testing.T) {
	cfg := DefaultOutlierConfig()
	cfg.Consecutive5xx = 0
	cfg.MaxEjectionPercent = 100
	o, hs, _, _ := newTestOutlier(cfg, 6)
	for i, h := range hs {
		for k := range 200 {
			if i == 5 && k%2 == 0 {
				o.Report(h, err500)
			} else {
				o.Report(h, ok200)
			}
		}
	}
	o.Tick()
	for i, h := range hs {
		if h.Ejected() != (i == 5) {
			t.Errorf("host %d ejected = %v; want only host 5 (50%% success vs 100%%)", i, h.Ejected())
		}
	}
	// Too little traffic: no judgement.
	o2, hs2, _, _ := newTestOutlier(cfg, 6)
	report(o2, hs2[0], 50, err500)
	for _, h := range hs2[1:] {
		report(o2, h, 50, ok200)
	}
	o2.Tick()
	if hs2[0].Ejected() {
		t.Error("ejected on success rate below the request volume")
	}
}

func TestOutlier_FailurePercentage(t *testing.T) {
	cfg := DefaultOutlierConfig()
	cfg.Consecutive5xx = 0
	cfg.EnforcingSuccessRate = 0
	cfg.EnforcingFailurePercentage = 100
	cfg.MaxEjectionPercent = 100
	o, hs, _, _ := newTestOutlier(cfg, 5)
	for i, h := range hs {
		for k := range 100 {
			if (i == 0 && k%10 != 0) || (i == 1 && k%5 == 0) { // host 0 fails 90%, host 1 20%
				o.Report(h, err500)
			} else {
				o.Report(h, ok200)
			}
		}
	}
	o.Tick()
	if !hs[0].Ejected() || hs[1].Ejected() {
		t.Errorf("ejected: host 0 (90%% failures) %v, host 1 (20%%) %v; want only host 0", hs[0].Ejected(), hs[1].Ejected())
	}
}

func TestOutlier_SetHostsForgetsRemoved(t *testing.T) {
	cfg := DefaultOutlierConfig()
	o, hs, _, _ := newTestOutlier(cfg, 3)
	report(o, hs[0], 5, err500)
	kept := o.SetHosts([]string{"h1", "h2", "h3"})
	if kept[0] != hs[1] || o.Active.Load() != 0 {
		t.Errorf("after removing the ejected host: state kept %v, active %d; want h1's state kept and 0 active", kept[0] == hs[1], o.Active.Load())
	}
}
