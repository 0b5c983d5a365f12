package xds

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/prometheus/client_golang/prometheus"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/meshgate/meshgate/config"
)

// SourceName is the store source of resources from the control plane.
const SourceName = "xds"

// Options configure a Client.
type Options struct {
	// Address is the control plane's host:port.
	Address string
	// TLS secures the connection; nil means plaintext.
	TLS *tls.Config
	// Token, when set, authenticates every stream (istiod's secure port
	// wants the workload's service-account token as a bearer token).
	Token credentials.PerRPCCredentials
	// Node identifies the gateway to the control plane.
	Node *corev3.Node
	// InitialFetchTimeout bounds how long an incomplete update waits for
	// its route configurations and endpoints before it is applied anyway
	// (Envoy's initial_fetch_timeout, default 15s).
	InitialFetchTimeout time.Duration
	// Backoff between reconnects grows from BackoffBase (500ms) to
	// BackoffMax (30s), with jitter.
	BackoffBase, BackoffMax time.Duration
	Logger                  *slog.Logger
	// Registerer receives the client's metrics (nil: not registered).
	Registerer prometheus.Registerer
	// Delta uses the incremental xDS protocol (DeltaAggregatedResources)
	// instead of state of the world.
	Delta bool
}

// typeOrder is the order in which subscriptions are sent (as Envoy does).
var typeOrder = []string{config.ClusterType, config.EndpointType, config.ListenerType, config.RouteType, config.SecretType}

// wildcard reports whether a type is subscribed to whole (LDS, CDS): its
// state-of-the-world responses list every resource, and absence deletes.
func wildcard(typeURL string) bool {
	return typeURL == config.ListenerType || typeURL == config.ClusterType
}

// Client is an ADS client feeding a config.Store.
//
// Resources are accepted one by one, as Envoy accepts them: every resource
// of a response that compiles goes live, every one that does not is named
// in the NACK and keeps its previous version (see apply).
type Client struct {
	opts  Options
	store *config.Store
	log   *slog.Logger
	m     *metrics

	mu sync.Mutex
	// types holds the protocol state of each resource type.
	types map[string]*typeState
	// staged holds the newest accepted version of every resource;
	// live what of it the store holds now (staged minus what still waits
	// for its routes or endpoints).
	staged, live resources
	// warming: listeners and clusters waiting for their RDS route
	// configurations or EDS endpoints, since when (type -> name).
	warming map[string]map[string]time.Time
	// received: wildcard types (CDS, LDS) whose first response arrived.
	received map[string]bool
	// initialDone: the first config went live (complete, or the initial
	// fetch timeout passed); initialDeadline is when it times out.
	initialDone     bool
	initialDeadline time.Time
	synced          bool
	failures        map[string]map[string]config.Failure // type -> resource -> last rejection

	connected atomic.Bool
	warmTimer *time.Timer
}

// typeState is the protocol state of one resource type.
type typeState struct {
	version  string   // last ACKed version
	nonce    string   // nonce of the last response
	names    []string // subscribed names (nil for wildcard)
	lastNack string   // version and error of the last NACK, to log it once
}

// New returns a client that writes into store; Run starts it.
func New(store *config.Store, opts Options) *Client {
	if opts.InitialFetchTimeout <= 0 {
		opts.InitialFetchTimeout = 15 * time.Second
	}
	if opts.BackoffBase <= 0 {
		opts.BackoffBase = 500 * time.Millisecond
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	c := &Client{
		opts: opts, store: store, log: opts.Logger.With("xds", opts.Address),
		types:           map[string]*typeState{},
		staged:          resources{},
		live:            resources{},
		warming:         map[string]map[string]time.Time{},
		received:        map[string]bool{},
		failures:        map[string]map[string]config.Failure{},
		initialDeadline: time.Now().Add(opts.InitialFetchTimeout),
		m:               newMetrics(opts.Registerer),
	}
	for _, t := range typeOrder {
		c.types[t] = &typeState{}
	}
	return c
}

// Connected reports whether an ADS stream is up.
func (c *Client) Connected() bool { return c.connected.Load() }

// Applied reports whether the first config from the control plane has gone
// live: complete (every listener's routes, every cluster's endpoints), or
// what had arrived when the initial fetch timeout passed.
func (c *Client) Applied() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.initialDone
}

// Synced reports whether the initial fetch has finished: clusters and
// listeners have been received from the control plane, the first config
// has gone live and its listeners have their routes (or waited out the
// initial fetch timeout). Readiness waits for it; it stays true after.
func (c *Client) Synced() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.synced
}

// Warming lists, sorted, the listeners accepted from the control plane that
// wait for their route configurations and are not serving yet (a listener
// whose older version serves is not listed).
func (c *Client) Warming() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for name := range c.warming[config.ListenerType] {
		if _, live := c.live.get(config.ListenerType, name); !live {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Address is the control plane's address.
func (c *Client) Address() string { return c.opts.Address }

// Failures returns the last NACK of each resource that has one.
func (c *Client) Failures() map[string]map[string]config.Failure {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]map[string]config.Failure{}
	for t, m := range c.failures {
		out[t] = map[string]config.Failure{}
		for n, f := range m {
			out[t][n] = f
		}
	}
	return out
}

// Run connects and keeps the stream up until ctx ends, reconnecting with
// backoff.
func (c *Client) Run(ctx context.Context) error {
	creds := insecure.NewCredentials()
	if c.opts.TLS != nil {
		creds = credentials.NewTLS(c.opts.TLS)
	}
	dial := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if c.opts.Token != nil {
		dial = append(dial, grpc.WithPerRPCCredentials(c.opts.Token))
	}
	cc, err := grpc.NewClient(c.opts.Address, dial...)
	if err != nil {
		return fmt.Errorf("xds: dial %s: %w", c.opts.Address, err)
	}
	defer cc.Close()
	defer c.stopWarmTimer()
	c.mu.Lock()
	if !c.initialDone {
		c.initialDeadline = time.Now().Add(c.opts.InitialFetchTimeout)
		c.afterStageLocked(ctx)
	}
	c.mu.Unlock()
	client := discoveryv3.NewAggregatedDiscoveryServiceClient(cc)
	backoff := c.opts.BackoffBase
	for {
		start := time.Now()
		var err error
		if c.opts.Delta {
			err = c.deltaStream(ctx, client)
		} else {
			err = c.stream(ctx, client)
		}
		c.connected.Store(false)
		c.m.connected.Set(0)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > 30*time.Second {
			backoff = c.opts.BackoffBase // the stream was healthy for a while
		}
		wait := backoff/2 + time.Duration(rand.Int64N(int64(backoff)))
		c.log.Warn("ADS stream ended; serving the last good config and retrying", "error", err, "retry_in", wait)
		c.m.reconnects.Inc()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		backoff = min(2*backoff, c.opts.BackoffMax)
	}
}

// stream runs one ADS stream: subscribe, then answer every response.
func (c *Client) stream(ctx context.Context, client discoveryv3.AggregatedDiscoveryServiceClient) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := client.StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	// A new stream starts with no nonces; versions carry over so the server
	// can skip what the client has.
	c.mu.Lock()
	for _, t := range typeOrder {
		c.types[t].nonce = ""
	}
	reqs := c.subscriptionsLocked(true)
	c.mu.Unlock()
	for _, r := range reqs {
		if err := s.Send(r); err != nil {
			return err
		}
	}
	for {
		resp, err := s.Recv()
		if err != nil {
			return err
		}
		if !c.connected.Swap(true) {
			c.log.Info("ADS stream up")
			c.m.connected.Set(1)
		}
		for _, r := range c.handle(ctx, resp) {
			if err := s.Send(r); err != nil {
				return err
			}
		}
	}
}

// subscriptionsLocked returns the requests to send: every type when all,
// else the types whose subscribed names changed.
func (c *Client) subscriptionsLocked(all bool) []*discoveryv3.DiscoveryRequest {
	var out []*discoveryv3.DiscoveryRequest
	for _, t := range typeOrder {
		ts := c.types[t]
		var names []string
		if !wildcard(t) {
			names = c.neededLocked(t)
			if !all && slices.Equal(names, ts.names) {
				continue
			}
			if all && len(names) == 0 {
				continue // nothing to ask for yet
			}
		} else if !all {
			continue
		}
		ts.names = names
		out = append(out, &discoveryv3.DiscoveryRequest{
			Node: c.opts.Node, TypeUrl: t, VersionInfo: ts.version, ResponseNonce: ts.nonce, ResourceNames: names,
		})
	}
	return out
}

// neededLocked lists, sorted, the route configurations the staged and
// live listeners name (RDS), the endpoints the staged and live EDS
// clusters read, or the secrets either asks for over ADS (SDS).
func (c *Client) neededLocked(typeURL string) []string {
	set := map[string]bool{}
	for _, r := range []resources{c.staged, c.live} {
		switch typeURL {
		case config.RouteType:
			for _, e := range r[config.ListenerType] {
				for _, name := range rdsNames(e.msg.(*listenerv3.Listener)) {
					set[name] = true
				}
			}
		case config.EndpointType:
			for _, e := range r[config.ClusterType] {
				if name := edsName(e.msg.(*clusterv3.Cluster)); name != "" {
					set[name] = true
				}
			}
		case config.SecretType:
			for _, t := range []string{config.ListenerType, config.ClusterType} {
				for _, e := range r[t] {
					for _, name := range adsSecrets(e.msg) {
						set[name] = true
					}
				}
			}
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func rdsNames(l *listenerv3.Listener) []string {
	var out []string
	chains := l.GetFilterChains()
	if l.GetDefaultFilterChain() != nil {
		chains = append(chains[:len(chains):len(chains)], l.GetDefaultFilterChain())
	}
	for _, fc := range chains {
		hcm, err := config.HTTPConnectionManager(fc)
		if err != nil {
			continue
		}
		if rds := hcm.GetRds(); rds != nil {
			out = append(out, rds.GetRouteConfigName())
		}
	}
	return out
}

// handle processes one response and returns the requests to send: its ACK
// or NACK, then any subscription changes it causes.
func (c *Client) handle(ctx context.Context, resp *discoveryv3.DiscoveryResponse) []*discoveryv3.DiscoveryRequest {
	t := resp.GetTypeUrl()
	c.mu.Lock()
	defer c.mu.Unlock()
	ts := c.types[t]
	if ts == nil {
		c.log.Warn("ignoring a response of a type not asked for", "type", t)
		return nil
	}
	ts.nonce = resp.GetNonce()
	ack := &discoveryv3.DiscoveryRequest{Node: c.opts.Node, TypeUrl: t, ResponseNonce: ts.nonce, ResourceNames: ts.names}

	ch, unnamed := c.decode(resp)
	if wildcard(t) {
		// State of the world: what the response does not list is gone,
		// except a resource that failed to decode, which keeps its last
		// good version. When a resource could not even be named, nothing
		// is removed: it might be any of them.
		if unnamed == nil {
			// Withdrawn: staged ones, and rejected ones that never were
			// (so that their failure is forgotten too).
			gone := map[string]bool{}
			for n := range c.staged[t] {
				gone[n] = true
			}
			for n := range c.failures[t] {
				gone[n] = true
			}
			for n := range gone {
				if _, ok := ch.put[n]; !ok {
					if _, bad := ch.rejected[n]; !bad {
						ch.remove = append(ch.remove, n)
					}
				}
			}
		}
		c.received[t] = true
	}
	o := c.apply(ctx, ch)
	if unnamed != nil {
		o.whole = errors.Join(unnamed, o.whole)
	}
	total := len(resp.GetResources())
	c.record(t, o, resp.GetVersionInfo())
	if err := o.err(t); err != nil {
		ack.VersionInfo = ts.version
		ack.ErrorDetail = &statuspb.Status{Code: int32(codes.InvalidArgument), Message: err.Error()}
		c.m.updates.WithLabelValues(kind(t), "nack").Inc()
		// A state-of-the-world server resends a rejected version at once;
		// say so once per version and reason.
		if key := resp.GetVersionInfo() + "\x00" + err.Error(); key != ts.lastNack {
			ts.lastNack = key
			c.log.Warn("NACK", "type", kind(t), "version", resp.GetVersionInfo(), "rejected", len(o.rejected),
				"accepted", total-len(o.rejected), "error", err)
		}
	} else {
		ts.version, ts.lastNack = resp.GetVersionInfo(), ""
		ack.VersionInfo = ts.version
		c.m.updates.WithLabelValues(kind(t), "ack").Inc()
		c.log.Debug("ACK", "type", kind(t), "version", ts.version, "resources", total)
	}
	return append([]*discoveryv3.DiscoveryRequest{ack}, c.subscriptionsLocked(false)...)
}

// record keeps each rejection for /config_dump and updates the gauges.
func (c *Client) record(t string, o outcome, version string) {
	now := time.Now()
	for n, r := range o.rejected {
		v := r.entry.version
		if v == "" {
			v = version
		}
		c.setFailure(t, n, config.Failure{Version: v, Details: r.err.Error(), Time: now, Resource: r.entry.raw})
	}
	for _, typ := range typeOrder {
		c.m.rejected.WithLabelValues(kind(typ)).Set(float64(len(c.failures[typ])))
	}
}

// decode unpacks a state-of-the-world response's resources, checking each
// on its own. unnamed gathers the failures that cannot be tied to a name.
func (c *Client) decode(resp *discoveryv3.DiscoveryResponse) (ch change, unnamed error) {
	t := resp.GetTypeUrl()
	ch = change{typeURL: t, put: map[string]entry{}, rejected: map[string]rejection{}}
	var errs []error
	for i, a := range resp.GetResources() {
		if a.GetTypeUrl() != t {
			errs = append(errs, fmt.Errorf("resources[%d]: type %s in a %s response", i, a.GetTypeUrl(), t))
			continue
		}
		m, err := a.UnmarshalNew()
		if err != nil {
			errs = append(errs, fmt.Errorf("resources[%d]: %w", i, err))
			continue
		}
		name, err := config.ResourceName(m)
		if err != nil || name == "" {
			errs = append(errs, fmt.Errorf("resources[%d]: %w", i, errors.Join(err, config.Validate(m))))
			continue
		}
		e := entry{msg: m, version: resp.GetVersionInfo(), raw: a}
		if _, dup := ch.put[name]; dup {
			ch.rejected[name] = rejection{err: errors.New("sent twice in one response"), entry: e}
			continue
		}
		if err := config.Validate(m); err != nil {
			ch.rejected[name] = rejection{err: err, entry: e}
			continue
		}
		ch.put[name] = e
	}
	for n := range ch.rejected {
		delete(ch.put, n)
	}
	return ch, errors.Join(errs...)
}

func (c *Client) stopWarmTimer() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.warmTimer != nil {
		c.warmTimer.Stop()
		c.warmTimer = nil
	}
}

func edsName(cl *clusterv3.Cluster) string {
	if cl.GetType() != clusterv3.Cluster_EDS {
		return ""
	}
	if n := cl.GetEdsClusterConfig().GetServiceName(); n != "" {
		return n
	}
	return cl.GetName()
}

func kind(t string) string {
	switch t {
	case config.ListenerType:
		return "lds"
	case config.RouteType:
		return "rds"
	case config.ClusterType:
		return "cds"
	case config.EndpointType:
		return "eds"
	case config.SecretType:
		return "sds"
	}
	return t
}
