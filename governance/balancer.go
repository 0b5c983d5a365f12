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
	// Priority is the endpoint's priority level; 0 is tried first.
	Priority uint32
	// Locality names the endpoint's region/zone/sub-zone, and
	// LocalityWeight that locality's share (0: localities unweighted).
	Locality       string
	LocalityWeight uint32
	// Active is the endpoint's count of requests in flight, read by
	// least-request; nil counts as 0.
	Active *atomic.Int64
}

func (e *Endpoint) weight() uint64 { return uint64(max(e.Weight, 1)) }

func (e *Endpoint) active() int64 {
	if e.Active == nil {
		return 0
	}
	return e.Active.Load()
}

// PickInfo describes the request being balanced.
type PickInfo struct {
	// Hash is the request's hash key, when the route computes one.
	Hash    uint64
	HasHash bool
	// Exclude, when set, reports endpoints a retry should avoid (the hosts
	// already tried). A picker tries a few times to avoid them, then takes
	// what it gets, as Envoy's host_selection_retry_max_attempts does.
	Exclude func(i int) bool
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
	RoundRobin{}.Name():   RoundRobin{},
	LeastRequest{}.Name(): LeastRequest{},
	Random{}.Name():       Random{},
	RingHash{}.Name():     RingHash{},
	Maglev{}.Name():       Maglev{},
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

type emptyPicker struct{}

func (emptyPicker) Pick(PickInfo) (int, error) { return 0, ErrNoEndpoint }

// uniformRand returns a uniform number for balancing; tests replace it.
type uniformRand func() uint64
