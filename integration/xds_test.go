package integration

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/filesource"
	"github.com/meshgate/meshgate/internal/demo"
	"github.com/meshgate/meshgate/server"
	"github.com/meshgate/meshgate/server/admin"
	"github.com/meshgate/meshgate/xds"
)

// controlPlane is a go-control-plane ADS server with a snapshot cache: a
// real xDS server, used here for the exact protocol cases.
type controlPlane struct {
	t     *testing.T
	cache cachev3.SnapshotCache
	grpc  *grpc.Server
	addr  string
	done  chan struct{}

	mu     sync.Mutex
	nacks  []string          // error details of NACKs received
	acks   map[string]string // type -> version acknowledged
	nonces map[string]string // delta: nonce -> the version it carried
}

func startControlPlane(t *testing.T, addr string, cache cachev3.SnapshotCache) *controlPlane {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	for range 50 { // the previous server's port may take a moment to free
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	if cache == nil {
		cache = cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	}
	cp := &controlPlane{t: t, cache: cache, addr: ln.Addr().String(), done: make(chan struct{}),
		acks: map[string]string{}, nonces: map[string]string{}}
	cb := serverv3.CallbackFuncs{
		StreamRequestFunc: func(_ int64, r *discoveryv3.DiscoveryRequest) error {
			cp.mu.Lock()
			defer cp.mu.Unlock()
			if r.GetErrorDetail() != nil {
				cp.nacks = append(cp.nacks, r.GetErrorDetail().GetMessage())
			} else if r.GetResponseNonce() != "" {
				cp.acks[r.GetTypeUrl()] = r.GetVersionInfo()
			}
			return nil
		},
		// Delta ACKs carry only the nonce: remember what each nonce sent.
		StreamDeltaResponseFunc: func(_ int64, _ *discoveryv3.DeltaDiscoveryRequest, resp *discoveryv3.DeltaDiscoveryResponse) {
			cp.mu.Lock()
			defer cp.mu.Unlock()
			cp.nonces[resp.GetNonce()] = resp.GetSystemVersionInfo()
		},
		StreamDeltaRequestFunc: func(_ int64, r *discoveryv3.DeltaDiscoveryRequest) error {
			cp.mu.Lock()
			defer cp.mu.Unlock()
			if r.GetErrorDetail() != nil {
				cp.nacks = append(cp.nacks, r.GetErrorDetail().GetMessage())
			} else if v, ok := cp.nonces[r.GetResponseNonce()]; ok {
				cp.acks[r.GetTypeUrl()] = v
			}
			return nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := serverv3.NewServer(ctx, cache, cb)
	cp.grpc = grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(cp.grpc, srv)
	go func() {
		defer close(cp.done)
		defer cancel()
		_ = cp.grpc.Serve(ln)
	}()
	t.Cleanup(cp.stop)
	return cp
}

func (cp *controlPlane) stop() {
	cp.grpc.Stop()
	<-cp.done
}

func (cp *controlPlane) set(version string, res map[resource.Type][]types.Resource) {
	cp.t.Helper()
	snap, err := cachev3.NewSnapshot(version, res)
	if err != nil {
		cp.t.Fatal(err)
	}
	if err := cp.cache.SetSnapshot(context.Background(), "gw", snap); err != nil {
		cp.t.Fatal(err)
	}
}

func (cp *controlPlane) ackedVersion(typeURL string) string {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.acks[typeURL]
}

func (cp *controlPlane) nackCount() int {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return len(cp.nacks)
}

// xdsGateway is a data plane fed by an ADS client.
type xdsGateway struct {
	srv    *server.Server
	client *xds.Client
	cancel context.CancelFunc
	done   chan struct{}
}

// listenerOn waits for the listener istiod names after port
// (0.0.0.0_<port>) to serve, and returns its address; a listener the
// gateway refused fails the test.
func (g *xdsGateway) listenerOn(t *testing.T, port string) string {
	t.Helper()
	var addr string
	waitFor(t, "the gateway's listener", func() bool {
		addr = g.srv.ListenerAddr("0.0.0.0_" + port)
		return addr != ""
	})
	if f := g.client.Failures()[config.ListenerType]; len(f) != 0 {
		t.Fatalf("listener rejected: %v", f)
	}
	return addr
}

func startXDSGateway(t *testing.T, cpAddr string, delta bool) *xdsGateway {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv := server.New(server.Options{Logger: log, DrainTimeout: 2 * time.Second})
	store := config.NewStore(srv)
	client := xds.New(store, xds.Options{
		Address: cpAddr, Node: &corev3.Node{Id: "gw", Cluster: "meshgate"},
		InitialFetchTimeout: 2 * time.Second, BackoffBase: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		Logger: log, Registerer: srv.Metrics().Registry, Delta: delta,
	})
	ctx, cancel := context.WithCancel(context.Background())
	g := &xdsGateway{srv: srv, client: client, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(g.done)
		_ = client.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-g.done
		_ = srv.Shutdown(context.Background())
	})
	return g
}

func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err)
	}
	return a
}

// Envoy resources for one listener -> one route config -> EDS clusters.
func xdsListener(routeName string) *listenerv3.Listener {
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: "main",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: routeName,
			ConfigSource:    &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}},
		}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: config.RouterFilter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})}}},
	}
	return &listenerv3.Listener{
		Name: "main",
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 0},
		}}},
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name: config.HTTPConnectionManagerFilter, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)},
		}}}},
	}
}

func xdsRoute(name string, prefixToCluster ...string) *routev3.RouteConfiguration {
	vh := &routev3.VirtualHost{Name: "all", Domains: []string{"*"}}
	for i := 0; i+1 < len(prefixToCluster); i += 2 {
		vh.Routes = append(vh.Routes, &routev3.Route{
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: prefixToCluster[i]}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: prefixToCluster[i+1]}}},
		})
	}
	return &routev3.RouteConfiguration{Name: name, VirtualHosts: []*routev3.VirtualHost{vh}}
}

func xdsCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ConnectTimeout:       durationpb.New(time.Second),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{
			EdsConfig: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}},
		},
	}
}

func xdsEndpoints(name string, addrs ...string) *endpointv3.ClusterLoadAssignment {
	lle := &endpointv3.LocalityLbEndpoints{}
	for _, a := range addrs {
		host, port, _ := net.SplitHostPort(a)
		p, _ := strconv.Atoi(port)
		lle.LbEndpoints = append(lle.LbEndpoints, &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{
			Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)},
			}}}},
		}})
	}
	return &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{lle}}
}

// snapshot of one HTTP service "svc" behind /echo on the given backends.
func echoSnapshot(backends ...*demo.Backend) map[resource.Type][]types.Resource {
	var addrs []string
	for _, b := range backends {
		addrs = append(addrs, b.HTTPAddr)
	}
	return map[resource.Type][]types.Resource{
		resource.ListenerType: {xdsListener("routes")},
		resource.RouteType:    {xdsRoute("routes", "/echo", "svc")},
		resource.ClusterType:  {xdsCluster("svc")},
		resource.EndpointType: {xdsEndpoints("svc", addrs...)},
	}
}

// waitServing waits until the xDS listener is bound and /echo answers from
// want (a backend name), returning the listener's address.
func waitServing(t *testing.T, g *xdsGateway, hc *http.Client, want string) string {
	t.Helper()
	var addr, last string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if addr == "" {
			addr = g.srv.ListenerAddr("main")
		}
		if addr != "" {
			if e, err := getEcho(hc, "http://"+addr+"/echo"); err == nil {
				last = e.Server
				if e.Server == want {
					return addr
				}
			} else {
				last = err.Error()
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the xDS config did not serve %q within 10s (last: %q)", want, last)
	return ""
}

func getEcho(hc *http.Client, url string) (echoed, error) {
	resp, err := hc.Get(url)
	if err != nil {
		return echoed{}, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return echoed{}, errors.New(resp.Status + ": " + string(body))
	}
	var e echoed
	err = json.Unmarshal(body, &e)
	return e, err
}

// The basic path: the gateway takes everything from the control plane,
// ACKs it, and follows an endpoint move.
func TestXDS_ServesAndFollowsUpdates(t *testing.T) { forBothProtocols(t, testServesAndFollowsUpdates) }

func testServesAndFollowsUpdates(t *testing.T, delta bool) {
	b1, b2 := startBackend(t, "b1"), startBackend(t, "b2")
	cp := startControlPlane(t, "", nil)
	cp.set("1", echoSnapshot(b1))
	g := startXDSGateway(t, cp.addr, delta)
	hc := httpClient(t)
	addr := waitServing(t, g, hc, "b1")
	for _, typ := range []string{resource.ListenerType, resource.RouteType, resource.ClusterType, resource.EndpointType} {
		waitFor(t, "ACK of "+typ, func() bool { return cp.ackedVersion(typ) == "1" })
	}
	cp.set("2", echoSnapshot(b2))
	waitServing(t, g, hc, "b2")
	if got := g.srv.ListenerAddr("main"); got != addr {
		t.Errorf("the listener moved from %s to %s on an endpoint update", addr, got)
	}
	// State of the world versions a type per response; delta versions each
	// resource (go-control-plane uses a hash of its content).
	r := g.srv.Config().Get(config.EndpointType, "svc")
	if r == nil || r.Source != xds.SourceName || (!delta && r.Version != "2") || (delta && r.Version == "") {
		t.Errorf("store holds endpoints %+v, want them from xds with the update's version", r)
	}
}

// A resource that fails validation is NACKed with a reason, and traffic
// keeps flowing on the last good config.
func TestXDS_NackKeepsLastGood(t *testing.T) { forBothProtocols(t, testNackKeepsLastGood) }

func testNackKeepsLastGood(t *testing.T, delta bool) {
	b1 := startBackend(t, "b1")
	cp := startControlPlane(t, "", nil)
	cp.set("1", echoSnapshot(b1))
	g := startXDSGateway(t, cp.addr, delta)
	hc := httpClient(t)
	addr := waitServing(t, g, hc, "b1")

	bad := echoSnapshot(b1)
	rc := xdsRoute("routes", "/echo", "svc")
	rc.VirtualHosts[0].Routes[0].Match = &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: nil}}
	rc.VirtualHosts[0].Routes = append(rc.VirtualHosts[0].Routes, &routev3.Route{
		Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/x"}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "svc"}, RetryPolicy: &routev3.RetryPolicy{RetryOn: "whenever"}}},
	})
	bad[resource.RouteType] = []types.Resource{rc}
	cp.set("2", bad)
	waitFor(t, "a NACK", func() bool { return cp.nackCount() > 0 })
	cp.mu.Lock()
	detail := cp.nacks[0]
	cp.mu.Unlock()
	if !strings.Contains(detail, "routes") {
		t.Errorf("NACK detail %q does not name the route config", detail)
	}
	if v := cp.ackedVersion(resource.RouteType); v != "1" && !delta {
		t.Errorf("acked RDS version %q after a NACK, want 1 kept", v)
	}
	for range 20 {
		if e, err := getEcho(hc, "http://"+addr+"/echo"); err != nil || e.Server != "b1" {
			t.Fatalf("after the NACK: %v, %v; want the old config serving", e.Server, err)
		}
	}
	f := g.client.Failures()[config.RouteType]["routes"]
	accepted := g.srv.Config().Get(config.RouteType, "routes").Version
	if f.Details == "" || f.Version == accepted || (!delta && f.Version != "2") {
		t.Errorf("recorded failure %+v (accepted version %q), want the rejected version with details", f, accepted)
	}
	// /config_dump shows the last NACK on the resource, as Envoy's error_state.
	rec := httptest.NewRecorder()
	admin.Handler(g.srv, g.srv.Metrics().Registry, admin.WithFailures(g.client.Failures)).
		ServeHTTP(rec, httptest.NewRequest("GET", "/config_dump", nil))
	var dump adminv3.ConfigDump
	if err := protojson.Unmarshal(rec.Body.Bytes(), &dump); err != nil {
		t.Fatal(err)
	}
	var routes adminv3.RoutesConfigDump
	if err := dump.GetConfigs()[2].UnmarshalTo(&routes); err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, r := range routes.GetDynamicRouteConfigs() {
		if es := r.GetErrorState(); es != nil {
			found = es.GetVersionInfo() == f.Version && r.GetVersionInfo() == accepted && r.GetClientStatus() == adminv3.ClientResourceStatus_NACKED
		}
	}
	if !found {
		t.Errorf("/config_dump routes lack the NACK: %v", routes.GetDynamicRouteConfigs())
	}
	// A good version after the bad one is accepted.
	cp.set("3", echoSnapshot(b1))
	waitFor(t, "ACK of version 3", func() bool { return cp.ackedVersion(resource.RouteType) == "3" })
}

// The control plane dies: the gateway keeps serving; it comes back (a new
// server, empty cache) with a new config: the gateway reconnects and
// resyncs.
func TestXDS_ControlPlaneRestart(t *testing.T) { forBothProtocols(t, testControlPlaneRestart) }

func testControlPlaneRestart(t *testing.T, delta bool) {
	b1, b2 := startBackend(t, "b1"), startBackend(t, "b2")
	cp := startControlPlane(t, "", nil)
	cp.set("1", echoSnapshot(b1))
	g := startXDSGateway(t, cp.addr, delta)
	hc := httpClient(t)
	addr := waitServing(t, g, hc, "b1")

	cp.stop()
	waitFor(t, "the client to notice", func() bool { return !g.client.Connected() })
	for range 20 {
		if e, err := getEcho(hc, "http://"+addr+"/echo"); err != nil || e.Server != "b1" {
			t.Fatalf("while the control plane is down: %v, %v", e.Server, err)
		}
	}
	cp2 := startControlPlane(t, cp.addr, nil)
	cp2.set("7", echoSnapshot(b2))
	waitServing(t, g, hc, "b2")
	waitFor(t, "reconnected", g.client.Connected)
}

// A cluster the control plane removes takes its endpoints with it: routes
// still naming it answer 503.
func TestXDS_RemovedClusterAnswers503(t *testing.T) {
	forBothProtocols(t, testRemovedClusterAnswers503)
}

func testRemovedClusterAnswers503(t *testing.T, delta bool) {
	b1 := startBackend(t, "b1")
	cp := startControlPlane(t, "", nil)
	cp.set("1", echoSnapshot(b1))
	g := startXDSGateway(t, cp.addr, delta)
	hc := httpClient(t)
	addr := waitServing(t, g, hc, "b1")
	snap := echoSnapshot(b1)
	delete(snap, resource.ClusterType)
	delete(snap, resource.EndpointType)
	cp.set("2", snap)
	waitFor(t, "the cluster to go", func() bool { return g.srv.Config().Cluster("svc") == nil })
	resp, err := hc.Get("http://" + addr + "/echo")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(body), `cluster \"svc\" is not configured`) {
		t.Errorf("route to a removed cluster: %d %s, want 503 naming it", resp.StatusCode, body)
	}
	if g.srv.Config().Endpoints("svc") != nil {
		t.Error("the removed cluster's endpoints are still stored")
	}
}

// A new gateway serves nothing until its first complete config: a listener
// waits for its route configuration (warming).
func TestXDS_WarmingWaitsForRoutes(t *testing.T) { forBothProtocols(t, testWarmingWaitsForRoutes) }

func testWarmingWaitsForRoutes(t *testing.T, delta bool) {
	b1 := startBackend(t, "b1")
	cp := startControlPlane(t, "", nil)
	partial := echoSnapshot(b1)
	delete(partial, resource.RouteType) // the listener's RDS has not arrived
	cp.set("1", partial)
	g := startXDSGateway(t, cp.addr, delta)
	waitFor(t, "the LDS ACK", func() bool { return cp.ackedVersion(resource.ListenerType) == "1" })
	time.Sleep(300 * time.Millisecond) // shorter than the 2s initial fetch timeout
	if a := g.srv.ListenerAddr("main"); a != "" {
		t.Fatalf("the listener went live on %s before its routes arrived", a)
	}
	cp.set("2", echoSnapshot(b1))
	waitServing(t, g, httpClient(t), "b1")
}

// A file and a control plane together: the file's listener routes to a
// cluster only the control plane defines.
func TestXDS_FileAndControlPlaneCombined(t *testing.T) {
	b1 := startBackend(t, "b1")
	cp := startControlPlane(t, "", nil)
	cp.set("1", map[resource.Type][]types.Resource{
		resource.ClusterType:  {xdsCluster("svc")},
		resource.EndpointType: {xdsEndpoints("svc", b1.HTTPAddr)},
	})
	g := startGateway(t, render(t, `
xds: { address: "{{.}}", node: { id: gw } }
listeners:
  - name: static
    address: 127.0.0.1:0
    virtual_hosts: [ { routes: [ { match: { prefix: /echo }, cluster: svc } ] } ]
`, cp.addr))
	l, err := config.LoadFile(g.path)
	if err != nil {
		t.Fatal(err)
	}
	client := xds.New(g.store, xds.Options{Address: l.Bootstrap.XDS.Address, Node: l.Bootstrap.XDS.Node,
		BackoffBase: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = client.Run(ctx) }()
	defer func() { cancel(); <-done }()

	hc := httpClient(t)
	waitFor(t, "the file's route to reach the xDS cluster", func() bool {
		e, err := getEcho(hc, "http://"+g.addr("static")+"/echo")
		return err == nil && e.Server == "b1"
	})
	if r := g.srv.Config().Get(config.ClusterType, "svc"); r == nil || r.Source != xds.SourceName {
		t.Errorf("cluster svc = %+v, want it from xds", r)
	}
	if r := g.srv.Config().Get(config.ListenerType, "static"); r == nil || r.Source != filesource.Name {
		t.Errorf("listener static = %+v, want it from the file", r)
	}
}

// forBothProtocols runs an xDS test over state-of-the-world and delta ADS.
func forBothProtocols(t *testing.T, test func(t *testing.T, delta bool)) {
	t.Run("sotw", func(t *testing.T) { test(t, false) })
	t.Run("delta", func(t *testing.T) { test(t, true) })
}
