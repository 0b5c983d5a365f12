package buffer_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	bufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/buffer/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshgate/meshgate/internal/filtertest"
	"github.com/meshgate/meshgate/server/filters/buffer"
	"github.com/meshgate/meshgate/server/httpfilter"
)

const routes = `
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: /stream }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.buffer:
        "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute
        disabled: true
  - match: { prefix: /big }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.buffer:
        "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute
        buffer: { max_request_bytes: 100 }
  - { match: { prefix: / }, route: { cluster: web } }
`

// chunked hides a body's length, as a streaming upload does.
type chunked struct{ io.Reader }

func TestBuffer_Decode(t *testing.T) {
	table := filtertest.Table(t, routes)
	f := filtertest.Filter(t, buffer.Name, &bufferv3.Buffer{MaxRequestBytes: wrapperspb.UInt32(10)})
	tests := []struct {
		name     string
		path     string
		body     string
		hideLen  bool
		grpc     bool
		want     httpfilter.Status
		code     int    // the status answered (0: none)
		grpcCode string // the grpc-status answered
	}{
		{name: "no body", path: "/", want: httpfilter.Continue},
		{name: "a body within the limit", path: "/", body: "0123456789", want: httpfilter.Continue},
		{name: "a declared length over the limit: 413 before reading", path: "/", body: "0123456789x", want: httpfilter.Stop, code: 413},
		{name: "a streamed body over the limit: 413", path: "/", body: "0123456789x", hideLen: true, want: httpfilter.Stop, code: 413},
		{name: "a streamed body within: its length set", path: "/", body: "012", hideLen: true, want: httpfilter.Continue},
		{name: "a gRPC caller over the limit: a status", path: "/", body: "0123456789x", grpc: true, want: httpfilter.Stop, code: 200, grpcCode: "8"},
		{name: "buffering off for the route", path: "/stream", body: strings.Repeat("x", 50), want: httpfilter.Continue},
		{name: "the route's own limit", path: "/big", body: strings.Repeat("x", 50), want: httpfilter.Continue},
		{name: "over the route's own limit", path: "/big", body: strings.Repeat("x", 101), want: httpfilter.Stop, code: 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(tt.body)
			if tt.hideLen {
				body = chunked{body}
			}
			r := httptest.NewRequest(http.MethodPost, tt.path, body)
			if tt.body == "" {
				r = httptest.NewRequest(http.MethodGet, tt.path, nil)
			}
			if tt.grpc {
				r.Header.Set("Content-Type", "application/grpc")
			}
			st, rec := filtertest.Run(f, table, r)
			if st != tt.want {
				t.Fatalf("Decode = %v, want %v", st, tt.want)
			}
			if tt.code != 0 && rec.Code != tt.code {
				t.Errorf("answered %d, want %d", rec.Code, tt.code)
			}
			if got := rec.Header().Get("Grpc-Status"); got != tt.grpcCode {
				t.Errorf("grpc-status %q, want %q", got, tt.grpcCode)
			}
			if st != httpfilter.Continue {
				return
			}
			// What goes on is the whole body, its length known.
			got, err := io.ReadAll(r.Body)
			if err != nil || string(got) != tt.body {
				t.Errorf("the body going on is %q (%v), want %q", got, err, tt.body)
			}
			if tt.body != "" && tt.path == "/" && r.ContentLength != int64(len(tt.body)) {
				t.Errorf("content length %d, want %d", r.ContentLength, len(tt.body))
			}
		})
	}
}

func TestBuffer_Config(t *testing.T) {
	if _, _, err := httpfilterNew(t, &bufferv3.Buffer{}); err == nil {
		t.Error("a buffer without max_request_bytes was built; Envoy requires it")
	}
	for _, bad := range []*bufferv3.BufferPerRoute{
		{},
		{Override: &bufferv3.BufferPerRoute_Disabled{Disabled: false}},
		{Override: &bufferv3.BufferPerRoute_Buffer{Buffer: &bufferv3.Buffer{}}},
	} {
		if _, err := httpfilter.CompilePerFilter(buffer.Name, filtertest.Any(t, bad)); err == nil {
			t.Errorf("per-route config %v compiled", bad)
		}
	}
}

func httpfilterNew(t *testing.T, cfg *bufferv3.Buffer) (httpfilter.Filter, []string, error) {
	t.Helper()
	a, err := anypb.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return httpfilter.New(httpfilter.Lookup(buffer.Name, a), a, httpfilter.Build{Name: buffer.Name})
}
