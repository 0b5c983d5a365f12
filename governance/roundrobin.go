package governance

import "sync/atomic"

// maxReselect bounds how often a picker picks again to avoid an excluded
// endpoint.
const maxReselect = 8

// RoundRobin is Envoy's ROUND_ROBIN: smooth weighted round robin.
type RoundRobin struct{}

// Name implements Builder.
func (RoundRobin) Name() string { return "round_robin" }

// Build returns a smooth weighted round robin over endpoints: with weights
// 5,1,1 the order is a a b a c a a, spreading the heavy endpoint out rather
// than sending it five in a row (nginx's algorithm).
func (RoundRobin) Build(endpoints []Endpoint) Picker {
	if len(endpoints) == 0 {
		return emptyPicker{}
	}
	weights := make([]int, len(endpoints))
	uniform := true
	for i := range endpoints {
		weights[i] = int(endpoints[i].weight())
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

func (p *roundRobinPicker) Pick(info PickInfo) (int, error) {
	n := p.next.Add(1) - 1
	i := int(p.schedule[n%uint64(len(p.schedule))])
	for try := 0; info.Exclude != nil && info.Exclude(i) && try < len(p.schedule) && try < maxReselect; try++ {
		n = p.next.Add(1) - 1
		i = int(p.schedule[n%uint64(len(p.schedule))])
	}
	return i, nil
}

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
