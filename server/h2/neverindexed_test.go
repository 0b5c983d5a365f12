package h2

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Request fields the client sends as literals never indexed go upstream
// never indexed too (RFC 7541 section 7.1.3: an intermediary must keep
// the representation), on the relay and through a handler that forwards
// with the Transport; the other fields may be indexed. Each field is sent
// on two requests, the second when the upstream's table could index it.
func TestNeverIndexedFieldsStaySo(t *testing.T) {
	for _, path := range []string{"relayed", "handler"} {
		t.Run(path, func(t *testing.T) {
			var mu sync.Mutex
			seen := map[string][]bool{} // field name -> Sensitive, per request
			up, _ := rawUpstream(t, func(fr *http2.Framer, enc func(...string) []byte, req *http2.MetaHeadersFrame) {
				id := req.StreamID
				mu.Lock()
				for _, hf := range req.RegularFields() {
					if hf.Name == "x-api-key" || hf.Name == "x-plain" || hf.Name == "authorization" {
						seen[hf.Name] = append(seen[hf.Name], hf.Sensitive)
					}
				}
				mu.Unlock()
				_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, EndHeaders: true, EndStream: true,
					BlockFragment: enc(":status", "200", "content-type", "application/grpc", "grpc-status", "0")})
			})
			var d net.Dialer
			tr := &Transport{Dial: func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }}
			t.Cleanup(tr.Close)
			if err := warm(tr, up); err != nil {
				t.Fatal(err)
			}
			s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				out := r.Clone(r.Context())
				out.URL.Scheme, out.URL.Host, out.RequestURI = "http", up, ""
				resp, err := tr.RoundTrip(out)
				if err != nil {
					w.WriteHeader(http.StatusBadGateway)
					return
				}
				resp.Body.Close()
				w.WriteHeader(resp.StatusCode)
			})}
			if path == "relayed" {
				s.Relay = relayAll(tr, up)
			}
			addr := serve(t, s)
			rc := dialRaw(t, addr)
			for id := uint32(1); id <= 3; id += 2 {
				rc.hbuf.Reset()
				for _, hf := range []hpack.HeaderField{
					{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"}, {Name: ":authority", Value: "x"},
					{Name: ":path", Value: "/svc/Method"}, {Name: "content-type", Value: "application/grpc"},
					{Name: "x-api-key", Value: "k-123", Sensitive: true}, {Name: "x-plain", Value: "p-123"},
					{Name: "authorization", Value: "Bearer t"},
				} {
					_ = rc.henc.WriteField(hf)
				}
				if err := rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, EndHeaders: true, EndStream: true, BlockFragment: rc.hbuf.Bytes()}); err != nil {
					t.Fatal(err)
				}
				if err := rc.readUntil(5*time.Second, func(f http2.Frame) bool {
					h, ok := f.(*http2.MetaHeadersFrame)
					return ok && h.StreamID == id && h.StreamEnded()
				}); err != nil {
					t.Fatal(err)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			for name, want := range map[string]bool{"x-api-key": true, "authorization": true, "x-plain": false} {
				got := seen[name]
				if len(got) != 2 {
					t.Fatalf("%s reached the upstream %d times, want 2", name, len(got))
				}
				for i, sensitive := range got {
					if sensitive != want {
						t.Errorf("request %d: %s never indexed %v, want %v", i+1, name, sensitive, want)
					}
				}
			}
		})
	}
}

// Response fields and trailers the upstream sends never indexed reach the
// client never indexed: on the relay, whether the route edits the
// response's headers (they go through a header map then) or not, and
// through a handler that forwards with the Transport and copies the
// response (its header maps drop the flag; the stream is told aside).
func TestNeverIndexedResponseFields(t *testing.T) {
	for _, path := range []string{"relayed", "relayed, headers edited", "handler"} {
		t.Run(path, func(t *testing.T) {
			up, _ := rawUpstream(t, func(fr *http2.Framer, enc func(...string) []byte, f *http2.MetaHeadersFrame) {
				id := f.StreamID
				block := func(fields ...hpack.HeaderField) []byte {
					var b bytes.Buffer
					e := hpack.NewEncoder(&b)
					for _, hf := range fields {
						_ = e.WriteField(hf)
					}
					return b.Bytes()
				}
				_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, EndHeaders: true, BlockFragment: block(
					hpack.HeaderField{Name: ":status", Value: "200"}, hpack.HeaderField{Name: "content-type", Value: "application/grpc"},
					hpack.HeaderField{Name: "x-secret", Value: "s-1", Sensitive: true}, hpack.HeaderField{Name: "x-plain", Value: "p-1"})})
				_ = fr.WriteData(id, false, []byte{0, 0, 0, 0, 0})
				_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, EndHeaders: true, EndStream: true, BlockFragment: block(
					hpack.HeaderField{Name: "grpc-status", Value: "0"}, hpack.HeaderField{Name: "x-secret-trailer", Value: "t-1", Sensitive: true})})
			})
			var d net.Dialer
			tr := &Transport{Dial: func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }}
			t.Cleanup(tr.Close)
			if err := warm(tr, up); err != nil {
				t.Fatal(err)
			}
			s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				out := r.Clone(r.Context())
				out.URL.Scheme, out.URL.Host, out.RequestURI = "http", up, ""
				resp, err := tr.RoundTrip(out)
				if err != nil {
					w.WriteHeader(http.StatusBadGateway)
					return
				}
				defer resp.Body.Close()
				for k, vs := range resp.Header {
					w.Header()[k] = vs
				}
				w.WriteHeader(resp.StatusCode)
				_, _ = io.Copy(w, resp.Body)
				for k, vs := range resp.Trailer {
					w.Header()[http.TrailerPrefix+k] = vs
				}
			})}
			if path != "handler" {
				s.Relay = func(r *http.Request) (*RelayTarget, bool) {
					tgt, ok := relayAll(tr, up)(r)
					if path == "relayed, headers edited" {
						tgt.EditResponse = func(h http.Header) { h.Set("X-Edited", "1") }
					}
					return tgt, ok
				}
			}
			addr := serve(t, s)
			rc := dialRaw(t, addr)
			rc.hbuf.Reset()
			for _, kv := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/svc/M"}, {"content-type", "application/grpc"}} {
				_ = rc.henc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
			}
			_ = rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true, EndStream: true, BlockFragment: rc.hbuf.Bytes()})
			var got []hpack.HeaderField
			if err := rc.readUntil(5*time.Second, func(f http2.Frame) bool {
				h, ok := f.(*http2.MetaHeadersFrame)
				if ok && h.StreamID == 1 {
					got = append(got, h.Fields...)
				}
				return ok && h.StreamEnded()
			}); err != nil {
				t.Fatal(err)
			}
			want := map[string]bool{"x-secret": true, "x-plain": false, "x-secret-trailer": true, "grpc-status": false}
			if path == "relayed, headers edited" {
				want["x-edited"] = false
			}
			for name, sensitive := range want {
				found := false
				for _, hf := range got {
					if hf.Name == name {
						found = true
						if hf.Sensitive != sensitive {
							t.Errorf("%s never indexed %v, want %v", name, hf.Sensitive, sensitive)
						}
					}
				}
				if !found {
					t.Errorf("%s did not reach the client (got %v)", name, got)
				}
			}
		})
	}
}

// The sink keeps each name once, and a list it published is never changed
// (a handler may be reading it while the Transport adds).
func TestNeverIndexedSink(t *testing.T) {
	var s neverIndexedSink
	if s.has("x-a") {
		t.Fatal("an empty sink has x-a")
	}
	s.add([]string{"x-a", "x-b"})
	first := s.names.Load()
	for _, add := range [][]string{{"x-b", "x-c"}, {"x-a"}, {"x-c", "x-c", "x-d"}} {
		s.add(add)
	}
	if got, want := *s.names.Load(), []string{"x-a", "x-b", "x-c", "x-d"}; !slices.Equal(got, want) {
		t.Errorf("names %v, want %v", got, want)
	}
	if got := *first; !slices.Equal(got, []string{"x-a", "x-b"}) {
		t.Errorf("the first list published changed to %v", got)
	}
	for name, want := range map[string]bool{"x-a": true, "x-d": true, "x-e": false, "X-A": false} {
		if s.has(name) != want {
			t.Errorf("has(%q) = %v, want %v", name, !want, want)
		}
	}
}
