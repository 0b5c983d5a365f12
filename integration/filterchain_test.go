package integration

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	demov1 "github.com/meshgate/meshgate/proto/demo/v1"
)

// envoyGRPCWebRecipe is Envoy's own gRPC-Web example, as it is: a listener
// whose connection manager runs envoy.filters.http.grpc_web then the
// router, and a cluster with http2_protocol_options.
const envoyGRPCWebRecipe = `
static_resources:
  listeners:
  - name: listener_0
    address: { socket_address: { address: 127.0.0.1, port_value: {{.Port}} } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          codec_type: auto
          stat_prefix: ingress_http
          route_config:
            name: local_route
            virtual_hosts:
            - name: local_service
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: echo_service, timeout: 0s, max_stream_duration: { grpc_timeout_header_max: 0s } }
          http_filters:
          - name: envoy.filters.http.grpc_web
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.grpc_web.v3.GrpcWeb }
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
  clusters:
  - name: echo_service
    connect_timeout: 0.25s
    type: STATIC
    http2_protocol_options: {}
    lb_policy: round_robin
    load_assignment:
      cluster_name: echo_service
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: {{.Backend}} } } }
`

// The Envoy recipe for gRPC-Web runs as it is: binary and text, unary and
// server streaming, statuses in the trailer frame.
func TestFilterChain_EnvoyGRPCWebRecipe(t *testing.T) {
	b := startBackend(t, "web")
	_, backendPort, _ := net.SplitHostPort(b.GRPCAddr)
	g := startGateway(t, render(t, envoyGRPCWebRecipe, map[string]string{"Port": port(freeAddr(t)), "Backend": backendPort}))
	c := httpClient(t)
	base := "http://" + g.addr("listener_0") + "/demo.v1.DemoService/"
	for _, text := range []bool{false, true} {
		t.Run(fmt.Sprintf("text=%v", text), func(t *testing.T) {
			msgs, tr, status := grpcWebCall(t, c, base+"Echo", text, &demov1.EchoRequest{Message: "recipe"})
			var resp demov1.EchoResponse
			if status != 200 || len(msgs) != 1 || proto.Unmarshal(msgs[0], &resp) != nil || resp.GetMessage() != "recipe" || tr["grpc-status"] != "0" {
				t.Errorf("unary: %d, %d messages, %v, trailers %v", status, len(msgs), &resp, tr)
			}
			msgs, tr, _ = grpcWebCall(t, c, base+"ServerStream", text, &demov1.ServerStreamRequest{Message: "s", Count: 4})
			if len(msgs) != 4 || tr["grpc-status"] != "0" {
				t.Errorf("server streaming: %d messages, trailers %v", len(msgs), tr)
			}
			_, tr, _ = grpcWebCall(t, c, base+"Echo", text, &demov1.EchoRequest{FailCode: 9, FailMessage: "not now"})
			if tr["grpc-status"] != "9" || !strings.Contains(tr["grpc-message"], "not now") {
				t.Errorf("an error status: trailers %v", tr)
			}
		})
	}
}

// Without the grpc_web filter in the chain a gRPC-Web request is not
// translated, as in Envoy: the backend (a gRPC server) refuses it.
func TestFilterChain_NoGRPCWebWithoutItsFilter(t *testing.T) {
	b := startBackend(t, "web")
	_, backendPort, _ := net.SplitHostPort(b.GRPCAddr)
	cfg := strings.Replace(envoyGRPCWebRecipe, `          - name: envoy.filters.http.grpc_web
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.grpc_web.v3.GrpcWeb }
`, "", 1)
	g := startGateway(t, render(t, cfg, map[string]string{"Port": port(freeAddr(t)), "Backend": backendPort}))
	b2, _ := proto.Marshal(&demov1.EchoRequest{Message: "x"})
	frame := append([]byte{0, 0, 0, 0, byte(len(b2))}, b2...)
	req, _ := http.NewRequest(http.MethodPost, "http://"+g.addr("listener_0")+"/demo.v1.DemoService/Echo", bytes.NewReader(frame))
	req.Header.Set("Content-Type", "application/grpc-web+proto")
	resp, err := httpClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); strings.HasPrefix(ct, "application/grpc-web") {
		t.Errorf("a chain without grpc_web answered gRPC-Web (%s): it translated", ct)
	}
}
