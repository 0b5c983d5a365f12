// Package server is meshgate's data plane: it compiles the resources of a
// config.Set into listeners, route tables and clusters, serves every
// listener port (HTTP/1.1, cleartext HTTP/2, TLS with ALPN), and forwards
// requests to upstream clusters, gRPC streams byte for byte.
//
// Server implements config.Consumer. A change is compiled whole before
// anything goes live; if any part fails the change is rejected and the
// running config stays. Listeners whose address is unchanged keep their
// socket and only swap their compiled state, so a reload drops nothing.
package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/meshgate/meshgate/config"
	adminv1 "github.com/meshgate/meshgate/proto/meshgate/admin/v1"
	"github.com/meshgate/meshgate/server/accesslog"
	"github.com/meshgate/meshgate/server/cluster"
	"github.com/meshgate/meshgate/server/h2"
	"github.com/meshgate/meshgate/server/httpfilter"
	"github.com/meshgate/meshgate/server/overload"
	"github.com/meshgate/meshgate/server/secrets"
	"github.com/meshgate/meshgate/server/stats"
	"github.com/meshgate/meshgate/server/tracing"
)

// Options configure a Server.
type Options struct {
	Logger *slog.Logger
	// DrainTimeout bounds how long a listener that goes away (on reload or
	// shutdown) waits for its in-flight requests. Default 15s.
	DrainTimeout time.Duration
	// Overload configures the overload manager: heap actions (on when
	// MaxHeapBytes is set; the command sets it from GOMEMLIMIT or the
	// cgroup when the config does not, see overload.Limit) and the cap on
	// open downstream connections.
	Overload config.OverloadSettings
	// IstioMetrics, when set, records Istio's standard request metrics
	// with this gateway as the source workload.
	IstioMetrics *stats.Workload
}

// Server is the data plane. Its methods are safe for concurrent use.
type Server struct {
	log     *slog.Logger
	metrics *stats.Metrics
	drain   time.Duration

	mu sync.Mutex // serialises Apply and Shutdown
	// listeners are the bound ports (sockets outlive configs: a reload
	// that keeps an address keeps its socket); retired, clusters a
	// reload dropped that still have requests in flight.
	listeners map[string]*listener
	retired   []*cluster.Cluster
	closing   bool
	// draining: DrainListeners ran (ready stays false); drainInbound: it
	// drains only the INBOUND listeners.
	draining, drainInbound bool
	down                   chan struct{} // closed by Shutdown

	// overload sheds load as the heap nears its limit (nil: no limit
	// known); connCap caps open downstream connections (nil: no cap).
	overload *overload.Manager
	connCap  *overload.ConnLimit

	// logWriters are the access log files by path (under mu; kept for the
	// process, closed by Shutdown).
	logWriters map[string]*accesslog.Writer
	// traceProviders are the span exporters by collector and service name
	// (under mu; kept for the process, closed by Shutdown).
	traceProviders map[string]*tracing.Provider
	// istio records Istio's request metrics (nil: off).
	istio *stats.Istio
	// validating: compile runs for Validate (under mu): access log files
	// are not opened.
	validating bool
	bg         sync.WaitGroup // listeners draining after a reload, background fetches
	// announcers register local apps in Dubbo registries, by listener
	// key (under mu).
	announcers map[string]*announcing

	// secrets are the SDS secrets TLS handshakes read, by name: they
	// outlive snapshots (a rotated secret is put in place, no recompile).
	secrets *secrets.Table

	// snap is the running config, compiled: swapped whole by Apply.
	snap  atomic.Pointer[snapshot]
	ready atomic.Bool
}

var _ config.Consumer = (*Server)(nil)

// New returns a Server with no listeners; Apply gives it a config.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 15 * time.Second
	}
	s := &Server{
		log:        opts.Logger,
		drain:      opts.DrainTimeout,
		listeners:  map[string]*listener{},
		announcers: map[string]*announcing{},
		secrets:    secrets.NewTable(),
		down:       make(chan struct{}),
	}
	s.snap.Store(emptySnapshot())
	s.metrics = stats.New(s.Clusters)
	if opts.IstioMetrics != nil {
		s.istio = stats.NewIstio(s.metrics.Registry, *opts.IstioMetrics)
	}
	s.startOverload(opts.Overload)
	return s
}

// startOverload starts the overload manager when a heap limit is set, and
// the connection cap when one is.
func (s *Server) startOverload(o config.OverloadSettings) {
	if o.MaxActiveDownstreamConnections > 0 {
		s.connCap = overload.NewConnLimit(o.MaxActiveDownstreamConnections, s.metrics.Registry)
	}
	limit := o.MaxHeapBytes
	if limit == 0 {
		return
	}
	var cfg overload.Config
	cfg.Thresholds[overload.DisableHTTPKeepalive] = o.DisableHTTPKeepalive
	cfg.Thresholds[overload.StopAcceptingRequests] = o.StopAcceptingRequests
	cfg.Interval = o.RefreshInterval
	s.overload = overload.New(limit, cfg, s.onOverload, s.metrics.Registry)
	s.log.Info("overload manager", "heap_limit_bytes", limit,
		"disable_http_keepalive_at", s.overload.Threshold(overload.DisableHTTPKeepalive),
		"stop_accepting_requests_at", s.overload.Threshold(overload.StopAcceptingRequests))
	ctx, cancel := context.WithCancel(context.Background())
	s.goBackground(func() { s.overload.Run(ctx) })
	go func() {
		<-s.down
		cancel()
	}()
}

// onOverload applies an overload action turning on or off.
func (s *Server) onOverload(a overload.Action, on bool) {
	s.log.Warn("overload action", "action", a.Name(), "on", on)
	if a != overload.DisableHTTPKeepalive {
		return // stop_accepting_requests is read per request
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ln := range s.listeners {
		if !s.drains(ln.state.Load()) { // a drain keeps keep-alive off
			ln.keepAlive(!on)
		}
	}
}

// Metrics returns the server's metrics registry.
func (s *Server) Metrics() *stats.Metrics { return s.metrics }

// Clusters returns the live clusters sorted by name.
func (s *Server) Clusters() []*cluster.Cluster { return s.snap.Load().view }

// Config returns the Set the server runs, or nil before the first Apply.
func (s *Server) Config() *config.Set { return s.snap.Load().set }

// Ready reports whether the server runs a config and is not draining.
func (s *Server) Ready() bool { return s.ready.Load() }

// Draining reports whether the server drains its listeners or is
// shutting down.
func (s *Server) Draining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing || s.draining
}

// DrainListeners starts a graceful drain, as Envoy's
// /drain_listeners?graceful and its drain on shutdown: Ready is false from
// now on; the listeners (only those whose traffic_direction is INBOUND,
// when inboundOnly) keep accepting for period while telling every client
// to go (HTTP/1.x Connection: close, HTTP/2 GOAWAY), so that clients still
// routed here are answered while load balancers and Kubernetes endpoints
// catch up; then they stop accepting, and their open connections close as
// their requests end. It returns at once; the channel closes when the
// listeners stopped accepting (at once when Shutdown runs first).
func (s *Server) DrainListeners(period time.Duration, inboundOnly bool) <-chan struct{} {
	s.mu.Lock()
	if !s.draining {
		s.draining, s.drainInbound = true, inboundOnly
	} else if !inboundOnly {
		s.drainInbound = false // a drain of all after one of the inbound ones
	}
	s.ready.Store(false)
	// Consumers must stop finding this gateway before it tells them to
	// go: the registrations are withdrawn first.
	s.stopAnnouncersLocked()
	lns := s.drainedLocked()
	s.mu.Unlock()
	s.log.Info("draining listeners", "period", period, "inbound_only", inboundOnly, "listeners", len(lns))
	for _, ln := range lns {
		ln.drain()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTimer(period)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.down:
		}
		s.mu.Lock()
		lns := s.drainedLocked() // with those a reload bound meanwhile
		s.mu.Unlock()
		for _, ln := range lns {
			ln.stopAccepting()
		}
		s.log.Info("drain period over: listeners stopped accepting", "listeners", len(lns))
	}()
	return done
}

// drainedLocked lists the listeners a drain covers (s.mu held).
func (s *Server) drainedLocked() []*listener {
	var lns []*listener
	for _, ln := range s.listeners {
		if s.drains(ln.state.Load()) {
			lns = append(lns, ln)
		}
	}
	return lns
}

// drains reports whether a drain in progress covers a listener (s.mu held).
func (s *Server) drains(st *listenerState) bool {
	return s.draining && (!s.drainInbound || st.inbound)
}

// ListenerStatus is one listener the server serves.
type ListenerStatus struct {
	Name string
	// Address is the bound address (the real port for port 0).
	Address string
}

// Listeners lists the listeners being served, sorted by name. Every
// listener of the running config is in it: a config goes live only once
// each of its listeners is bound and serving.
func (s *Server) Listeners() []ListenerStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ListenerStatus, 0, len(s.listeners))
	for _, l := range s.listeners {
		out = append(out, ListenerStatus{Name: l.state.Load().name, Address: l.raw.Addr().String()})
	}
	slices.SortFunc(out, func(a, b ListenerStatus) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// ListenerAddr returns the bound address of the named listener ("" if
// there is none): the real port when the config asked for port 0.
func (s *Server) ListenerAddr(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.listeners {
		if l.state.Load().name == name {
			return l.raw.Addr().String()
		}
	}
	return ""
}

// Apply compiles next and makes it live, or rejects it whole.
func (s *Server) Apply(ctx context.Context, next *config.Set, change config.Change) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return errors.New("server is shutting down")
	}
	prev := s.snap.Load()
	if change.OnlyData() {
		return s.applyData(prev, next, change)
	}
	p, err := s.compile(next, prev)
	if err != nil {
		return err
	}
	// Bind the new ports before anything goes live, so a port in use
	// rejects the config instead of half applying it.
	bound, err := s.bind(ctx, p)
	if err != nil {
		p.abandon()
		return err
	}
	s.putSecrets(p.secrets)
	// The new clusters get their endpoints before any listener can route
	// to them: a rebuilt EDS cluster (its CDS changed) must not be
	// reached empty.
	feedEndpoints(p)
	s.swapListeners(p, bound)
	s.swapClusters(prev, p)
	s.reconcileAnnouncers()
	s.logNewNotes(prev, p)
	s.snap.Store(p)
	s.ready.Store(!s.draining)
	return nil
}

// applyData applies a change of endpoints and secrets only: host sets and
// secrets swap in place, no recompile; the snapshot is the running one
// with the new set and notes.
func (s *Server) applyData(prev *snapshot, next *config.Set, change config.Change) error {
	n, errs := endpointNotes(prev, next, change)
	parsed, serrs := parseSecrets(next)
	if errs = append(errs, serrs...); len(errs) > 0 {
		return errs.Sorted()
	}
	s.putSecrets(parsed)
	for _, c := range prev.clusters {
		if c.EDSName != "" && change.Changed(config.EndpointType, c.EDSName) {
			c.SetEndpoints(next.Endpoints(c.EDSName))
		}
	}
	cur := *prev
	cur.set = next
	cur.setNotes(n)
	s.logNewNotes(prev, &cur)
	s.snap.Store(&cur)
	return nil
}

// bind opens the sockets of p's listeners on addresses not served yet;
// on any failure it closes what it opened and blames each listener that
// could not bind.
func (s *Server) bind(ctx context.Context, p *snapshot) (map[string]*listener, error) {
	bound := map[string]*listener{}
	var bindErrs config.ResourceErrors
	for addr, cl := range p.listeners {
		if s.listeners[addr] != nil {
			continue
		}
		ln, err := listen(ctx, cl.address, s.log)
		if err != nil {
			bindErrs = append(bindErrs, &config.ResourceError{TypeURL: config.ListenerType, Name: cl.state.name, Err: err})
			continue
		}
		bound[addr] = ln
	}
	if len(bindErrs) > 0 {
		for _, b := range bound {
			_ = b.raw.Close()
		}
		return nil, bindErrs.Sorted()
	}
	return bound, nil
}

// swapListeners puts p's listeners live: a kept address takes its new
// chains, a new one starts serving, a removed one drains in the
// background.
func (s *Server) swapListeners(p *snapshot, bound map[string]*listener) {
	for addr, cl := range p.listeners {
		ln := s.listeners[addr]
		if ln == nil {
			ln = bound[addr]
			ln.maxHeaderBytes, ln.headersTimeout, ln.idleTimeout = cl.maxHeaderBytes, cl.headersTimeout, cl.idleTimeout
			ln.connCap = s.connCap
		} else if cl.headersTimeout != ln.headersTimeout || cl.idleTimeout != ln.idleTimeout {
			s.log.Warn("request_headers_timeout and idle_timeout of a port already bound keep their values until it is bound again (a restart)",
				"listener", cl.state.name, "request_headers_timeout", ln.headersTimeout, "idle_timeout", ln.idleTimeout)
		}
		for _, ch := range cl.state.chains() {
			if ch != nil {
				ch.checkHeaders = ch.maxHeaderBytes < ln.maxHeaderBytes
			}
		}
		ln.state.Store(cl.state)
		if bound[addr] != nil {
			ln.serve(s.httpServer(ln, cl), s.h2Server(ln, cl))
			s.log.Info("listening", "listener", cl.state.name, "address", ln.raw.Addr().String())
			if s.drains(cl.state) {
				ln.drain() // bound during a drain: drained like the others
			} else if s.overload.Active(overload.DisableHTTPKeepalive) {
				ln.keepAlive(false)
			}
		}
		s.listeners[addr] = ln
	}
	for addr, ln := range s.listeners {
		if p.listeners[addr] == nil {
			delete(s.listeners, addr)
			s.log.Info("draining removed listener", "address", addr)
			s.bg.Add(1)
			go func() {
				defer s.bg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), s.drain)
				defer cancel()
				_ = ln.shutdown(ctx)
			}()
		}
	}
}

// feedEndpoints gives p's EDS clusters their endpoints from the store.
func feedEndpoints(p *snapshot) {
	for _, c := range p.clusters {
		if c.EDSName != "" {
			c.SetEndpoints(p.set.Endpoints(c.EDSName))
		}
	}
}

// swapClusters retires prev's clusters that p does not keep (they finish
// what is in flight).
func (s *Server) swapClusters(prev, p *snapshot) {
	for name, old := range prev.clusters {
		if p.clusters[name] != old {
			old.Close()
			s.retired = append(s.retired, old)
		}
	}
	s.sweepRetired()
}

// goBackground runs f on its own goroutine; Shutdown waits for it.
func (s *Server) goBackground(f func()) {
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		f()
	}()
}

// Descriptors reports, for /config_dump, the descriptors the listeners'
// JSON transcoders use (filters that describe themselves).
func (s *Server) Descriptors() []*adminv1.TranscoderDescriptors {
	s.mu.Lock()
	var states []*listenerState
	for _, ln := range s.listeners {
		states = append(states, ln.state.Load())
	}
	s.mu.Unlock()
	var out []*adminv1.TranscoderDescriptors
	for _, st := range states {
		seen := map[httpfilter.Filter]bool{}
		for _, ch := range st.chains() {
			if ch == nil {
				continue
			}
			for _, f := range ch.filters {
				if d, ok := f.(httpfilter.Describer); ok && !seen[f] {
					seen[f] = true
					if td, ok := d.Describe(st.name).(*adminv1.TranscoderDescriptors); ok {
						out = append(out, td)
					}
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b *adminv1.TranscoderDescriptors) int { return strings.Compare(a.Listener, b.Listener) })
	return out
}

// key is where a listener is kept: its address, or for port 0 (any free
// port) the address and its name, so that each such listener gets a port
// of its own and keeps it across reloads.
func (cl *compiledListener) key() string {
	if strings.HasSuffix(cl.address, ":0") {
		return cl.address + " " + cl.state.name
	}
	return cl.address
}

// parseSecrets reads every SDS secret of set; each that cannot be used
// is an error of that resource.
func parseSecrets(set *config.Set) (map[string]*secrets.Secret, config.ResourceErrors) {
	out := map[string]*secrets.Secret{}
	var errs config.ResourceErrors
	for _, r := range set.All(config.SecretType) {
		sec, err := secrets.Parse(r.Message.(*tlsv3.Secret))
		if err != nil {
			errs = append(errs, &config.ResourceError{TypeURL: config.SecretType, Name: r.Name, Err: err})
			continue
		}
		out[r.Name] = sec
	}
	return out, errs
}

// putSecrets makes parsed the secrets TLS handshakes read: each in place,
// those no longer there removed.
func (s *Server) putSecrets(parsed map[string]*secrets.Secret) {
	for _, name := range s.secrets.Names() {
		if parsed[name] == nil {
			s.secrets.Put(name, nil)
		}
	}
	for name, sec := range parsed {
		s.secrets.Put(name, sec)
	}
}

// abandon releases what a snapshot that does not go live built.
func (p *snapshot) abandon() {
	for _, c := range p.built {
		c.Close()
	}
}

// compile builds clusters (reusing unchanged ones), route tables and
// listeners for next, reporting every problem at once, each tied to its
// resource (config.ResourceErrors).
//
// It reads prev (the running snapshot: clusters to reuse, the support
// cache, what filters kept) and changes nothing but the snapshot it
// returns: a failed compile leaves no trace.
func (s *Server) compile(next *config.Set, prev *snapshot) (*snapshot, error) {
	p := &snapshot{set: next, clusters: map[string]*cluster.Cluster{}, listeners: map[string]*compiledListener{},
		kept: map[string]any{}, checks: map[*config.Resource]supportCheck{}}
	n := notes{}
	var errs config.ResourceErrors
	fail := func(typeURL, name string, err error) {
		errs = append(errs, &config.ResourceError{TypeURL: typeURL, Name: name, Err: err})
	}
	// check walks a resource's fields: what is refused fails it, what is
	// ignored becomes its notes.
	check := func(r *config.Resource) bool {
		c := checkSupport(prev, r, p.checks)
		if c.err != nil {
			fail(config.TypeURL(r.Message), r.Name, c.err)
			return false
		}
		n.add(config.TypeURL(r.Message), r.Name, c.notes...)
		return true
	}
	for _, r := range next.All(config.ClusterType) {
		if !check(r) {
			continue
		}
		spec := r.Message.(*clusterv3.Cluster)
		if old := prev.clusters[r.Name]; old != nil && old.Same(spec) {
			p.clusters[r.Name] = old
			n.add(config.ClusterType, r.Name, old.Notes...)
			continue
		}
		c, err := cluster.New(spec, cluster.Options{Secrets: s.secrets})
		if err != nil {
			fail(config.ClusterType, r.Name, err)
			continue
		}
		n.add(config.ClusterType, r.Name, c.Notes...)
		p.clusters[r.Name] = c
		p.built = append(p.built, c)
	}
	resolve := func(name string) (*cluster.Cluster, bool) {
		c, ok := p.clusters[name]
		return c, ok
	}
	routes := routeTables{}
	for _, r := range next.All(config.RouteType) {
		if !check(r) {
			continue
		}
		table, err := compileRoutes(r.Message.(*routev3.RouteConfiguration), resolve)
		if err != nil {
			fail(config.RouteType, r.Name, err)
			continue
		}
		routes[r.Name] = table
	}
	for _, r := range next.All(config.ListenerType) {
		if !check(r) {
			continue
		}
		cl, err := s.compileListener(r.Message.(*listenerv3.Listener), routes, resolve, p.keeper(prev))
		if err != nil {
			fail(config.ListenerType, r.Name, err)
			continue
		}
		n.add(config.ListenerType, r.Name, cl.notes...)
		if other, dup := p.listeners[cl.key()]; dup {
			// Blame the newcomer: the listener already serving the address
			// keeps it.
			if running := prev.listeners[cl.key()]; running != nil && running.state.name == r.Name {
				p.listeners[cl.key()] = cl
				cl, other = other, cl
			}
			fail(config.ListenerType, cl.state.name, fmt.Errorf("address %s is also used by listener %q", cl.address, other.state.name))
			continue
		}
		p.listeners[cl.key()] = cl
	}
	errs = append(errs, checkEndpoints(prev, next, p.checks, n)...)
	var serrs config.ResourceErrors
	p.secrets, serrs = parseSecrets(next)
	if errs = append(errs, serrs...); len(errs) > 0 {
		p.abandon()
		return nil, errs.Sorted()
	}
	p.setNotes(n)
	return p, nil
}

// Check compiles set as Apply would, without binding ports or changing
// anything: `meshgate validate` uses it.
func (s *Server) Check(set *config.Set) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.compileDry(set)
	if err != nil {
		return err
	}
	p.abandon()
	return nil
}

// compileDry compiles set for Check and Validate (s.mu held): nothing is
// opened (access log files, trace exporters) for a config that will not run.
func (s *Server) compileDry(set *config.Set) (*snapshot, error) {
	s.validating = true
	defer func() { s.validating = false }()
	return s.compile(set, s.snap.Load())
}

// Validate compiles set as Apply would, without binding ports or changing
// anything, and lists what of it would be accepted but not done, one
// `<kind> "<name>": <field>: <what instead>` each: `meshgate validate`
// prints them.
func (s *Server) Validate(set *config.Set) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.compileDry(set)
	if err != nil {
		return nil, err
	}
	p.abandon()
	var out []string
	for _, t := range config.ResourceTypes {
		names := make([]string, 0, len(p.notes[t]))
		for n := range p.notes[t] {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			lines := slices.Clone(p.notes[t][n])
			slices.Sort(lines)
			for _, l := range slices.Compact(lines) {
				out = append(out, fmt.Sprintf("%s %q: %s", kindName(t), n, l))
			}
		}
	}
	return out, nil
}

// sweepRetired closes the idle connections of clusters that left the
// config, and forgets those with no request left in flight.
func (s *Server) sweepRetired() {
	kept := s.retired[:0]
	for _, c := range s.retired {
		c.CloseIdle()
		if c.Stats.RqActive.Load() > 0 {
			kept = append(kept, c)
		}
	}
	s.retired = kept
}

func (s *Server) httpServer(ln *listener, cl *compiledListener) *http.Server {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	p.SetUnencryptedHTTP2(true)
	return &http.Server{
		Handler:   ln,
		Protocols: &p,
		// Only read by net/http to decide that TLS connections may speak h2;
		// the certificates come from the listener state at each handshake.
		TLSConfig:         ln.tlsConfig(),
		ReadHeaderTimeout: cmp.Or(cl.headersTimeout, defaultHeadersTimeout),
		IdleTimeout:       cl.idleTimeout,
		ConnContext:       withH1Conn,
		MaxHeaderBytes:    ln.maxHeaderBytes,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams:          1024,
			MaxReceiveBufferPerStream:     1 << 20,
			MaxReceiveBufferPerConnection: 16 << 20,
		},
		ErrorLog:  slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		ConnState: s.connState(ln),
	}
}

// h2Server serves the listener's HTTP/2 connections (meshgate's own
// server: net/http's spent most of the gateway's CPU per gRPC call handing
// frames between goroutines); HTTP/1.x stays on net/http.
func (s *Server) h2Server(ln *listener, cl *compiledListener) *h2.Server {
	return &h2.Server{
		Handler:              ln,
		MaxConcurrentStreams: 1024,
		MaxHeaderBytes:       ln.maxHeaderBytes,
		IdleTimeout:          cl.idleTimeout,
		Logger:               s.log,
		ConnState:            s.connState(ln),
		Relay:                ln.relay,
	}
}

// connState counts a listener's open connections. (net/http calls it twice
// per request too, active and idle: those cost nothing.)
func (s *Server) connState(ln *listener) func(net.Conn, http.ConnState) {
	return func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			s.metrics.Connections.WithLabelValues(ln.state.Load().name).Inc()
		case http.StateClosed, http.StateHijacked:
			s.metrics.Connections.WithLabelValues(ln.state.Load().name).Dec()
		}
	}
}

// Shutdown stops accepting on every listener, waits for in-flight requests
// until ctx ends, then closes what is left and the upstream pools.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closing {
		close(s.down)
	}
	s.closing = true
	s.ready.Store(false)
	s.stopAnnouncersLocked()
	lns := make([]*listener, 0, len(s.listeners))
	for _, ln := range s.listeners {
		lns = append(lns, ln)
	}
	s.listeners = map[string]*listener{}
	s.mu.Unlock()

	errs := make(chan error, len(lns))
	for _, ln := range lns {
		go func() { errs <- ln.shutdown(ctx) }()
	}
	var first error
	for range lns {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	s.bg.Wait()

	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.snap.Load().clusters {
		c.Close()
	}
	for _, c := range s.retired {
		c.Close()
	}
	s.closeAccessLogs()
	s.closeTraceProviders()
	return first
}
