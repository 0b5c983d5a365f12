package server

import (
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

// supportCheck is support.Check of one resource, remembered while the
// resource is unchanged (the store keeps a Resource while its content is).
type supportCheck struct {
	notes []string
	err   error
}

// checkSupport walks a resource's fields (support.Check), reusing the
// result of the last compile for a resource that has not changed. Called
// with s.mu held.
func (s *Server) checkSupport(r *config.Resource, next map[*config.Resource]supportCheck) supportCheck {
	c, ok := s.supportChecks[r]
	if !ok {
		c.notes, c.err = support.Check(r.Message)
	}
	next[r] = c
	return c
}

// checkEndpoints walks every ClusterLoadAssignment of set: refusals are
// errors of those resources, the rest notes.
func (s *Server) checkEndpoints(set *config.Set, cache map[*config.Resource]supportCheck, n notes) config.ResourceErrors {
	var errs config.ResourceErrors
	for _, r := range set.All(config.EndpointType) {
		c := s.checkSupport(r, cache)
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
// the notes of the whole config with theirs replaced. The support cache is
// updated in place: drops the replaced resources, keeps the new ones only
// when they pass. Called with s.mu held.
func (s *Server) endpointNotes(next *config.Set, change config.Change) (notes, config.ResourceErrors) {
	prev := s.set.Load()
	n := notes{}
	for t, m := range s.liveNotes {
		if t != config.EndpointType {
			n[t] = m
		}
	}
	byName := map[string][]string{}
	for name, lines := range s.liveNotes[config.EndpointType] {
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
		c, cached := s.supportChecks[r]
		if !cached {
			c.notes, c.err = support.Check(r.Message)
			s.supportChecks[r] = c
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
			delete(s.supportChecks, r)
		}
		return nil, errs
	}
	for _, name := range change.Names(config.EndpointType) {
		if old := prev.Get(config.EndpointType, name); old != nil && old != next.Get(config.EndpointType, name) {
			delete(s.supportChecks, old)
		}
	}
	if len(byName) > 0 {
		n[config.EndpointType] = byName
	}
	return n, nil
}

// publishNotes makes n the live notes: each one not seen before is logged
// once at WARN, the gauge counts them by type, /config_dump lists them.
// Called with s.mu held, after a config went live.
func (s *Server) publishNotes(n notes, set *config.Set, checks map[*config.Resource]supportCheck) {
	seen := map[string]bool{}
	for t, byName := range n {
		for name, lines := range byName {
			sort.Strings(lines)
			lines = compactStrings(lines)
			byName[name] = lines
			for _, l := range lines {
				key := t + "\x00" + name + "\x00" + l
				seen[key] = true
				if !s.logged[key] {
					s.log.Warn("accepted, but not done as configured", "type", kindName(t), "name", name, "field", l)
				}
			}
		}
	}
	s.logged = seen
	s.liveNotes = n
	for _, t := range config.ResourceTypes {
		count := 0
		for _, lines := range n[t] {
			count += len(lines)
		}
		s.metrics.Unimplemented.WithLabelValues(kindName(t)).Set(float64(count))
	}
	var out []*adminv1.UnimplementedResource
	for _, t := range config.ResourceTypes {
		names := make([]string, 0, len(n[t]))
		for name := range n[t] {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			ur := &adminv1.UnimplementedResource{TypeUrl: t, Name: name, Unimplemented: n[t][name]}
			if r := set.Get(t, name); r != nil {
				ur.Version = r.Version
			}
			out = append(out, ur)
		}
	}
	s.unimplemented.Store(&out)
	s.supportChecks = checks
}

// Unimplemented lists, per resource of the running config, what of it is
// accepted but not done.
func (s *Server) Unimplemented() []*adminv1.UnimplementedResource {
	list := *s.unimplemented.Load()
	out := make([]*adminv1.UnimplementedResource, len(list))
	for i, r := range list {
		out[i] = proto.Clone(r).(*adminv1.UnimplementedResource)
	}
	return out
}

func compactStrings(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
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
