package server

import (
	"context"
	"fmt"
	"net"
	"time"

	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/meshgate/meshgate/server/tracing"
)

// defaultTraceService names the gateway's spans when the provider config
// names no service.
const defaultTraceService = "meshgate"

// compileTracing builds an HCM's tracing: nil when it has none, or when
// its provider is one meshgate does not export to (a note says so: trace
// headers then pass through as sent). Only the OpenTelemetry tracer is
// exported (OTLP over gRPC, to a cluster or a target URI).
func (s *Server) compileTracing(hcm *hcmv3.HttpConnectionManager) (*tracing.Tracing, []string, error) {
	tc := hcm.GetTracing()
	if tc == nil {
		return nil, nil, nil
	}
	const where = "tracing"
	var notes []string
	p := tc.GetProvider()
	if p == nil || p.GetTypedConfig() == nil {
		return nil, []string{where + ": no provider: no spans are made (a bootstrap-level tracer is not read)"}, nil
	}
	var otel tracev3.OpenTelemetryConfig
	if !p.GetTypedConfig().MessageIs(&otel) {
		return nil, []string{fmt.Sprintf("%s.provider: %s (%s) is not exported: only envoy.tracers.opentelemetry (OTLP gRPC) is; no spans are made",
			where, p.GetName(), p.GetTypedConfig().GetTypeUrl())}, nil
	}
	if err := p.GetTypedConfig().UnmarshalTo(&otel); err != nil {
		return nil, nil, fmt.Errorf("%s.provider: %w", where, err)
	}
	if otel.GetHttpService() != nil {
		return nil, nil, fmt.Errorf("%s.provider: http_service (OTLP over HTTP) is not implemented: give a grpc_service", where)
	}
	gs := otel.GetGrpcService()
	var target, cluster string
	switch {
	case gs.GetEnvoyGrpc().GetClusterName() != "":
		cluster = gs.GetEnvoyGrpc().GetClusterName()
	case gs.GetGoogleGrpc().GetTargetUri() != "":
		target = gs.GetGoogleGrpc().GetTargetUri()
		if gs.GetGoogleGrpc().GetChannelCredentials() != nil {
			notes = append(notes, where+".provider.grpc_service.google_grpc.channel_credentials: not applied: the collector is reached in cleartext")
		}
	default:
		return nil, nil, fmt.Errorf("%s.provider: the OpenTelemetry tracer needs grpc_service.envoy_grpc.cluster_name or google_grpc.target_uri", where)
	}
	if otel.GetSampler() != nil || len(otel.GetResourceDetectors()) > 0 {
		notes = append(notes, where+".provider: sampler and resource_detectors are not applied (random_sampling decides)")
	}
	if tc.GetClientSampling() != nil || tc.GetOverallSampling() != nil {
		notes = append(notes, where+": client_sampling and overall_sampling are not applied (random_sampling decides)")
	}
	if len(tc.GetCustomTags()) > 0 {
		notes = append(notes, where+".custom_tags: not added to spans")
	}
	sampling := 100.0 // Envoy's default
	if rs := tc.GetRandomSampling(); rs != nil {
		sampling = rs.GetValue()
	}
	service := otel.GetServiceName()
	if service == "" {
		service = defaultTraceService
	}
	if s.validating {
		return nil, notes, nil
	}
	provider, err := s.traceProvider(target, cluster, service)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", where, err)
	}
	return tracing.New(provider, tracing.Options{RandomSampling: sampling}), notes, nil
}

// traceProvider is the one exporter of a collector and service name,
// made on first use and kept for the process (as access log files are).
// Called with s.mu held.
func (s *Server) traceProvider(target, cluster, service string) (*tracing.Provider, error) {
	key := target + "|" + cluster + "|" + service
	if p := s.traceProviders[key]; p != nil {
		return p, nil
	}
	var dial func(context.Context, string) (net.Conn, error)
	if cluster != "" {
		target = cluster
		dial = func(ctx context.Context, _ string) (net.Conn, error) { return s.dialCluster(ctx, cluster) }
	}
	p, err := tracing.NewProvider(target, service, dial)
	if err != nil {
		return nil, err
	}
	if s.traceProviders == nil {
		s.traceProviders = map[string]*tracing.Provider{}
	}
	s.traceProviders[key] = p
	return p, nil
}

// dialCluster connects to the named cluster of the current snapshot (the
// collector Envoy's envoy_grpc names), through the cluster's balancer and
// transport socket (an Istio mTLS collector included).
func (s *Server) dialCluster(ctx context.Context, name string) (net.Conn, error) {
	snap := s.snap.Load()
	if snap == nil || snap.clusters[name] == nil {
		return nil, fmt.Errorf("tracing: cluster %q is not configured", name)
	}
	conn, err := snap.clusters[name].DialGRPC(ctx)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	return conn, nil
}

// closeTraceProviders exports what the providers queued and closes them
// (Shutdown; s.mu held).
func (s *Server) closeTraceProviders() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, p := range s.traceProviders {
		if err := p.Shutdown(ctx); err != nil {
			s.log.Warn("tracing: spans not exported at shutdown", "err", err)
		}
	}
	s.traceProviders = nil
}
