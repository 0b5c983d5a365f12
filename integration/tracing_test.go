package integration

import (
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	collectortracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"

	"github.com/meshgate/meshgate/internal/demo"
	demov1 "github.com/meshgate/meshgate/proto/demo/v1"
)

// otlpReceiver is an OTLP trace collector (the official OTLP gRPC
// service) that keeps every span it is sent, with its service's name.
type otlpReceiver struct {
	collectortracepb.UnimplementedTraceServiceServer
	addr  string
	mu    sync.Mutex
	spans []receivedSpan
}

type receivedSpan struct {
	service string
	span    *tracepb.Span
}

func startOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &otlpReceiver{addr: lis.Addr().String()}
	s := grpc.NewServer()
	collectortracepb.RegisterTraceServiceServer(s, r)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return r
}

func (r *otlpReceiver) Export(_ context.Context, req *collectortracepb.ExportTraceServiceRequest) (*collectortracepb.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				r.spans = append(r.spans, receivedSpan{service: service, span: sp})
			}
		}
	}
	return &collectortracepb.ExportTraceServiceResponse{}, nil
}

// trace is the spans received so far of one trace id (hex).
func (r *otlpReceiver) trace(id string) []receivedSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []receivedSpan
	for _, s := range r.spans {
		if hex.EncodeToString(s.span.GetTraceId()) == id {
			out = append(out, s)
		}
	}
	return out
}

func (r *otlpReceiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.spans)
}

// spanOf finds the span of service and kind in spans.
func spanOf(spans []receivedSpan, service string, kind tracepb.Span_SpanKind) *tracepb.Span {
	for _, s := range spans {
		if s.service == service && s.span.GetKind() == kind {
			return s.span
		}
	}
	return nil
}

const tracingConfig = `
listeners:
{{range .Listeners}}
  - name: {{.Name}}
    address: 127.0.0.1:0
    tracing: { otlp_endpoint: "{{$.OTLP}}", service_name: meshgate-test, random_sampling: {{.Sampling}} }
    virtual_hosts:
      - routes:
          - match: { prefix: /dubbo/ }
            cluster: greeter
            timeout: 5s
            dubbo: { version: 1.0.0, group: g1 }
          - match: { prefix: /demo.v1.DemoService/ }
            cluster: grpc
          - match: { prefix: /echo }
            cluster: http
{{end}}
clusters:
  - name: greeter
    protocol: dubbo
    endpoints: [ "{{.Provider}}" ]
  - name: grpc
    protocol: grpc
    endpoints: [ "{{.Backend.GRPCAddr}}" ]
  - name: http
    endpoints: [ "{{.Backend.HTTPAddr}}" ]
`

type tracingListener struct {
	Name     string
	Sampling float64
}

type tracingData struct {
	OTLP, Provider string
	Backend        *demo.Backend
	Listeners      []tracingListener
}

// A traced request's spans reach an OTLP collector: the gateway's server
// span continues the client's W3C trace, each upstream attempt is a client
// span under it, and a dubbo-go provider (its OpenTelemetry filter, spans
// exported on its own) joins the trace under the gateway's attempt through
// the Dubbo2 attachments. Requests not sampled make no span, still go by
// the relay, and carry "not sampled" upstream.
func TestTracing_GatewayAndDubboGoSpans(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ZooKeeper and a dubbo-go provider; skipped with -short")
	}
	otlp := startOTLPReceiver(t)
	zkServer := startZooKeeper(t)
	p := startProvider(t, providerSpec{App: "traced-provider", Registry: "zookeeper", RegistryAddr: zkServer.addr, Mode: "interface",
		Version: "1.0.0", Group: "g1", OTLPEndpoint: otlp.addr})
	backend := startBackend(t, "b0")
	g := startGateway(t, render(t, tracingConfig, tracingData{OTLP: otlp.addr, Provider: "127.0.0.1:" + p.dubboPort, Backend: backend,
		Listeners: []tracingListener{{Name: "traced", Sampling: 100}, {Name: "unsampled", Sampling: 0}}}))
	c := httpClient(t)

	waitTrace := func(t *testing.T, id string, want int) []receivedSpan {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second) // exporters batch for up to 5s
		for len(otlp.trace(id)) < want && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond) // and nothing more of it
		if spans := otlp.trace(id); len(spans) < want {
			otlp.mu.Lock()
			all := describeSpans(otlp.spans)
			otlp.mu.Unlock()
			t.Fatalf("trace %s: %d spans at the collector, want %d; all spans received: %s", id, len(spans), want, all)
		}
		return otlp.trace(id)
	}

	t.Run("Dubbo2 bridge: the dubbo-go provider's span joins", func(t *testing.T) {
		const traceID, clientSpan = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
		req, _ := http.NewRequest("POST", "http://"+g.addr("traced")+greeterPath+"SayHello", strings.NewReader(`["trace"]`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Traceparent", "00-"+traceID+"-"+clientSpan+"-01")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		spans := waitTrace(t, traceID, 3)
		server := spanOf(spans, "meshgate-test", tracepb.Span_SPAN_KIND_SERVER)
		attempt := spanOf(spans, "meshgate-test", tracepb.Span_SPAN_KIND_CLIENT)
		provider := spanOf(spans, "traced-provider", tracepb.Span_SPAN_KIND_SERVER)
		if server == nil || attempt == nil || provider == nil {
			t.Fatalf("spans of the trace: %v; want the gateway's server and client spans and the provider's server span", describeSpans(spans))
		}
		if got := hex.EncodeToString(server.GetParentSpanId()); got != clientSpan {
			t.Errorf("the gateway's span has parent %s, want the client's %s", got, clientSpan)
		}
		if !equalBytes(attempt.GetParentSpanId(), server.GetSpanId()) {
			t.Errorf("the attempt span's parent is not the gateway's request span")
		}
		if !equalBytes(provider.GetParentSpanId(), attempt.GetSpanId()) {
			t.Errorf("the provider's span has parent %x, want the gateway's attempt %x", provider.GetParentSpanId(), attempt.GetSpanId())
		}
		if provider.GetName() != "SayHello" {
			t.Errorf("the provider's span is named %q, want SayHello", provider.GetName())
		}
	})

	t.Run("gRPC and HTTP: a trace started at the gateway", func(t *testing.T) {
		before := otlp.count()
		if _, err := demoClient(t, g.addr("traced")).Echo(context.Background(), &demov1.EchoRequest{Message: "x"}); err != nil {
			t.Fatal(err)
		}
		got, err := getEcho(c, "http://"+g.addr("traced")+"/echo")
		if err != nil {
			t.Fatal(err)
		}
		tp := strings.Split(got.Headers["traceparent"], "-")
		if len(tp) != 4 || tp[3] != "01" {
			t.Fatalf("the HTTP backend got traceparent %q, want a sampled one", got.Headers["traceparent"])
		}
		spans := waitTrace(t, tp[1], 2)
		attempt := spanOf(spans, "meshgate-test", tracepb.Span_SPAN_KIND_CLIENT)
		if attempt == nil || hex.EncodeToString(attempt.GetSpanId()) != tp[2] {
			t.Errorf("spans %v: the backend's parent span %s is not the gateway's attempt span", describeSpans(spans), tp[2])
		}
		waitFor(t, "the gRPC call's two spans", func() bool { return otlp.count() >= before+4 })
	})

	t.Run("not sampled: no span, relayed, marked upstream", func(t *testing.T) {
		cl := clusterNamed(t, g, "grpc")
		dc := demoClient(t, g.addr("unsampled"))
		warmRelay(t, g, dc, 5)
		before, relayed := otlp.count(), cl.Stats.RqRelayed.Load()
		for range 20 {
			if _, err := dc.Echo(context.Background(), &demov1.EchoRequest{Message: "x"}); err != nil {
				t.Fatal(err)
			}
		}
		got, err := getEcho(c, "http://"+g.addr("unsampled")+"/echo")
		if err != nil {
			t.Fatal(err)
		}
		if tp := got.Headers["traceparent"]; !strings.HasSuffix(tp, "-00") || len(tp) != 55 {
			t.Errorf("the HTTP backend got traceparent %q, want one that says not sampled", tp)
		}
		if n := cl.Stats.RqRelayed.Load() - relayed; n != 20 {
			t.Errorf("%d of 20 calls not traced were relayed, want all", n)
		}
		time.Sleep(1500 * time.Millisecond) // past the exporter's batch timeout
		if n := otlp.count() - before; n != 0 {
			t.Errorf("%d spans exported for requests not sampled", n)
		}
	})
}

func equalBytes(a, b []byte) bool {
	return len(a) > 0 && hex.EncodeToString(a) == hex.EncodeToString(b)
}

func describeSpans(spans []receivedSpan) string {
	var parts []string
	for _, s := range spans {
		parts = append(parts, s.service+":"+s.span.GetKind().String()+":"+s.span.GetName())
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
