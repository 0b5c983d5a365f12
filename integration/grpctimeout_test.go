package integration

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/meshgate/meshgate/internal/demo"
	demov1 "github.com/meshgate/meshgate/proto/demo/v1"
)

const grpcTimeoutConfig = `
static_resources:
  listeners:
  - name: main
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: main
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              # istiod's shape: the deprecated max_grpc_timeout beside the timeout.
              - match: { prefix: /, headers: [ { name: x-route, string_match: { exact: istio } } ] }
                route: { cluster: grpc, timeout: 5s, max_grpc_timeout: 5s }
              # 0 is Envoy's "no limit": nothing to write for a call without grpc-timeout.
              - match: { prefix: /, headers: [ { name: x-route, string_match: { exact: zero } } ] }
                route: { cluster: grpc, timeout: 5s, max_grpc_timeout: 0s }
              - match: { prefix: / }
                route: { cluster: grpc, timeout: 5s }
          http_filters:
          - { name: envoy.filters.http.router, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } }
  clusters:
  - name: grpc
    type: STATIC
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }
    load_assignment: { cluster_name: grpc, endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: {{.Port}} } } } } ] } ] }
`

// The deadline a gRPC backend sees through the gateway (grpc-timeout
// upstream), on the handler path (a gateway's first call: each case has a
// gateway of its own) and relayed (the next two): the client's, as the time
// left of it and never past the route timeout (meshgate's rule; Envoy would
// pass the client's on unchanged); none made from the route timeout alone,
// as Envoy; made from it when the route carries a non-zero max_grpc_timeout,
// as Envoy (istiod's routes), and not for a zero one.
func TestGRPCTimeout_Upstream(t *testing.T) {
	var mu sync.Mutex
	var seen []time.Duration // time left at the backend; -1: no deadline
	record := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
		left := time.Duration(-1)
		if dl, ok := ctx.Deadline(); ok {
			left = time.Until(dl)
		}
		mu.Lock()
		seen = append(seen, left)
		mu.Unlock()
		return next(ctx, req)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(record))
	demov1.RegisterDemoServiceServer(srv, demo.NewService("deadlines"))
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	cfg := render(t, grpcTimeoutConfig, map[string]string{"Port": port})

	for _, tc := range []struct {
		name     string
		client   time.Duration // the client's deadline; 0: none
		route    string        // x-route: istio (max_grpc_timeout 5s), zero (0s); "": the plain route
		min, max time.Duration // bounds of the time left at the backend; max 0: no deadline
	}{
		{name: "no client deadline: none upstream", min: -1, max: 0},
		{name: "the client's deadline, as time left", client: 2 * time.Second, min: time.Second, max: 2 * time.Second},
		{name: "never past the route timeout", client: 20 * time.Second, min: 4 * time.Second, max: 5 * time.Second},
		{name: "max_grpc_timeout: the route timeout goes upstream", route: "istio", min: 4 * time.Second, max: 5 * time.Second},
		{name: "max_grpc_timeout 0: none upstream", route: "zero", min: -1, max: 0},
		{name: "max_grpc_timeout 0: the client's deadline", route: "zero", client: 2 * time.Second, min: time.Second, max: 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := startGateway(t, cfg)
			c := demoClient(t, g.addr("main"))
			mu.Lock()
			seen = nil
			mu.Unlock()
			for range 3 {
				ctx := context.Background()
				if tc.route != "" {
					ctx = metadata.AppendToOutgoingContext(ctx, "x-route", tc.route)
				}
				if tc.client > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tc.client)
					defer cancel()
				}
				if _, err := c.Echo(ctx, &demov1.EchoRequest{Message: "deadline"}); err != nil {
					t.Fatal(err)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if len(seen) != 3 {
				t.Fatalf("the backend saw %d calls, want 3", len(seen))
			}
			for i, left := range seen {
				if tc.max == 0 {
					if left != -1 {
						t.Errorf("call %d: the backend got a deadline %v away, want none", i, left)
					}
					continue
				}
				if left < tc.min || left > tc.max {
					t.Errorf("call %d: the backend's deadline is %v away, want within [%v, %v]", i, left, tc.min, tc.max)
				}
			}
			// The first call dialed on the handler path; the others are
			// relayed once the connection is up.
			cl := clusterNamed(t, g, "grpc")
			if n := cl.Stats.RqRelayed.Load(); n == 0 || n == 3 {
				t.Errorf("%d of the 3 calls were relayed: want the handler path and the relay both tested", n)
			}
		})
	}
}
