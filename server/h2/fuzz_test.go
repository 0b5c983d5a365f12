package h2

import (
	"bytes"
	"context"
	"errors"
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

// frames builds seed input: frames written by a framer.
func frames(write func(fr *http2.Framer, enc func(...string) []byte)) []byte {
	var buf, hbuf bytes.Buffer
	fr := http2.NewFramer(&buf, nil)
	henc := hpack.NewEncoder(&hbuf)
	enc := func(kv ...string) []byte {
		hbuf.Reset()
		for i := 0; i+1 < len(kv); i += 2 {
			_ = henc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
		}
		return append([]byte(nil), hbuf.Bytes()...)
	}
	write(fr, enc)
	return buf.Bytes()
}

// FuzzServerConn: whatever a client sends after the preface, the server
// neither panics nor hangs: the connection ends once the client does, and
// every handler returns.
// serveClientBytes serves a connection whose client sends the preface,
// then data, then leaves; ServeConn must return soon after.
func serveClientBytes(t *testing.T, s *Server, data []byte) {
	t.Helper()
	client, srv := net.Pipe()
	done := make(chan struct{})
	go func() {
		s.ServeConn(srv)
		close(done)
	}()
	go func() { _, _ = io.Copy(io.Discard, client) }()
	_ = client.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = client.Write([]byte(http2.ClientPreface))
	_, _ = client.Write(data)
	time.Sleep(time.Millisecond)
	client.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("ServeConn did not return after the client left (input %x)", data)
	}
}

func FuzzServerConn(f *testing.F) {
	req := func(fr *http2.Framer, enc func(...string) []byte) {
		_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20})
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true,
			BlockFragment: enc(":method", "POST", ":scheme", "http", ":authority", "x", ":path", "/a", "content-type", "application/grpc", "te", "trailers")})
		_ = fr.WriteData(1, false, []byte{0, 0, 0, 0, 2, 8, 1})
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true, EndStream: true, BlockFragment: enc("x-trailer", "1")})
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, EndHeaders: true, EndStream: true,
			BlockFragment: enc(":method", "GET", ":scheme", "http", ":path", "/b", "cookie", "a=1", "cookie", "b=2")})
		_ = fr.WriteRSTStream(3, http2.ErrCodeCancel)
		_ = fr.WritePing(false, [8]byte{1})
		_ = fr.WriteWindowUpdate(0, 1<<20)
		_ = fr.WriteGoAway(3, http2.ErrCodeNo, nil)
	}
	f.Add(frames(req))
	f.Add(frames(func(fr *http2.Framer, enc func(...string) []byte) {
		_ = fr.WriteSettings()
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: enc(":method", "GET")})
		_ = fr.WriteContinuation(1, true, enc(":path", "/", ":scheme", "http"))
		_ = fr.WriteData(1, true, bytes.Repeat([]byte("x"), 100))
		_ = fr.WriteData(2, true, nil)
	}))
	f.Add(frames(func(fr *http2.Framer, enc func(...string) []byte) { _ = fr.WriteData(1, true, nil) }))
	f.Add([]byte{0, 0, 0, 4, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		s := &Server{WriteTimeout: 200 * time.Millisecond, MaxHeaderBytes: 4096, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			w.Header().Set("Trailer", "X-N")
			_, _ = w.Write(b)
			w.Header().Set("X-N", "1")
		})}
		serveClientBytes(t, s, data)
	})
}

// FuzzClientConn: whatever a server answers after its SETTINGS, the
// client neither panics nor hangs: RoundTrip and the body's read return.
func FuzzClientConn(f *testing.F) {
	f.Add(frames(func(fr *http2.Framer, enc func(...string) []byte) {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true, BlockFragment: enc(":status", "200", "content-type", "application/grpc")})
		_ = fr.WriteData(1, false, []byte{0, 0, 0, 0, 0})
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true, EndStream: true, BlockFragment: enc("grpc-status", "0")})
	}))
	f.Add(frames(func(fr *http2.Framer, enc func(...string) []byte) {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true, BlockFragment: enc(":status", "100")})
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true, EndStream: true, BlockFragment: enc(":status", "204")})
		_ = fr.WriteGoAway(1, http2.ErrCodeNo, nil)
		_ = fr.WritePushPromise(http2.PushPromiseParam{StreamID: 1, PromiseID: 2, EndHeaders: true})
	}))
	f.Add(frames(func(fr *http2.Framer, enc func(...string) []byte) {
		_ = fr.WriteRSTStream(1, http2.ErrCodeRefusedStream)
		_ = fr.WriteData(1, true, []byte("late"))
		_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 31})
	}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		client, srv := net.Pipe()
		go func() {
			defer srv.Close()
			_ = srv.SetDeadline(time.Now().Add(2 * time.Second))
			go func() { _, _ = io.Copy(io.Discard, srv) }()
			fr := http2.NewFramer(srv, nil)
			if fr.WriteSettings() != nil {
				return
			}
			_, _ = srv.Write(data)
			time.Sleep(5 * time.Millisecond)
		}()
		tr := &Transport{Dial: func(context.Context, string) (net.Conn, error) { return client, nil }}
		defer tr.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://fuzz/x", bytes.NewReader([]byte("body")))
		done := make(chan struct{})
		go func() {
			defer close(done)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("RoundTrip or its body hung (input %x)", data)
		}
	})
}

// FuzzRelay feeds arbitrary client frames to a server that relays every
// request to an upstream (meshgate's own server, answering with an echo):
// no panic, ServeConn returns once the client leaves, and every relayed
// stream is forgotten on the upstream connection (nothing leaks).
func FuzzRelay(f *testing.F) {
	f.Add(frames(func(fr *http2.Framer, enc func(...string) []byte) {
		_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100})
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true,
			BlockFragment: enc(":method", "POST", ":scheme", "http", ":authority", "x", ":path", "/a", "content-type", "application/grpc", "te", "trailers")})
		_ = fr.WriteData(1, false, bytes.Repeat([]byte{1}, 300))
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true, EndStream: true, BlockFragment: enc("x-trailer", "1")})
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, EndHeaders: true,
			BlockFragment: enc(":method", "POST", ":scheme", "http", ":path", "/b", "content-type", "application/grpc")})
		_ = fr.WriteWindowUpdate(1, 1000)
		_ = fr.WriteRSTStream(3, http2.ErrCodeCancel)
		_ = fr.WriteWindowUpdate(0, 1<<20)
		_ = fr.WriteGoAway(3, http2.ErrCodeNo, nil)
	}))
	f.Add(frames(func(fr *http2.Framer, enc func(...string) []byte) {
		_ = fr.WriteSettings()
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true, EndStream: true,
			BlockFragment: enc(":method", "POST", ":scheme", "http", ":path", "/c", "content-type", "application/grpc")})
		_ = fr.WriteData(1, true, []byte("after the end"))
	}))
	f.Add(frames(func(fr *http2.Framer, enc func(...string) []byte) {
		// A call the upstream fails (trailers-only UNAVAILABLE), handed to
		// the handler for a retry.
		_ = fr.WriteSettings()
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true,
			BlockFragment: enc(":method", "POST", ":scheme", "http", ":path", "/fail", "content-type", "application/grpc")})
		_ = fr.WriteData(1, true, []byte{0, 0, 0, 0, 1, 7})
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, EndHeaders: true,
			BlockFragment: enc(":method", "POST", ":scheme", "http", ":path", "/fail", "content-type", "application/grpc")})
		_ = fr.WriteData(3, true, []byte{0, 0, 0, 0, 1, 7})
		_ = fr.WriteRSTStream(3, http2.ErrCodeCancel)
	}))
	f.Add(frames(func(fr *http2.Framer, enc func(...string) []byte) {
		// Messages split over frames under and over a message limit.
		_ = fr.WriteSettings()
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true,
			BlockFragment: enc(":method", "POST", ":scheme", "http", ":path", "/limit", "content-type", "application/grpc")})
		_ = fr.WriteData(1, false, []byte{0, 0, 0})
		_ = fr.WriteData(1, false, []byte{0, 4, 1, 2, 3, 4, 0, 0, 0})
		_ = fr.WriteData(1, true, []byte{0, 17})
	}))
	f.Add(frames(func(fr *http2.Framer, enc func(...string) []byte) {
		// Two streams' DATA read back to back, interleaved and padded: the
		// read loop hands each stream's run on when the other's frame comes.
		_ = fr.WriteSettings()
		for _, id := range []uint32{1, 3} {
			_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, EndHeaders: true,
				BlockFragment: enc(":method", "POST", ":scheme", "http", ":path", "/runs", "content-type", "application/grpc")})
		}
		for i := range 12 {
			_ = fr.WriteData(1, false, bytes.Repeat([]byte{byte(i)}, 1+i*50))
			if i%3 == 0 {
				_ = fr.WriteDataPadded(3, false, []byte{0, 0, 0, 0, 1, byte(i)}, make([]byte, i*20))
			}
		}
		_ = fr.WriteData(1, true, nil)
		_ = fr.WriteData(3, true, []byte{0, 0, 0, 0, 0})
	}))
	f.Add([]byte{})
	// One upstream and one warm connection to it for the whole run (the
	// relay does not dial).
	tr, up := relayTo(f, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/fail") {
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Grpc-Status", "14")
			return
		}
		grpcEcho(w, r)
	}))
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := warm(tr, up); err != nil { // (a GOAWAY may have closed the last one)
			t.Fatalf("warm-up: %v", err)
		}
		s := &Server{WriteTimeout: 200 * time.Millisecond, MaxHeaderBytes: 4096,
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }),
			Relay: func(r *http.Request) (*RelayTarget, bool) {
				return &RelayTarget{Transport: tr, Addr: up, Idle: 100 * time.Millisecond,
					Start: func() (RequestHead, func(RelayEnd), bool) {
						out := RequestHead{Method: r.Method, Scheme: "http", Authority: r.Host, Path: r.URL.Path, Header: r.Header}
						return out, func(RelayEnd) {}, true
					},
					RetryBuffer: 64,
					Retry: func(RelayEnd) (*http.Request, any, bool) { // every failure goes to the handler
						return r, nil, true
					},
					// Calls to /limit... watch a 16-byte message limit and
					// have their response headers edited.
					MaxMessage:   limitFor(r.URL.Path),
					EditResponse: editFor(r.URL.Path),
				}, true
			}}
		serveClientBytes(t, s, data)
		deadline := time.Now().Add(5 * time.Second)
		for {
			tr.mu.Lock()
			left := 0
			for _, cc := range tr.conns[up] {
				cc.mu.Lock()
				left += len(cc.relays)
				cc.mu.Unlock()
			}
			tr.mu.Unlock()
			if left == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d relayed streams left on the upstream connection (input %x)", left, data)
			}
			time.Sleep(time.Millisecond)
		}
	})
}

func limitFor(path string) uint64 {
	if strings.HasPrefix(path, "/limit") {
		return 16
	}
	return 0
}

func editFor(path string) func(http.Header) {
	if !strings.HasPrefix(path, "/limit") {
		return nil
	}
	return func(h http.Header) {
		h.Del("Content-Type")
		h.Set("X-Edited", "yes")
	}
}

// FuzzRelayUpstream: whatever an upstream answers a relayed call with
// (DATA the read loop gathers into runs, padding, resets, GOAWAY, frames out
// of order), nothing panics, the client's call ends, and the relay is
// forgotten on the upstream connection.
func FuzzRelayUpstream(f *testing.F) {
	head := func(fr *http2.Framer, enc func(...string) []byte) {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, EndHeaders: true, BlockFragment: enc(":status", "200", "content-type", "application/grpc")})
	}
	f.Add(frames(func(fr *http2.Framer, enc func(...string) []byte) {
		head(fr, enc)
		for i := range 20 {
			_ = fr.WriteData(3, false, bytes.Repeat([]byte{byte(i)}, 100+i*40))
		}
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, EndHeaders: true, EndStream: true, BlockFragment: enc("grpc-status", "0")})
	}))
	f.Add(frames(func(fr *http2.Framer, enc func(...string) []byte) {
		head(fr, enc)
		_ = fr.WriteDataPadded(3, false, []byte{0, 0, 0, 0, 1, 7}, make([]byte, 40))
		_ = fr.WriteData(3, false, make([]byte, 9000))
		_ = fr.WritePing(false, [8]byte{1})
		_ = fr.WriteData(3, false, []byte{1})
		_ = fr.WriteRSTStream(3, http2.ErrCodeInternal)
	}))
	f.Add(frames(func(fr *http2.Framer, enc func(...string) []byte) {
		_ = fr.WriteData(3, false, []byte("before the headers"))
		head(fr, enc)
		_ = fr.WriteData(3, true, []byte{0, 0, 0, 0, 0})
		_ = fr.WriteGoAway(3, http2.ErrCodeNo, nil)
	}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		gw, up := net.Pipe()
		go fuzzUpstream(up, data)
		var dialed atomic.Bool
		tr := &Transport{Dial: func(context.Context, string) (net.Conn, error) {
			if dialed.Swap(true) {
				return nil, errors.New("one connection only")
			}
			return gw, nil
		}}
		defer tr.Close()
		if err := warm(tr, "up"); err != nil {
			t.Fatalf("warm-up: %v", err)
		}
		// The client over loopback TCP (a pipe would stall the two
		// prefaces' writes on each other).
		addr := serve(t, &Server{Relay: relayAll(tr, "up"), Handler: http.NotFoundHandler()})
		var d net.Dialer
		ct := &Transport{Dial: func(ctx context.Context, _ string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }}
		defer ct.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://gw/svc/M", bytes.NewReader([]byte{0, 0, 0, 0, 0}))
		req.Header.Set("Content-Type", "application/grpc")
		done := make(chan struct{})
		go func() {
			defer close(done)
			resp, err := ct.RoundTrip(req)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
		select {
		case <-done:
		case <-time.After(6 * time.Second):
			t.Fatalf("the relayed call hung (input %x)", data)
		}
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			tr.mu.Lock()
			left := 0
			for _, cc := range tr.conns["up"] {
				cc.mu.Lock()
				left += len(cc.relays)
				cc.mu.Unlock()
			}
			tr.mu.Unlock()
			if left == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d relayed streams left on the upstream connection (input %x)", left, data)
			}
		}
	})
}

// fuzzUpstream serves one connection: SETTINGS, an answer to /warm (stream
// 1), and data for the next request (stream 3), then closes it. One goroutine reads the
// gateway's frames, another writes, so that neither side's writes wait on
// the other's.
func fuzzUpstream(c net.Conn, data []byte) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, preface); err != nil {
		return
	}
	out := make(chan []byte, 16)
	go func() {
		defer close(out)
		fr := http2.NewFramer(nil, c)
		fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					out <- frames(func(fr *http2.Framer, _ func(...string) []byte) { _ = fr.WriteSettingsAck() })
				}
			case *http2.MetaHeadersFrame:
				if f.PseudoValue("path") != "/warm" {
					out <- data
					// Then it leaves: a call its answer did not end ends so.
					time.AfterFunc(20*time.Millisecond, func() { _ = c.Close() })
					continue
				}
				id := f.StreamID
				out <- frames(func(fr *http2.Framer, enc func(...string) []byte) {
					_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, EndHeaders: true, EndStream: true, BlockFragment: enc(":status", "200")})
				})
			}
		}
	}()
	if _, err := c.Write(frames(func(fr *http2.Framer, _ func(...string) []byte) { _ = fr.WriteSettings() })); err != nil {
		return
	}
	for b := range out {
		if _, err := c.Write(b); err != nil {
			break
		}
	}
	_ = c.Close()
	for range out { // the reader ends now that the connection is closed
	}
}
