package server

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

func TestCompileTracing(t *testing.T) {
	anyOf := func(m proto.Message) *anypb.Any {
		a, err := anypb.New(m)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	provider := func(m proto.Message, name string) *hcmv3.HttpConnectionManager {
		return &hcmv3.HttpConnectionManager{Tracing: &hcmv3.HttpConnectionManager_Tracing{
			RandomSampling: &typev3.Percent{Value: 1},
			Provider:       &tracev3.Tracing_Http{Name: name, ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: anyOf(m)}}}}
	}
	otlpTarget := &tracev3.OpenTelemetryConfig{GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_GoogleGrpc_{
		GoogleGrpc: &corev3.GrpcService_GoogleGrpc{TargetUri: "127.0.0.1:4317", StatPrefix: "otlp"}}}}
	otlpCluster := &tracev3.OpenTelemetryConfig{ServiceName: "gw", GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
		EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "outbound|4317||otel-collector.istio-system.svc.cluster.local"}}}}
	tests := []struct {
		name      string
		hcm       *hcmv3.HttpConnectionManager
		wantOn    bool
		wantNote  string // substring of a note, "" for none
		wantError string // substring, "" for none
	}{
		{name: "no tracing", hcm: &hcmv3.HttpConnectionManager{}},
		{name: "OpenTelemetry to a target URI", hcm: provider(otlpTarget, "envoy.tracers.opentelemetry"), wantOn: true},
		{name: "OpenTelemetry to an Envoy cluster (Istio's form)", hcm: provider(otlpCluster, "envoy.tracers.opentelemetry"), wantOn: true},
		{name: "Zipkin is noted, not made", hcm: provider(&tracev3.ZipkinConfig{CollectorCluster: "zipkin"}, "envoy.tracers.zipkin"),
			wantNote: "envoy.tracers.zipkin (type.googleapis.com/envoy.config.trace.v3.ZipkinConfig) is not exported"},
		{name: "OTLP over HTTP fails the listener", hcm: provider(&tracev3.OpenTelemetryConfig{HttpService: &corev3.HttpService{}}, "envoy.tracers.opentelemetry"),
			wantError: "http_service (OTLP over HTTP) is not implemented"},
		{name: "no collector fails the listener", hcm: provider(&tracev3.OpenTelemetryConfig{}, "envoy.tracers.opentelemetry"),
			wantError: "needs grpc_service"},
		{name: "no provider is noted", hcm: &hcmv3.HttpConnectionManager{Tracing: &hcmv3.HttpConnectionManager_Tracing{}},
			wantNote: "no provider"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Options{})
			defer func() {
				s.mu.Lock()
				s.closeTraceProviders()
				s.mu.Unlock()
			}()
			tr, notes, err := s.compileTracing(tt.hcm)
			if tt.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantError) {
					t.Fatalf("error %v, want one saying %q", err, tt.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (tr != nil) != tt.wantOn {
				t.Errorf("tracing on: %v, want %v", tr != nil, tt.wantOn)
			}
			if got := strings.Join(notes, "\n"); (tt.wantNote == "") != (got == "") || !strings.Contains(got, tt.wantNote) {
				t.Errorf("notes %q, want %q", got, tt.wantNote)
			}
		})
	}
	// One exporter per collector and service: a recompile shares it.
	s := New(Options{})
	a, _, _ := s.compileTracing(provider(otlpTarget, "envoy.tracers.opentelemetry"))
	b, _, _ := s.compileTracing(provider(otlpTarget, "envoy.tracers.opentelemetry"))
	if a == nil || b == nil || len(s.traceProviders) != 1 {
		t.Errorf("%d exporters for one collector, want 1", len(s.traceProviders))
	}
	s.mu.Lock()
	s.closeTraceProviders()
	s.mu.Unlock()
}
