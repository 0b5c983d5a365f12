package governance

import (
	"math/rand/v2"

	"github.com/cespare/xxhash/v2"
)

// maglevTableSize is Envoy's default Maglev table size, a prime.
const maglevTableSize = 65537

// Maglev is Envoy's MAGLEV: a lookup table of a prime size filled by each
// endpoint's own permutation of the slots, turns given in proportion to the
// weights (Google's Maglev paper, section 3.4, with Envoy's weighting).
// Picks are one array read; a change of one endpoint moves few keys.
type Maglev struct {
	// TableSize must be prime (default 65537).
	TableSize uint64
}

// Name implements Builder.
func (Maglev) Name() string { return "maglev" }

// Build implements Builder.
func (b Maglev) Build(endpoints []Endpoint) Picker {
	if len(endpoints) == 0 {
		return emptyPicker{}
	}
	m := b.TableSize
	if m == 0 {
		m = maglevTableSize
	}
	type perm struct {
		offset, skip, next uint64
		weight             float64 // relative to the largest weight
		target             float64
	}
	var maxW uint64
	for i := range endpoints {
		maxW = max(maxW, endpoints[i].weight())
	}
	perms := make([]perm, len(endpoints))
	for i := range endpoints {
		addr := endpoints[i].Address
		perms[i] = perm{
			offset: xxhash.Sum64String(addr) % m,
			skip:   xxhash.Sum64String(addr+"#skip")%(m-1) + 1,
			weight: float64(endpoints[i].weight()) / float64(maxW),
		}
	}
	table := make([]int32, m)
	for i := range table {
		table[i] = -1
	}
	filled := uint64(0)
	for iteration := 1.0; filled < m; iteration++ {
		for i := range perms {
			p := &perms[i]
			// An endpoint of weight w takes a turn every 1/w iterations.
			if p.target > iteration*p.weight {
				continue
			}
			p.target++
			for {
				slot := (p.offset + p.next*p.skip) % m
				p.next++
				if table[slot] < 0 {
					table[slot] = int32(i)
					filled++
					break
				}
			}
			if filled == m {
				break
			}
		}
	}
	return &maglevPicker{table: table, rand: rand.Uint64}
}

type maglevPicker struct {
	table []int32
	rand  uniformRand
}

func (p *maglevPicker) Pick(info PickInfo) (int, error) {
	h := info.Hash
	if !info.HasHash {
		h = p.rand()
	}
	m := uint64(len(p.table))
	i := int(p.table[h%m])
	for try := uint64(1); info.Exclude != nil && info.Exclude(i) && try <= maxReselect; try++ {
		i = int(p.table[(h+try*0x9e3779b97f4a7c15)%m])
	}
	return i, nil
}
