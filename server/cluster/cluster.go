// Package cluster builds the data plane's upstream clusters from Envoy
// Cluster and ClusterLoadAssignment resources: a pooled HTTP/1.1 or HTTP/2
// transport per cluster, the host set, and the balancer's picker over it.
//
// A Cluster's host set is replaced in place (SetEndpoints) when only its
// endpoints change, so an EDS or registry update never recompiles routes.
// Hosts are kept by address across updates, so their counters survive.
package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/dubbo"
	"github.com/meshgate/meshgate/governance"
	"github.com/meshgate/meshgate/server/h1"
	"github.com/meshgate/meshgate/server/secrets"
)

// ErrNoHealthyUpstream is returned by Pick when the cluster has no host to
// send to.
var ErrNoHealthyUpstream = errors.New("no healthy upstream")

// Protocol is what a cluster speaks to its hosts.
type Protocol uint8

const (
	// HTTP1 is HTTP/1.1 with keep-alive connections.
	HTTP1 Protocol = iota
	// HTTP2 is HTTP/2, cleartext with prior knowledge or TLS with ALPN h2.
	HTTP2
	// Downstream speaks whatever the downstream request used.
	Downstream
	// Dubbo is Dubbo2 (hessian2 over TCP): reached only through a
	// route's Dubbo2 bridge, on the cluster's Dubbo pool.
	Dubbo
)

func (p Protocol) String() string {
	return [...]string{"http1", "http2", "downstream", "dubbo"}[p]
}

// Cluster is one upstream cluster. It is safe for concurrent use.
type Cluster struct {
	Name     string
	Protocol Protocol
	// socks are the transport sockets (TLS configs) of the endpoints.
	socks *sockets
	// dialer dials the hosts (the cluster's connect_timeout).
	dialer *net.Dialer
	// EDSName is the ClusterLoadAssignment name an EDS cluster reads.
	EDSName string
	// Static reports whether endpoints come from the Cluster itself.
	Static bool
	// Dubbo holds the connections to a Dubbo2 cluster's providers (nil
	// for HTTP clusters), and DubboService what its metadata says.
	Dubbo        *dubbo.Pool
	DubboService DubboService
	// dubboRules are the Dubbo traffic rules its calls go through (nil:
	// none); see BeginRouted.
	dubboRules *dubboRules
	// DubboConsumer is what Dubbo's dynamic configuration sets for
	// meshgate as the service's consumer (zero: nothing).
	DubboConsumer DubboConsumer
	// Triple marks a cluster of Triple providers (HTTP/2).
	Triple bool
	// Notes say what of the cluster's config is not done as asked (a
	// fallback taken, an option ignored), one "field: what instead" each.
	Notes []string

	spec   *clusterv3.Cluster
	scheme string
	h1     pool
	h2     pool
	lb     lbConfig
	now    func() time.Time

	thresholds [2]Thresholds      // by routing priority
	dnsSpec    *clusterv3.Cluster // STRICT_DNS / LOGICAL_DNS: resolved by dnsLoop
	dnsStop    context.CancelFunc
	dnsDone    chan struct{}
	// unsupported, when set, is why every request to the cluster fails.
	unsupported string
	outlier     *governance.Outlier
	outlierT    *time.Timer
	breakerCfg  governance.BreakerConfig
	hc          *governance.HealthChecker // nil without active health checks
	hosts       atomic.Pointer[hostSet]

	mu      sync.Mutex // guards members and rebuilds
	members []*Host    // the current endpoints, with their health
	// overprovisioning is the assignment's factor (0: Envoy's 1.4).
	overprovisioning float64
	closed           bool
	timer            *time.Timer // the next slow-start step

	Stats Stats
}

// Stats are a cluster's counters.
type Stats struct {
	RqTotal         atomic.Uint64
	RqActive        atomic.Int64
	RqTimeout       atomic.Uint64
	Rq5xx           atomic.Uint64
	CxTotal         atomic.Uint64
	CxActive        atomic.Int64
	CxConnectFail   atomic.Uint64
	NoHealthyUpstrm atomic.Uint64
	MembershipTotal atomic.Int64

	// Circuit breaker overflows and retries, as Envoy names them.
	RqOverflow        atomic.Uint64 // upstream_rq_overflow (max_requests)
	RqPendingOverflow atomic.Uint64 // upstream_rq_pending_overflow
	RqRetry           atomic.Uint64 // upstream_rq_retry
	RqRetrySuccess    atomic.Uint64 // upstream_rq_retry_success
	RetryOverflow     atomic.Uint64 // upstream_rq_retry_overflow (max_retries / budget)
	RetriesActive     atomic.Int64

	// RqRelayed counts the calls relayed frame by frame by the HTTP/2
	// server (no handler), of RqTotal.
	RqRelayed atomic.Uint64
}

// Options tune how clusters are built.
type Options struct {
	// IdleConnTimeout closes pooled connections idle this long (default 1h,
	// as Envoy's upstream idle_timeout).
	IdleConnTimeout time.Duration
	// PingInterval sends an HTTP/2 PING on a connection quiet this long, and
	// PingTimeout closes it when the PING is not answered (defaults 30s, 15s),
	// so a dead upstream connection is noticed without a request failing.
	PingInterval, PingTimeout time.Duration
	// Secrets are the SDS secrets TLS contexts name (nil: none may be
	// named).
	Secrets *secrets.Table
}

// New builds a cluster from its resource. Endpoints of a STATIC cluster are
// set from its load_assignment; an EDS cluster starts empty.
func New(c *clusterv3.Cluster, opts Options) (*Cluster, error) {
	out := &Cluster{Name: c.GetName(), spec: c, scheme: "http", now: time.Now}
	if opts.IdleConnTimeout == 0 {
		opts.IdleConnTimeout = time.Hour
	}
	if opts.PingInterval == 0 {
		opts.PingInterval = 30 * time.Second
	}
	if opts.PingTimeout == 0 {
		opts.PingTimeout = 15 * time.Second
	}
	if ct := c.GetClusterType(); ct != nil {
		// GetType reports STATIC for these: refuse before it is believed.
		return nil, fmt.Errorf("cluster %q: cluster_type %q is not supported", c.GetName(), ct.GetName())
	}
	switch c.GetType() {
	case clusterv3.Cluster_STATIC:
		out.Static = true
	case clusterv3.Cluster_EDS:
		out.EDSName = c.GetEdsClusterConfig().GetServiceName()
		if out.EDSName == "" {
			out.EDSName = c.GetName()
		}
	case clusterv3.Cluster_STRICT_DNS, clusterv3.Cluster_LOGICAL_DNS:
		out.dnsSpec = c
	case clusterv3.Cluster_ORIGINAL_DST:
		// Kept so that a control plane's config compiles (Istio sends a
		// PassthroughCluster); requests routed to it get a clear 503.
		out.unsupported = "ORIGINAL_DST clusters (forwarding to the original destination) are not supported"
	default:
		return nil, fmt.Errorf("cluster %q: type %v is not supported (want STATIC or EDS)", c.GetName(), c.GetType())
	}
	var err error
	if out.lb, err = lbFromCluster(c); err != nil {
		return nil, fmt.Errorf("cluster %q: %w", c.GetName(), err)
	}
	if out.thresholds, err = thresholdsFromCluster(c); err != nil {
		return nil, fmt.Errorf("cluster %q: %w", c.GetName(), err)
	}
	if od := c.GetOutlierDetection(); od != nil {
		out.outlier = governance.NewOutlier(outlierConfig(od), out.rebuild)
	}
	if out.breakerCfg, err = endpointBreaker(c); err != nil {
		return nil, fmt.Errorf("cluster %q: %w", c.GetName(), err)
	}
	if out.Protocol, err = protocol(c); err != nil {
		return nil, fmt.Errorf("cluster %q: %w", c.GetName(), err)
	}
	md := c.GetMetadata().GetFilterMetadata()[config.DubboMetadata]
	switch md.GetFields()["protocol"].GetStringValue() {
	case "dubbo":
		// Dubbo2 providers: not HTTP. Routes with the Dubbo2 bridge call
		// them on the Dubbo pool; forwarding HTTP to them is refused.
		out.Protocol = Dubbo
		out.Dubbo = dubbo.NewPool(dubbo.PoolOptions{DialTimeout: connectTimeoutOf(c)})
		out.DubboService = dubboService(md)
	case "tri":
		// Triple providers: gRPC passes through; routes with the bridge
		// call non-IDL methods in Triple's wrapper form.
		out.Triple = true
		out.DubboService = dubboService(md)
	}
	out.DubboConsumer = dubboConsumer(md)
	if out.dubboRules, err = compileDubboRules(md); err != nil {
		return nil, fmt.Errorf("cluster %q: Dubbo traffic rules: %w", c.GetName(), err)
	}
	if out.socks, err = upstreamTLS(c, opts.Secrets); err != nil {
		return nil, fmt.Errorf("cluster %q: %w", c.GetName(), err)
	}
	for key := range c.GetTypedExtensionProtocolOptions() {
		if key != config.HTTPProtocolOptions && key != config.EndpointBreakerOptions {
			out.Notes = append(out.Notes, fmt.Sprintf("typed_extension_protocol_options[%s]: not implemented; ignored", key))
		}
	}
	if !out.socks.perEndpoint && out.socks.all != nil {
		out.scheme = "https"
	}
	probeTLS := out.socks.all
	if out.socks.perEndpoint && len(c.GetHealthChecks()) > 0 {
		probeTLS = out.socks.fallback
		out.Notes = append(out.Notes, "health_checks: probes use the cluster's transport_socket for every endpoint, not each endpoint's transport_socket_matches")
	}
	if out.hc, err = healthChecker(c, probeTLS, out.rebuild); err != nil {
		return nil, fmt.Errorf("cluster %q: %w", c.GetName(), err)
	}
	dialer := &net.Dialer{Timeout: connectTimeoutOf(c), KeepAlive: 30 * time.Second}
	out.dialer = dialer
	if out.Protocol != HTTP2 && out.Protocol != Dubbo {
		out.h1 = out.http1Transport(dialer, opts)
	}
	if out.Protocol != HTTP1 && out.Protocol != Dubbo {
		out.h2 = out.http2Transport(dialer, opts)
	}
	out.hosts.Store(&hostSet{picker: governance.NewPicker(out.lb.builder, nil, out.lb.opts)})
	if out.Static {
		out.SetEndpoints(c.GetLoadAssignment())
	}
	if out.dnsSpec != nil {
		ctx, stop := context.WithCancel(context.Background())
		out.dnsStop, out.dnsDone = stop, make(chan struct{})
		go func() {
			defer close(out.dnsDone)
			out.dnsLoop(ctx)
		}()
	}
	if out.outlier != nil {
		out.mu.Lock() // the first tick may run before New returns
		out.outlierT = time.AfterFunc(out.outlier.Interval(), out.outlierTick)
		out.mu.Unlock()
	}
	return out, nil
}

func connectTimeoutOf(c *clusterv3.Cluster) time.Duration {
	if ct := c.GetConnectTimeout(); ct != nil {
		return ct.AsDuration()
	}
	return 5 * time.Second
}

// DubboService is what a Dubbo2 cluster's metadata says of its service (a
// registry fills it; a static cluster may leave it empty) and the method
// signatures its providers published.
type DubboService struct {
	Interface, Version, Group string
	// Methods are the method names the providers publish.
	Methods []string
	// Signatures lists each method's overloads' parameter types.
	Signatures map[string][][]string
}

func dubboService(md *structpb.Struct) DubboService {
	f := md.GetFields()
	out := DubboService{
		Interface: f["interface"].GetStringValue(),
		Version:   f["version"].GetStringValue(),
		Group:     f["group"].GetStringValue(),
	}
	for _, m := range f["methods"].GetListValue().GetValues() {
		out.Methods = append(out.Methods, m.GetStringValue())
	}
	for _, sv := range f["signatures"].GetListValue().GetValues() {
		sf := sv.GetStructValue().GetFields()
		name := sf["name"].GetStringValue()
		if name == "" {
			continue
		}
		types := []string{}
		for _, t := range sf["parameter_types"].GetListValue().GetValues() {
			types = append(types, t.GetStringValue())
		}
		if out.Signatures == nil {
			out.Signatures = map[string][][]string{}
		}
		out.Signatures[name] = append(out.Signatures[name], types)
	}
	return out
}

// Same reports whether c was built from a resource equal to spec, so that
// a config reload can keep it (and its pooled connections).
func (c *Cluster) Same(spec *clusterv3.Cluster) bool { return proto.Equal(c.spec, spec) }

// http1Transport keeps alive a pool of connections per host. It is
// meshgate's own HTTP/1.1 client (server/h1): net/http's Transport hands
// each request to a write loop and its answer back from a read loop, three
// goroutine switches per request.
func (c *Cluster) http1Transport(d *net.Dialer, opts Options) pool {
	dial := c.dial(d)
	return &h1.Transport{
		IdleConnTimeout: opts.IdleConnTimeout,
		MaxConnsPerHost: int(c.thresholds[0].MaxConnections),
		// Every dial does the endpoint's TLS (ALPN http/1.1) or none.
		Dial: func(ctx context.Context, addr string) (net.Conn, error) {
			raw, err := dial(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			return c.handshake(ctx, raw, addr, c.hostTLS(addr), "http/1.1", d.Timeout)
		},
	}
}

// hostTLS is the TLS config of the endpoint at addr (nil: plaintext). An
// address no longer in the cluster gets the cluster's transport_socket.
func (c *Cluster) hostTLS(addr string) *tls.Config {
	if c.socks == nil {
		return nil
	}
	if !c.socks.perEndpoint {
		return c.socks.all
	}
	if h := c.host(addr); h != nil {
		return h.Spec().TLS
	}
	return c.socks.fallback
}

// handshake runs the client TLS handshake of conf over raw, offering proto
// by ALPN (raw as it is when conf is nil).
func (c *Cluster) handshake(ctx context.Context, raw net.Conn, addr string, conf *tls.Config, proto string, timeout time.Duration) (net.Conn, error) {
	if conf == nil {
		return raw, nil
	}
	cfg := conf.Clone()
	cfg.NextProtos = alpn(conf, proto)
	if cfg.ServerName == "" {
		cfg.ServerName, _, _ = net.SplitHostPort(addr)
	}
	tc := tls.Client(raw, cfg)
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("cluster %q: TLS handshake with %s: %w", c.Name, addr, err)
	}
	return tc, nil
}

// DialGRPC connects to a host the balancer picks, as the cluster's own
// transports do (connect timeout, connection stats, the endpoint's
// transport socket offering h2): for a gRPC client of the gateway's that
// names an Envoy cluster (the OTLP exporter's envoy_grpc).
func (c *Cluster) DialGRPC(ctx context.Context) (net.Conn, error) {
	h, err := c.Pick(governance.PickInfo{}, nil)
	if err != nil {
		return nil, err
	}
	raw, err := c.dial(c.dialer)(ctx, "tcp", h.Address)
	if err != nil {
		return nil, err
	}
	return c.handshake(ctx, raw, h.Address, c.hostTLS(h.Address), "h2", c.dialer.Timeout)
}

// dial counts connections per host.
func (c *Cluster) dial(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		h := c.host(addr)
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			c.Stats.CxConnectFail.Add(1)
			if h != nil {
				h.CxConnectFail.Add(1)
			}
			return nil, err
		}
		c.Stats.CxTotal.Add(1)
		c.Stats.CxActive.Add(1)
		if h != nil {
			h.CxTotal.Add(1)
			h.CxActive.Add(1)
		}
		return &countedConn{Conn: conn, c: c, h: h}, nil
	}
}

type countedConn struct {
	net.Conn
	c    *Cluster
	h    *Host
	once sync.Once
}

// NetConn is the connection counted (for a peek at an idle one).
func (cc *countedConn) NetConn() net.Conn { return cc.Conn }

func (cc *countedConn) Close() error {
	cc.once.Do(func() {
		cc.c.Stats.CxActive.Add(-1)
		if cc.h != nil {
			cc.h.CxActive.Add(-1)
		}
	})
	return cc.Conn.Close()
}

func (c *Cluster) host(addr string) *Host {
	for _, h := range c.hosts.Load().hosts {
		if h.Address == addr {
			return h
		}
	}
	return nil
}

// Scheme is "https" for a TLS cluster, "http" otherwise.
func (c *Cluster) Scheme() string { return c.scheme }

// Transport returns the pooled transport for a request that arrived over
// HTTP/2 (downstreamH2) or HTTP/1.x.
func (c *Cluster) Transport(downstreamH2 bool) http.RoundTripper {
	if c.Protocol == HTTP2 || (c.Protocol == Downstream && downstreamH2) {
		return c.h2
	}
	return c.h1
}

// OutlierStats returns the outlier detector's enforced ejections by kind
// name and the hosts ejected now; nil without outlier detection.
func (c *Cluster) OutlierStats() (ejections map[string]uint64, active int64) {
	if c.outlier == nil {
		return nil, 0
	}
	ejections = map[string]uint64{}
	for k := governance.EjectConsecutive5xx; k <= governance.EjectFailurePercentage; k++ {
		ejections[k.String()] = c.outlier.Ejections[k].Load()
	}
	return ejections, c.outlier.Active.Load()
}

// HealthCheckStats returns the active health checks' attempts, successes
// and failures; ok is false without health checks.
func (c *Cluster) HealthCheckStats() (attempts, successes, failures uint64, ok bool) {
	if c.hc == nil {
		return 0, 0, 0, false
	}
	return c.hc.Attempts.Load(), c.hc.Successes.Load(), c.hc.Failures.Load(), true
}

// Close stops the cluster's timers and closes its idle connections. Requests
// in flight finish; their connections close when they go idle.
func (c *Cluster) Close() {
	c.mu.Lock()
	c.closed = true
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.outlierT != nil {
		c.outlierT.Stop()
	}
	c.mu.Unlock()
	// Outside c.mu: a check or resolve loop may be waiting for it.
	if c.hc != nil {
		c.hc.Close()
	}
	if c.dnsStop != nil {
		c.dnsStop()
		<-c.dnsDone
	}
	c.CloseIdle()
	if c.Dubbo != nil {
		c.Dubbo.Forget(nil) // calls in flight finish first
	}
}

// CloseIdle closes the pooled connections that carry no request.
func (c *Cluster) CloseIdle() {
	if c.h1 != nil {
		c.h1.CloseIdleConnections()
	}
	if c.h2 != nil {
		c.h2.CloseIdleConnections()
	}
}
