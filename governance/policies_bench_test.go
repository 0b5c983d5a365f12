package governance

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
)

func benchEndpoints(n int) []Endpoint {
	eps := make([]Endpoint, n)
	for i := range eps {
		eps[i] = Endpoint{Address: fmt.Sprintf("10.%d.%d.%d:8080", i>>16&255, i>>8&255, i&255), Weight: uint32(1 + i%3), Active: new(atomic.Int64)}
	}
	return eps
}

// BenchmarkPick measures one pick through the cluster-level picker
// (priorities, panic mode) for each policy at 3, 100 and 1,000 hosts,
// picking from parallel goroutines as the request path does.
func BenchmarkPick(b *testing.B) {
	for _, builder := range []Builder{RoundRobin{}, LeastRequest{}, Random{}, RingHash{}, Maglev{}} {
		for _, n := range []int{3, 100, 1000} {
			eps := benchEndpoints(n)
			hs := make([]Host, n)
			for i := range eps {
				hs[i] = Host{Endpoint: eps[i], Healthy: true}
			}
			p := NewPicker(builder, hs, LBOptions{})
			b.Run(fmt.Sprintf("%s/hosts=%d", builder.Name(), n), func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					r := rand.New(rand.NewPCG(rand.Uint64(), 1))
					for pb.Next() {
						if _, err := p.Pick(PickInfo{Hash: r.Uint64(), HasHash: true}); err != nil {
							b.Fatal(err)
						}
					}
				})
			})
		}
	}
}

// BenchmarkBuild measures rebuilding a picker for 1,000 hosts, which
// happens on every endpoint or health change.
func BenchmarkBuild(b *testing.B) {
	eps := benchEndpoints(1000)
	hs := make([]Host, len(eps))
	for i := range eps {
		hs[i] = Host{Endpoint: eps[i], Healthy: i%10 != 0}
	}
	for _, builder := range []Builder{RoundRobin{}, LeastRequest{}, Random{}, RingHash{}, Maglev{}} {
		b.Run(builder.Name(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				NewPicker(builder, hs, LBOptions{})
			}
		})
	}
}
