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
	"google.golang.org/protobuf/proto"

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
var typeOrder = []string{config.ClusterType, config.EndpointType, config.ListenerType, config.RouteType}

// wildcard reports whether a type is subscribed to whole (LDS, CDS): its
// state-of-the-world responses list every resource, and absence deletes.
func wildcard(typeURL string) bool {
	return typeURL == config.ListenerType || typeURL == config.ClusterType
}

// Client is an ADS client feeding a config.Store.
type Client struct {
	opts  Options
	store *config.Store
	log   *slog.Logger
	m     *metrics

	mu        sync.Mutex
	types     map[string]*typeState
	staged    map[string]map[string]proto.Message  // accepted from the control plane
	versions  map[string]map[string]string         // type -> resource -> the version it came with
	pending   bool                                 // staged differs from what the store has
	waitSince time.Time                            // when the staged update became incomplete
	applied   bool                                 // a complete update has gone live
	failures  map[string]map[string]config.Failure // type -> resource -> last NACK

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
		types:    map[string]*typeState{},
		staged:   map[string]map[string]proto.Message{},
		versions: map[string]map[string]string{},
		failures: map[string]map[string]config.Failure{},
		m:        newMetrics(opts.Registerer),
	}
	for _, t := range typeOrder {
		c.types[t] = &typeState{}
		c.staged[t] = map[string]proto.Message{}
	}
	return c
}

// Connected reports whether an ADS stream is up.
func (c *Client) Connected() bool { return c.connected.Load() }

// Applied reports whether a complete config from the control plane is live.
func (c *Client) Applied() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.applied
}

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
	cc, err := grpc.NewClient(c.opts.Address, grpc.WithTransportCredentials(creds))
	if err != nil {
		return fmt.Errorf("xds: dial %s: %w", c.opts.Address, err)
	}
	defer cc.Close()
	defer c.stopWarmTimer()
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

// neededLocked lists, sorted, the route configurations the staged
// listeners name (RDS) or the endpoints the staged EDS clusters read.
func (c *Client) neededLocked(typeURL string) []string {
	set := map[string]bool{}
	switch typeURL {
	case config.RouteType:
		for _, m := range c.staged[config.ListenerType] {
			for _, name := range rdsNames(m.(*listenerv3.Listener)) {
				set[name] = true
			}
		}
	case config.EndpointType:
		for _, m := range c.staged[config.ClusterType] {
			if name := edsName(m.(*clusterv3.Cluster)); name != "" {
				set[name] = true
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

func edsName(cl *clusterv3.Cluster) string {
	if cl.GetType() != clusterv3.Cluster_EDS {
		return ""
	}
	if n := cl.GetEdsClusterConfig().GetServiceName(); n != "" {
		return n
	}
	return cl.GetName()
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

	next, decodeErr := c.decode(resp)
	var err error
	if decodeErr != nil {
		err = decodeErr
	} else {
		err = c.acceptSotW(ctx, t, resp.GetVersionInfo(), next)
	}
	if err != nil {
		ack.VersionInfo = ts.version
		ack.ErrorDetail = &statuspb.Status{Code: int32(codes.InvalidArgument), Message: err.Error()}
		c.recordFailureLocked(t, resp, err)
		c.m.updates.WithLabelValues(kind(t), "nack").Inc()
		// A state-of-the-world server resends a rejected version at once;
		// say so once per version and reason.
		if key := resp.GetVersionInfo() + "\x00" + err.Error(); key != ts.lastNack {
			ts.lastNack = key
			c.log.Warn("NACK", "type", kind(t), "version", resp.GetVersionInfo(), "error", err)
		}
		return []*discoveryv3.DiscoveryRequest{ack}
	}
	ts.version, ts.lastNack = resp.GetVersionInfo(), ""
	ack.VersionInfo = ts.version
	delete(c.failures, t)
	c.m.updates.WithLabelValues(kind(t), "ack").Inc()
	c.log.Debug("ACK", "type", kind(t), "version", ts.version, "resources", len(next))
	return append([]*discoveryv3.DiscoveryRequest{ack}, c.subscriptionsLocked(false)...)
}

// decode unpacks a response's resources, checking each on its own.
func (c *Client) decode(resp *discoveryv3.DiscoveryResponse) (map[string]proto.Message, error) {
	out := map[string]proto.Message{}
	var errs []error
	for i, a := range resp.GetResources() {
		if a.GetTypeUrl() != resp.GetTypeUrl() {
			errs = append(errs, fmt.Errorf("resources[%d]: type %s in a %s response", i, a.GetTypeUrl(), resp.GetTypeUrl()))
			continue
		}
		m, err := a.UnmarshalNew()
		if err != nil {
			errs = append(errs, fmt.Errorf("resources[%d]: %w", i, err))
			continue
		}
		name, err := config.ResourceName(m)
		if err != nil {
			errs = append(errs, fmt.Errorf("resources[%d]: %w", i, err))
			continue
		}
		if err := config.Validate(m); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", kind(resp.GetTypeUrl()), name, err))
			continue
		}
		out[name] = m
	}
	return out, errors.Join(errs...)
}

// acceptSotW stages a state-of-the-world response: the whole type for
// LDS and CDS, the named resources for RDS and EDS.
func (c *Client) acceptSotW(ctx context.Context, t, version string, next map[string]proto.Message) error {
	typed := next
	versions := map[string]string{}
	if !wildcard(t) {
		typed = make(map[string]proto.Message, len(c.staged[t])+len(next))
		for n, m := range c.staged[t] {
			typed[n] = m
			versions[n] = c.versions[t][n]
		}
		for n, m := range next {
			typed[n] = m
		}
	}
	for n := range next {
		versions[n] = version
	}
	return c.accept(ctx, t, typed, versions)
}

// accept stages a type's new set of resources after compiling the whole
// staged config with it, and makes the staged config live when complete.
func (c *Client) accept(ctx context.Context, t string, typed map[string]proto.Message, typeVersions map[string]string) error {
	candidate := map[string]map[string]proto.Message{}
	for typ, m := range c.staged {
		candidate[typ] = m
	}
	candidate[t] = typed
	// Drop route configurations and endpoints nothing refers to any more.
	prune(candidate)
	versions := map[string]map[string]string{}
	for typ, m := range c.versions {
		versions[typ] = m
	}
	versions[t] = typeVersions
	u := updateOf(candidate, versions)
	complete := isComplete(candidate)
	var err error
	if complete {
		err = c.store.Apply(ctx, u)
	} else {
		err = c.store.Check(u)
	}
	if err != nil {
		return err
	}
	c.staged, c.versions = candidate, versions
	if complete {
		c.pending, c.applied = false, true
		c.stopWarmTimerLocked()
		return nil
	}
	c.pending = true
	if c.waitSince.IsZero() {
		c.waitSince = time.Now()
		c.warmTimer = time.AfterFunc(c.opts.InitialFetchTimeout, func() { c.warmTimeout(ctx) })
	}
	return nil
}

// warmTimeout applies an update still incomplete after the initial fetch
// timeout: what has arrived serves, the rest answers 503 until it comes.
func (c *Client) warmTimeout(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waitSince = time.Time{}
	if !c.pending || ctx.Err() != nil {
		return
	}
	c.log.Warn("applying an incomplete xDS update after the initial fetch timeout", "timeout", c.opts.InitialFetchTimeout)
	if err := c.store.Apply(ctx, updateOf(c.staged, c.versions)); err != nil {
		c.log.Error("the incomplete xDS update does not apply", "error", err)
		return
	}
	c.pending, c.applied = false, true
}

func (c *Client) stopWarmTimer() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopWarmTimerLocked()
}

func (c *Client) stopWarmTimerLocked() {
	if c.warmTimer != nil {
		c.warmTimer.Stop()
		c.warmTimer = nil
	}
	c.waitSince = time.Time{}
}

func (c *Client) recordFailureLocked(t string, resp *discoveryv3.DiscoveryResponse, err error) {
	if c.failures[t] == nil {
		c.failures[t] = map[string]config.Failure{}
	}
	for _, a := range resp.GetResources() {
		name := "?"
		if m, uerr := a.UnmarshalNew(); uerr == nil {
			if n, nerr := config.ResourceName(m); nerr == nil {
				name = n
			}
		}
		c.failures[t][name] = config.Failure{Version: resp.GetVersionInfo(), Details: err.Error(), Time: time.Now(), Resource: a}
	}
}

// prune drops RDS and EDS resources no staged listener or cluster needs.
func prune(staged map[string]map[string]proto.Message) {
	routes := map[string]bool{}
	for _, m := range staged[config.ListenerType] {
		for _, n := range rdsNames(m.(*listenerv3.Listener)) {
			routes[n] = true
		}
	}
	eds := map[string]bool{}
	for _, m := range staged[config.ClusterType] {
		if n := edsName(m.(*clusterv3.Cluster)); n != "" {
			eds[n] = true
		}
	}
	keep := func(t string, want map[string]bool) {
		next := map[string]proto.Message{}
		for n, m := range staged[t] {
			if want[n] {
				next[n] = m
			}
		}
		staged[t] = next
	}
	keep(config.RouteType, routes)
	keep(config.EndpointType, eds)
}

// isComplete reports whether every listener's route configuration and
// every EDS cluster's endpoints are staged.
func isComplete(staged map[string]map[string]proto.Message) bool {
	for _, m := range staged[config.ListenerType] {
		for _, n := range rdsNames(m.(*listenerv3.Listener)) {
			if staged[config.RouteType][n] == nil {
				return false
			}
		}
	}
	for _, m := range staged[config.ClusterType] {
		if n := edsName(m.(*clusterv3.Cluster)); n != "" && staged[config.EndpointType][n] == nil {
			return false
		}
	}
	return true
}

// updateOf is the store update that makes the store hold exactly the
// staged resources under the xds source.
func updateOf(staged map[string]map[string]proto.Message, versions map[string]map[string]string) config.Update {
	u := config.Update{Source: SourceName, Replace: config.ResourceTypes, ResourceVersions: versions}
	for _, t := range config.ResourceTypes {
		names := make([]string, 0, len(staged[t]))
		for n := range staged[t] {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			u.Resources = append(u.Resources, staged[t][n])
		}
	}
	return u
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
	}
	return t
}
