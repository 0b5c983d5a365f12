package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"golang.org/x/net/http2"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/server/h2"
)

// limitsGateway serves one listener with the given friendly listener
// fields in front of an HTTP backend, and returns its address.
func limitsGateway(t *testing.T, fields string) string {
	t.Helper()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // the whole request first
		io.WriteString(w, "ok")
	}))
	t.Cleanup(backend.Close)
	srv := New(Options{})
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	loadSet(t, config.NewStore(srv), `
listeners:
  - name: l
    address: "127.0.0.1:0"
    `+fields+`
    virtual_hosts: [{routes: [{match: {prefix: /}, cluster: svc}]}]
clusters: [{name: svc, endpoints: ["`+strings.TrimPrefix(backend.URL, "http://")+`"]}]
`)
	return srv.ListenerAddr("l")
}

// get sends a GET with extra header fields on conn and reads the answer.
func get(t *testing.T, conn net.Conn, br *bufio.Reader, headers int) *http.Response {
	t.Helper()
	var b strings.Builder
	b.WriteString("GET / HTTP/1.1\r\nHost: x\r\n")
	for i := range headers {
		fmt.Fprintf(&b, "X-H%d: v\r\n", i)
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func dialGateway(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

// Each connection limit the friendly listener takes (Envoy's HCM fields
// underneath), on HTTP/1.1 and HTTP/2.
func TestListener_ConnectionLimits(t *testing.T) {
	t.Run("max_requests_per_connection, HTTP/1.1", func(t *testing.T) {
		c, br := dialGateway(t, limitsGateway(t, "max_requests_per_connection: 2"))
		if r := get(t, c, br, 0); r.StatusCode != 200 || r.Close {
			t.Errorf("first request: %d, close %v; want 200 kept open", r.StatusCode, r.Close)
		}
		if r := get(t, c, br, 0); r.StatusCode != 200 || !r.Close {
			t.Errorf("second request: %d, close %v; want 200 with Connection: close", r.StatusCode, r.Close)
		}
		if _, err := br.ReadByte(); err != io.EOF {
			t.Errorf("after the last request: %v, want the connection closed (EOF)", err)
		}
	})
	t.Run("max_connection_duration, HTTP/1.1", func(t *testing.T) {
		c, br := dialGateway(t, limitsGateway(t, "max_connection_duration: 300ms"))
		if r := get(t, c, br, 0); r.Close {
			t.Error("a request at once was told to close")
		}
		time.Sleep(400 * time.Millisecond)
		if r := get(t, c, br, 0); r.StatusCode != 200 || !r.Close {
			t.Errorf("a request after the duration: %d, close %v; want 200 with Connection: close", r.StatusCode, r.Close)
		}
	})
	t.Run("max_headers_count, HTTP/1.1", func(t *testing.T) {
		addr := limitsGateway(t, "max_headers_count: 5")
		for _, tc := range []struct{ fields, want int }{{5, 200}, {6, 431}} {
			c, br := dialGateway(t, addr)
			if r := get(t, c, br, tc.fields); r.StatusCode != tc.want {
				t.Errorf("%d header fields (limit 5): %d, want %d", tc.fields, r.StatusCode, tc.want)
			}
		}
	})
	t.Run("max_headers_count defaults to Envoy's 100", func(t *testing.T) {
		addr := limitsGateway(t, "")
		for _, tc := range []struct{ fields, want int }{{100, 200}, {101, 431}} {
			c, br := dialGateway(t, addr)
			if r := get(t, c, br, tc.fields); r.StatusCode != tc.want {
				t.Errorf("%d header fields: %d, want %d", tc.fields, r.StatusCode, tc.want)
			}
		}
	})
	t.Run("request_headers_timeout, HTTP/1.1", func(t *testing.T) {
		c, br := dialGateway(t, limitsGateway(t, "request_headers_timeout: 200ms"))
		start := time.Now()
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n"); err != nil { // never finished
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := io.Copy(io.Discard, br)
		if d := time.Since(start); err != nil || d > 2*time.Second {
			t.Errorf("headers never finished: the connection ended after %v (%v); want it closed at ~200ms", d, err)
		}
	})
	t.Run("request_timeout", func(t *testing.T) {
		addr := limitsGateway(t, "request_timeout: 300ms")
		for _, tc := range []struct {
			name  string
			stall bool
			want  int
		}{{"whole request in time", false, 200}, {"body stalls", true, 408}} {
			c, br := dialGateway(t, addr)
			body := "0123456789"
			if tc.stall {
				body = body[:5] // of the 10 declared
			}
			if _, err := io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"+body); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			start := time.Now()
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("%s: %d after %v, want %d", tc.name, resp.StatusCode, time.Since(start), tc.want)
			}
		}
	})
	t.Run("max_concurrent_streams and max_requests_per_connection, HTTP/2", func(t *testing.T) {
		c, _ := dialGateway(t, limitsGateway(t, "max_concurrent_streams: 3\n    max_requests_per_connection: 1"))
		fr := http2.NewFramer(c, c)
		if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
			t.Fatal(err)
		}
		_ = fr.WriteSettings()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		sf, ok := f.(*http2.SettingsFrame)
		if !ok {
			t.Fatalf("first frame %v, want SETTINGS", f)
		}
		if v, _ := sf.Value(http2.SettingMaxConcurrentStreams); v != 3 {
			t.Errorf("MAX_CONCURRENT_STREAMS %d, want 3", v)
		}
		// The one request allowed: a GOAWAY naming it follows.
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndStream: true, EndHeaders: true,
			BlockFragment: []byte{0x82, 0x86, 0x84, 0x41, 0x01, 'x'}}) // GET http / :authority x (HPACK)
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("no GOAWAY after the one request allowed: %v", err)
			}
			if g, ok := f.(*http2.GoAwayFrame); ok {
				if g.LastStreamID != 1 {
					t.Errorf("GOAWAY names stream %d, want 1", g.LastStreamID)
				}
				break
			}
		}
	})
}

// compileConnLimits reads Envoy's fields, with Envoy's defaults, and fails
// the listener on a value Envoy's validation refuses.
func TestCompileConnLimits(t *testing.T) {
	tests := []struct {
		name    string
		hcm     *hcmv3.HttpConnectionManager
		buffers uint32 // the listener's per_connection_buffer_limit_bytes
		want    connLimits
		wantErr string
	}{
		{name: "defaults", hcm: &hcmv3.HttpConnectionManager{},
			want: connLimits{headersTimeout: defaultHeadersTimeout, h2: h2.ConnSettings{MaxHeaders: 100}}},
		{name: "every field", hcm: &hcmv3.HttpConnectionManager{
			RequestHeadersTimeout: durationpb.New(time.Second),
			CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{MaxHeadersCount: wrapperspb.UInt32(7),
				MaxRequestsPerConnection: wrapperspb.UInt32(9), MaxConnectionDuration: durationpb.New(time.Minute)},
			Http2ProtocolOptions: &corev3.Http2ProtocolOptions{MaxConcurrentStreams: wrapperspb.UInt32(5),
				InitialStreamWindowSize: wrapperspb.UInt32(65535), InitialConnectionWindowSize: wrapperspb.UInt32(1 << 20)},
		}, want: connLimits{headersTimeout: time.Second, h2: h2.ConnSettings{MaxHeaders: 7, MaxRequests: 9, MaxDuration: time.Minute,
			MaxConcurrentStreams: 5, StreamWindow: 65535, ConnWindow: 1 << 20}}},
		{name: "per_connection_buffer_limit_bytes caps the windows", hcm: &hcmv3.HttpConnectionManager{},
			buffers: 256 << 10,
			want:    connLimits{headersTimeout: defaultHeadersTimeout, h2: h2.ConnSettings{MaxHeaders: 100, StreamWindow: 256 << 10, ConnWindow: 256 << 10}}},
		{name: "per_connection_buffer_limit_bytes under HTTP/2's minimum", hcm: &hcmv3.HttpConnectionManager{},
			buffers: 1000,
			want:    connLimits{headersTimeout: defaultHeadersTimeout, h2: h2.ConnSettings{MaxHeaders: 100, StreamWindow: 65535, ConnWindow: 65535}}},
		{name: "max_headers_count 0", hcm: &hcmv3.HttpConnectionManager{CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{MaxHeadersCount: wrapperspb.UInt32(0)}},
			wantErr: "max_headers_count"},
		{name: "max_concurrent_streams 0", hcm: &hcmv3.HttpConnectionManager{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{MaxConcurrentStreams: wrapperspb.UInt32(0)}},
			wantErr: "max_concurrent_streams"},
		{name: "window under 65535", hcm: &hcmv3.HttpConnectionManager{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{InitialStreamWindowSize: wrapperspb.UInt32(1000)}},
			wantErr: "initial_stream_window_size"},
		{name: "window over 2^31-1", hcm: &hcmv3.HttpConnectionManager{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{InitialConnectionWindowSize: wrapperspb.UInt32(1 << 31)}},
			wantErr: "initial_connection_window_size"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := compileConnLimits(tc.hcm)
			if tc.buffers > 0 {
				got.capBuffers(tc.buffers)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}
