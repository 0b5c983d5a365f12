package stats

import (
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/meshgate/meshgate/server/cluster"
)

func TestDestination(t *testing.T) {
	tests := []struct{ cluster, service, name, namespace string }{
		{"outbound|8080||reviews.default.svc.cluster.local", "reviews.default.svc.cluster.local", "reviews", "default"},
		{"outbound|9080|v2|ratings.bookinfo.svc.cluster.local", "ratings.bookinfo.svc.cluster.local", "ratings", "bookinfo"},
		{"outbound|443||api.example.com", "api.example.com", "api.example.com", ""},
		{"grpc", "grpc", "grpc", ""},
	}
	for _, tc := range tests {
		s, n, ns := destination(tc.cluster)
		if s != tc.service || n != tc.name || ns != tc.namespace {
			t.Errorf("destination(%q) = %q %q %q, want %q %q %q", tc.cluster, s, n, ns, tc.service, tc.name, tc.namespace)
		}
	}
}

// Each request counts in istio_requests_total under Istio's standard
// labels, and observes its duration and sizes.
func TestIstio_Record(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewIstio(reg, Workload{Name: "ingress", Namespace: "istio-system"})
	for range 3 {
		m.Record("outbound|8080||reviews.default.svc.cluster.local", nil, true, 200, 14, []string{"UF"}, 1500*time.Microsecond, 10, 20)
	}
	m.Record("http", nil, false, 404, -1, nil, time.Millisecond, 0, 5)
	want := `
# HELP istio_requests_total Requests through the gateway, with Istio's standard labels.
# TYPE istio_requests_total counter
istio_requests_total{connection_security_policy="unknown",destination_app="unknown",destination_cluster="unknown",destination_principal="unknown",destination_service="http",destination_service_name="http",destination_service_namespace="unknown",destination_version="unknown",destination_workload="unknown",destination_workload_namespace="unknown",grpc_response_status="",reporter="source",request_protocol="http",response_code="404",response_flags="-",source_app="unknown",source_cluster="unknown",source_principal="unknown",source_version="unknown",source_workload="ingress",source_workload_namespace="istio-system"} 1
istio_requests_total{connection_security_policy="unknown",destination_app="unknown",destination_cluster="unknown",destination_principal="unknown",destination_service="reviews.default.svc.cluster.local",destination_service_name="reviews",destination_service_namespace="default",destination_version="unknown",destination_workload="unknown",destination_workload_namespace="unknown",grpc_response_status="14",reporter="source",request_protocol="grpc",response_code="200",response_flags="UF",source_app="unknown",source_cluster="unknown",source_principal="unknown",source_version="unknown",source_workload="ingress",source_workload_namespace="istio-system"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "istio_requests_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m.duration); n != 2 {
		t.Errorf("%d duration series, want 2", n)
	}
}

// A host whose EDS metadata names its workload (istiod's istio.workload)
// fills the destination_* labels.
func TestIstio_DestinationWorkload(t *testing.T) {
	md, err := structpb.NewStruct(map[string]any{"workload": "reviews-v2;bookinfo;reviews;v2;Kubernetes"})
	if err != nil {
		t.Fatal(err)
	}
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: "c", Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
		Metadata: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio": md}},
		HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{
			Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: "10.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 9080}}}}}},
	}}}}}
	c, err := cluster.New(&clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}, LoadAssignment: cla}, cluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	reg := prometheus.NewRegistry()
	m := NewIstio(reg, Workload{})
	m.Record("outbound|9080||reviews.bookinfo.svc.cluster.local", c.Hosts()[0], false, 200, -1, nil, time.Millisecond, 0, 0)
	want := `
# HELP istio_requests_total Requests through the gateway, with Istio's standard labels.
# TYPE istio_requests_total counter
istio_requests_total{connection_security_policy="unknown",destination_app="reviews",destination_cluster="Kubernetes",destination_principal="unknown",destination_service="reviews.bookinfo.svc.cluster.local",destination_service_name="reviews",destination_service_namespace="bookinfo",destination_version="v2",destination_workload="reviews-v2",destination_workload_namespace="bookinfo",grpc_response_status="",reporter="source",request_protocol="http",response_code="200",response_flags="-",source_app="unknown",source_cluster="unknown",source_principal="unknown",source_version="unknown",source_workload="unknown",source_workload_namespace="unknown"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "istio_requests_total"); err != nil {
		t.Error(err)
	}
}
