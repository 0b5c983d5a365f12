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

// istioGRPCWebConfig: a Gateway server of protocol GRPC-WEB (istiod puts
// envoy.filters.http.grpc_web in its listener) in front of a gRPC
// ServiceEntry.
const istioGRPCWebConfig = `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: web, namespace: istio-system }
spec:
  selector: { istio: ingressgateway }
  servers:
  - port: { number: {{.Port}}, name: grpc-web, protocol: GRPC-WEB }
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: demo, namespace: default }
spec:
  hosts: [demo.example.com]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [ { number: 9000, name: grpc, protocol: GRPC } ]
  endpoints: [ { address: 127.0.0.1, ports: { grpc: {{.Backend}} } } ]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: demo, namespace: default }
spec:
  hosts: ["*"]
  gateways: [istio-system/web]
  http:
  - route: [ { destination: { host: demo.example.com, port: { number: 9000 } } } ]
`

// The same through istiod: a GRPC-WEB Gateway server.
func TestFilterChain_IstioGRPCWebGateway(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs Istio's discovery server; skipped with -short")
	}
	b := startBackend(t, "web")
	_, backendPort, _ := net.SplitHostPort(b.GRPCAddr)
	gwPort := port(freeAddr(t))
	ist := startIstiod(t, string(render(t, istioGRPCWebConfig, map[string]string{"Port": gwPort, "Backend": backendPort})))
	g := startIstioGateway(t, ist.xds, false)
	c := httpClient(t)
	listener := "0.0.0.0_" + gwPort
	waitFor(t, "the GRPC-WEB listener", func() bool { return g.srv.ListenerAddr(listener) != "" && g.client.Synced() })
	l := g.srv.Config().Listener(listener)
	if !strings.Contains(fmt.Sprint(l), "envoy.filters.http.grpc_web") {
		t.Fatalf("istiod's listener has no grpc_web filter: %v", l)
	}
	base := "http://" + g.srv.ListenerAddr(listener) + "/demo.v1.DemoService/"
	for _, text := range []bool{false, true} {
		msgs, tr, status := grpcWebCall(t, c, base+"Echo", text, &demov1.EchoRequest{Message: "istio"})
		var resp demov1.EchoResponse
		if status != 200 || len(msgs) != 1 || proto.Unmarshal(msgs[0], &resp) != nil || resp.GetMessage() != "istio" || tr["grpc-status"] != "0" {
			t.Errorf("text=%v unary: %d, %d messages, %v, trailers %v", text, status, len(msgs), &resp, tr)
		}
		msgs, tr, _ = grpcWebCall(t, c, base+"ServerStream", text, &demov1.ServerStreamRequest{Message: "s", Count: 3})
		if len(msgs) != 3 || tr["grpc-status"] != "0" {
			t.Errorf("text=%v server streaming: %d messages, trailers %v", text, len(msgs), tr)
		}
	}
}
