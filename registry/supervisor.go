package registry

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshgate/meshgate/config"
)

// Supervisor runs the watchers of the configured registries and follows the
// config: on a reload a registry that is new starts, one that is gone
// stops and its clusters leave the store, one whose settings changed
// restarts.
type Supervisor struct {
	metadata MetadataCaller
	store    *config.Store
	log      *slog.Logger
	reg      prometheus.Registerer

	mu      sync.Mutex
	running map[string]*supervised
	order   []string // the names as the config lists them
	wg      sync.WaitGroup
}

type supervised struct {
	settings config.RegistrySettings
	watcher  Watcher
	cancel   context.CancelFunc
	done     chan struct{}
}

// NewSupervisor returns a Supervisor with no registries.
// metadata asks Dubbo2 MetadataServices (nil: only Triple ones are asked).
func NewSupervisor(store *config.Store, log *slog.Logger, reg prometheus.Registerer, metadata MetadataCaller) *Supervisor {
	return &Supervisor{store: store, log: log, reg: reg, metadata: metadata, running: map[string]*supervised{}}
}

// Apply makes the running watchers those of settings. Watchers run until
// ctx ends (or Apply stops them); an invalid registry fails Apply with the
// others applied.
func (s *Supervisor) Apply(ctx context.Context, settings []config.RegistrySettings) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	want := map[string]config.RegistrySettings{}
	s.order = s.order[:0]
	for _, rs := range settings {
		want[rs.Name] = rs
		s.order = append(s.order, rs.Name)
	}
	for name, r := range s.running {
		if rs, ok := want[name]; ok && reflect.DeepEqual(rs, r.settings) {
			continue
		}
		s.stop(ctx, name, r)
	}
	var errs []error
	for _, rs := range settings {
		if s.running[rs.Name] != nil {
			continue
		}
		w, err := FromSettings(s.store, rs, s.log, s.reg, s.metadata)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		wctx, cancel := context.WithCancel(ctx)
		r := &supervised{settings: rs, watcher: w, cancel: cancel, done: make(chan struct{})}
		s.running[rs.Name] = r
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer close(r.done)
			if err := w.Run(wctx); err != nil {
				s.log.Error("registry watcher stopped", "registry", rs.Name, "error", err)
			}
		}()
		s.log.Info("discovering Dubbo providers", "registry", rs.Name, "kind", rs.Kind, "servers", rs.Servers, "mode", rs.Mode)
	}
	return errors.Join(errs...)
}

// stop ends a watcher and takes its clusters out of the store.
func (s *Supervisor) stop(ctx context.Context, name string, r *supervised) {
	r.cancel()
	<-r.done
	delete(s.running, name)
	err := s.store.Apply(ctx, config.Update{Source: "registry/" + name, Version: "removed",
		Replace: []string{config.ClusterType, config.EndpointType}})
	if err != nil {
		s.log.Error("the clusters of a removed registry could not be withdrawn (routes still name them?)", "registry", name, "error", err)
		return
	}
	s.log.Info("registry removed", "registry", name)
}

// Statuses are the running watchers' states, in the config's order.
func (s *Supervisor) Statuses() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Status, 0, len(s.running))
	for _, name := range s.order {
		if r := s.running[name]; r != nil {
			out = append(out, r.watcher.Status())
		}
	}
	return out
}

// Wait returns once every watcher ended (after ctx ended).
func (s *Supervisor) Wait() { s.wg.Wait() }
