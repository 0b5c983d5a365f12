package governance

import (
	"math"
	"math/rand/v2"
	"slices"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// RingHash is Envoy's RING_HASH (ketama): each endpoint owns points on a
// ring of hashes, in proportion to its weight; a request goes to the first
// point at or after its hash. Requests without a hash are spread at random.
//
// Unlike Envoy, which sizes the whole ring to about min_ring_size and so
// gives every endpoint fewer points as endpoints are added (reshuffling
// keys between the old ones too), meshgate gives an endpoint a fixed number
// of points per unit of weight (pointsPerWeight, raised for small clusters
// to reach MinRingSize): adding one of N endpoints moves about 1/N of the
// keys, all to the new one, for rings up to 64k points (256 endpoints of
// equal weight); larger clusters get fewer points each. Points are named
// as Envoy names them.
type RingHash struct {
	// MinRingSize and MaxRingSize bound the number of points (Envoy's
	// defaults: 1024 and 8M).
	MinRingSize, MaxRingSize uint64
}

// Name implements Builder.
func (RingHash) Name() string { return "ring_hash" }

// pointsPerWeight is the ring points of an endpoint of the lowest weight,
// while the ring stays under ringSoftLimit points.
const (
	pointsPerWeight = 256
	ringSoftLimit   = 1 << 16
)

type ringEntry struct {
	hash uint64
	host int32
}

// Build implements Builder. Points are xxHash64("<address>_<n>"), as Envoy
// names them, so a ring agrees with Envoy's for the same endpoints.
func (b RingHash) Build(endpoints []Endpoint) Picker {
	if len(endpoints) == 0 {
		return emptyPicker{}
	}
	minSize, maxSize := b.MinRingSize, b.MaxRingSize
	if minSize == 0 {
		minSize = 1024
	}
	if maxSize == 0 {
		maxSize = 8 << 20
	}
	var totalUnits float64
	minWeight := math.Inf(1)
	for i := range endpoints {
		minWeight = min(minWeight, float64(endpoints[i].weight()))
	}
	for i := range endpoints {
		totalUnits += float64(endpoints[i].weight()) / minWeight
	}
	// Points for the lightest endpoint: fixed up to ringSoftLimit points in
	// all (past it, endpoints get fewer, as in Envoy, to keep rebuilds fast),
	// and within MinRingSize and MaxRingSize.
	perUnit := min(float64(pointsPerWeight), max(16, math.Floor(ringSoftLimit/totalUnits)))
	perUnit = max(perUnit, math.Ceil(float64(minSize)/totalUnits))
	perUnit = min(perUnit, math.Floor(float64(maxSize)/totalUnits))
	perUnit = max(perUnit, 1)
	ring := make([]ringEntry, 0, int(perUnit*totalUnits)+len(endpoints))
	var buf []byte
	for i := range endpoints {
		n := int(math.Round(float64(endpoints[i].weight()) / minWeight * perUnit))
		for k := range n {
			buf = append(buf[:0], endpoints[i].Address...)
			buf = append(buf, '_')
			buf = strconv.AppendInt(buf, int64(k), 10)
			ring = append(ring, ringEntry{hash: xxhash.Sum64(buf), host: int32(i)})
		}
	}
	slices.SortFunc(ring, func(a, b ringEntry) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		return int(a.host - b.host)
	})
	return &ringPicker{ring: ring, rand: rand.Uint64}
}

type ringPicker struct {
	ring []ringEntry
	rand uniformRand
}

func (p *ringPicker) Pick(info PickInfo) (int, error) {
	h := info.Hash
	if !info.HasHash {
		h = p.rand()
	}
	i, _ := slices.BinarySearchFunc(p.ring, h, func(e ringEntry, t uint64) int {
		if e.hash < t {
			return -1
		}
		if e.hash > t {
			return 1
		}
		return 0
	})
	// Walk on past excluded hosts, as a retry with previous_hosts does.
	for step := 0; step < len(p.ring); step++ {
		host := int(p.ring[(i+step)%len(p.ring)].host)
		if info.Exclude == nil || !info.Exclude(host) || step >= maxReselect*16 {
			return host, nil
		}
	}
	return int(p.ring[i%len(p.ring)].host), nil
}
