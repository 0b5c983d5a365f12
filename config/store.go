package config

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
)

// Update is one change from one source.
type Update struct {
	// Source names who writes (e.g. "file", "xds", "registry/zk"). A resource
	// belongs to the source that wrote it; another source may not replace it.
	Source string
	// Version labels the resources this update writes; Versions, when it
	// has the type, wins (xDS versions are per type).
	Version  string
	Versions map[string]string
	// ResourceVersions, when it has the resource, wins over both (delta
	// xDS versions each resource): type URL -> name -> version.
	ResourceVersions map[string]map[string]string
	// Replace lists the type URLs this update carries in full (xDS "state of
	// the world"): resources of those types owned by Source that are absent
	// from Resources are removed.
	Replace []string
	// Resources are added or replaced.
	Resources []proto.Message
	// Remove names resources to delete, by type URL.
	Remove map[string][]string
}

// Change tells a Consumer which resources differ from the last Set.
type Change struct {
	types map[string]bool
	names map[string]map[string]bool // type URL -> names added, changed or removed
}

// Has reports whether resources of typeURL were added, changed or removed.
func (c Change) Has(typeURL string) bool { return c.types[typeURL] }

// Changed reports whether the named resource was added, changed or removed.
func (c Change) Changed(typeURL, name string) bool { return c.names[typeURL][name] }

func (c *Change) mark(typeURL, name string) {
	c.types[typeURL] = true
	if c.names[typeURL] == nil {
		c.names[typeURL] = map[string]bool{}
	}
	c.names[typeURL][name] = true
}

// Names lists, unordered, the resources of typeURL that were added,
// changed or removed.
func (c Change) Names(typeURL string) []string {
	out := make([]string, 0, len(c.names[typeURL]))
	for n := range c.names[typeURL] {
		out = append(out, n)
	}
	return out
}

// OnlyEndpoints reports whether the change touches ClusterLoadAssignments
// and nothing else, so that the data plane can update host sets in place.
func (c Change) OnlyEndpoints() bool {
	return len(c.types) == 1 && c.types[EndpointType]
}

// OnlyData reports whether the change touches nothing but endpoints and
// secrets: what the data plane takes in place (host sets, the certificates
// TLS handshakes read), without compiling anything again.
func (c Change) OnlyData() bool {
	for t := range c.types {
		if t != EndpointType && t != SecretType {
			return false
		}
	}
	return len(c.types) > 0
}

// Consumer receives each candidate Set before the store commits it.
type Consumer interface {
	// Apply is called from the goroutine that called Store.Apply, one call at
	// a time. It must make next live or return an error; an error rejects the
	// update whole and the store keeps its previous Set.
	Apply(ctx context.Context, next *Set, change Change) error
}

// Checker is implemented by consumers that can compile a Set without
// making it live (a dry run).
type Checker interface {
	Check(next *Set) error
}

// ConsumerFunc adapts a function to Consumer.
type ConsumerFunc func(ctx context.Context, next *Set, change Change) error

// Apply calls f.
func (f ConsumerFunc) Apply(ctx context.Context, next *Set, change Change) error {
	return f(ctx, next, change)
}

// Store holds the Envoy resources from every source. It is safe for
// concurrent use; updates are applied one at a time.
type Store struct {
	consumer Consumer
	observe  func(u *Update, err error)
	now      func() time.Time

	mu  sync.Mutex // serialises Apply
	cur *Set
}

// StoreOption configures a Store.
type StoreOption func(*Store)

// WithObserver calls fn after every Apply with its result; metrics use it.
func WithObserver(fn func(u *Update, err error)) StoreOption {
	return func(s *Store) { s.observe = fn }
}

// NewStore returns an empty store that hands every change to consumer.
func NewStore(consumer Consumer, opts ...StoreOption) *Store {
	s := &Store{
		consumer: consumer,
		now:      time.Now,
		cur:      &Set{byType: map[string]map[string]*Resource{}},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Current returns the last committed Set.
func (s *Store) Current() *Set {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// Apply validates u, builds the next Set, and commits it if the consumer
// accepts it. An update that changes nothing is accepted without calling the
// consumer.
func (s *Store) Apply(ctx context.Context, u Update) (err error) {
	if u.Source == "" {
		return errors.New("config store: update has no source")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.observe != nil {
		defer func() { s.observe(&u, err) }()
	}

	next, change, err := s.build(u)
	if err != nil {
		return err
	}
	if len(change.types) == 0 {
		return nil
	}
	if s.consumer != nil {
		if err := s.consumer.Apply(ctx, next, change); err != nil {
			return err
		}
	}
	s.cur = next
	return nil
}

// Check validates u and dry-runs the Set it would make with the consumer,
// when the consumer can (Checker), without committing anything.
func (s *Store) Check(u Update) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next, _, err := s.build(u)
	if err != nil {
		return err
	}
	if c, ok := s.consumer.(Checker); ok {
		return c.Check(next)
	}
	return nil
}

func (s *Store) build(u Update) (*Set, Change, error) {
	change := Change{types: map[string]bool{}, names: map[string]map[string]bool{}}
	byType := make(map[string]map[string]*Resource, len(s.cur.byType))
	for t, m := range s.cur.byType {
		byType[t] = m // copied on first write below
	}
	written := map[string]bool{}
	writable := func(t string) map[string]*Resource {
		if !written[t] {
			byType[t] = maps.Clone(byType[t])
			if byType[t] == nil {
				byType[t] = map[string]*Resource{}
			}
			written[t] = true
		}
		return byType[t]
	}

	var errs []error
	kept := map[string]map[string]bool{} // names this update carries, by type
	now := s.now()
	for _, m := range u.Resources {
		t := TypeURL(m)
		name, err := ResourceName(m)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := Validate(m); err != nil {
			errs = append(errs, &ResourceError{TypeURL: t, Name: name, Err: err})
			continue
		}
		if kept[t] == nil {
			kept[t] = map[string]bool{}
		}
		if kept[t][name] {
			errs = append(errs, &ResourceError{TypeURL: t, Name: name, Err: errors.New("defined twice")})
			continue
		}
		kept[t][name] = true
		old := byType[t][name]
		if old != nil && old.Source != u.Source {
			errs = append(errs, &ResourceError{TypeURL: t, Name: name, Err: fmt.Errorf("already defined by source %q", old.Source)})
			continue
		}
		if old != nil && proto.Equal(old.Message, m) {
			continue
		}
		version := u.Version
		if v, ok := u.Versions[t]; ok {
			version = v
		}
		if v, ok := u.ResourceVersions[t][name]; ok {
			version = v
		}
		writable(t)[name] = &Resource{Name: name, Message: m, Version: version, Source: u.Source, LastUpdated: now}
		change.mark(t, name)
	}
	for _, t := range u.Replace {
		for name, r := range byType[t] {
			if r.Source == u.Source && !kept[t][name] {
				delete(writable(t), name)
				change.mark(t, name)
			}
		}
	}
	for t, names := range u.Remove {
		for _, name := range names {
			r := byType[t][name]
			if r == nil {
				continue
			}
			if r.Source != u.Source {
				errs = append(errs, &ResourceError{TypeURL: t, Name: name, Err: fmt.Errorf("cannot remove, owned by source %q", r.Source)})
				continue
			}
			delete(writable(t), name)
			change.mark(t, name)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, Change{}, err
	}
	return &Set{Version: s.cur.Version + 1, byType: byType}, change, nil
}

// kind is a short human name for a type URL, used in error messages.
func kind(typeURL string) string {
	switch typeURL {
	case ListenerType:
		return "listener"
	case RouteType:
		return "route config"
	case ClusterType:
		return "cluster"
	case EndpointType:
		return "endpoints"
	case SecretType:
		return "secret"
	}
	return typeURL
}
