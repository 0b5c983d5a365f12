package tracing

import (
	"context"
	"fmt"
	"net"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Provider exports spans over OTLP gRPC to one collector, batched: spans
// wait in a bounded queue (2048) and the oldest are dropped when it is
// full, so a slow or absent collector never holds a request.
type Provider struct {
	conn   *grpc.ClientConn
	tp     *sdktrace.TracerProvider
	tracer trace.Tracer
}

// NewProvider exports to target (a gRPC target: host:port, dns:///...),
// or, with dial set, to whatever dial connects to (an Envoy cluster's
// host, picked per connection). Spans name serviceName as their service.
func NewProvider(target, serviceName string, dial func(context.Context, string) (net.Conn, error)) (*Provider, error) {
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if dial != nil {
		opts = append(opts, grpc.WithContextDialer(dial))
		target = "passthrough:///" + target
	}
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: the OTLP collector %q: %w", target, err)
	}
	exp, err := otlptracegrpc.New(context.Background(), otlptracegrpc.WithGRPCConn(conn), otlptracegrpc.WithTimeout(5*time.Second))
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("tracing: the OTLP exporter: %w", err)
	}
	p := newProvider(sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second)), serviceName)
	p.conn = conn
	return p, nil
}

func newProvider(export sdktrace.TracerProviderOption, serviceName string) *Provider {
	tp := sdktrace.NewTracerProvider(export,
		sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName(serviceName))),
		sdktrace.WithSampler(sdktrace.AlwaysSample()), // the decision is Tracing.Decide's
	)
	return &Provider{tp: tp, tracer: tp.Tracer("github.com/meshgate/meshgate")}
}

// Shutdown exports what is queued (within ctx) and closes the connection.
func (p *Provider) Shutdown(ctx context.Context) error {
	err := p.tp.Shutdown(ctx)
	if p.conn != nil {
		_ = p.conn.Close()
	}
	return err
}
