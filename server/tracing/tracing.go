// Package tracing makes the gateway's spans with the OpenTelemetry SDK: a
// server span per request and a client span per upstream attempt, the
// trace context read from W3C traceparent or B3 headers and written on to
// the upstream (headers, or Dubbo attachments), spans exported over OTLP
// gRPC. Sampling is decided once per request, as Envoy's HTTP connection
// manager does: a sampling decision that came with the request is kept,
// else random_sampling percent of requests are traced, picked by their
// x-request-id (so every path that looks at a request decides alike).
// A request not traced costs a header lookup or two: no span is made.
package tracing

import (
	"context"
	"encoding/hex"
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"strconv"

	"go.opentelemetry.io/contrib/propagators/b3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Tracing is one HTTP connection manager's tracing: where its spans go
// and how many requests make them.
type Tracing struct {
	provider *Provider
	// threshold: a request is traced when its draw (0..9999) is below it
	// (random_sampling in hundredths of a percent).
	threshold uint32
	// w3c always goes upstream; b3 too for a request that came with B3
	// headers (a mesh that still reads B3). extract reads both, W3C first.
	w3c, b3, extract propagation.TextMapPropagator
}

// Options are a Tracing's settings.
type Options struct {
	// RandomSampling is the percentage (0-100) of requests traced when
	// the request brings no decision of its own.
	RandomSampling float64
}

// New is a Tracing whose spans go to p.
func New(p *Provider, o Options) *Tracing {
	t := &Tracing{provider: p, threshold: uint32(min(max(o.RandomSampling, 0), 100) * 100)}
	t.w3c = propagation.TraceContext{}
	t.b3 = b3.New(b3.WithInjectEncoding(b3.B3MultipleHeader))
	t.extract = propagation.NewCompositeTextMapPropagator(t.b3, t.w3c) // the later wins: W3C over B3
	return t
}

// Decision is whether a request is traced, and the span it continues
// (invalid: it starts a trace).
type Decision struct {
	Sampled bool
	Parent  trace.SpanContext
	// B3: the request came with B3 headers (they go upstream too).
	B3 bool
}

// Decide reads the request's trace context from h: a decision in it is
// kept (traceparent's flag, x-b3-sampled, b3); a request without one is
// traced when the draw from its request id (random when it has none)
// falls under random_sampling.
func (t *Tracing) Decide(h http.Header, requestID string) Decision {
	var d Decision
	if hasTraceContext(h) {
		d.B3 = len(h["B3"]) > 0 || len(h["X-B3-Traceid"]) > 0 || len(h["X-B3-Sampled"]) > 0
		d.Parent = trace.SpanContextFromContext(t.extract.Extract(context.Background(), propagation.HeaderCarrier(h)))
		if d.Parent.IsValid() {
			d.Sampled = d.Parent.IsSampled()
			return d
		}
	}
	d.Sampled = draw(requestID) < t.threshold
	return d
}

// hasTraceContext: h carries a W3C or B3 trace context (checked before the
// propagators run: most requests carry none).
func hasTraceContext(h http.Header) bool {
	return len(h["Traceparent"]) > 0 || len(h["B3"]) > 0 || len(h["X-B3-Traceid"]) > 0 || len(h["X-B3-Sampled"]) > 0
}

// draw is a request's number in 0..9999: from its x-request-id (Envoy
// samples by the request id likewise), random without one.
func draw(requestID string) uint32 {
	if requestID == "" {
		return rand.Uint32N(10000)
	}
	f := fnv.New32a()
	_, _ = f.Write([]byte(requestID))
	return f.Sum32() % 10000
}

// MarkUnsampled gives a request that came without a trace context one
// that says "not sampled", so that the services behind do not start a
// trace of their own for it (Envoy propagates its decision likewise).
// Nothing is done when the request has a trace context.
func MarkUnsampled(h http.Header) {
	if hasTraceContext(h) {
		return
	}
	var ids [24]byte
	for i := 0; i < len(ids); i += 8 {
		v := rand.Uint64()
		for j := range 8 {
			ids[i+j] = byte(v >> (8 * j))
		}
	}
	var b [55]byte
	copy(b[:], "00-")
	hex.Encode(b[3:35], ids[:16])
	b[35] = '-'
	hex.Encode(b[36:52], ids[16:])
	copy(b[52:], "-00")
	h["Traceparent"] = []string{string(b[:])}
}

type ctxKey struct{}

// active is what a traced request's context carries: its Tracing, for
// the attempts made below it (the router's, a bridge filter's).
type active struct {
	t  *Tracing
	b3 bool
}

// StartRequest starts the request's server span (d.Sampled) named name;
// the context it returns carries it for the attempts below.
func (t *Tracing) StartRequest(ctx context.Context, d Decision, name string, r *http.Request, requestID string) (context.Context, trace.Span) {
	if d.Parent.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, d.Parent)
	}
	ctx, span := t.provider.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(
			attribute.String("http.method", r.Method),
			attribute.String("http.url", scheme(r)+"://"+r.Host+r.URL.RequestURI()),
			attribute.String("http.protocol", r.Proto),
			attribute.String("user_agent", r.UserAgent()),
			attribute.String("peer.address", r.RemoteAddr),
			attribute.String("guid:x-request-id", requestID),
			attribute.String("component", "proxy"),
		))
	return context.WithValue(ctx, ctxKey{}, active{t, d.B3}), span
}

func scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// EndRequest ends a request's span with how it went: an HTTP status of 5xx
// or a gRPC status other than OK (-1: none) marks it an error, as Envoy's
// tracers do.
func EndRequest(span trace.Span, status, grpcStatus int, cluster, flags string) {
	span.SetAttributes(attribute.Int("http.status_code", status), attribute.String("upstream_cluster", cluster),
		attribute.String("response_flags", flags))
	endWithStatus(span, status, grpcStatus)
}

func endWithStatus(span trace.Span, status, grpcStatus int) {
	if grpcStatus >= 0 {
		span.SetAttributes(attribute.String("grpc.status_code", strconv.Itoa(grpcStatus)))
	}
	if status >= 500 || grpcStatus > 0 {
		span.SetStatus(codes.Error, "")
	}
	span.End()
}

// StartAttempt starts the client span of one upstream attempt to cluster
// (named as Envoy names its egress spans) under the request's span in ctx
// and writes its context into carrier (the attempt's headers or
// attachments). A request not traced gets nothing (ok false): no span,
// nothing written, nothing allocated.
func StartAttempt(ctx context.Context, cluster, host string, carrier propagation.TextMapCarrier) (trace.Span, bool) {
	a, ok := ctx.Value(ctxKey{}).(active)
	if !ok {
		return nil, false
	}
	ctx, span := a.t.provider.tracer.Start(ctx, "router "+cluster+" egress", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("upstream_cluster", cluster), attribute.String("upstream_address", host)))
	a.t.w3c.Inject(ctx, carrier)
	if a.b3 {
		a.t.b3.Inject(ctx, carrier)
	}
	return span, true
}

// EndAttempt ends an attempt's span: err, an HTTP status of 5xx or a
// gRPC status other than OK (-1: none) mark it an error.
func EndAttempt(span trace.Span, status, grpcStatus int, err error) {
	if status > 0 {
		span.SetAttributes(attribute.Int("http.status_code", status))
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		span.End()
		return
	}
	endWithStatus(span, status, grpcStatus)
}
