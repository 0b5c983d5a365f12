package main

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"sync/atomic"

	collectortracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
)

// observedGatewayConfig is the access log gateway's listener with tracing
// on at 1% (Istio's default sampling), spans sent to an OTLP collector.
const observedGatewayConfig = `
admin: { address: "127.0.0.1:%d" }
drain_period: 0s
listeners:
  - name: bench-observed
    address: "127.0.0.1:%d"
    access_log: [ { path: %q } ]
    tracing: { otlp_endpoint: %q, random_sampling: 1 }
    virtual_hosts:
      - routes:
          - match: { prefix: /demo.v1.DemoService/ }
            cluster: grpc
            timeout: 0s
clusters:
  - { name: grpc, protocol: grpc, endpoints: [ %q ] }
`

// otlpSink is an OTLP trace collector that counts the spans it gets.
type otlpSink struct {
	collectortracepb.UnimplementedTraceServiceServer
	spans atomic.Int64
}

func (s *otlpSink) Export(_ context.Context, req *collectortracepb.ExportTraceServiceRequest) (*collectortracepb.ExportTraceServiceResponse, error) {
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			s.spans.Add(int64(len(ss.GetSpans())))
		}
	}
	return &collectortracepb.ExportTraceServiceResponse{}, nil
}

// startOTLPSink serves a collector on a loopback port for the rest of the
// bench run.
func startOTLPSink() (*otlpSink, string, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	sink := &otlpSink{}
	s := grpc.NewServer()
	collectortracepb.RegisterTraceServiceServer(s, sink)
	go func() { _ = s.Serve(lis) }()
	return sink, lis.Addr().String(), nil
}

// startObservedGateway starts a gateway process whose listener writes an
// access log line per request and traces 1% of them.
func startObservedGateway(bin, backendAddr, collector string) (*gateway, error) {
	return startFileGateway(bin, "bench-observed", func(adminPort, port int, dir string) []byte {
		return fmt.Appendf(nil, observedGatewayConfig, adminPort, port, filepath.Join(dir, "access.log"), collector, backendAddr)
	})
}
