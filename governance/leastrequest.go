package governance

import (
	"math/rand/v2"
)

// LeastRequest is Envoy's LEAST_REQUEST: the power of two choices. Two
// endpoints are drawn, each with probability proportional to its weight,
// and the one with fewer requests in flight per unit of weight wins. With
// no load this honours the weights; under load it steers away from busy
// hosts. (Envoy switches to an EDF schedule of weight/(active+1) when
// weights differ; drawing by weight gives the same shares at rest with a
// cheaper pick.)
type LeastRequest struct {
	// ChoiceCount is how many endpoints are drawn (default 2).
	ChoiceCount int
}

// Name implements Builder.
func (LeastRequest) Name() string { return "least_request" }

// Build implements Builder.
func (b LeastRequest) Build(endpoints []Endpoint) Picker {
	if len(endpoints) == 0 {
		return emptyPicker{}
	}
	p := &leastRequestPicker{eps: make([]Endpoint, len(endpoints)), choices: max(b.ChoiceCount, 2), rand: rand.Uint64}
	copy(p.eps, endpoints)
	p.draw = newAlias(endpoints)
	return p
}

type leastRequestPicker struct {
	eps     []Endpoint
	draw    *alias
	choices int
	rand    uniformRand
}

func (p *leastRequestPicker) Pick(info PickInfo) (int, error) {
	best := -1
	for try := 0; try < maxReselect; try++ {
		best = -1
		for range p.choices {
			i := p.draw.pick(p.rand())
			if best < 0 || p.less(i, best) {
				best = i
			}
		}
		if info.Exclude == nil || !info.Exclude(best) {
			break
		}
	}
	return best, nil
}

// less reports whether i is less loaded than j: active/weight compared
// without division.
func (p *leastRequestPicker) less(i, j int) bool {
	a, b := &p.eps[i], &p.eps[j]
	return uint64(a.active())*b.weight() < uint64(b.active())*a.weight()
}
