package cluster

import (
	"reflect"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	"sigs.k8s.io/yaml"

	"github.com/meshgate/meshgate/governance"
)

func parse[T interface {
	*clusterv3.Cluster | *endpointv3.ClusterLoadAssignment
}](t *testing.T, y string, m T) T {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	var err2 error
	switch v := any(m).(type) {
	case *clusterv3.Cluster:
		err2 = protojson.Unmarshal(js, v)
	case *endpointv3.ClusterLoadAssignment:
		err2 = protojson.Unmarshal(js, v)
	}
	if err2 != nil {
		t.Fatal(err2)
	}
	return m
}

func newCluster(t *testing.T, y string) *Cluster {
	t.Helper()
	c, err := New(parse(t, y, &clusterv3.Cluster{}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func ep(addr string, port uint32, weight uint32, health corev3.HealthStatus) *endpointv3.LbEndpoint {
	e := &endpointv3.LbEndpoint{
		HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{
			Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: addr, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}},
		}}},
		HealthStatus: health,
	}
	if weight > 0 {
		e.LoadBalancingWeight = nil
	}
	return e
}

func pickCounts(t *testing.T, c *Cluster, n int) map[string]int {
	t.Helper()
	out := map[string]int{}
	for range n {
		h, err := c.Pick(governance.PickInfo{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		out[h.Address]++
	}
	return out
}

// EDS health and priorities decide where traffic goes; hosts keep their
// counters across updates.
func TestCluster_SetEndpoints(t *testing.T) {
	c := newCluster(t, `{name: c, type: EDS, lb_policy: ROUND_ROBIN}`)
	if _, err := c.Pick(governance.PickInfo{}, nil); err == nil {
		t.Fatal("an empty cluster picked a host")
	}
	c.SetEndpoints(&endpointv3.ClusterLoadAssignment{ClusterName: "c", Endpoints: []*endpointv3.LocalityLbEndpoints{
		{LbEndpoints: []*endpointv3.LbEndpoint{ep("10.0.0.1", 80, 0, corev3.HealthStatus_HEALTHY), ep("10.0.0.2", 80, 0, corev3.HealthStatus_UNHEALTHY)}},
		{Priority: 1, LbEndpoints: []*endpointv3.LbEndpoint{ep("10.0.1.1", 80, 0, corev3.HealthStatus_UNKNOWN)}},
	}})
	got := pickCounts(t, c, 1000)
	// P0 health 1/2*1.4 = 70%: 700 to 10.0.0.1, 300 to priority 1.
	if got["10.0.0.1:80"] < 650 || got["10.0.0.1:80"] > 750 || got["10.0.1.1:80"] < 250 || got["10.0.0.2:80"] != 0 {
		t.Errorf("picks = %v, want ~700 on 10.0.0.1, ~300 on 10.0.1.1, none on the unhealthy host", got)
	}
	first := c.Hosts()[0]
	first.RqTotal.Add(7)
	c.SetEndpoints(&endpointv3.ClusterLoadAssignment{ClusterName: "c", Endpoints: []*endpointv3.LocalityLbEndpoints{
		{LbEndpoints: []*endpointv3.LbEndpoint{ep("10.0.0.1", 80, 0, corev3.HealthStatus_HEALTHY)}},
	}})
	if hs := c.Hosts(); len(hs) != 1 || hs[0] != first || hs[0].RqTotal.Load() != 7 {
		t.Errorf("after the update hosts = %v; want the same host object, counters kept", hs)
	}
	draining := &Host{}
	draining.spec.Store(&HostSpec{EDSHealth: corev3.HealthStatus_DRAINING})
	if flags := draining.HealthFlags(); flags != "/eds_health_draining" {
		t.Errorf("HealthFlags() = %q", flags)
	}
}

// A retry avoids the hosts already tried.
func TestCluster_PickAvoidsTried(t *testing.T) {
	c := newCluster(t, `{name: c, type: EDS, lb_policy: RANDOM}`)
	c.SetEndpoints(&endpointv3.ClusterLoadAssignment{Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{
		ep("10.0.0.1", 80, 0, 0), ep("10.0.0.2", 80, 0, 0), ep("10.0.0.3", 80, 0, 0),
	}}}})
	tried := c.Hosts()[:2]
	for range 200 {
		h, err := c.Pick(governance.PickInfo{}, tried)
		if err != nil || h.Address != "10.0.0.3:80" {
			t.Fatalf("Pick avoiding two of three hosts = %v, %v; want 10.0.0.3:80", h, err)
		}
	}
}

// A new host ramps up over the slow-start window.
func TestCluster_SlowStart(t *testing.T) {
	spec := parse(t, `{name: c, type: EDS, lb_policy: ROUND_ROBIN}`, &clusterv3.Cluster{})
	spec.LbConfig = &clusterv3.Cluster_RoundRobinLbConfig_{RoundRobinLbConfig: &clusterv3.Cluster_RoundRobinLbConfig{
		SlowStartConfig: &clusterv3.Cluster_SlowStartConfig{SlowStartWindow: durationpb.New(10 * time.Second)},
	}}
	c, err := New(spec, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	c.SetEndpoints(&endpointv3.ClusterLoadAssignment{Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{ep("10.0.0.1", 80, 0, 0)}}}})
	now = now.Add(time.Minute) // the first host is warm
	c.SetEndpoints(&endpointv3.ClusterLoadAssignment{Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{ep("10.0.0.1", 80, 0, 0), ep("10.0.0.2", 80, 0, 0)}}}})
	share := func() float64 { return float64(pickCounts(t, c, 1100)["10.0.0.2:80"]) / 1100 }
	// Just joined: 10% of a full weight, so 10/110 of picks.
	if s := share(); s < 0.07 || s > 0.12 {
		t.Errorf("new host share at t=0: %.3f, want about 0.09", s)
	}
	now = now.Add(5 * time.Second)
	c.rebuild()
	if s := share(); s < 0.30 || s > 0.37 {
		t.Errorf("new host share halfway through the window: %.3f, want about 0.33 (50 of 150)", s)
	}
	now = now.Add(10 * time.Second)
	c.rebuild()
	if s := share(); s < 0.47 || s > 0.53 {
		t.Errorf("new host share after the window: %.3f, want 0.5", s)
	}
}

// DNS clusters resolve their names (localhost here) and serve the
// addresses; ORIGINAL_DST clusters compile but refuse every pick.
func TestCluster_DNSAndOriginalDst(t *testing.T) {
	for _, typ := range []string{"STRICT_DNS", "LOGICAL_DNS"} {
		t.Run(typ, func(t *testing.T) {
			c := newCluster(t, `{name: c, type: `+typ+`, dns_lookup_family: V4_ONLY, dns_refresh_rate: 0.05s,
  load_assignment: {cluster_name: c, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: localhost, port_value: 8080}}}}]}]}}`)
			deadline := time.Now().Add(5 * time.Second)
			for len(c.Hosts()) == 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			hs := c.Hosts()
			if len(hs) != 1 || hs[0].Address != "127.0.0.1:8080" {
				t.Fatalf("hosts after resolving localhost = %v, want [127.0.0.1:8080]", hs)
			}
		})
	}
	c := newCluster(t, `{name: passthrough, type: ORIGINAL_DST, lb_policy: CLUSTER_PROVIDED}`)
	if _, err := c.Pick(governance.PickInfo{}, nil); err == nil || !strings.Contains(err.Error(), "ORIGINAL_DST") {
		t.Errorf("Pick on ORIGINAL_DST = %v, want an error saying it is not supported", err)
	}
}

// A registry's dubbo-protocol cluster (Dubbo2 providers) gets a Dubbo
// pool and the service its metadata names, signatures included; its tri
// twin stays an HTTP cluster.
func TestCluster_DubboProtocol(t *testing.T) {
	c := newCluster(t, `{name: c, type: STATIC, metadata: {filter_metadata: {meshgate.dubbo: {protocol: dubbo,
    interface: org.example.Greeter, version: 1.0.0, group: g1,
    signatures: [{name: add, parameter_types: [int, int]}, {name: add, parameter_types: [long, long, long]}, {name: ping, parameter_types: []}]}}},
  load_assignment: {cluster_name: c, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 20880}}}}]}]}}`)
	if c.Protocol != Dubbo || c.Dubbo == nil {
		t.Fatalf("protocol %v, pool %v: want dubbo with a pool", c.Protocol, c.Dubbo)
	}
	want := DubboService{Interface: "org.example.Greeter", Version: "1.0.0", Group: "g1",
		Signatures: map[string][][]string{"add": {{"int", "int"}, {"long", "long", "long"}}, "ping": {{}}}}
	if !reflect.DeepEqual(c.DubboService, want) {
		t.Errorf("service %+v, want %+v", c.DubboService, want)
	}
	if _, err := c.Pick(governance.PickInfo{}, nil); err != nil {
		t.Errorf("Pick on a dubbo cluster: %v", err)
	}
	tri := newCluster(t, `{name: c, type: STATIC, metadata: {filter_metadata: {meshgate.dubbo: {protocol: tri}}},
  load_assignment: {cluster_name: c, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 50051}}}}]}]}}`)
	if tri.Protocol == Dubbo || tri.Dubbo != nil {
		t.Errorf("the tri cluster is %v with pool %v, want HTTP without one", tri.Protocol, tri.Dubbo)
	}
}
