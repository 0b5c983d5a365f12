package governance

import (
	"errors"
	"strings"
	"sync"
	"testing"
)

func picks(t *testing.T, p Picker, n int) []int {
	t.Helper()
	out := make([]int, n)
	for i := range out {
		idx, err := p.Pick(PickInfo{})
		if err != nil {
			t.Fatalf("Pick: %v", err)
		}
		out[i] = idx
	}
	return out
}

func TestRoundRobin(t *testing.T) {
	b, err := LookupBalancer("ROUND_ROBIN")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		weights []uint32
		n       int
		want    []int
	}{
		{"uniform cycles in order", []uint32{0, 0, 0}, 7, []int{0, 1, 2, 0, 1, 2, 0}},
		{"smooth weighted spreads the heavy one", []uint32{5, 1, 1}, 7, []int{0, 0, 1, 0, 2, 0, 0}},
		{"weights reduced by their gcd", []uint32{20, 10}, 6, []int{0, 1, 0, 0, 1, 0}},
		{"single endpoint", []uint32{7}, 3, []int{0, 0, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			eps := make([]Endpoint, len(tc.weights))
			for i, w := range tc.weights {
				eps[i] = Endpoint{Address: string(rune('a' + i)), Weight: w}
			}
			got := picks(t, b.Build(eps), tc.n)
			if !equal(got, tc.want) {
				t.Errorf("picks = %v, want %v", got, tc.want)
			}
		})
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Shares hold under concurrent picks, and huge weights keep their ratio.
func TestRoundRobin_SharesConcurrent(t *testing.T) {
	b, _ := LookupBalancer("round_robin")
	p := b.Build([]Endpoint{{Weight: 3_000_000}, {Weight: 1_000_000}})
	var mu sync.Mutex
	counts := [2]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := [2]int{}
			for range 10_000 {
				i, _ := p.Pick(PickInfo{})
				local[i]++
			}
			mu.Lock()
			counts[0] += local[0]
			counts[1] += local[1]
			mu.Unlock()
		}()
	}
	wg.Wait()
	if counts[0] != 30_000 || counts[1] != 10_000 {
		t.Errorf("40,000 picks over weights 3:1 = %v, want [30000 10000]", counts)
	}
}

func TestRoundRobin_Empty(t *testing.T) {
	b, _ := LookupBalancer("round_robin")
	if _, err := b.Build(nil).Pick(PickInfo{}); !errors.Is(err, ErrNoEndpoint) {
		t.Errorf("Pick on no endpoints = %v, want ErrNoEndpoint", err)
	}
}

func TestLookupBalancer_Unknown(t *testing.T) {
	if _, err := LookupBalancer("least_connections"); err == nil || !strings.Contains(err.Error(), `unknown load balancer "least_connections"`) {
		t.Errorf("LookupBalancer(least_connections) = %v", err)
	}
}
