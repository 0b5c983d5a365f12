package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/meshgate/meshgate/config"
)

// XDSState is what readiness and /config_dump read of the ADS client.
type XDSState interface {
	// Address is the control plane's address.
	Address() string
	// Synced reports whether the initial fetch has finished.
	Synced() bool
	// Warming lists listeners accepted but waiting for their routes.
	Warming() []string
	// Failures returns the last rejection of each rejected resource.
	Failures() map[string]map[string]config.Failure
}

// WithReadinessGate holds readiness back while missing returns a reason
// (one line for /ready's "missing"), e.g. until the workload certificate
// has been issued.
func WithReadinessGate(missing func() string) Option {
	return func(a *admin) { a.gates = append(a.gates, missing) }
}

// WithXDS makes readiness wait for the control plane's initial fetch and
// shows its warming and rejected listeners; /config_dump shows rejections.
func WithXDS(x XDSState) Option {
	return func(a *admin) {
		a.xds = x
		a.failures = x.Failures
	}
}

// Listener states in /ready?verbose.
const (
	listenerServing = "SERVING"
	listenerWarming = "WARMING"
	listenerFailed  = "FAILED"
)

// readiness is the body of /ready when it is not a plain LIVE.
type readiness struct {
	// State is LIVE, INITIALIZING or DRAINING (Envoy's server states).
	State string `json:"state"`
	// Missing says, one line each, what keeps the gateway from being ready.
	Missing   []string        `json:"missing,omitempty"`
	Listeners []listenerState `json:"listeners"`
}

type listenerState struct {
	Name    string `json:"name"`
	Address string `json:"address,omitempty"`
	State   string `json:"state"`
	// Error is why the listener (or its last update) was rejected.
	Error string `json:"error,omitempty"`
}

// readiness works out whether the gateway should take traffic: it has a
// config, is not draining, the control plane's initial fetch (if any) has
// finished, and at least one listener serves. Listeners the control plane
// sent that could not be built count as failed, not as awaited: they are
// reported and do not hold readiness back (as in Envoy, whose init does
// not wait for rejected resources).
func (a *admin) readiness() readiness {
	r := readiness{State: "LIVE", Listeners: []listenerState{}}
	serving := map[string]bool{}
	for _, l := range a.src.Listeners() {
		serving[l.Name] = true
		r.Listeners = append(r.Listeners, listenerState{Name: l.Name, Address: l.Address, State: listenerServing})
	}
	if a.xds != nil {
		for _, name := range a.xds.Warming() {
			if !serving[name] {
				r.Listeners = append(r.Listeners, listenerState{Name: name, State: listenerWarming})
			}
		}
		failed := a.xds.Failures()[config.ListenerType]
		for i := range r.Listeners {
			if f, ok := failed[r.Listeners[i].Name]; ok {
				r.Listeners[i].Error = f.Details
			}
		}
		for name, f := range failed {
			if !serving[name] && !contains(r.Listeners, name) {
				r.Listeners = append(r.Listeners, listenerState{Name: name, State: listenerFailed, Error: f.Details})
			}
		}
	}
	sort.Slice(r.Listeners, func(i, j int) bool { return r.Listeners[i].Name < r.Listeners[j].Name })

	switch {
	case a.src.Draining():
		r.State = "DRAINING"
		r.Missing = append(r.Missing, "the gateway is draining (shutting down)")
	case !a.src.Ready():
		r.Missing = append(r.Missing, "no config has gone live yet")
	}
	if a.xds != nil && !a.xds.Synced() {
		msg := fmt.Sprintf("the initial fetch from the control plane at %s has not finished", a.xds.Address())
		if w := a.xds.Warming(); len(w) > 0 {
			msg += fmt.Sprintf(" (listeners waiting for their routes: %s)", strings.Join(w, ", "))
		}
		r.Missing = append(r.Missing, msg)
	}
	for _, g := range a.gates {
		if why := g(); why != "" {
			r.Missing = append(r.Missing, why)
		}
	}
	if len(serving) == 0 {
		msg := "no listener is serving"
		var failed []string
		for _, l := range r.Listeners {
			if l.State == listenerFailed {
				failed = append(failed, l.Name)
			}
		}
		if len(failed) > 0 {
			msg += fmt.Sprintf(" (rejected: %s)", strings.Join(failed, ", "))
		}
		r.Missing = append(r.Missing, msg)
	}
	if len(r.Missing) > 0 && r.State == "LIVE" {
		r.State = "INITIALIZING"
	}
	return r
}

func contains(ls []listenerState, name string) bool {
	for _, l := range ls {
		if l.Name == name {
			return true
		}
	}
	return false
}

// ready answers 200 LIVE when the gateway should take traffic, else 503
// with a JSON body naming what is missing; ?verbose gives the JSON (with
// every listener's state) in both cases.
func (a *admin) ready(w http.ResponseWriter, r *http.Request) {
	st := a.readiness()
	_, verbose := r.URL.Query()["verbose"]
	code := http.StatusOK
	if len(st.Missing) > 0 {
		code = http.StatusServiceUnavailable
	}
	if code == http.StatusOK && !verbose {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, st.State)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(st)
}

// ReadinessHandler serves the read-only status a probe port may expose
// beyond loopback (Istio's :15021/healthz/ready convention), so that the
// admin port, whose POST /drain_listeners takes the gateway out of
// service, can stay on loopback: GET /healthz/ready and /ready answer as
// the admin's /ready; GET /healthz/live answers 200 while the process
// serves (a liveness probe: it stays 200 through a drain); GET
// /stats/prometheus serves gatherer when not nil (Istio scrapes its
// gateways' metrics off the admin port too: here they need not be).
func ReadinessHandler(src Source, gatherer prometheus.Gatherer, opts ...Option) http.Handler {
	a := &admin{src: src}
	for _, o := range opts {
		o(a)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz/ready", a.ready)
	mux.HandleFunc("GET /ready", a.ready)
	mux.HandleFunc("GET /healthz/live", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "LIVE")
	})
	if gatherer != nil {
		mux.Handle("GET /stats/prometheus", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	}
	return mux
}
