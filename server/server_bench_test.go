package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/server/stats"
)

// BenchmarkEndpointUpdate applies one cluster's new endpoint set (100
// hosts) in a config of 1,000 EDS clusters, through the store as EDS or a
// registry would (budget: under 10 ms, no recompile).
func BenchmarkEndpointUpdate(b *testing.B) {
	srv := New(Options{})
	defer func() { _ = srv.Shutdown(context.Background()) }()
	store := config.NewStore(srv)
	var y strings.Builder
	y.WriteString("listeners: [{name: l, address: \"127.0.0.1:0\", virtual_hosts: [{routes: [{match: {prefix: /}, cluster: c0}]}]}]\nclusters:\n")
	for i := range 1000 {
		fmt.Fprintf(&y, "  - {name: c%d, type: eds}\n", i)
	}
	l, err := config.Load([]byte(y.String()), "")
	if err != nil {
		b.Fatal(err)
	}
	if err := store.Apply(context.Background(), config.Update{Source: "file", Replace: config.ResourceTypes, Resources: l.Resources}); err != nil {
		b.Fatal(err)
	}
	sets := make([][]string, 2)
	for v := range sets {
		for i := range 100 {
			sets[v] = append(sets[v], fmt.Sprintf("10.%d.%d.%d:8080", v, i/250, i%250))
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		u := config.Update{Source: "eds", Resources: []proto.Message{cla("c500", sets[i%2]...)}}
		if err := store.Apply(context.Background(), u); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// The filter chain costs nothing per request for the filters that are off
// for it: a plain GET through grpc_web, cors, fault and local_ratelimit
// (all present, none acting) against the same listener with the router
// alone, answered by a direct response so that only the chain is measured.
func BenchmarkChain(b *testing.B) {
	const head = `
static_resources:
  listeners:
  - name: web
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: web
          route_config: { virtual_hosts: [ { name: all, domains: ["*"], routes: [ { match: { prefix: / }, direct_response: { status: 200 } } ] } ] }
          http_filters:
`
	filters := map[string]string{
		"router alone": "",
		"four filters off": `          - { name: envoy.filters.http.grpc_web, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.grpc_web.v3.GrpcWeb } }
          - { name: envoy.filters.http.cors, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors } }
          - { name: envoy.filters.http.fault, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault } }
          - { name: envoy.filters.http.local_ratelimit, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit, stat_prefix: x } }
`,
	}
	for _, name := range []string{"router alone", "four filters off"} {
		b.Run(name, func(b *testing.B) {
			srv := New(Options{})
			defer func() { _ = srv.Shutdown(context.Background()) }()
			l, err := config.Load([]byte(head+filters[name]+`          - { name: envoy.filters.http.router, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } }
`), "")
			if err != nil {
				b.Fatal(err)
			}
			if err := config.NewStore(srv).Apply(context.Background(), config.Update{Source: "file", Replace: config.ResourceTypes, Resources: l.Resources}); err != nil {
				b.Fatal(err)
			}
			var ch *chain
			for _, ln := range srv.listeners {
				ch = ln.state.Load().plain
			}
			r := httptest.NewRequest("GET", "/x", nil)
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				ch.serveHTTP(w, r)
			}
		})
	}
}

// BenchmarkForward: a plain GET through a friendly listener (gRPC-Web,
// Connect and CORS filters present, off for it) forwarded to a local
// HTTP backend: the gateway's whole request path with a real round trip.
func BenchmarkForward(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) }))
	defer backend.Close()
	host, port, _ := net.SplitHostPort(backend.Listener.Addr().String())
	y := fmt.Sprintf(`
listeners:
  - name: web
    address: 127.0.0.1:0
    virtual_hosts:
      - routes:
          - match: { prefix: / }
            cluster: be
clusters:
  - { name: be, endpoints: [ "%s:%s" ] }
`, host, port)
	srv := New(Options{})
	defer func() { _ = srv.Shutdown(context.Background()) }()
	l, err := config.Load([]byte(y), "")
	if err != nil {
		b.Fatal(err)
	}
	if err := config.NewStore(srv).Apply(context.Background(), config.Update{Source: "file", Replace: config.ResourceTypes, Resources: l.Resources}); err != nil {
		b.Fatal(err)
	}
	var ch *chain
	for _, ln := range srv.listeners {
		ch = ln.state.Load().plain
	}
	r := httptest.NewRequest("GET", "/x", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		ch.serveHTTP(w, r.Clone(r.Context())) // the gateway adds x-forwarded-for to what it gets
		if w.Code != 200 {
			b.Fatal(w.Code, w.Body.String())
		}
	}
}

// discardWriter is a ResponseWriter that keeps nothing.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

// BenchmarkGRPCUnary is a gRPC unary call through the whole gateway over
// loopback (grpc-go client → meshgate's HTTP/2 server → chain → meshgate's
// HTTP/2 client → grpc-go health server), 16 callers on one connection as
// in bench/. Its allocations and CPU profile are the gateway's hot path
// (grpc-go's own share shows up as theirs in a profile).
func BenchmarkGRPCUnary(b *testing.B) {
	b.Run("access log off", func(b *testing.B) { benchGRPCUnary(b, "", Options{}) })
	b.Run("access log on", func(b *testing.B) {
		benchGRPCUnary(b, fmt.Sprintf("access_log: [ { path: %q } ]", filepath.Join(b.TempDir(), "access.log")), Options{})
	})
	b.Run("istio metrics on", func(b *testing.B) {
		benchGRPCUnary(b, "", Options{IstioMetrics: &stats.Workload{Name: "bench"}})
	})
}

// benchGRPCUnary runs BenchmarkGRPCUnary with extra listener fields and
// server options.
func benchGRPCUnary(b *testing.B, listenerFields string, opts Options) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, health.NewServer())
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()
	y := fmt.Sprintf(`
listeners:
  - name: web
    address: 127.0.0.1:0
    %s
    virtual_hosts:
      - routes:
          - match: { prefix: / }
            cluster: be
clusters:
  - { name: be, protocol: grpc, endpoints: [ "%s" ] }
`, listenerFields, lis.Addr().String())
	srv := New(opts)
	defer func() { _ = srv.Shutdown(context.Background()) }()
	l, err := config.Load([]byte(y), "")
	if err != nil {
		b.Fatal(err)
	}
	if err := config.NewStore(srv).Apply(context.Background(), config.Update{Source: "file", Replace: config.ResourceTypes, Resources: l.Resources}); err != nil {
		b.Fatal(err)
	}
	conn, err := grpc.NewClient(srv.ListenerAddr("web"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	c := healthpb.NewHealthClient(conn)
	if _, err := c.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetParallelism(8) // 16 callers on 2 cores
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
