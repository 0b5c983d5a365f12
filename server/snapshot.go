package server

import (
	"cmp"
	"slices"

	"github.com/meshgate/meshgate/config"
	adminv1 "github.com/meshgate/meshgate/proto/meshgate/admin/v1"
	"github.com/meshgate/meshgate/server/cluster"
	"github.com/meshgate/meshgate/server/secrets"
)

// snapshot is one compiled config: what the data plane runs, built by
// compile from a config.Set (and the running snapshot, for what carries
// over) and made live whole by one atomic swap (Server.snap). Once live
// it does not change, but for the host sets of its clusters (membership
// updates in place, cluster.SetEndpoints) and its support cache (checks,
// which endpoint updates extend under Server.mu).
type snapshot struct {
	set *config.Set
	// clusters by name, and view the same sorted by name.
	clusters map[string]*cluster.Cluster
	view     []*cluster.Cluster
	// listeners by address key (compiledListener.key).
	listeners map[string]*compiledListener
	// built are the clusters this snapshot made (the rest it took over):
	// what abandon closes when it does not go live.
	built []*cluster.Cluster
	// notes are what of each resource is accepted but not done, and
	// unimplemented their /config_dump form.
	notes         notes
	unimplemented []*adminv1.UnimplementedResource
	// checks remembers support.Check of the resources (by resource, which
	// the store keeps while a resource is unchanged).
	checks map[*config.Resource]supportCheck
	// secrets are the SDS secrets of set, parsed; Apply puts them in the
	// server's table when the snapshot goes live.
	secrets map[string]*secrets.Secret
	// kept is what filters learned at run time (descriptors fetched by
	// gRPC reflection), by listener and key (httpfilter.Build.Keep).
	kept map[string]any
}

func emptySnapshot() *snapshot {
	return &snapshot{clusters: map[string]*cluster.Cluster{}, listeners: map[string]*compiledListener{},
		notes: notes{}, checks: map[*config.Resource]supportCheck{}, kept: map[string]any{}}
}

// keeper is httpfilter.Build.Keep for one compile.
type keeper func(key string, fresh func() any) any

// keeper returns the value prev kept under key (fresh()'s for a new key)
// and keeps it in p too.
func (p *snapshot) keeper(prev *snapshot) keeper {
	return func(key string, fresh func() any) any {
		v, ok := prev.kept[key]
		if !ok {
			v = fresh()
		}
		p.kept[key] = v
		return v
	}
}

// setNotes records n (and its /config_dump form) and the sorted cluster
// view: the last step of building a snapshot.
func (p *snapshot) setNotes(n notes) {
	p.notes = n
	p.unimplemented = n.dump(p.set)
	p.view = make([]*cluster.Cluster, 0, len(p.clusters))
	for _, c := range p.clusters {
		p.view = append(p.view, c)
	}
	slices.SortFunc(p.view, func(a, b *cluster.Cluster) int { return cmp.Compare(a.Name, b.Name) })
}
