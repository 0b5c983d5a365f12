package tracing

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"testing"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func testTracing(t *testing.T, sampling float64) (*Tracing, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	p := newProvider(sdktrace.WithSyncer(exp), "test")
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	return New(p, Options{RandomSampling: sampling}), exp
}

func TestDecide(t *testing.T) {
	const (
		traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
		spanID  = "00f067aa0ba902b7"
	)
	tests := []struct {
		name        string
		sampling    float64
		header      map[string]string
		wantSampled bool
		wantParent  string // trace id of the parent, "" for none
		wantB3      bool
	}{
		{name: "no context, 100%", sampling: 100, wantSampled: true},
		{name: "no context, 0%", sampling: 0, wantSampled: false},
		{name: "traceparent sampled wins over 0%", sampling: 0,
			header:      map[string]string{"Traceparent": "00-" + traceID + "-" + spanID + "-01"},
			wantSampled: true, wantParent: traceID},
		{name: "traceparent not sampled wins over 100%", sampling: 100,
			header:      map[string]string{"Traceparent": "00-" + traceID + "-" + spanID + "-00"},
			wantSampled: false, wantParent: traceID},
		{name: "B3 multi-header sampled", sampling: 0,
			header:      map[string]string{"X-B3-Traceid": traceID, "X-B3-Spanid": spanID, "X-B3-Sampled": "1"},
			wantSampled: true, wantParent: traceID, wantB3: true},
		{name: "B3 single header not sampled", sampling: 100,
			header:      map[string]string{"B3": traceID + "-" + spanID + "-0"},
			wantSampled: false, wantParent: traceID, wantB3: true},
		{name: "a malformed traceparent is no context", sampling: 100,
			header:      map[string]string{"Traceparent": "garbage"},
			wantSampled: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, _ := testTracing(t, tt.sampling)
			h := http.Header{}
			for k, v := range tt.header {
				h.Set(k, v)
			}
			d := tr.Decide(h, "6c2b7e1e-0000-4000-8000-000000000000")
			if d.Sampled != tt.wantSampled {
				t.Errorf("sampled %v, want %v", d.Sampled, tt.wantSampled)
			}
			got := ""
			if d.Parent.IsValid() {
				got = d.Parent.TraceID().String()
			}
			if got != tt.wantParent {
				t.Errorf("parent trace %q, want %q", got, tt.wantParent)
			}
			if d.B3 != tt.wantB3 {
				t.Errorf("B3 %v, want %v", d.B3, tt.wantB3)
			}
		})
	}
}

// Random sampling goes by the request id: the same id always gets the
// same decision, and over many ids the share is near the percentage.
func TestDecide_SamplingByRequestID(t *testing.T) {
	tr, _ := testTracing(t, 10)
	sampled := 0
	const n = 20000
	for i := range n {
		id := "req-" + strconv.Itoa(i)
		d1, d2 := tr.Decide(http.Header{}, id), tr.Decide(http.Header{}, id)
		if d1.Sampled != d2.Sampled {
			t.Fatalf("request id %q decided %v then %v", id, d1.Sampled, d2.Sampled)
		}
		if d1.Sampled {
			sampled++
		}
	}
	if share := float64(sampled) / n; share < 0.08 || share > 0.12 {
		t.Errorf("%.3f of requests sampled at 10%%", share)
	}
}

func TestMarkUnsampled(t *testing.T) {
	h := http.Header{}
	MarkUnsampled(h)
	v := h.Get("Traceparent")
	if !regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-00$`).MatchString(v) {
		t.Fatalf("traceparent %q, want a W3C one with the sampled flag off", v)
	}
	sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), propagation.HeaderCarrier(h)))
	if !sc.IsValid() || sc.IsSampled() {
		t.Errorf("the W3C propagator reads %v (valid %v, sampled %v), want valid and not sampled", v, sc.IsValid(), sc.IsSampled())
	}
	keep := http.Header{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}
	MarkUnsampled(keep)
	if got := keep.Get("Traceparent"); got != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
		t.Errorf("a request's own traceparent became %q", got)
	}
}

// A traced request: its server span continues the caller's trace, each
// attempt is a client span under it whose context goes upstream (W3C, and
// B3 for a request that came with B3), and failures mark spans errors.
func TestSpans(t *testing.T) {
	tr, exp := testTracing(t, 100)
	in := http.Header{"X-B3-Traceid": {"4bf92f3577b34da6a3ce929d0e0e4736"}, "X-B3-Spanid": {"00f067aa0ba902b7"}, "X-B3-Sampled": {"1"}}
	r, _ := http.NewRequest("POST", "http://svc.example/pkg.Svc/Method", nil)
	r.Header = in
	d := tr.Decide(in, "id-1")
	ctx, span := tr.StartRequest(context.Background(), d, "svc.example/pkg.Svc/Method", r, "id-1")

	first := http.Header{}
	a1, ok := StartAttempt(ctx, "c", "10.0.0.1:80", propagation.HeaderCarrier(first))
	if !ok {
		t.Fatal("no attempt span under a traced request")
	}
	EndAttempt(a1, 0, -1, errors.New("connection refused"))
	second := http.Header{}
	a2, _ := StartAttempt(ctx, "c", "10.0.0.2:80", propagation.HeaderCarrier(second))
	EndAttempt(a2, 200, 0, nil)
	EndRequest(span, 200, 0, "c", "")

	if _, ok := StartAttempt(context.Background(), "c", "h", propagation.HeaderCarrier(http.Header{})); ok {
		t.Error("an attempt span was made for a request not traced")
	}
	spans := exp.GetSpans()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want 3 (two attempts, one request)", len(spans))
	}
	server := spans[2]
	if server.SpanKind != trace.SpanKindServer || server.Parent.SpanID().String() != "00f067aa0ba902b7" ||
		server.SpanContext.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("request span %v parent %v trace %v, want a server span under the caller's", server.SpanKind, server.Parent.SpanID(), server.SpanContext.TraceID())
	}
	for i, hdr := range []http.Header{first, second} {
		att := spans[i]
		if att.Name != "router c egress" {
			t.Errorf("attempt %d is named %q, want Envoy's egress span name", i, att.Name)
		}
		if att.SpanKind != trace.SpanKindClient || att.Parent.SpanID() != server.SpanContext.SpanID() {
			t.Errorf("attempt %d: kind %v parent %v, want a client span under the request's", i, att.SpanKind, att.Parent.SpanID())
		}
		want := "00-4bf92f3577b34da6a3ce929d0e0e4736-" + att.SpanContext.SpanID().String() + "-01"
		if got := hdr.Get("Traceparent"); got != want {
			t.Errorf("attempt %d sent traceparent %q, want %q", i, got, want)
		}
		if got := hdr.Get("X-B3-Spanid"); got != att.SpanContext.SpanID().String() {
			t.Errorf("attempt %d sent x-b3-spanid %q, want its span's (the request came with B3)", i, got)
		}
	}
	if spans[0].Status.Code != codes.Error || spans[1].Status.Code == codes.Error || server.Status.Code == codes.Error {
		t.Errorf("statuses %v %v %v, want the refused attempt alone an error", spans[0].Status, spans[1].Status, server.Status)
	}
}

// With W3C alone coming in, B3 does not go out.
func TestSpans_W3COnly(t *testing.T) {
	tr, _ := testTracing(t, 100)
	r, _ := http.NewRequest("GET", "http://x/", nil)
	ctx, span := tr.StartRequest(context.Background(), tr.Decide(r.Header, "id"), "x/", r, "id")
	h := http.Header{}
	a, _ := StartAttempt(ctx, "c", "h", propagation.HeaderCarrier(h))
	EndAttempt(a, 200, -1, nil)
	EndRequest(span, 200, -1, "c", "")
	if h.Get("Traceparent") == "" || h.Get("X-B3-Traceid") != "" || h.Get("B3") != "" {
		t.Errorf("upstream headers %v, want traceparent alone", h)
	}
}

// What a request not traced pays when tracing is on: the decision and the
// "not sampled" traceparent (side by side with the decision alone).
func BenchmarkUnsampledRequest(b *testing.B) {
	exp := tracetest.NewInMemoryExporter()
	tr := New(newProvider(sdktrace.WithSyncer(exp), "bench"), Options{RandomSampling: 0})
	const id = "6c2b7e1e-4f1a-4b7e-9d3c-2f0e8a1b5c7d"
	b.Run("decide", func(b *testing.B) {
		h := http.Header{"Content-Type": {"application/grpc"}, "X-Request-Id": {id}}
		b.ReportAllocs()
		for b.Loop() {
			_ = tr.Decide(h, id)
		}
	})
	b.Run("decide and mark", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			h := http.Header{"Content-Type": {"application/grpc"}, "X-Request-Id": {id}}
			if !tr.Decide(h, id).Sampled {
				MarkUnsampled(h)
			}
		}
	})
}

// Trace headers are the client's bytes: whatever they hold, the decision
// is made without a panic, a parent is only kept when valid, and a traced
// request's attempts write a well-formed traceparent.
func FuzzDecide(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "", "", "")
	f.Add("", "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1", "", "")
	f.Add("", "", "4bf92f3577b34da6a3ce929d0e0e4736", "1")
	f.Add("ff-zz", "d", "x", "true")
	exp := tracetest.NewInMemoryExporter()
	tr := New(newProvider(sdktrace.WithSyncer(exp), "fuzz"), Options{RandomSampling: 100})
	valid := regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$`)
	f.Fuzz(func(t *testing.T, traceparent, b3, b3TraceID, b3Sampled string) {
		h := http.Header{}
		for k, v := range map[string]string{"Traceparent": traceparent, "B3": b3, "X-B3-Traceid": b3TraceID, "X-B3-Sampled": b3Sampled} {
			if v != "" {
				h.Set(k, v)
			}
		}
		d := tr.Decide(h, "id")
		if d.Parent.IsValid() != (d.Parent.TraceID().IsValid() && d.Parent.SpanID().IsValid()) {
			t.Fatalf("a parent half valid: %v", d.Parent)
		}
		if !d.Sampled {
			MarkUnsampled(h)
			return
		}
		r, _ := http.NewRequest("GET", "http://x/", nil)
		ctx, span := tr.StartRequest(context.Background(), d, "x/", r, "id")
		out := http.Header{}
		a, _ := StartAttempt(ctx, "c", "h", propagation.HeaderCarrier(out))
		EndAttempt(a, 200, -1, nil)
		EndRequest(span, 200, -1, "c", "")
		if got := out.Get("Traceparent"); !valid.MatchString(got) {
			t.Fatalf("the attempt wrote traceparent %q", got)
		}
		exp.Reset()
	})
}
