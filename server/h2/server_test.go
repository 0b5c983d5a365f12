package h2

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// serve runs s on a listener (cleartext, prior knowledge) and stops it
// with the test.
func serve(t testing.TB, s *Server) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.ServeConn(c)
			}()
		}
	}()
	t.Cleanup(func() {
		lis.Close()
		s.Close()
		wg.Wait()
	})
	return lis.Addr().String()
}

// grpc-go's client and grpc-go's own handler (grpc.Server.ServeHTTP) on
// this server: unary, server streaming, status and cancellation.
func TestServer_GRPCInterop(t *testing.T) {
	gs := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(gs, hs)
	t.Cleanup(gs.Stop)
	addr := serve(t, &Server{Handler: gs})
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Check(ctx, &healthpb.HealthCheckRequest{Service: "svc"})
	if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Check = %v, %v", resp, err)
	}
	if _, err := c.Check(ctx, &healthpb.HealthCheckRequest{Service: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("Check(nope) = %v, want NotFound", err)
	}
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Check(ctx, &healthpb.HealthCheckRequest{Service: "svc"}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	wctx, wcancel := context.WithCancel(ctx)
	w, err := c.Watch(wctx, &healthpb.HealthCheckRequest{Service: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := w.Recv(); err != nil || m.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch first = %v, %v", m, err)
	}
	hs.SetServingStatus("svc", healthpb.HealthCheckResponse_NOT_SERVING)
	if m, err := w.Recv(); err != nil || m.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("Watch second = %v, %v", m, err)
	}
	wcancel()
	if _, err := w.Recv(); status.Code(err) != codes.Canceled {
		t.Errorf("Watch after cancel = %v, want Canceled", err)
	}
}

// h2Client is net/http's client speaking cleartext HTTP/2.
func h2Client(t *testing.T) *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// Request bodies, trailers both ways, header fields and status arrive as
// net/http's client and handlers expect them.
func TestServer_HTTPSemantics(t *testing.T) {
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("X-Method", r.Method)
		w.Header().Set("X-Host", r.Host)
		w.Header().Set("X-Cookie", r.Header.Get("Cookie"))
		w.Header().Set("X-Proto", r.Proto)
		w.Header().Set("X-Req-Trailer", r.Trailer.Get("X-Sum"))
		w.Header().Set("Trailer", "X-Len")
		w.WriteHeader(201)
		_, _ = w.Write(bytes.ToUpper(body))
		w.Header().Set("X-Len", "5")
		w.Header().Set(http.TrailerPrefix+"X-Late", "yes")
	})})
	c := h2Client(t)
	req, _ := http.NewRequest("POST", "http://"+addr+"/p?q=1", strings.NewReader("hello"))
	req.Host = "api.example.com"
	req.Header.Add("Cookie", "a=1")
	req.Trailer = http.Header{"X-Sum": nil}
	req.ContentLength = -1
	req.Body = io.NopCloser(&trailerSetter{r: strings.NewReader("hello"), tr: req.Trailer})
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	checks := map[string][2]string{
		"status":            {resp.Status, "201 Created"},
		"body":              {string(body), "HELLO"},
		"X-Method":          {resp.Header.Get("X-Method"), "POST"},
		"X-Host":            {resp.Header.Get("X-Host"), "api.example.com"},
		"X-Cookie":          {resp.Header.Get("X-Cookie"), "a=1"},
		"X-Proto":           {resp.Header.Get("X-Proto"), "HTTP/2.0"},
		"request trailer":   {resp.Header.Get("X-Req-Trailer"), "42"},
		"declared trailer":  {resp.Trailer.Get("X-Len"), "5"},
		"undeclared (late)": {resp.Trailer.Get("X-Late"), "yes"},
	}
	for what, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s = %q, want %q", what, c[0], c[1])
		}
	}
}

// trailerSetter sets the request trailer when its body ends, as a
// streaming client does.
type trailerSetter struct {
	r  io.Reader
	tr http.Header
}

func (s *trailerSetter) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err == io.EOF {
		s.tr.Set("X-Sum", "42")
	}
	return n, err
}

// rawClient is a hand-driven HTTP/2 client connection.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	fr   *http2.Framer
	hbuf bytes.Buffer
	henc *hpack.Encoder
}

func dialRaw(t *testing.T, addr string, settings ...http2.Setting) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rc := &rawClient{t: t, conn: c, fr: http2.NewFramer(c, c)}
	rc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	rc.henc = hpack.NewEncoder(&rc.hbuf)
	if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	if err := rc.fr.WriteSettings(settings...); err != nil {
		t.Fatal(err)
	}
	return rc
}

func (rc *rawClient) headers(id uint32, end bool, path string) {
	rc.hbuf.Reset()
	for _, kv := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "x"}, {":path", path}} {
		_ = rc.henc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
	}
	if err := rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: rc.hbuf.Bytes(), EndStream: end, EndHeaders: true}); err != nil {
		rc.t.Fatal(err)
	}
}

// readUntil reads frames until match says so or the connection ends.
func (rc *rawClient) readUntil(timeout time.Duration, match func(http2.Frame) bool) error {
	_ = rc.conn.SetReadDeadline(time.Now().Add(timeout))
	for {
		f, err := rc.fr.ReadFrame()
		if err != nil {
			return err
		}
		if match(f) {
			return nil
		}
	}
}

// Streams reset as soon as they are opened (CVE-2023-44487) run no more
// handlers at once than MaxConcurrentStreams, and once more than half of
// a connection's streams were reset before their answer (past the first
// maxPrematureResets) the connection gets GOAWAY ENHANCE_YOUR_CALM and is
// closed: the handlers that ran stay within a bound. Another connection is
// served meanwhile.
func TestServer_RapidReset(t *testing.T) {
	var running, peak, started atomic.Int32
	s := &Server{MaxConcurrentStreams: 8, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started.Add(1)
		n := running.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		defer running.Add(-1)
		if r.URL.Path == "/ok" {
			return
		}
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})}
	addr := serve(t, s)
	rc := dialRaw(t, addr)
	var goAway atomic.Value
	done := make(chan error, 1)
	go func() {
		done <- rc.readUntil(10*time.Second, func(f http2.Frame) bool {
			if g, ok := f.(*http2.GoAwayFrame); ok {
				goAway.Store(g.ErrCode)
			}
			return false
		})
	}()
	sent := 0
	for i := range 5000 {
		id := uint32(2*i + 1)
		rc.hbuf.Reset()
		for _, kv := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/slow"}} {
			_ = rc.henc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
		}
		if rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: rc.hbuf.Bytes(), EndStream: true, EndHeaders: true}) != nil ||
			rc.fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
			break // the server closed the connection
		}
		sent++
	}
	if err := <-done; err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the connection was not closed after %d rapid resets (%v)", sent, err)
	}
	if code, _ := goAway.Load().(http2.ErrCode); code != http2.ErrCodeEnhanceYourCalm {
		t.Errorf("GOAWAY %v, want ENHANCE_YOUR_CALM", goAway.Load())
	}
	if p := peak.Load(); p > 8 {
		t.Errorf("%d handlers ran at once, want at most MaxConcurrentStreams (8)", p)
	}
	if n := started.Load(); n > 2*maxPrematureResets {
		t.Errorf("%d handlers ran before the connection was closed, want at most %d", n, 2*maxPrematureResets)
	}
	ok := h2Client(t)
	resp, err := ok.Get("http://" + addr + "/ok")
	if err != nil {
		t.Fatalf("another connection after the rapid reset: %v", err)
	}
	resp.Body.Close()
	t.Logf("closed after %d of 5000 streams were sent; %d handlers ran, peak %d", sent, started.Load(), peak.Load())
}

// A header block that never ends (CONTINUATION frames past the header
// limit, CVE-2024-27316 class) does not grow the server: it answers 431
// or drops the connection, and never runs a handler.
func TestServer_ContinuationFlood(t *testing.T) {
	var handled atomic.Bool
	addr := serve(t, &Server{MaxHeaderBytes: 16 << 10, Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { handled.Store(true) })})
	rc := dialRaw(t, addr)
	rc.hbuf.Reset()
	for _, kv := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/"}} {
		_ = rc.henc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
	}
	if err := rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: rc.hbuf.Bytes()}); err != nil {
		t.Fatal(err)
	}
	junk := bytes.Repeat([]byte{0x40, 0x01, 'x', 0x7f, 0}, 3000) // literal fields, 15 KB a frame
	_ = rc.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	var werr error
	sent := 0
	for i := 0; i < 20000 && werr == nil; i++ { // up to 300 MB
		werr = rc.fr.WriteContinuation(1, false, junk)
		sent++
	}
	if werr == nil {
		t.Errorf("the server read %d CONTINUATION frames (%d MB) of one header block", sent, sent*len(junk)>>20)
	}
	if handled.Load() {
		t.Error("a handler ran for the flooded header block")
	}
}

// A SETTINGS or PING flood is closed: a client that reads the ACKs is
// closed (GOAWAY ENHANCE_YOUR_CALM) once its control frames outnumber its
// streams' frames past the allowance — it would be answered forever
// otherwise; one that does not read them is closed when
// the server's writes stall past WriteTimeout, or stalls reading. Either
// way nothing is queued without bound and another connection is served.
func TestServer_ControlFrameFloods(t *testing.T) {
	for _, kind := range []string{"SETTINGS", "PING"} {
		for _, reads := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s, client reads %v", kind, reads), func(t *testing.T) {
				closed := make(chan struct{})
				wt := 300 * time.Millisecond
				if reads {
					wt = time.Minute // only the flood rule may close it
				}
				s := &Server{WriteTimeout: wt, Handler: http.NotFoundHandler(),
					ConnState: func(_ net.Conn, st http.ConnState) {
						if st == http.StateClosed {
							close(closed)
						}
					}}
				lis, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer lis.Close()
				served := make(chan struct{})
				go func() {
					defer close(served)
					c, err := lis.Accept()
					if err != nil {
						return
					}
					_ = c.(*net.TCPConn).SetWriteBuffer(4096) // the answers back up soon
					s.ServeConn(c)
				}()
				c, err := net.Dial("tcp", lis.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if err := c.(*net.TCPConn).SetReadBuffer(4096); err != nil {
					t.Fatal(err)
				}
				fr := http2.NewFramer(c, c)
				var goAway atomic.Value
				readerDone := make(chan struct{})
				if reads {
					go func() {
						defer close(readerDone)
						for {
							f, err := fr.ReadFrame()
							if err != nil {
								return
							}
							if g, ok := f.(*http2.GoAwayFrame); ok {
								goAway.Store(g.ErrCode)
							}
						}
					}()
				}
				var written atomic.Int64
				go func() {
					_, _ = c.Write([]byte(http2.ClientPreface))
					_ = fr.WriteSettings()
					for i := 0; ; i++ {
						var err error
						if kind == "PING" {
							err = fr.WritePing(false, [8]byte{byte(i)})
						} else {
							err = fr.WriteSettings(http2.Setting{ID: http2.SettingEnablePush, Val: 0})
						}
						if err != nil {
							return
						}
						written.Add(1)
					}
				}()
				last, still := int64(-1), 0
				for deadline := time.Now().Add(20 * time.Second); ; {
					select {
					case <-closed:
					case <-time.After(100 * time.Millisecond):
						if n := written.Load(); n == last {
							still++
						} else {
							last, still = n, 0
						}
						if reads || still < 20 { // a non-reader may be held by backpressure instead
							if time.Now().After(deadline) {
								t.Fatalf("the server still takes a %s flood after 20s (%d frames)", kind, written.Load())
							}
							continue
						}
					}
					break
				}
				if reads {
					select {
					case <-readerDone: // it read up to the server's close
					case <-time.After(5 * time.Second):
						t.Fatal("the connection did not end for the client")
					}
				}
				// The GOAWAY (ENHANCE_YOUR_CALM) goes out, but a client
				// still flooding when the server closes gets a TCP reset,
				// which may discard it unread: logged, not asserted.
				t.Logf("%d %s frames written before the server stopped them; GOAWAY seen: %v", written.Load(), kind, goAway.Load())
				c.Close()
				<-served
			})
		}
	}
}

// A client that pings once for each DATA frame it receives, as grpc-go's
// BDP estimation does on a long server stream while it sends nothing else,
// is no control-frame flood: the frames the server writes count like the
// ones it reads. The client grants its window 100 bytes at a time so the
// answer comes in that many frames, whether a handler writes it or it is
// relayed (where frames that arrive together would be joined).
func TestServer_PingPerDataFrameIsNoFlood(t *testing.T) {
	const msgs, msgLen = 3000, 100
	stream := func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/warm" {
			return
		}
		msg := bytes.Repeat([]byte{'m'}, msgLen)
		for range msgs {
			if _, err := w.Write(msg); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	}
	for _, path := range []string{"handler", "relay"} {
		t.Run(path, func(t *testing.T) {
			s := &Server{Handler: http.HandlerFunc(stream)}
			if path == "relay" {
				s = &Server{Relay: relayAll(relayTo(t, http.HandlerFunc(stream))), Handler: http.NotFoundHandler()}
			}
			rc := dialRaw(t, serve(t, s), http2.Setting{ID: http2.SettingInitialWindowSize, Val: msgLen})
			rc.headers(1, true, "/stream")
			got, frames := 0, 0
			err := rc.readUntil(20*time.Second, func(f http2.Frame) bool {
				switch f := f.(type) {
				case *http2.GoAwayFrame:
					t.Fatalf("GOAWAY %v after %d DATA frames and as many PINGs", f.ErrCode, frames)
				case *http2.RSTStreamFrame:
					t.Fatalf("RST_STREAM %v after %d DATA frames", f.ErrCode, frames)
				case *http2.DataFrame:
					if n := len(f.Data()); n > 0 {
						got += n
						frames++
						if rc.fr.WriteWindowUpdate(1, uint32(n)) != nil || rc.fr.WriteWindowUpdate(0, uint32(n)) != nil ||
							rc.fr.WritePing(false, [8]byte{byte(frames)}) != nil {
							t.Fatalf("the server closed the connection after %d DATA frames", frames)
						}
					}
					return f.StreamEnded()
				case *http2.MetaHeadersFrame:
					return f.StreamEnded() && f.StreamID == 1
				}
				return false
			})
			if err != nil {
				t.Fatalf("after %d DATA frames: %v", frames, err)
			}
			if got != msgs*msgLen || frames <= maxControlFrames+controlPerStreamFrame {
				t.Fatalf("%d bytes in %d DATA frames, want %d bytes in more than %d frames (past the allowance without written frames)",
					got, frames, msgs*msgLen, maxControlFrames+controlPerStreamFrame)
			}
		})
	}
}

// A client that never opens its window (zero-window stall) gets the
// stream reset after WriteTimeout, and the handler's Write fails.
func TestServer_ZeroWindowStall(t *testing.T) {
	writeErr := make(chan error, 1)
	addr := serve(t, &Server{WriteTimeout: 300 * time.Millisecond, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := w.Write(make([]byte, 64<<10))
		writeErr <- err
	})})
	rc := dialRaw(t, addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	rc.headers(1, true, "/big")
	select {
	case err := <-writeErr:
		if err == nil {
			t.Fatal("a write to a client whose window stays shut succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler's write is still blocked")
	}
	if err := rc.readUntil(5*time.Second, func(f http2.Frame) bool {
		rs, ok := f.(*http2.RSTStreamFrame)
		return ok && rs.StreamID == 1
	}); err != nil {
		t.Errorf("no RST_STREAM for the stalled stream: %v", err)
	}
}

// Shutdown sends GOAWAY, lets the stream in flight finish, and returns
// once it has.
func TestServer_GracefulShutdown(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		_, _ = w.Write([]byte("done"))
	})}
	addr := serve(t, s)
	c := h2Client(t)
	got := make(chan string, 1)
	go func() {
		resp, err := c.Get("http://" + addr + "/")
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-started
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) with a stream in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if b := <-got; b != "done" {
		t.Errorf("the stream in flight got %q, want done", b)
	}
	select {
	case err := <-shut:
		if err != nil {
			t.Errorf("Shutdown = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return after the last stream")
	}
}

// A handler's panic resets its stream (INTERNAL_ERROR); the connection
// serves on.
func TestServer_PanicResetsStream(t *testing.T) {
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic(http.ErrAbortHandler)
		}
		_, _ = w.Write([]byte("ok"))
	})})
	c := h2Client(t)
	if _, err := c.Get("http://" + addr + "/panic"); err == nil {
		t.Error("a panicking handler's request succeeded")
	}
	resp, err := c.Get("http://" + addr + "/fine")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "ok" {
		t.Errorf("after a panic: %q", b)
	}
}

// A request carries the address its connection arrived at under
// http.LocalAddrContextKey, as net/http's server sets it: RBAC's
// destination_port and destination_ip read it (without it a DENY by port
// would never match an HTTP/2 request).
func TestServer_LocalAddrInContext(t *testing.T) {
	got := make(chan any, 1)
	addr := serve(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Context().Value(http.LocalAddrContextKey)
		w.WriteHeader(http.StatusNoContent)
	})})
	resp, err := h2Client(t).Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	la, ok := (<-got).(net.Addr)
	if !ok || la.String() != addr {
		t.Errorf("the request's local address is %v, want the listener's %s", la, addr)
	}
}
