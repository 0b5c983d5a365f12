package governance

import (
	"math/rand/v2"
)

// Random is Envoy's RANDOM, weighted: each pick draws an endpoint with
// probability proportional to its weight, in constant time (Vose's alias
// method).
type Random struct{}

// Name implements Builder.
func (Random) Name() string { return "random" }

// Build implements Builder.
func (Random) Build(endpoints []Endpoint) Picker {
	if len(endpoints) == 0 {
		return emptyPicker{}
	}
	return &randomPicker{draw: newAlias(endpoints), rand: rand.Uint64}
}

type randomPicker struct {
	draw *alias
	rand uniformRand
}

func (p *randomPicker) Pick(info PickInfo) (int, error) {
	i := p.draw.pick(p.rand())
	for try := 0; info.Exclude != nil && info.Exclude(i) && try < maxReselect; try++ {
		i = p.draw.pick(p.rand())
	}
	return i, nil
}

// alias is a Vose alias table: a weighted draw in O(1).
type alias struct {
	prob  []uint64 // threshold out of 1<<32
	alias []int32
}

func newAlias(endpoints []Endpoint) *alias {
	n := len(endpoints)
	a := &alias{prob: make([]uint64, n), alias: make([]int32, n)}
	var total uint64
	for i := range endpoints {
		total += endpoints[i].weight()
	}
	// Scaled weights: each endpoint's weight times n, in units of total.
	scaled := make([]uint64, n)
	var small, large []int
	for i := range endpoints {
		scaled[i] = endpoints[i].weight() * uint64(n)
		if scaled[i] < total {
			small = append(small, i)
		} else {
			large = append(large, i)
		}
	}
	const one = 1 << 32
	for len(small) > 0 && len(large) > 0 {
		s, l := small[len(small)-1], large[len(large)-1]
		small = small[:len(small)-1]
		a.prob[s] = scaled[s] * one / total
		a.alias[s] = int32(l)
		scaled[l] -= total - scaled[s]
		if scaled[l] < total {
			large = large[:len(large)-1]
			small = append(small, l)
		}
	}
	for _, i := range append(small, large...) {
		a.prob[i], a.alias[i] = one, int32(i)
	}
	return a
}

// pick draws an index from one uniform 64-bit number: the high bits choose
// the column, the low 32 bits the side.
func (a *alias) pick(r uint64) int {
	col := int((r >> 32) % uint64(len(a.prob)))
	if r&(1<<32-1) < a.prob[col] {
		return col
	}
	return int(a.alias[col])
}
