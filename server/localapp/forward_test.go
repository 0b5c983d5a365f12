package localapp

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	localappv1 "github.com/meshgate/meshgate/proto/meshgate/extensions/filters/dubbo/local_app/v1"
	"github.com/meshgate/meshgate/server/cluster"
)

// An app's answer over maxAnswer is cut, and the status says so (not the
// app's OK); one within it passes with the app's own trailers.
func TestForward_AnswerLimit(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/org.x.S/m"))
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Trailer", "Grpc-Status")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(bytes.Repeat([]byte{'x'}, n))
		w.Header().Set("Grpc-Status", "0")
	}))
	defer backend.Close()
	host, port, _ := net.SplitHostPort(backend.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	spec := &clusterv3.Cluster{Name: "app", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: "app", Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
				SocketAddress: &corev3.SocketAddress{Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)}}}}}}}}}}}}
	c, err := cluster.New(spec, cluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	app, err := Compile(&localappv1.LocalApp{Cluster: "app", Protocol: localappv1.LocalApp_APP_PROTOCOL_GRPC},
		func(string) (*cluster.Cluster, bool) { return c, true })
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		n          int
		wantStatus string
	}{
		{n: 1 << 10, wantStatus: "0"},
		{n: maxAnswer, wantStatus: "0"},
		{n: maxAnswer + 1, wantStatus: "8"}, // RESOURCE_EXHAUSTED
	} {
		r := httptest.NewRequest(http.MethodPost, fmt.Sprintf("http://x/org.x.S/m%d", tc.n), nil)
		w := httptest.NewRecorder()
		if f := app.Forward(w, r, nil, 5*time.Second); f != nil {
			t.Fatalf("%d bytes: %v", tc.n, f)
		}
		res := w.Result()
		if got := res.Trailer.Get("Grpc-Status"); got != tc.wantStatus {
			t.Errorf("%d-byte answer: grpc-status %q (%s), want %s", tc.n, got, res.Trailer.Get("Grpc-Message"), tc.wantStatus)
		}
	}
}
