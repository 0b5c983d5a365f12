package governance

import (
	"math"
	"math/rand/v2"
	"time"
)

// Host is an endpoint with its health, as the cluster knows it (EDS
// status, active health checks, outlier ejection, breaker).
type Host struct {
	Endpoint
	Healthy bool
}

// LBOptions are a cluster's balancing settings (Envoy's common_lb_config).
type LBOptions struct {
	// PanicThreshold is the percentage of healthy hosts in a priority below
	// which that priority balances over all its hosts, healthy or not,
	// rather than overload the few healthy ones. Envoy's default is 50; a
	// negative value turns panic mode off.
	PanicThreshold float64
	// Overprovisioning is Envoy's overprovisioning factor (default 1.4): a
	// priority keeps all its traffic while 1/1.4 of its hosts are healthy,
	// and spills the rest to the next priority below that.
	Overprovisioning float64
	// LocalityWeighted picks a locality by its weight (scaled by its health)
	// before an endpoint within it, for policies without a hash.
	LocalityWeighted bool

	rand uniformRand
}

// NewPicker builds the picker of a cluster: Envoy's priority load
// distribution and panic mode over the given policy. Indexes it returns are
// into hosts.
func NewPicker(b Builder, hosts []Host, opts LBOptions) Picker {
	if len(hosts) == 0 {
		return emptyPicker{}
	}
	if opts.Overprovisioning <= 0 {
		opts.Overprovisioning = 1.4
	}
	if opts.PanicThreshold == 0 {
		opts.PanicThreshold = 50
	}
	if opts.rand == nil {
		opts.rand = rand.Uint64
	}
	type level struct {
		prio         uint32
		all, healthy []int
		health       float64 // percent, overprovisioned, at most 100
		panic        bool
	}
	byPrio := map[uint32]*level{}
	var order []*level
	for i := range hosts {
		p := hosts[i].Priority
		l := byPrio[p]
		if l == nil {
			l = &level{prio: p}
			byPrio[p] = l
			order = append(order, l)
		}
		l.all = append(l.all, i)
		if hosts[i].Healthy {
			l.healthy = append(l.healthy, i)
		}
	}
	sortLevels(order, func(l *level) uint32 { return l.prio })

	var totalHealth float64
	for _, l := range order {
		l.health = min(100, opts.Overprovisioning*100*float64(len(l.healthy))/float64(len(l.all)))
		totalHealth += l.health
		healthyPct := 100 * float64(len(l.healthy)) / float64(len(l.all))
		l.panic = opts.PanicThreshold > 0 && healthyPct < opts.PanicThreshold
	}
	totalHealth = min(totalHealth, 100)

	out := &priorityPicker{rand: opts.rand}
	remaining := 100.0
	for n, l := range order {
		load := 0.0
		switch {
		case totalHealth == 0:
			// Nothing healthy anywhere: the first priority takes it all, in
			// panic mode if that is on, else it has nothing to offer.
			if n == 0 {
				load = 100
			}
		case n == len(order)-1:
			load = remaining
		default:
			load = min(remaining, math.Round(l.health*100/totalHealth))
		}
		remaining -= load
		if load <= 0 {
			continue
		}
		members := l.healthy
		if l.panic || len(members) == 0 {
			if opts.PanicThreshold <= 0 {
				continue
			}
			members = l.all
		}
		lp := &levelPicker{index: members}
		eps := make([]Endpoint, len(members))
		for k, gi := range members {
			eps[k] = hosts[gi].Endpoint
		}
		lp.inner = b.Build(eps)
		if opts.LocalityWeighted && !hashed(b) {
			lp.localities, lp.draw = localityPickers(b, hosts, members, opts.Overprovisioning)
		}
		out.levels = append(out.levels, lp)
		out.cumulative = append(out.cumulative, 100-remaining)
	}
	if len(out.levels) == 0 {
		return emptyPicker{}
	}
	return out
}

func hashed(b Builder) bool {
	switch b.(type) {
	case RingHash, Maglev:
		return true
	}
	return false
}

func sortLevels[T any](s []T, key func(T) uint32) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && key(s[j]) < key(s[j-1]); j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

type priorityPicker struct {
	levels     []*levelPicker
	cumulative []float64 // cumulative load percent, last is 100
	rand       uniformRand
}

func (p *priorityPicker) Pick(info PickInfo) (int, error) {
	lp := p.levels[0]
	if len(p.levels) > 1 {
		// Hash-based policies choose the priority from the hash too, so a
		// key keeps its host while the priorities' loads stay put.
		r := info.Hash
		if !info.HasHash {
			r = p.rand()
		}
		x := float64(r%10000) / 100
		for k, c := range p.cumulative {
			if x < c {
				lp = p.levels[k]
				break
			}
		}
	}
	return lp.pick(info, p.rand)
}

type levelPicker struct {
	index      []int // level member -> host index
	inner      Picker
	localities []localityPick
	draw       *alias
}

type localityPick struct {
	picker Picker
	index  []int // locality member -> host index
}

func (lp *levelPicker) pick(info PickInfo, r uniformRand) (int, error) {
	inner, index := lp.inner, lp.index
	if lp.draw != nil {
		l := &lp.localities[lp.draw.pick(r())]
		inner, index = l.picker, l.index
	}
	ex := info.Exclude
	if ex != nil {
		info.Exclude = func(i int) bool { return ex(index[i]) }
	}
	i, err := inner.Pick(info)
	if err != nil {
		return 0, err
	}
	if ex != nil && ex(index[i]) {
		// The policy kept landing on tried hosts: take the next untried
		// member of the level, if there is one.
		start := int(r() % uint64(len(lp.index)))
		for k := range lp.index {
			if g := lp.index[(start+k)%len(lp.index)]; !ex(g) {
				return g, nil
			}
		}
	}
	return index[i], nil
}

// localityPickers groups members by locality and weighs each locality by
// its weight times its (overprovisioned) share of healthy hosts.
func localityPickers(b Builder, hosts []Host, members []int, overprov float64) ([]localityPick, *alias) {
	type group struct {
		weight          uint32
		members         []int
		total, healthyN int
	}
	groups := map[string]*group{}
	var names []string
	for _, gi := range members {
		h := &hosts[gi]
		g := groups[h.Locality]
		if g == nil {
			g = &group{weight: h.LocalityWeight}
			groups[h.Locality] = g
			names = append(names, h.Locality)
		}
		g.members = append(g.members, gi)
	}
	for _, h := range hosts {
		if g := groups[h.Locality]; g != nil {
			g.total++
			if h.Healthy {
				g.healthyN++
			}
		}
	}
	var picks []localityPick
	var weights []Endpoint
	for _, name := range names {
		g := groups[name]
		share := min(1, overprov*float64(g.healthyN)/float64(g.total))
		w := uint32(math.Round(float64(max(g.weight, 1)) * share * 1000))
		if w == 0 {
			continue
		}
		eps := make([]Endpoint, len(g.members))
		for k, gi := range g.members {
			eps[k] = hosts[gi].Endpoint
		}
		picks = append(picks, localityPick{picker: b.Build(eps), index: g.members})
		weights = append(weights, Endpoint{Weight: w})
	}
	if len(picks) < 2 {
		return nil, nil
	}
	return picks, newAlias(weights)
}

// SlowStartWeight is Envoy's slow start: a host that joined age ago, less
// than window, gets weight * max(minPercent/100, (age/window)^(1/aggression)).
func SlowStartWeight(weight uint32, age, window time.Duration, aggression, minPercent float64) uint32 {
	if window <= 0 || age >= window {
		return weight
	}
	if aggression <= 0 {
		aggression = 1
	}
	if minPercent <= 0 {
		minPercent = 10
	}
	f := math.Max(minPercent/100, math.Pow(float64(age)/float64(window), 1/aggression))
	return uint32(max(1, math.Round(float64(max(weight, 1))*f)))
}
