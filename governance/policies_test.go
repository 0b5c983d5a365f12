package governance

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"
)

func endpoints(weights ...uint32) []Endpoint {
	out := make([]Endpoint, len(weights))
	for i, w := range weights {
		out[i] = Endpoint{Address: fmt.Sprintf("10.0.0.%d:80", i+1), Weight: w}
	}
	return out
}

// shares picks n times and returns each endpoint's share.
func shares(t *testing.T, p Picker, n, size int, info func(i int) PickInfo) []float64 {
	t.Helper()
	counts := make([]int, size)
	for i := range n {
		pi := PickInfo{}
		if info != nil {
			pi = info(i)
		}
		k, err := p.Pick(pi)
		if err != nil {
			t.Fatal(err)
		}
		counts[k]++
	}
	out := make([]float64, size)
	for i, c := range counts {
		out[i] = float64(c) / float64(n)
	}
	return out
}

// Every policy honours weights 1:2:3:4 within 2 percentage points over
// 200,000 picks (hash policies with uniformly random hashes).
func TestPolicies_WeightsHonoured(t *testing.T) {
	want := []float64{0.1, 0.2, 0.3, 0.4}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, b := range []Builder{RoundRobin{}, LeastRequest{}, Random{}, RingHash{}, Maglev{}} {
		t.Run(b.Name(), func(t *testing.T) {
			p := b.Build(endpoints(1, 2, 3, 4))
			got := shares(t, p, 200_000, 4, func(int) PickInfo { return PickInfo{Hash: rng.Uint64(), HasHash: true} })
			for i := range want {
				if math.Abs(got[i]-want[i]) > 0.02 {
					t.Errorf("endpoint %d got %.3f of picks, want %.2f ± 0.02 (all: %.3f)", i, got[i], want[i], got)
				}
			}
		})
	}
}

// Hash policies send a key to the same host every time, and adding a fifth
// host moves about a fifth of the keys (at most 1/N plus a little: the
// ring's points per host and Maglev's table shift slightly too).
func TestHashPolicies_Stable(t *testing.T) {
	for _, b := range []Builder{RingHash{}, Maglev{}} {
		t.Run(b.Name(), func(t *testing.T) {
			four, five := endpoints(1, 1, 1, 1), endpoints(1, 1, 1, 1, 1)
			p4, p5 := b.Build(four), b.Build(five)
			rng := rand.New(rand.NewPCG(3, 4))
			const keys = 20_000
			moved := 0
			for range keys {
				info := PickInfo{Hash: rng.Uint64(), HasHash: true}
				a, _ := p4.Pick(info)
				again, _ := p4.Pick(info)
				if a != again {
					t.Fatalf("key %x went to %d, then %d", info.Hash, a, again)
				}
				c, _ := p5.Pick(info)
				if four[a].Address != five[c].Address {
					moved++
				}
			}
			frac := float64(moved) / keys
			if frac < 0.15 || frac > 0.25 {
				t.Errorf("adding 1 host to 4 moved %.3f of keys, want about 1/5 (0.15 to 0.25)", frac)
			}
			t.Logf("adding 1 host to 4 moved %.3f of keys", frac)
		})
	}
}

// Least request steers away from the busy host.
func TestLeastRequest_PrefersIdle(t *testing.T) {
	eps := endpoints(1, 1, 1)
	var busy atomic.Int64
	busy.Store(100)
	eps[0].Active = &busy
	p := LeastRequest{}.Build(eps)
	got := shares(t, p, 30_000, 3, nil)
	// The busy host wins only when both draws land on it: 1/9.
	if got[0] > 0.13 || got[0] < 0.08 {
		t.Errorf("busy host got %.3f of picks, want about 1/9", got[0])
	}
}

// A retry's picker never returns a tried host while an untried one is
// left (each policy tries to avoid them itself; NewPicker guarantees it).
func TestPickers_ExcludeTriedHosts(t *testing.T) {
	for _, b := range []Builder{RoundRobin{}, LeastRequest{}, Random{}, RingHash{}, Maglev{}} {
		t.Run(b.Name(), func(t *testing.T) {
			var hs []Host
			for _, e := range endpoints(1, 1, 1) {
				hs = append(hs, Host{Endpoint: e, Healthy: true})
			}
			p := NewPicker(b, hs, LBOptions{})
			for k := range 1000 {
				i, _ := p.Pick(PickInfo{Hash: uint64(k) * 0x9e3779b97f4a7c15, HasHash: true, Exclude: func(i int) bool { return i == 1 }})
				if i == 1 {
					t.Fatalf("pick %d chose the excluded host", k)
				}
			}
		})
	}
}

func hosts(spec ...string) []Host {
	// spec entries: "<priority><H|U>", e.g. "0H" a healthy host at priority 0.
	out := make([]Host, len(spec))
	for i, s := range spec {
		out[i] = Host{Endpoint: Endpoint{Address: fmt.Sprintf("h%d", i), Priority: uint32(s[0] - '0')}, Healthy: s[1] == 'H'}
	}
	return out
}

// Priority failover and panic mode follow Envoy's arithmetic.
func TestNewPicker_PrioritiesAndPanic(t *testing.T) {
	tests := []struct {
		name  string
		hosts []Host
		want  []float64 // share per host
	}{
		{"all healthy: priority 0 only", hosts("0H", "0H", "1H", "1H"), []float64{0.5, 0.5, 0, 0}},
		// P0 has 1 of 2 healthy: health 1.4*50 = 70%, so 30% spills to P1.
		{"half of P0 down spills 30%", hosts("0H", "0U", "1H", "1H"), []float64{0.7, 0, 0.15, 0.15}},
		// P0: 1 of 4 healthy = 25% < 50%: panic, its 35% load over all four.
		{"P0 in panic", hosts("0H", "0U", "0U", "0U", "1H"), []float64{0.0875, 0.0875, 0.0875, 0.0875, 0.65}},
		{"nothing healthy: P0 in panic", hosts("0U", "0U", "1U"), []float64{0.5, 0.5, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPicker(Random{}, tc.hosts, LBOptions{})
			got := shares(t, p, 100_000, len(tc.hosts), nil)
			for i := range tc.want {
				if math.Abs(got[i]-tc.want[i]) > 0.015 {
					t.Errorf("host %d (%+v) got %.3f, want %.3f (all %.3f)", i, tc.hosts[i], got[i], tc.want[i], got)
				}
			}
		})
	}
	if _, err := NewPicker(Random{}, hosts("0U", "0U"), LBOptions{PanicThreshold: -1}).Pick(PickInfo{}); err == nil {
		t.Error("with panic mode off and nothing healthy, Pick succeeded")
	}
}

// Locality weights split traffic between localities, scaled by health.
func TestNewPicker_LocalityWeights(t *testing.T) {
	h := []Host{
		{Endpoint: Endpoint{Address: "a1", Locality: "zone-a", LocalityWeight: 3}, Healthy: true},
		{Endpoint: Endpoint{Address: "a2", Locality: "zone-a", LocalityWeight: 3}, Healthy: true},
		{Endpoint: Endpoint{Address: "b1", Locality: "zone-b", LocalityWeight: 1}, Healthy: true},
	}
	p := NewPicker(RoundRobin{}, h, LBOptions{LocalityWeighted: true})
	got := shares(t, p, 80_000, 3, nil)
	if math.Abs(got[0]+got[1]-0.75) > 0.015 || math.Abs(got[2]-0.25) > 0.015 {
		t.Errorf("zone-a (weight 3) got %.3f, zone-b (weight 1) %.3f; want 0.75, 0.25", got[0]+got[1], got[2])
	}
}

func TestSlowStartWeight(t *testing.T) {
	tests := []struct {
		age, window time.Duration
		aggression  float64
		want        uint32
	}{
		{0, 10 * time.Second, 1, 10},               // min weight percent 10%
		{5 * time.Second, 10 * time.Second, 1, 50}, // linear
		{5 * time.Second, 10 * time.Second, 2, 71}, // sqrt(0.5)
		{10 * time.Second, 10 * time.Second, 1, 100},
		{time.Second, 0, 1, 100}, // no window: full weight
	}
	for _, tc := range tests {
		if got := SlowStartWeight(100, tc.age, tc.window, tc.aggression, 0); got != tc.want {
			t.Errorf("SlowStartWeight(100, %v, %v, %v) = %d, want %d", tc.age, tc.window, tc.aggression, got, tc.want)
		}
	}
}
