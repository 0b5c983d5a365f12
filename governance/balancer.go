package governance

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
)

// ErrNoEndpoint is returned by Pick when there is nothing to pick from.
var ErrNoEndpoint = errors.New("no endpoint available")

// Endpoint is one upstream host as a balancer sees it.
type Endpoint struct {
	Address string
	// Weight is the endpoint's share; 0 counts as 1.
	Weight uint32
}

// PickInfo describes the request being balanced.
type PickInfo struct {
	// Hash is the request's hash key, when the route computes one.
	Hash    uint64
	HasHash bool
}

// Picker chooses an endpoint for each request. Pick is called concurrently
// on the request path and must not block.
type Picker interface {
	// Pick returns an index into the endpoints the Picker was built from.
	Pick(info PickInfo) (int, error)
}

// Builder makes Pickers for one policy.
type Builder interface {
	// Name is the policy's name as config spells it.
	Name() string
	// Build returns a Picker over endpoints; it must not keep the slice.
	Build(endpoints []Endpoint) Picker
}

// builders are the policies meshgate implements. It is filled once here
// and never written afterwards.
var builders = map[string]Builder{
	roundRobinBuilder{}.Name(): roundRobinBuilder{},
}

// LookupBalancer returns the Builder of a policy by name, e.g.
// "round_robin".
func LookupBalancer(name string) (Builder, error) {
	b, ok := builders[strings.ToLower(name)]
	if !ok {
		names := make([]string, 0, len(builders))
		for n := range builders {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("governance: unknown load balancer %q (have %s)", name, strings.Join(names, ", "))
	}
	return b, nil
}

type roundRobinBuilder struct{}

func (roundRobinBuilder) Name() string { return "round_robin" }

// Build returns a smooth weighted round robin over endpoints: with weights
// 5,1,1 the order is a a b a c a a, spreading the heavy endpoint out rather
// than sending it five in a row (nginx's algorithm).
func (roundRobinBuilder) Build(endpoints []Endpoint) Picker {
	if len(endpoints) == 0 {
		return emptyPicker{}
	}
	weights := make([]int, len(endpoints))
	uniform := true
	for i, e := range endpoints {
		weights[i] = int(max(e.Weight, 1))
		if weights[i] != weights[0] {
			uniform = false
		}
	}
	p := &roundRobinPicker{}
	if uniform {
		p.schedule = make([]int32, len(endpoints))
		for i := range p.schedule {
			p.schedule[i] = int32(i)
		}
	} else {
		p.schedule = smoothSchedule(reduce(weights))
	}
	return p
}

// maxSchedule bounds the precomputed schedule; weights are scaled down to
// fit, which keeps their proportions to within 1/maxSchedule.
const maxSchedule = 1 << 14

type roundRobinPicker struct {
	next     atomic.Uint64
	schedule []int32
}

func (p *roundRobinPicker) Pick(PickInfo) (int, error) {
	n := p.next.Add(1) - 1
	return int(p.schedule[n%uint64(len(p.schedule))]), nil
}

type emptyPicker struct{}

func (emptyPicker) Pick(PickInfo) (int, error) { return 0, ErrNoEndpoint }

// reduce divides weights by their greatest common divisor and scales them
// down until their sum fits maxSchedule.
func reduce(w []int) []int {
	g := 0
	for _, x := range w {
		g = gcd(g, x)
	}
	sum := 0
	for i := range w {
		w[i] /= g
		sum += w[i]
	}
	if sum > maxSchedule {
		for i := range w {
			w[i] = max(1, w[i]*maxSchedule/sum)
		}
	}
	return w
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func smoothSchedule(weights []int) []int32 {
	total := 0
	for _, w := range weights {
		total += w
	}
	current := make([]int, len(weights))
	out := make([]int32, 0, total)
	for range total {
		best := 0
		for i, w := range weights {
			current[i] += w
			if current[i] > current[best] {
				best = i
			}
		}
		current[best] -= total
		out = append(out, int32(best))
	}
	return out
}
