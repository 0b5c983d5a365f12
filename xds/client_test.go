package xds_test

import (
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/xds"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// driver pushes config to one client over either protocol: push gives the
// whole state of a type (LDS, CDS) or the named resources (RDS, EDS); for
// delta it works out what was removed.
type driver struct {
	t      *testing.T
	fs     *fakeStream
	delta  bool
	client *xds.Client
	store  *config.Store
	sent   map[string]map[string]bool // type -> names last pushed
}

// answer is the client's reply to one push.
type answer struct {
	nack    string // error detail; "" for an ACK
	version string // state of the world: the version the reply carries
}

func newDriver(t *testing.T, delta bool, fetchTimeout time.Duration) *driver {
	f := startFakeADS(t)
	c, store := startClient(t, f, delta, fetchTimeout)
	d := &driver{t: t, fs: f.stream(t), delta: delta, client: c, store: store, sent: map[string]map[string]bool{}}
	// The client subscribes to clusters and listeners first.
	for _, typ := range []string{config.ClusterType, config.ListenerType} {
		d.fs.next(t, typ)
	}
	return d
}

func (d *driver) push(typeURL, version string, res ...proto.Message) answer {
	d.t.Helper()
	names := map[string]bool{}
	for _, m := range res {
		n, err := config.ResourceName(m)
		if err != nil {
			d.t.Fatal(err)
		}
		names[n] = true
	}
	defer func() { d.sent[typeURL] = names }()
	if !d.delta {
		r := d.fs.sendSotW(d.t, typeURL, version, res...)
		return answer{nack: r.GetErrorDetail().GetMessage(), version: r.GetVersionInfo()}
	}
	var removed []string
	if typeURL == config.ClusterType || typeURL == config.ListenerType {
		for n := range d.sent[typeURL] {
			if !names[n] {
				removed = append(removed, n)
			}
		}
		sort.Strings(removed)
	}
	r := d.fs.sendDelta(d.t, typeURL, version, removed, res...)
	return answer{nack: r.GetErrorDetail().GetMessage()}
}

// names lists the store's resources of a type with their versions.
func (d *driver) names(typeURL string) map[string]string {
	out := map[string]string{}
	for _, r := range d.store.Current().All(typeURL) {
		out[r.Name] = r.Version
	}
	return out
}

func (d *driver) wantStore(typeURL string, want map[string]string) {
	d.t.Helper()
	if got := d.names(typeURL); !mapsEqual(got, want) {
		d.t.Fatalf("store %s = %v, want %v", kindName(typeURL), got, want)
	}
}

func (d *driver) waitStore(typeURL string, want map[string]string) {
	d.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !mapsEqual(d.names(typeURL), want) {
		if time.Now().After(deadline) {
			d.t.Fatalf("store %s = %v after 5s, want %v", kindName(typeURL), d.names(typeURL), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func kindName(typeURL string) string { return typeURL[strings.LastIndex(typeURL, ".")+1:] }

// wantNack checks that a reply is a NACK naming exactly the given
// resources (as `<kind> "<name>"`) and no other of names.
func wantNack(t *testing.T, a answer, kind string, rejected []string, others ...string) {
	t.Helper()
	if a.nack == "" {
		t.Fatalf("got an ACK, want a NACK naming %s %v", kind, rejected)
	}
	for _, n := range rejected {
		if !strings.Contains(a.nack, kind+` "`+n+`"`) {
			t.Errorf("NACK %q does not name %s %q", a.nack, kind, n)
		}
	}
	for _, n := range others {
		if strings.Contains(a.nack, `"`+n+`"`) {
			t.Errorf("NACK %q names %q, which was accepted", a.nack, n)
		}
	}
}

func wantAck(t *testing.T, a answer) {
	t.Helper()
	if a.nack != "" {
		t.Fatalf("got a NACK %q, want an ACK", a.nack)
	}
}

func forBoth(t *testing.T, test func(t *testing.T, delta bool)) {
	t.Run("sotw", func(t *testing.T) { test(t, false) })
	t.Run("delta", func(t *testing.T) { test(t, true) })
}

// One bad cluster is NACKed by name; the others go live on a fresh client
// and on a running one; the rejected one keeps its previous version; a fix
// is ACKed and clears the failure; removing a rejected resource clears it.
func TestClient_PartialCDS(t *testing.T) { forBoth(t, testPartialCDS) }

func testPartialCDS(t *testing.T, delta bool) {
	d := newDriver(t, delta, 5*time.Second)

	a := d.push(config.ClusterType, "1", cluster("a"), cluster("b", badCluster), cluster("c"))
	wantNack(t, a, "cluster", []string{"b"}, "a", "c")
	if !delta && a.version != "" {
		t.Errorf("NACK carries version %q, want the last accepted one (none)", a.version)
	}
	if d.client.Synced() {
		t.Fatal("synced before any listener response")
	}
	wantAck(t, d.push(config.ListenerType, "1"))
	if !d.client.Applied() || !d.client.Synced() {
		t.Fatalf("Applied %v, Synced %v after CDS and LDS; want both", d.client.Applied(), d.client.Synced())
	}
	d.wantStore(config.ClusterType, map[string]string{"a": "1", "c": "1"})
	if f, ok := d.client.Failures()[config.ClusterType]["b"]; !ok || !strings.Contains(f.Details, "cannot build it") || f.Resource == nil {
		t.Errorf("failure of b = %+v, want its reason and the resource as sent", f)
	}

	// The fix is ACKed and clears the failure.
	a = d.push(config.ClusterType, "2", cluster("a"), cluster("b"), cluster("c"))
	wantAck(t, a)
	if !delta && a.version != "2" {
		t.Errorf("ACK version %q, want 2", a.version)
	}
	d.wantStore(config.ClusterType, map[string]string{"a": "1", "b": "2", "c": "1"})
	if f, ok := d.client.Failures()[config.ClusterType]["b"]; ok {
		t.Errorf("failure of b kept after the fix: %+v", f)
	}

	// On a running gateway: b breaks while c changes; c's change goes
	// live, b keeps version 2.
	changedC := cluster("c", func(c *clusterv3.Cluster) { c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST })
	a = d.push(config.ClusterType, "3", cluster("a"), cluster("b", badCluster), changedC, cluster("new", badCluster))
	wantNack(t, a, "cluster", []string{"b", "new"}, "a", "c")
	if !delta && a.version != "2" {
		t.Errorf("NACK carries version %q, want the last accepted 2", a.version)
	}
	// An unchanged resource keeps the version it went live with, as in
	// Envoy's config dump.
	d.wantStore(config.ClusterType, map[string]string{"a": "1", "b": "2", "c": "3"})
	if f := d.client.Failures()[config.ClusterType]["b"]; f.Version != "3" {
		t.Errorf("failure of b has version %q, want 3 (the rejected one)", f.Version)
	}

	// Removing the rejected resources (one with a live version, one new)
	// clears their failures.
	wantAck(t, d.push(config.ClusterType, "4", cluster("a"), changedC))
	d.wantStore(config.ClusterType, map[string]string{"a": "1", "c": "3"})
	if fs := d.client.Failures()[config.ClusterType]; len(fs) != 0 {
		t.Errorf("failures after b was removed: %v", fs)
	}
}

// A listener that cannot be served does not keep another one from going
// live, on a fresh client (no listener served yet) and when it breaks a
// running listener's update.
func TestClient_PartialLDS(t *testing.T) { forBoth(t, testPartialLDS) }

func testPartialLDS(t *testing.T, delta bool) {
	d := newDriver(t, delta, 5*time.Second)
	wantAck(t, d.push(config.ClusterType, "1", cluster("a")))
	a := d.push(config.ListenerType, "1", listener("https", 443, "r443", badListener), listener("http", 80, "r80"))
	wantNack(t, a, "listener", []string{"https"}, "http")
	// Only the good listener's routes are asked for.
	rds := d.fs.next(t, config.RouteType)
	if got := subscribed(rds); !slices.Equal(got, []string{"r80"}) {
		t.Fatalf("RDS subscription %v, want [r80]", got)
	}
	if d.client.Synced() || len(d.names(config.ListenerType)) != 0 {
		t.Fatalf("synced (%v) or serving %v before the listener's routes arrived", d.client.Synced(), d.names(config.ListenerType))
	}
	wantAck(t, d.push(config.RouteType, "1", routes("r80", false)))
	if !d.client.Synced() {
		t.Fatal("not synced once the listener has its routes")
	}
	d.wantStore(config.ListenerType, map[string]string{"http": "1"})
	d.wantStore(config.RouteType, map[string]string{"r80": "1"})

	// Two listeners on one port: the newcomer is refused, the one serving
	// the port keeps it.
	a = d.push(config.ListenerType, "2", listener("http", 80, "r80"), listener("also-80", 80, "r80"))
	wantNack(t, a, "listener", []string{"also-80"})
	d.wantStore(config.ListenerType, map[string]string{"http": "1"})
}

// A route configuration that does not compile is NACKed alone; a running
// listener keeps its last good routes; a new listener whose routes are
// rejected waits for them until the initial fetch timeout, then serves
// without them; their fix makes them live.
func TestClient_RejectedRoutes(t *testing.T) { forBoth(t, testRejectedRoutes) }

func testRejectedRoutes(t *testing.T, delta bool) {
	d := newDriver(t, delta, 300*time.Millisecond)
	wantAck(t, d.push(config.ClusterType, "1"))
	wantAck(t, d.push(config.ListenerType, "1", listener("l1", 80, "r1")))
	d.fs.next(t, config.RouteType)
	wantAck(t, d.push(config.RouteType, "1", routes("r1", false)))
	d.wantStore(config.RouteType, map[string]string{"r1": "1"})

	wantNack(t, d.push(config.RouteType, "2", routes("r1", true)), "route config", []string{"r1"})
	d.wantStore(config.RouteType, map[string]string{"r1": "1"})

	// A new listener whose routes are rejected on arrival.
	wantAck(t, d.push(config.ListenerType, "2", listener("l1", 80, "r1"), listener("l2", 81, "r2")))
	d.fs.next(t, config.RouteType)
	wantNack(t, d.push(config.RouteType, "3", routes("r2", true)), "route config", []string{"r2"})
	d.wantStore(config.ListenerType, map[string]string{"l1": "1"}) // l1 unchanged: label kept
	// It waits out the initial fetch timeout, then serves without routes.
	d.waitStore(config.ListenerType, map[string]string{"l1": "1", "l2": "2"})
	d.wantStore(config.RouteType, map[string]string{"r1": "1"})
	wantAck(t, d.push(config.RouteType, "4", routes("r2", false)))
	d.wantStore(config.RouteType, map[string]string{"r1": "1", "r2": "4"})
	if fs := d.client.Failures()[config.RouteType]; len(fs) != 1 || fs["r1"].Version == "" {
		t.Errorf("route failures %v, want r1's alone", fs)
	}
}

// A listener's new version that names routes not yet received waits for
// them; its live version keeps serving meanwhile.
func TestClient_NewListenerVersionWarms(t *testing.T) { forBoth(t, testNewListenerVersionWarms) }

func testNewListenerVersionWarms(t *testing.T, delta bool) {
	d := newDriver(t, delta, 5*time.Second)
	wantAck(t, d.push(config.ClusterType, "1"))
	wantAck(t, d.push(config.ListenerType, "1", listener("l", 80, "r1")))
	d.fs.next(t, config.RouteType)
	wantAck(t, d.push(config.RouteType, "1", routes("r1", false)))
	d.wantStore(config.ListenerType, map[string]string{"l": "1"})

	wantAck(t, d.push(config.ListenerType, "2", listener("l", 80, "r2")))
	d.wantStore(config.ListenerType, map[string]string{"l": "1"})
	d.wantStore(config.RouteType, map[string]string{"r1": "1"})
	d.fs.next(t, config.RouteType)
	wantAck(t, d.push(config.RouteType, "2", routes("r2", false)))
	d.wantStore(config.ListenerType, map[string]string{"l": "2"})
	d.wantStore(config.RouteType, map[string]string{"r2": "2"})
}

// Endpoints that fail validation are NACKed by cluster name; the last good
// ones stay.
func TestClient_RejectedEndpoints(t *testing.T) { forBoth(t, testRejectedEndpoints) }

func testRejectedEndpoints(t *testing.T, delta bool) {
	d := newDriver(t, delta, 5*time.Second)
	wantAck(t, d.push(config.ClusterType, "1", cluster("e", edsCluster), cluster("f", edsCluster)))
	d.fs.next(t, config.EndpointType)
	wantAck(t, d.push(config.ListenerType, "1"))
	wantAck(t, d.push(config.EndpointType, "1", endpoints("e", 1), endpoints("f", 1)))
	d.wantStore(config.EndpointType, map[string]string{"e": "1", "f": "1"})
	a := d.push(config.EndpointType, "2", endpoints("e", 0), endpoints("f", 2))
	wantNack(t, a, "endpoints", []string{"e"}, "f")
	d.wantStore(config.EndpointType, map[string]string{"e": "1", "f": "2"})
}

// A resource that cannot even be decoded has no name: a state-of-the-world
// response holding one removes nothing.
func TestClient_UndecodableRemovesNothing(t *testing.T) {
	d := newDriver(t, false, 5*time.Second)
	wantAck(t, d.push(config.ClusterType, "1", cluster("a"), cluster("b")))
	wantAck(t, d.push(config.ListenerType, "1"))
	d.fs.nonce++
	resp := &discoveryv3.DiscoveryResponse{TypeUrl: config.ClusterType, VersionInfo: "2", Nonce: "x", Resources: []*anypb.Any{
		mustAny(t, cluster("a")), {TypeUrl: config.ClusterType, Value: []byte{0xff, 0xff}},
	}}
	if err := d.fs.sotw.Send(resp); err != nil {
		t.Fatal(err)
	}
	r := d.fs.next(t, config.ClusterType).(*discoveryv3.DiscoveryRequest)
	if r.GetErrorDetail() == nil || r.GetResponseNonce() != "x" || r.GetVersionInfo() != "1" {
		t.Fatalf("reply %v, want a NACK of nonce x with version 1", r)
	}
	d.wantStore(config.ClusterType, map[string]string{"a": "1", "b": "1"})
}

func subscribed(m proto.Message) []string {
	switch r := m.(type) {
	case *discoveryv3.DiscoveryRequest:
		return r.GetResourceNames()
	case *discoveryv3.DeltaDiscoveryRequest:
		return r.GetResourceNamesSubscribe()
	}
	return nil
}

// A cluster whose TLS certificate comes over ADS (an Istio credentialName
// secret) warms until the secret arrives, and the client asks for it by
// name; one whose secrets come from the gateway's own identity (Istio's
// sds-grpc) neither waits nor asks. A new secret version replaces the old.
func TestClient_SecretsWarm(t *testing.T) { forBoth(t, testSecretsWarm) }

func testSecretsWarm(t *testing.T, delta bool) {
	d := newDriver(t, delta, 5*time.Second)
	ads := &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}
	agent := &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_ApiConfigSource{ApiConfigSource: &corev3.ApiConfigSource{
		ApiType: corev3.ApiConfigSource_GRPC, GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
			EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "sds-grpc"}}}}}}}
	withTLS := func(name string, source *corev3.ConfigSource) func(*clusterv3.Cluster) {
		return func(c *clusterv3.Cluster) {
			c.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{
				TypedConfig: mustAny(t, &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
					TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: name, SdsConfig: source}}}})}}
		}
	}
	// The first config goes live whole, once its secrets are in.
	wantAck(t, d.push(config.ClusterType, "1", cluster("mesh", withTLS("default", agent)), cluster("gw", withTLS("kubernetes://gw", ads))))
	req := d.fs.next(t, config.SecretType)
	if got := subscribed(req); !slices.Equal(got, []string{"kubernetes://gw"}) {
		t.Fatalf("secrets asked for = %v, want [kubernetes://gw]", got)
	}
	d.wantStore(config.ClusterType, map[string]string{})
	wantAck(t, d.push(config.SecretType, "1", secret("kubernetes://gw", "one")))
	d.waitStore(config.ClusterType, map[string]string{"mesh": "1", "gw": "1"})
	d.wantStore(config.SecretType, map[string]string{"kubernetes://gw": "1"})

	// A cluster added later warms alone until its secret comes.
	wantAck(t, d.push(config.ClusterType, "2", cluster("mesh", withTLS("default", agent)), cluster("gw", withTLS("kubernetes://gw", ads)),
		cluster("gw2", withTLS("kubernetes://gw2", ads))))
	req = d.fs.next(t, config.SecretType)
	if got := subscribed(req); !slices.Contains(got, "kubernetes://gw2") {
		t.Fatalf("secrets asked for = %v, want kubernetes://gw2 among them", got)
	}
	// (The store keeps the version of a resource whose content is the same.)
	d.wantStore(config.ClusterType, map[string]string{"mesh": "1", "gw": "1"})
	wantAck(t, d.push(config.SecretType, "2", secret("kubernetes://gw", "two"), secret("kubernetes://gw2", "one")))
	d.waitStore(config.ClusterType, map[string]string{"mesh": "1", "gw": "1", "gw2": "2"})
	d.waitStore(config.SecretType, map[string]string{"kubernetes://gw": "2", "kubernetes://gw2": "2"})
}

func secret(name, body string) *tlsv3.Secret {
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: body}}}}}
}
