package registry

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshgate/meshgate/config"
)

// Watcher is a registry watcher: it writes what it finds into a store
// until its context ends.
type Watcher interface {
	Run(ctx context.Context) error
	Status() Status
}

// Status is a watcher's state, for the admin endpoint.
type Status struct {
	Name, Kind string
	Connected  bool
	// Clusters and Endpoints are what the last update wrote, at Updated.
	Clusters, Endpoints int
	Updated             time.Time
	Events, Resyncs     uint64
	Errors              uint64
	LastError           string
	LastErrorAt         time.Time
}

// status is what a view tracks for Status, besides the metrics.
type status struct {
	mu                      sync.Mutex
	connected               bool
	events, resyncs, errors uint64
	lastErr                 string
	lastErrAt               time.Time
}

func (v *view) noteEvent() {
	v.m.events.WithLabelValues(v.name).Inc()
	v.st.mu.Lock()
	v.st.events++
	v.st.mu.Unlock()
}

func (v *view) noteResync() {
	v.m.resyncs.WithLabelValues(v.name).Inc()
	v.st.mu.Lock()
	v.st.resyncs++
	v.st.mu.Unlock()
}

// noteError counts an error by kind (read, metadata, apply).
func (v *view) noteError(kind string, err error) {
	v.m.errors.WithLabelValues(v.name, kind).Inc()
	v.st.mu.Lock()
	v.st.errors++
	if err != nil {
		// The first line only: some clients put stack traces after it.
		v.st.lastErr, _, _ = strings.Cut(kind+": "+err.Error(), "\n")
		v.st.lastErrAt = time.Now()
	}
	v.st.mu.Unlock()
}

func (v *view) setConnected(up bool) {
	g := 0.0
	if up {
		g = 1
	}
	v.m.connected.WithLabelValues(v.name).Set(g)
	v.st.mu.Lock()
	v.st.connected = up
	v.st.mu.Unlock()
}

func (v *view) status(kind string) Status {
	clusters, endpoints, at := v.cat.counts()
	v.st.mu.Lock()
	defer v.st.mu.Unlock()
	return Status{Name: v.name, Kind: kind, Connected: v.st.connected, Clusters: clusters, Endpoints: endpoints, Updated: at,
		Events: v.st.events, Resyncs: v.st.resyncs, Errors: v.st.errors, LastError: v.st.lastErr, LastErrorAt: v.st.lastErrAt}
}

// Status reports the watcher's state.
func (z *ZooKeeper) Status() Status { return z.v.status("zookeeper") }

// Status reports the watcher's state.
func (n *Nacos) Status() Status { return n.v.status("nacos") }

// FromSettings builds the watcher a config file's registry section asks
// for, writing into store.
func FromSettings(store *config.Store, s config.RegistrySettings, log *slog.Logger, reg prometheus.Registerer, metadata MetadataCaller) (Watcher, error) {
	var services []ServiceKey
	for _, svc := range s.Services {
		services = append(services, ServiceKey{Interface: svc.Interface, Version: svc.Version, Group: svc.Group})
	}
	mode := Mode(s.Mode)
	switch s.Kind {
	case "zookeeper":
		return NewZooKeeper(store, ZooKeeperOptions{Name: s.Name, Servers: s.Servers, Root: s.Root, SessionTimeout: s.SessionTimeout,
			Mode: mode, Services: services, Resync: s.Resync, LBPolicy: s.LBPolicy, Logger: log, Registerer: reg, Metadata: metadata})
	case "nacos":
		return NewNacos(store, NacosOptions{Name: s.Name, Servers: s.Servers, GRPCPort: s.GRPCPort, Namespace: s.Namespace,
			Group: s.Group, Username: s.Username, Password: s.Password, Mode: mode, Services: services, Resync: s.Resync,
			LBPolicy: s.LBPolicy, Logger: log, Registerer: reg, Metadata: metadata})
	}
	return nil, fmt.Errorf("registry %s: unknown kind %q", s.Name, s.Kind)
}
