package h2

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// relayTo serves upstream on a loopback port and returns a Transport with
// a connection to it already up (the relay does not dial) and its address.
func relayTo(t testing.TB, upstream http.Handler) (*Transport, string) {
	t.Helper()
	up := serve(t, &Server{Handler: upstream})
	var d net.Dialer
	tr := &Transport{Dial: func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }}
	t.Cleanup(tr.Close)
	if err := warm(tr, up); err != nil {
		t.Fatal(err)
	}
	return tr, up
}

// warm makes a call to up through tr, which leaves a connection up.
func warm(tr *Transport, up string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+up+"/warm", bytes.NewReader(nil))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// loseUpstream closes tr's connections to up, as a lost upstream does.
func loseUpstream(tr *Transport, up string) {
	tr.mu.Lock()
	conns := append([]*clientConn(nil), tr.conns[up]...)
	tr.mu.Unlock()
	for _, cc := range conns {
		cc.close(errors.New("test: upstream connection lost"))
	}
}

// grpcEcho answers a gRPC call with its request's bytes and status 0.
func grpcEcho(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "application/grpc")
	w.Header().Set("Trailer", "Grpc-Status")
	_, _ = w.Write(b)
	w.Header().Set("Grpc-Status", "0")
}

// relayAll relays every request to up.
func relayAll(tr *Transport, up string) RelayFunc {
	return func(r *http.Request) (*RelayTarget, bool) {
		return &RelayTarget{Transport: tr, Addr: up, Start: func() (RequestHead, func(RelayEnd), bool) {
			out := RequestHead{Method: r.Method, Scheme: "http", Authority: r.Host, Path: r.URL.Path, Header: r.Header}
			return out, nil, true
		}}, true
	}
}

// Streams relayed and reset by the client before their answer, as fast as
// they open (CVE-2023-44487), do not reach the upstream without bound: the
// connection is told to calm down (GOAWAY ENHANCE_YOUR_CALM) and closed.
func TestRelay_RapidReset(t *testing.T) {
	var seen atomic.Int32
	tr, up := relayTo(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/warm" {
			return
		}
		seen.Add(1)
		<-r.Context().Done()
	}))
	addr := serve(t, &Server{Relay: relayAll(tr, up), Handler: http.NotFoundHandler()})
	rc := dialRaw(t, addr)
	var goAway atomic.Value
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = rc.readUntil(10*time.Second, func(f http2.Frame) bool {
			if g, ok := f.(*http2.GoAwayFrame); ok {
				goAway.Store(g.ErrCode)
				return true
			}
			return false
		})
	}()
	const n = 5000
	sent := 0
	for i := range n {
		id := uint32(2*i + 1)
		rc.hbuf.Reset()
		for _, kv := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/slow"}, {"content-type", "application/grpc"}} {
			_ = rc.henc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
		}
		if rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: rc.hbuf.Bytes(), EndHeaders: true}) != nil ||
			rc.fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
			break // the server closed the connection
		}
		sent++
	}
	<-done
	code, _ := goAway.Load().(http2.ErrCode)
	if code != http2.ErrCodeEnhanceYourCalm {
		t.Fatalf("GOAWAY %v after %d rapid resets, want ENHANCE_YOUR_CALM", code, sent)
	}
	if s := seen.Load(); s > 2*maxPrematureResets {
		t.Fatalf("the upstream saw %d streams of %d rapid resets, want at most %d", s, sent, 2*maxPrematureResets)
	}
	t.Logf("%d streams sent, %d reached the upstream", sent, seen.Load())
}

// A client that resets some streams among answered ones is not judged a
// rapid-reset attacker.
func TestRelay_OccasionalResetsAreFine(t *testing.T) {
	tr, up := relayTo(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Trailer", "Grpc-Status")
		_, _ = w.Write([]byte{0, 0, 0, 0, 0})
		w.Header().Set("Grpc-Status", "0")
	}))
	addr := serve(t, &Server{Relay: relayAll(tr, up), Handler: http.NotFoundHandler()})
	rc := dialRaw(t, addr)
	ended := 0
	for i := range 300 {
		id := uint32(2*i + 1)
		rc.hbuf.Reset()
		for _, kv := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/ok"}, {"content-type", "application/grpc"}} {
			_ = rc.henc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
		}
		if err := rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: rc.hbuf.Bytes(), EndHeaders: true, EndStream: i%3 != 0}); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			_ = rc.fr.WriteRSTStream(id, http2.ErrCodeCancel)
			continue
		}
		if err := rc.readUntil(5*time.Second, func(f http2.Frame) bool {
			if g, ok := f.(*http2.GoAwayFrame); ok {
				t.Fatalf("GOAWAY %v after %d answered calls", g.ErrCode, ended)
			}
			return f.Header().StreamID == id && f.Header().Flags.Has(http2.FlagHeadersEndStream) && f.Header().Type == http2.FrameHeaders
		}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		ended++
	}
	if ended != 200 {
		t.Fatalf("%d calls answered, want 200", ended)
	}
}

// Many calls at once share one upstream connection through the relay, each
// answered with its own body (run with -race: the relay is shared by two
// read loops and, at the start, by whoever flushes the upstream writer).
func TestRelay_ConcurrentCalls(t *testing.T) {
	tr, up := relayTo(t, http.HandlerFunc(grpcEcho))
	addr := serve(t, &Server{Relay: relayAll(tr, up), Handler: http.NotFoundHandler()})
	var d net.Dialer
	client := &Transport{Dial: func(ctx context.Context, a string) (net.Conn, error) { return d.DialContext(ctx, "tcp", a) }}
	defer client.Close()
	errs := make(chan error, 64)
	for g := range 64 {
		go func() {
			for i := range 50 {
				want := bytes.Repeat([]byte{byte(g)}, 1+(g*50+i)%3000)
				req, _ := http.NewRequest("POST", "http://"+addr+"/echo", bytes.NewReader(want))
				req.Header.Set("Content-Type", "application/grpc")
				resp, err := client.RoundTrip(req)
				if err != nil {
					errs <- err
					return
				}
				got, err := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if err != nil || !bytes.Equal(got, want) || resp.Trailer.Get("Grpc-Status") != "0" {
					errs <- fmt.Errorf("call %d/%d: %d bytes back of %d, trailer %q, %v", g, i, len(got), len(want), resp.Trailer.Get("Grpc-Status"), err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 64 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// doneCount is a handed-over value whose Done the relay must call once the
// handler returned.
type doneCount struct{ n *atomic.Int32 }

func (d doneCount) Done() { d.n.Add(1) }

// A relayed call whose attempt fails before any of its answer went to the
// client is handed to the handler with its request: after the upstream
// failed it (trailers-only UNAVAILABLE: the body was held), and when the
// upstream connection went away before the request's HEADERS could go (the
// body is read by the handler as it comes). The handler sees the handed-over
// value in its context and the whole body; its Done is called after.
func TestRelay_HandOff(t *testing.T) {
	tests := []struct {
		name      string
		closeConn bool // the upstream connection goes away before the HEADERS
	}{
		{name: "upstream answers UNAVAILABLE"},
		{name: "upstream connection gone before the HEADERS", closeConn: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var upstreamCalls atomic.Int32
			tr, up := relayTo(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body) // as grpc-go does before a unary handler runs
				upstreamCalls.Add(1)
				w.Header().Set("Content-Type", "application/grpc")
				w.Header().Set("Grpc-Status", "14")
			}))
			before := upstreamCalls.Load()
			var done atomic.Int32
			var ends []RelayEnd
			handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if _, ok := HandedOver(r.Context()).(doneCount); !ok {
					http.Error(w, "no handed-over value", http.StatusInternalServerError)
					return
				}
				grpcEcho(w, r)
			})
			relay := func(r *http.Request) (*RelayTarget, bool) {
				return &RelayTarget{Transport: tr, Addr: up, RetryBuffer: 1 << 20,
					Start: func() (RequestHead, func(RelayEnd), bool) {
						if tt.closeConn {
							loseUpstream(tr, up)
						}
						out := RequestHead{Method: r.Method, Scheme: "http", Authority: r.Host, Path: r.URL.Path, Header: r.Header}
						return out, func(e RelayEnd) { ends = append(ends, e) }, true
					},
					Retry: func(RelayEnd) (*http.Request, any, bool) { return r, doneCount{&done}, true },
				}, true
			}
			addr := serve(t, &Server{Relay: relay, Handler: handler})
			var d net.Dialer
			client := &Transport{Dial: func(ctx context.Context, a string) (net.Conn, error) { return d.DialContext(ctx, "tcp", a) }}
			defer client.Close()
			want := bytes.Repeat([]byte("m"), 3000)
			req, _ := http.NewRequest("POST", "http://"+addr+"/svc/Method", bytes.NewReader(want))
			req.Header.Set("Content-Type", "application/grpc")
			resp, err := client.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if err != nil || !bytes.Equal(got, want) || resp.Trailer.Get("Grpc-Status") != "0" {
				t.Fatalf("answer: %d bytes of %d, status %d, grpc-status %q, %v; want the handler's echo",
					len(got), len(want), resp.StatusCode, resp.Trailer.Get("Grpc-Status"), err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for done.Load() == 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if done.Load() != 1 {
				t.Errorf("the handed-over value's Done ran %d times, want once", done.Load())
			}
			if len(ends) != 1 || !ends[0].HandedOver {
				t.Errorf("the attempt ended %+v, want once, handed over", ends)
			}
			wantUpstream := int32(1)
			if tt.closeConn {
				wantUpstream = 0
			}
			if n := upstreamCalls.Load() - before; n != wantUpstream {
				t.Errorf("the upstream saw %d calls, want %d", n, wantUpstream)
			}
		})
	}
}

// A relayed call whose upstream connection is lost while the client is
// still sending its request is handed to the handler too: it reads what
// went so far (held) and then the rest as the client sends it, in order.
func TestRelay_HandOffMidRequest(t *testing.T) {
	first, rest := bytes.Repeat([]byte("a"), 3000), bytes.Repeat([]byte("b"), 5000)
	upstreamRead := make(chan struct{})
	tr, up := relayTo(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/warm" {
			return
		}
		if _, err := io.ReadFull(r.Body, make([]byte, len(first))); err == nil {
			close(upstreamRead)
		}
		_, _ = io.Copy(io.Discard, r.Body) // until the connection goes
	}))
	var done atomic.Int32
	var handedOver atomic.Int32
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := HandedOver(r.Context()).(doneCount); ok {
			handedOver.Add(1)
		}
		grpcEcho(w, r)
	})
	relay := func(r *http.Request) (*RelayTarget, bool) {
		return &RelayTarget{Transport: tr, Addr: up, RetryBuffer: 1 << 20,
			Start: func() (RequestHead, func(RelayEnd), bool) {
				out := RequestHead{Method: r.Method, Scheme: "http", Authority: r.Host, Path: r.URL.Path, Header: r.Header}
				return out, nil, true
			},
			Retry: func(RelayEnd) (*http.Request, any, bool) { return r, doneCount{&done}, true },
		}, true
	}
	addr := serve(t, &Server{Relay: relay, Handler: handler})
	var d net.Dialer
	client := &Transport{Dial: func(ctx context.Context, a string) (net.Conn, error) { return d.DialContext(ctx, "tcp", a) }}
	defer client.Close()
	body, bodyW := io.Pipe()
	req, _ := http.NewRequest("POST", "http://"+addr+"/svc/Method", body)
	req.Header.Set("Content-Type", "application/grpc")
	type answer struct {
		resp *http.Response
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := client.RoundTrip(req)
		answered <- answer{resp, err}
	}()
	if _, err := bodyW.Write(first); err != nil {
		t.Fatal(err)
	}
	select {
	case <-upstreamRead:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream did not get the first part of the request")
	}
	loseUpstream(tr, up)
	if _, err := bodyW.Write(rest); err != nil {
		t.Fatal(err)
	}
	_ = bodyW.Close()
	var a answer
	select {
	case a = <-answered:
	case <-time.After(5 * time.Second):
		t.Fatal("no answer")
	}
	if a.err != nil {
		t.Fatal(a.err)
	}
	got, err := io.ReadAll(a.resp.Body)
	_ = a.resp.Body.Close()
	want := append(append([]byte(nil), first...), rest...)
	if err != nil || !bytes.Equal(got, want) || a.resp.Trailer.Get("Grpc-Status") != "0" {
		t.Fatalf("answer: %d bytes (want %d, equal %v), grpc-status %q, %v; want the handler's echo of the whole request",
			len(got), len(want), bytes.Equal(got, want), a.resp.Trailer.Get("Grpc-Status"), err)
	}
	if handedOver.Load() != 1 {
		t.Errorf("the handler saw %d handed-over calls, want 1", handedOver.Load())
	}
}

// An upstream connection lost after the answer began cannot be retried:
// the client gets what went, then UNAVAILABLE in trailers whose message
// says the answer had started (so a cut call is told from an unreached one).
func TestRelay_UpstreamLostMidAnswer(t *testing.T) {
	sent := make(chan struct{})
	tr, up := relayTo(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/warm" {
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/grpc")
		_, _ = w.Write([]byte{0, 0, 0, 0, 1, 'x'})
		w.(http.Flusher).Flush()
		close(sent)
		<-r.Context().Done() // the trailers never come
	}))
	retried := false
	relay := func(r *http.Request) (*RelayTarget, bool) {
		return &RelayTarget{Transport: tr, Addr: up, RetryBuffer: 1 << 20,
			Start: func() (RequestHead, func(RelayEnd), bool) {
				out := RequestHead{Method: r.Method, Scheme: "http", Authority: r.Host, Path: r.URL.Path, Header: r.Header}
				return out, nil, true
			},
			Retry: func(RelayEnd) (*http.Request, any, bool) { retried = true; return r, nil, true },
		}, true
	}
	addr := serve(t, &Server{Relay: relay, Handler: http.NotFoundHandler()})
	var d net.Dialer
	client := &Transport{Dial: func(ctx context.Context, a string) (net.Conn, error) { return d.DialContext(ctx, "tcp", a) }}
	defer client.Close()
	req, _ := http.NewRequest("POST", "http://"+addr+"/svc/Method", bytes.NewReader([]byte{0, 0, 0, 0, 0}))
	req.Header.Set("Content-Type", "application/grpc")
	resp, err := client.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	select {
	case <-sent:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream did not answer")
	}
	loseUpstream(tr, up)
	got, err := io.ReadAll(resp.Body)
	if err != nil || !bytes.Equal(got, []byte{0, 0, 0, 0, 1, 'x'}) {
		t.Fatalf("body %q, %v; want the message that went", got, err)
	}
	if gs, msg := resp.Trailer.Get("Grpc-Status"), resp.Trailer.Get("Grpc-Message"); gs != "14" || !strings.Contains(msg, "(after the response started)") {
		t.Errorf("trailers grpc-status %q grpc-message %q; want 14 saying the response had started", gs, msg)
	}
	if retried {
		t.Error("a call whose answer began was retried")
	}
}

// The relays' timeouts on one connection share a watch: a call with a
// shorter timeout started after one with a longer one still ends at its
// own, and so does one started after a call that finished before its
// timeout (the watch fires for nothing and is set again).
func TestRelay_TimeoutsShareOneWatch(t *testing.T) {
	tr, up := relayTo(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Answer") != "" || r.Header.Get("X-Timeout") == "" {
			grpcEcho(w, r)
			return
		}
		<-r.Context().Done() // answers nothing: only the gateway's timeout ends the call
	}))
	relay := func(r *http.Request) (*RelayTarget, bool) {
		d, err := time.ParseDuration(r.Header.Get("X-Timeout"))
		if err != nil {
			return nil, false
		}
		tgt, _ := relayAll(tr, up)(r)
		tgt.Timeout = d
		return tgt, true
	}
	addr := serve(t, &Server{Relay: relay, Handler: http.NotFoundHandler()})
	var d net.Dialer
	client := &Transport{Dial: func(ctx context.Context, a string) (net.Conn, error) { return d.DialContext(ctx, "tcp", a) }}
	defer client.Close()
	type result struct {
		status  string
		elapsed time.Duration
		err     error
	}
	call := func(timeout string, answer bool) <-chan result {
		out := make(chan result, 1)
		req, _ := http.NewRequest("POST", "http://"+addr+"/call", bytes.NewReader([]byte{0, 0, 0, 0, 0}))
		req.Header.Set("Content-Type", "application/grpc")
		req.Header.Set("X-Timeout", timeout)
		if answer {
			req.Header.Set("X-Answer", "1")
		}
		start := time.Now()
		go func() {
			resp, err := client.RoundTrip(req)
			if err != nil {
				out <- result{err: err}
				return
			}
			_, _ = io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			out <- result{status: resp.Header.Get("Grpc-Status") + resp.Trailer.Get("Grpc-Status"), elapsed: time.Since(start)}
		}()
		return out
	}
	check := func(name string, r result, status string, atLeast, below time.Duration) {
		t.Helper()
		if r.err != nil || r.status != status || r.elapsed < atLeast || r.elapsed >= below {
			t.Errorf("%s: grpc-status %q after %v (%v), want %q after %v to %v", name, r.status, r.elapsed, r.err, status, atLeast, below)
		}
	}
	long := call("3s", false)
	time.Sleep(100 * time.Millisecond) // the long call's relay has set the watch
	short, middle := call("200ms", false), call("400ms", false)
	check("200ms call after a 3s one", <-short, "4", 200*time.Millisecond, 2500*time.Millisecond)
	check("400ms call after a 3s one", <-middle, "4", 400*time.Millisecond, 2500*time.Millisecond)
	check("answered call", <-call("150ms", true), "0", 0, 150*time.Millisecond)
	check("300ms call after a call answered before its 150ms", <-call("300ms", false), "4", 300*time.Millisecond, 2500*time.Millisecond)
	check("3s call", <-long, "4", 3*time.Second, 6*time.Second)
}
