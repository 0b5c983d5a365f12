package announce

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"
)

// Announcer keeps a provider registered while its app is healthy.
type Announcer struct {
	Provider   *Provider
	Mode       Mode
	Registrars []Registrar
	// Check probes the app; nil: the app is taken as healthy.
	Check func(ctx context.Context) error
	// Interval between checks, which is also how often the registration
	// is repaired (default 5s).
	Interval time.Duration
	// Failures in a row that withdraw the provider (default 2), passes in
	// a row that announce it again (default 1).
	UnhealthyThreshold, HealthyThreshold int
	// DeregisterTimeout bounds the withdrawal when Run ends (default 3s).
	DeregisterTimeout time.Duration
	Log               *slog.Logger

	poke chan struct{}
}

// Suspect asks for a health check now (a call found the app unreachable):
// the provider is withdrawn after the threshold of failed checks without
// waiting for the interval. It never blocks.
func (a *Announcer) Suspect() {
	select {
	case a.poke <- struct{}{}:
	default:
	}
}

// NewAnnouncer returns an Announcer for p; set its other fields before
// Run.
func NewAnnouncer(p *Provider) *Announcer {
	return &Announcer{Provider: p, poke: make(chan struct{}, 1)}
}

// Run announces until ctx ends, then withdraws the registration and
// closes the registrars before it returns.
func (a *Announcer) Run(ctx context.Context) {
	interval := a.Interval
	if interval <= 0 {
		interval = 5 * time.Second
	}
	down, up := a.UnhealthyThreshold, a.HealthyThreshold
	if down <= 0 {
		down = 2
	}
	if up <= 0 {
		up = 1
	}
	meta := a.Provider.Metadata()
	st := &announceState{registered: make([]bool, len(a.Registrars)), written: make([]bool, len(a.Registrars))}
	healthy, passes, fails := false, 0, 0
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		err := a.check(ctx)
		switch {
		case ctx.Err() != nil:
		case err == nil:
			passes, fails = passes+1, 0
			if !healthy && passes >= up {
				healthy = true
				a.Log.Info("local app healthy: announcing it", "app", a.Provider.App, "address", a.Provider.Address(), "revision", meta.Revision)
			}
		default:
			passes, fails = 0, fails+1
			if healthy && fails >= down {
				healthy = false
				a.Log.Warn("local app unhealthy: withdrawing it", "app", a.Provider.App, "error", err)
			} else if !healthy && fails == 1 {
				a.Log.Warn("local app not healthy: not announced", "app", a.Provider.App, "error", err)
			}
		}
		switch {
		case ctx.Err() != nil:
		case healthy:
			a.register(ctx, meta, st)
		default:
			// Each tick until every registry let go (a withdrawal that
			// failed is tried again; none written: nothing to do).
			a.deregister(ctx, st)
		}
		select {
		case <-ctx.Done():
			d := a.DeregisterTimeout
			if d <= 0 {
				d = 3 * time.Second
			}
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d)
			a.deregister(dctx, st)
			cancel()
			for _, r := range a.Registrars {
				r.Close()
			}
			a.Log.Info("local app withdrawn", "app", a.Provider.App, "address", a.Provider.Address())
			return
		case <-t.C:
		case <-a.poke:
		}
	}
}

// announceState is what Run knows of each registrar.
type announceState struct {
	registered []bool // the last Register worked (for the logs)
	// written: a registration may be there (a Register was tried: one
	// that failed half way may have written some of it), to withdraw.
	written []bool
	failing []error
}

func (a *Announcer) check(ctx context.Context) error {
	if a.Check == nil {
		return nil
	}
	return a.Check(ctx)
}

// register writes (or repairs) each registrar's registration, logging a
// registrar's failures when they start and end.
func (a *Announcer) register(ctx context.Context, meta *MetadataInfo, st *announceState) {
	if st.failing == nil {
		st.failing = make([]error, len(a.Registrars))
	}
	for i, r := range a.Registrars {
		err := r.Register(ctx, a.Provider, meta, a.Mode)
		switch {
		case err != nil && st.failing[i] == nil:
			a.Log.Error("registering the local app", "registry", r.Name(), "error", err)
		case err == nil && !st.registered[i]:
			a.Log.Info("local app registered", "registry", r.Name(), "app", a.Provider.App, "address", a.Provider.Address())
		case err == nil && st.failing[i] != nil:
			a.Log.Info("registering the local app works again", "registry", r.Name())
		}
		st.failing[i] = err
		st.registered[i] = st.registered[i] || err == nil
		st.written[i] = true
	}
}

func (a *Announcer) deregister(ctx context.Context, st *announceState) {
	for i, r := range a.Registrars {
		if !st.written[i] {
			continue
		}
		if err := r.Deregister(ctx); err != nil {
			a.Log.Error("withdrawing the local app", "registry", r.Name(), "error", err)
			continue
		}
		st.registered[i], st.written[i] = false, false
	}
}

// HTTPCheck probes an app with GET url: healthy on a 2xx answer within
// timeout.
func HTTPCheck(client *http.Client, url string, timeout time.Duration) func(ctx context.Context) error {
	if timeout <= 0 {
		timeout = time.Second
	}
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
		}
		return nil
	}
}
