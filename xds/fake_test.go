package xds_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/xds"
)

// fakeADS is a hand-driven ADS server: the test reads each request the
// client sends and writes each response itself.
type fakeADS struct {
	discoveryv3.UnimplementedAggregatedDiscoveryServiceServer
	addr    string
	streams chan *fakeStream
}

// fakeStream is one ADS stream (state of the world or delta) as the test
// drives it.
type fakeStream struct {
	sotw  discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesServer
	delta discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesServer
	reqs  chan proto.Message
	done  chan struct{}
	// pending holds requests read but not yet asked for, by type.
	pending map[string][]proto.Message
	nonce   int
}

func startFakeADS(t *testing.T) *fakeADS {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeADS{addr: lis.Addr().String(), streams: make(chan *fakeStream, 4)}
	srv := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return f
}

func (f *fakeADS) StreamAggregatedResources(s discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	fs := &fakeStream{sotw: s, reqs: make(chan proto.Message, 64), done: make(chan struct{}), pending: map[string][]proto.Message{}}
	return f.run(fs, func() (proto.Message, error) { return s.Recv() })
}

func (f *fakeADS) DeltaAggregatedResources(s discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	fs := &fakeStream{delta: s, reqs: make(chan proto.Message, 64), done: make(chan struct{}), pending: map[string][]proto.Message{}}
	return f.run(fs, func() (proto.Message, error) { return s.Recv() })
}

func (f *fakeADS) run(fs *fakeStream, recv func() (proto.Message, error)) error {
	defer close(fs.done)
	f.streams <- fs
	for {
		m, err := recv()
		if err != nil {
			return err
		}
		fs.reqs <- m
	}
}

func (f *fakeADS) stream(t *testing.T) *fakeStream {
	t.Helper()
	select {
	case s := <-f.streams:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("the client did not open an ADS stream within 5s")
		return nil
	}
}

func typeOf(m proto.Message) string {
	switch r := m.(type) {
	case *discoveryv3.DiscoveryRequest:
		return r.GetTypeUrl()
	case *discoveryv3.DeltaDiscoveryRequest:
		return r.GetTypeUrl()
	}
	return ""
}

// next returns the next request of a type the client sends.
func (fs *fakeStream) next(t *testing.T, typeURL string) proto.Message {
	t.Helper()
	if q := fs.pending[typeURL]; len(q) > 0 {
		fs.pending[typeURL] = q[1:]
		return q[0]
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case m := <-fs.reqs:
			if typeOf(m) == typeURL {
				return m
			}
			fs.pending[typeOf(m)] = append(fs.pending[typeOf(m)], m)
		case <-deadline:
			t.Fatalf("no %s request within 5s", typeURL)
			return nil
		}
	}
}

// sendSotW sends a state-of-the-world response and returns the client's
// answer to it (ACK or NACK).
func (fs *fakeStream) sendSotW(t *testing.T, typeURL, version string, res ...proto.Message) *discoveryv3.DiscoveryRequest {
	t.Helper()
	fs.nonce++
	nonce := strconv.Itoa(fs.nonce)
	resp := &discoveryv3.DiscoveryResponse{TypeUrl: typeURL, VersionInfo: version, Nonce: nonce}
	for _, m := range res {
		resp.Resources = append(resp.Resources, mustAny(t, m))
	}
	if err := fs.sotw.Send(resp); err != nil {
		t.Fatal(err)
	}
	for {
		r := fs.next(t, typeURL).(*discoveryv3.DiscoveryRequest)
		if r.GetResponseNonce() == nonce {
			return r
		}
	}
}

// sendDelta sends a delta response (each resource versioned by version)
// and returns the client's answer.
func (fs *fakeStream) sendDelta(t *testing.T, typeURL, version string, removed []string, res ...proto.Message) *discoveryv3.DeltaDiscoveryRequest {
	t.Helper()
	fs.nonce++
	nonce := strconv.Itoa(fs.nonce)
	resp := &discoveryv3.DeltaDiscoveryResponse{TypeUrl: typeURL, Nonce: nonce, RemovedResources: removed, SystemVersionInfo: version}
	for _, m := range res {
		name, err := config.ResourceName(m)
		if err != nil {
			t.Fatal(err)
		}
		resp.Resources = append(resp.Resources, &discoveryv3.Resource{Name: name, Version: version, Resource: mustAny(t, m)})
	}
	if err := fs.delta.Send(resp); err != nil {
		t.Fatal(err)
	}
	for {
		r := fs.next(t, typeURL).(*discoveryv3.DeltaDiscoveryRequest)
		if r.GetResponseNonce() == nonce {
			return r
		}
	}
}

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// fakePlane is a data plane that compiles nothing: it refuses resources
// marked to fail (the string "reject" where each type has room for it) and
// listeners that share a port, each as a config.ResourceError, as the
// real one does.
type fakePlane struct {
	mu      sync.Mutex
	serving map[uint32]string // port -> listener, as last applied
}

func (p *fakePlane) check(set *config.Set) (map[uint32]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs config.ResourceErrors
	for _, r := range set.All(config.ClusterType) {
		if r.Message.(*clusterv3.Cluster).GetAltStatName() == "reject" {
			errs = append(errs, &config.ResourceError{TypeURL: config.ClusterType, Name: r.Name, Err: errors.New("cannot build it")})
		}
	}
	for _, r := range set.All(config.RouteType) {
		for _, h := range r.Message.(*routev3.RouteConfiguration).GetInternalOnlyHeaders() {
			if h == "reject" {
				errs = append(errs, &config.ResourceError{TypeURL: config.RouteType, Name: r.Name, Err: errors.New("cannot compile it")})
			}
		}
	}
	ports := map[uint32]string{}
	for _, r := range set.All(config.ListenerType) {
		l := r.Message.(*listenerv3.Listener)
		if l.GetStatPrefix() == "reject" {
			errs = append(errs, &config.ResourceError{TypeURL: config.ListenerType, Name: r.Name, Err: errors.New("cannot serve it")})
			continue
		}
		port := l.GetAddress().GetSocketAddress().GetPortValue()
		if other, dup := ports[port]; dup {
			// The listener serving the port keeps it; the newcomer fails.
			blamed := r.Name
			if p.serving[port] == r.Name {
				blamed, other = other, r.Name
				ports[port] = r.Name
			}
			errs = append(errs, &config.ResourceError{TypeURL: config.ListenerType, Name: blamed,
				Err: fmt.Errorf("port %d is also used by listener %q", port, other)})
			continue
		}
		ports[port] = r.Name
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return ports, nil
}

func (p *fakePlane) Check(set *config.Set) error {
	_, err := p.check(set)
	return err
}

func (p *fakePlane) Apply(_ context.Context, set *config.Set, _ config.Change) error {
	ports, err := p.check(set)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.serving = ports
	p.mu.Unlock()
	return nil
}

// startClient runs a client against the fake server; it returns the client
// and the store it writes.
func startClient(t *testing.T, f *fakeADS, delta bool, fetchTimeout time.Duration) (*xds.Client, *config.Store) {
	t.Helper()
	store := config.NewStore(&fakePlane{})
	c := xds.New(store, xds.Options{Address: f.addr, Node: &corev3.Node{Id: "test"}, Delta: delta,
		InitialFetchTimeout: fetchTimeout, BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return c, store
}

// Resources for the tests.

func cluster(name string, opts ...func(*clusterv3.Cluster)) *clusterv3.Cluster {
	c := &clusterv3.Cluster{Name: name, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}}
	for _, o := range opts {
		o(c)
	}
	return c
}

func badCluster(c *clusterv3.Cluster) { c.AltStatName = "reject" }

func edsCluster(c *clusterv3.Cluster) {
	c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}
	c.EdsClusterConfig = &clusterv3.Cluster_EdsClusterConfig{EdsConfig: &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}}
}

func endpoints(name string, weight uint32) *endpointv3.ClusterLoadAssignment {
	return &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{
		LbEndpoints: []*endpointv3.LbEndpoint{{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: sockAddr(8080)}},
		}},
		// Weight 0 breaks Envoy's declared constraint (gte 1): a validation failure.
		LoadBalancingWeight: wrapperspb.UInt32(weight),
	}}}
}

func listener(name string, port uint32, rds string, opts ...func(*listenerv3.Listener)) *listenerv3.Listener {
	hcm := &hcmv3.HttpConnectionManager{StatPrefix: name, RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
		RouteConfigName: rds, ConfigSource: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}},
	}}}
	a, err := anypb.New(hcm)
	if err != nil {
		panic(err)
	}
	l := &listenerv3.Listener{Name: name, Address: sockAddr(port), FilterChains: []*listenerv3.FilterChain{{
		Filters: []*listenerv3.Filter{{Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: a}}},
	}}}
	for _, o := range opts {
		o(l)
	}
	return l
}

func badListener(l *listenerv3.Listener) { l.StatPrefix = "reject" }

func routes(name string, bad bool) *routev3.RouteConfiguration {
	rc := &routev3.RouteConfiguration{Name: name, VirtualHosts: []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"}}}}
	if bad {
		rc.InternalOnlyHeaders = []string{"reject"}
	}
	return rc
}

func sockAddr(port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
}
