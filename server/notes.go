package server

import (
	"slices"
	"sort"

	"google.golang.org/protobuf/proto"

	"github.com/meshgate/meshgate/config"
	adminv1 "github.com/meshgate/meshgate/proto/meshgate/admin/v1"
	"github.com/meshgate/meshgate/server/support"
)

// notes are, by type URL and resource name, what of each resource's config
// the data plane accepts but does not do ("field: what instead").
type notes map[string]map[string][]string

func (n notes) add(typeURL, name string, lines ...string) {
	if len(lines) == 0 {
		return
	}
	if n[typeURL] == nil {
		n[typeURL] = map[string][]string{}
	}
	n[typeURL][name] = append(n[typeURL][name], lines...)
}

// lines are a resource's notes, sorted, each once.
func (n notes) lines(typeURL, name string) []string {
	out := slices.Clone(n[typeURL][name])
	slices.Sort(out)
	return slices.Compact(out)
}

// dump is the /config_dump form of the notes, with the resources'
// versions in set.
func (n notes) dump(set *config.Set) []*adminv1.UnimplementedResource {
	var out []*adminv1.UnimplementedResource
	for _, t := range config.ResourceTypes {
		names := make([]string, 0, len(n[t]))
		for name := range n[t] {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			ur := &adminv1.UnimplementedResource{TypeUrl: t, Name: name, Unimplemented: n.lines(t, name)}
			if r := set.Get(t, name); r != nil {
				ur.Version = r.Version
			}
			out = append(out, ur)
		}
	}
	return out
}

// supportCheck is support.Check of one resource, remembered while the
// resource is unchanged (the store keeps a Resource while its content is).
type supportCheck struct {
	notes []string
	err   error
}

// checkSupport walks a resource's fields (support.Check), reusing prev's
// result for a resource that has not changed, and records it in next.
func checkSupport(prev *snapshot, r *config.Resource, next map[*config.Resource]supportCheck) supportCheck {
	c, ok := prev.checks[r]
	if !ok {
		c.notes, c.err = support.Check(r.Message)
	}
	next[r] = c
	return c
}

// checkEndpoints walks every ClusterLoadAssignment of set: refusals are
// errors of those resources, the rest notes.
func checkEndpoints(prev *snapshot, set *config.Set, cache map[*config.Resource]supportCheck, n notes) config.ResourceErrors {
	var errs config.ResourceErrors
	for _, r := range set.All(config.EndpointType) {
		c := checkSupport(prev, r, cache)
		if c.err != nil {
			errs = append(errs, &config.ResourceError{TypeURL: config.EndpointType, Name: r.Name, Err: c.err})
			continue
		}
		n.add(config.EndpointType, r.Name, c.notes...)
	}
	return errs
}

// endpointNotes checks the endpoints a change touches (and only those: an
// endpoint update must stay cheap among thousands of clusters) and returns
// the notes of the whole config with theirs replaced. prev's support cache
// is updated in place (under Server.mu): it drops the replaced resources
// and keeps the new ones only when they pass.
func endpointNotes(prev *snapshot, next *config.Set, change config.Change) (notes, config.ResourceErrors) {
	n := notes{}
	for t, m := range prev.notes {
		if t != config.EndpointType {
			n[t] = m
		}
	}
	byName := map[string][]string{}
	for name, lines := range prev.notes[config.EndpointType] {
		byName[name] = lines
	}
	var errs config.ResourceErrors
	var added []*config.Resource
	for _, name := range change.Names(config.EndpointType) {
		delete(byName, name)
		r := next.Get(config.EndpointType, name)
		if r == nil {
			continue
		}
		c, cached := prev.checks[r]
		if !cached {
			c.notes, c.err = support.Check(r.Message)
			prev.checks[r] = c
			added = append(added, r)
		}
		if c.err != nil {
			errs = append(errs, &config.ResourceError{TypeURL: config.EndpointType, Name: name, Err: c.err})
			continue
		}
		if len(c.notes) > 0 {
			byName[name] = c.notes
		}
	}
	if len(errs) > 0 {
		for _, r := range added {
			delete(prev.checks, r)
		}
		return nil, errs
	}
	for _, name := range change.Names(config.EndpointType) {
		if old := prev.set.Get(config.EndpointType, name); old != nil && old != next.Get(config.EndpointType, name) {
			delete(prev.checks, old)
		}
	}
	if len(byName) > 0 {
		n[config.EndpointType] = byName
	}
	return n, nil
}

// logNewNotes says once at WARN each note of next that prev did not have,
// and sets the gauge by type.
func (s *Server) logNewNotes(prev, next *snapshot) {
	for t, byName := range next.notes {
		for name := range byName {
			had := map[string]bool{}
			for _, l := range prev.notes.lines(t, name) {
				had[l] = true
			}
			for _, l := range next.notes.lines(t, name) {
				if !had[l] {
					s.log.Warn("accepted, but not done as configured", "type", kindName(t), "name", name, "field", l)
				}
			}
		}
	}
	for _, t := range config.ResourceTypes {
		count := 0
		for name := range next.notes[t] {
			count += len(next.notes.lines(t, name))
		}
		s.metrics.Unimplemented.WithLabelValues(kindName(t)).Set(float64(count))
	}
}

// Unimplemented lists, per resource of the running config, what of it is
// accepted but not done.
func (s *Server) Unimplemented() []*adminv1.UnimplementedResource {
	list := s.snap.Load().unimplemented
	out := make([]*adminv1.UnimplementedResource, len(list))
	for i, r := range list {
		out[i] = proto.Clone(r).(*adminv1.UnimplementedResource)
	}
	return out
}

func kindName(typeURL string) string {
	switch typeURL {
	case config.ListenerType:
		return "listener"
	case config.RouteType:
		return "route_config"
	case config.ClusterType:
		return "cluster"
	case config.EndpointType:
		return "endpoints"
	}
	return typeURL
}
