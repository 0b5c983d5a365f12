package server

import (
	"context"
	"os"
	"time"

	"google.golang.org/protobuf/proto"

	localappv1 "github.com/meshgate/meshgate/proto/meshgate/extensions/filters/dubbo/local_app/v1"
	"github.com/meshgate/meshgate/registry"
	"github.com/meshgate/meshgate/registry/announce"
	"github.com/meshgate/meshgate/server/localapp"
)

// announcing is a running Announcer of one listener's local app.
type announcing struct {
	// same tells whether a new config announces the same: the
	// registration and the metadata revision.
	reg      *localappv1.Registration
	revision string
	started  time.Time // the provider's start (its URLs' timestamp)
	suspect  func()    // asks for a health check now (nil: no check)
	cancel   context.CancelFunc
	done     chan struct{}
}

// stop withdraws the registration and waits (bounded) until it is gone.
func (a *announcing) stop(wait time.Duration) {
	a.cancel()
	select {
	case <-a.done:
	case <-time.After(wait):
	}
}

// deregisterWait bounds how long a drain waits for the withdrawals.
const deregisterWait = 5 * time.Second

// reconcileAnnouncers starts an announcer for each bound listener whose
// local app registers (s.mu held), keeps those that announce the same,
// and stops the others. A draining or closing server announces nothing.
func (s *Server) reconcileAnnouncers() {
	want := map[string]bool{}
	if !s.closing && !s.draining {
		for key, ln := range s.listeners {
			st := ln.state.Load()
			if st.dubbo == nil || st.dubbo.app == nil || st.dubbo.app.Registration == nil {
				continue
			}
			app := st.dubbo.app
			started := time.Now()
			if cur := s.announcers[key]; cur != nil {
				started = cur.started
			}
			p, err := app.Provider(ln.raw.Addr(), started)
			if err != nil {
				s.log.Error("local app not registered", "listener", st.name, "error", err)
				continue
			}
			switch {
			case app.GRPC:
				p.Protocols = []string{announce.Triple} // Dubbo2 consumers are refused
			case st.plain == nil && len(st.tls) == 0:
				p.Protocols = []string{announce.Dubbo, announce.Triple} // the port serves both (classify)
			}
			meta := p.Metadata()
			app.SetMetadata(meta)
			want[key] = true
			if cur := s.announcers[key]; cur != nil && cur.revision == meta.Revision && proto.Equal(cur.reg, app.Registration) {
				if cur.suspect != nil {
					app.SetOnUnreachable(cur.suspect) // the app as this config built it
				}
				continue
			}
			if cur := s.announcers[key]; cur != nil {
				cur.stop(deregisterWait)
			}
			a, err := s.startAnnouncer(st.name, ln, p, app)
			if err != nil {
				s.log.Error("local app not registered", "listener", st.name, "error", err)
				delete(s.announcers, key)
				continue
			}
			a.started = started
			s.announcers[key] = a
		}
	}
	for key, a := range s.announcers {
		if !want[key] {
			a.stop(deregisterWait)
			delete(s.announcers, key)
		}
	}
}

// stopAnnouncersLocked withdraws every registration, waiting for them all
// (bounded): the first step of a drain (s.mu held).
func (s *Server) stopAnnouncersLocked() {
	for _, a := range s.announcers {
		a.cancel()
	}
	deadline := time.After(deregisterWait)
	for key, a := range s.announcers {
		select {
		case <-a.done:
		case <-deadline:
		}
		delete(s.announcers, key)
	}
}

// startAnnouncer connects to the registration's registries and runs an
// Announcer whose health check reads the listener's current app.
func (s *Server) startAnnouncer(name string, ln *listener, p *announce.Provider, app *localapp.App) (*announcing, error) {
	reg := app.Registration
	var registrars []announce.Registrar
	for _, r := range reg.GetRegistries() {
		var z announce.Registrar
		var err error
		if zk := r.GetZookeeper(); zk != nil {
			z, err = announce.DialZooKeeper(zk.GetServers(), zk.GetRoot(), zk.GetSessionTimeout().AsDuration(), s.log.With("listener", name))
		} else {
			n := r.GetNacos()
			password := n.GetPassword()
			if env := n.GetPasswordEnv(); env != "" {
				password = os.Getenv(env)
			}
			z, err = announce.DialNacos(registry.NacosOptions{Name: name, Servers: n.GetServers(), GRPCPort: uint64(n.GetGrpcPort()),
				Namespace: n.GetNamespace(), Group: n.GetGroup(), Username: n.GetUsername(), Password: password})
		}
		if err != nil {
			for _, done := range registrars {
				done.Close()
			}
			return nil, err
		}
		registrars = append(registrars, z)
	}
	hc := reg.GetHealthCheck()
	a := announce.NewAnnouncer(p)
	a.Mode, a.Registrars, a.Log = announceMode(reg.GetMode()), registrars, s.log.With("listener", name)
	a.Interval, a.UnhealthyThreshold, a.HealthyThreshold = hc.GetInterval().AsDuration(), int(hc.GetUnhealthyThreshold()), int(hc.GetHealthyThreshold())
	if hc.GetPath() != "" || (app.GRPC && hc != nil) {
		timeout := hc.GetTimeout().AsDuration()
		a.Check = func(ctx context.Context) error {
			// The app as the listener serves it now (a reload may have
			// rebuilt its cluster).
			cur := app
			if st := ln.state.Load(); st.dubbo != nil && st.dubbo.app != nil {
				cur = st.dubbo.app
			}
			return cur.HealthCheck(ctx, hc, timeout)
		}
		// A call that finds the app unreachable checks it at once: the
		// provider goes from the registries sooner than the interval.
		app.SetOnUnreachable(a.Suspect)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &announcing{reg: reg, revision: p.Metadata().Revision, cancel: cancel, done: make(chan struct{})}
	if a.Check != nil {
		out.suspect = a.Suspect
	}
	go func() {
		defer close(out.done)
		a.Run(ctx)
	}()
	return out, nil
}

// announceMode is the registration's mode as the announcer takes it.
func announceMode(m localappv1.Registration_Mode) announce.Mode {
	switch m {
	case localappv1.Registration_MODE_INTERFACE:
		return announce.Interface
	case localappv1.Registration_MODE_INSTANCE:
		return announce.Instance
	}
	return announce.All
}
