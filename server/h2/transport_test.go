package h2

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// dialer counts dials to one address.
type dialer struct{ n atomic.Int32 }

func (d *dialer) dial(ctx context.Context, addr string) (net.Conn, error) {
	d.n.Add(1)
	var nd net.Dialer
	return nd.DialContext(ctx, "tcp", addr)
}

func newTransport(t *testing.T) (*Transport, *dialer) {
	d := &dialer{}
	tr := &Transport{Dial: d.dial}
	t.Cleanup(tr.Close)
	return tr, d
}

// startGRPC runs a grpc-go health server (cleartext HTTP/2).
func startGRPC(t *testing.T, opts ...grpc.ServerOption) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(opts...)
	hs := health.NewServer()
	hs.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s, hs)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

// grpcRequest is a unary call's request: one length-prefixed message.
func grpcRequest(ctx context.Context, t *testing.T, addr, method string, msg proto.Message) *http.Request {
	t.Helper()
	b, err := proto.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	frame := make([]byte, 5+len(b))
	binary.BigEndian.PutUint32(frame[1:], uint32(len(b)))
	copy(frame[5:], b)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+method, io.NopCloser(bytes.NewReader(frame)))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = -1
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	return req
}

func checkHealth(ctx context.Context, t *testing.T, tr *Transport, addr, service string) (healthpb.HealthCheckResponse_ServingStatus, string) {
	resp, err := tr.RoundTrip(grpcRequest(ctx, t, addr, "/grpc.health.v1.Health/Check", &healthpb.HealthCheckRequest{Service: service}))
	if err != nil {
		return -1, err.Error()
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return -1, err.Error()
	}
	status := resp.Trailer.Get("Grpc-Status")
	if status == "" {
		status = resp.Header.Get("Grpc-Status") // trailers-only
	}
	if status != "0" {
		return -1, "grpc-status " + status + " " + resp.Trailer.Get("Grpc-Message") + resp.Header.Get("Grpc-Message")
	}
	if len(body) < 5 {
		return -1, fmt.Sprintf("short body %q", body)
	}
	var out healthpb.HealthCheckResponse
	if err := proto.Unmarshal(body[5:], &out); err != nil {
		return -1, err.Error()
	}
	return out.Status, ""
}

// gRPC unary calls to grpc-go: the message, trailers and trailers-only
// answers come through, and concurrent callers share one connection.
func TestTransport_GRPCUnary(t *testing.T) {
	addr := startGRPC(t)
	tr, d := newTransport(t)
	ctx := context.Background()
	if st, msg := checkHealth(ctx, t, tr, addr, "svc"); st != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Check(svc) = %v %s", st, msg)
	}
	if _, msg := checkHealth(ctx, t, tr, addr, "unknown"); !strings.Contains(msg, "grpc-status 5") {
		t.Errorf("Check(unknown) = %q, want NOT_FOUND (5) from a trailers-only answer", msg)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 200)
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if st, msg := checkHealth(ctx, t, tr, addr, "svc"); st != healthpb.HealthCheckResponse_SERVING {
				errs <- msg
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if n := d.n.Load(); n != 1 {
		t.Errorf("%d connections dialed, want 1 (multiplexed)", n)
	}
}

// Closing idle connections (a cluster leaving the config, an endpoint
// changing) while calls start never fails a call: a connection reserved
// by a call is not idle, and the check and the close are one step.
func TestTransport_CloseIdleRacesCalls(t *testing.T) {
	addr := startGRPC(t)
	tr, d := newTransport(t)
	ctx := context.Background()
	stop := make(chan struct{})
	var closer sync.WaitGroup
	closer.Add(1)
	go func() {
		defer closer.Done()
		for {
			select {
			case <-stop:
				return
			default:
				tr.CloseIdleConnections()
			}
		}
	}()
	for i := range 400 {
		if st, msg := checkHealth(ctx, t, tr, addr, "svc"); st != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("call %d: %s", i, msg)
		}
	}
	close(stop)
	closer.Wait()
	if d.n.Load() < 2 {
		t.Errorf("%d connections dialed: the closer never closed an idle one, so the race was not tried", d.n.Load())
	}
}

// A server's stream limit opens more connections instead of queueing.
func TestTransport_MaxConcurrentStreams(t *testing.T) {
	release := make(chan struct{})
	addr := startH2(t, &http.HTTP2Config{MaxConcurrentStreams: 2}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	tr, d := newTransport(t)
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for d.n.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	wg.Wait()
	if n := d.n.Load(); n != 3 {
		t.Errorf("%d connections for 5 streams at 2 per connection, want 3", n)
	}
}

// startH2 serves h with net/http's HTTP/2 server on cleartext
// connections (prior knowledge).
func startH2(t *testing.T, conf *http.HTTP2Config, h http.Handler) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: h, Protocols: &p, HTTP2: conf}
	done := make(chan struct{})
	go func() { _ = srv.Serve(lis); close(done) }()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return lis.Addr().String()
}

// A request body streams while the response streams back (bidi), and
// response trailers arrive once the body is read to its end.
func TestTransport_BidiAndTrailers(t *testing.T) {
	addr := startH2(t, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Count")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		buf := make([]byte, 64)
		total := 0
		for {
			n, err := r.Body.Read(buf)
			if n > 0 {
				total += n
				_, _ = w.Write(bytes.ToUpper(buf[:n]))
				w.(http.Flusher).Flush()
			}
			if err != nil {
				break
			}
		}
		w.Header().Set("X-Count", fmt.Sprint(total))
	}))
	tr, _ := newTransport(t)
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", "http://"+addr+"/echo", pr)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for _, word := range []string{"ping", "pong", "done"} {
		if _, err := pw.Write([]byte(word)); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(word))
		if _, err := io.ReadFull(br, got); err != nil {
			t.Fatal(err)
		}
		if string(got) != strings.ToUpper(word) {
			t.Errorf("echo of %q = %q", word, got)
		}
	}
	pw.Close()
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Errorf("after the request ended: %q, %v", rest, err)
	}
	if got := resp.Trailer.Get("X-Count"); got != "12" {
		t.Errorf("trailer X-Count = %q, want 12", got)
	}
}

// A slow reader of a large response holds the server back at the stream
// window: what is buffered here stays under it.
func TestTransport_FlowControlSlowReader(t *testing.T) {
	var written atomic.Int64
	done := make(chan struct{})
	addr := startH2(t, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		chunk := make([]byte, 16<<10)
		for range 512 { // 8 MiB
			if _, err := w.Write(chunk); err != nil {
				return
			}
			written.Add(int64(len(chunk)))
		}
	}))
	d := &dialer{}
	tr := &Transport{Dial: d.dial, StreamWindow: 256 << 10, ConnWindow: 1 << 20}
	t.Cleanup(tr.Close)
	req, _ := http.NewRequest("GET", "http://"+addr+"/big", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the server writes what the windows allow
	// x/net's server buffers up to its write buffer beyond the window; the
	// client's window is what bounds what crosses.
	if w := written.Load(); w > 256<<10+64<<10 {
		t.Errorf("the server wrote %d bytes to a reader that read none, want at most the stream window (256 KiB) and its buffer", w)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != 8<<20 {
		t.Errorf("read %d bytes, %v; want 8 MiB", n, err)
	}
	<-done
}

// Canceling the request's context resets the stream: RoundTrip returns,
// and the server's handler sees its request canceled.
func TestTransport_CancelResets(t *testing.T) {
	canceled := make(chan struct{})
	addr := startH2(t, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		close(canceled)
	}))
	tr, _ := newTransport(t)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/wait", nil)
	errc := make(chan error, 1)
	go func() {
		_, err := tr.RoundTrip(req)
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("RoundTrip after cancel = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("RoundTrip did not return after cancel")
	}
	select {
	case <-canceled:
	case <-time.After(5 * time.Second):
		t.Fatal("the server never saw the reset")
	}
}

// Closing a response body before its end resets the stream.
func TestTransport_BodyCloseResets(t *testing.T) {
	canceled := make(chan struct{})
	addr := startH2(t, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		close(canceled)
	}))
	tr, _ := newTransport(t)
	req, _ := http.NewRequest("GET", "http://"+addr+"/stream", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	select {
	case <-canceled:
	case <-time.After(5 * time.Second):
		t.Fatal("the server never saw the reset")
	}
	if _, err := resp.Body.Read(make([]byte, 1)); err == nil {
		t.Error("a closed body still reads")
	}
}

// rawServer is a hand-driven HTTP/2 server: it answers the preface and
// SETTINGS, then calls onHeaders for each request's HEADERS; what that
// writes leaves in one write, so that it reaches the client in one read.
func rawServer(t *testing.T, onHeaders func(fr *http2.Framer, enc func(...string) []byte, f *http2.MetaHeadersFrame)) string {
	addr, _ := rawServerGoAways(t, onHeaders)
	return addr
}

// rawServerGoAways is rawServer, also telling the codes of the GOAWAYs it
// gets.
func rawServerGoAways(t *testing.T, onHeaders func(fr *http2.Framer, enc func(...string) []byte, f *http2.MetaHeadersFrame)) (string, <-chan http2.ErrCode) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	goaways := make(chan http2.ErrCode, 16)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				preface := make([]byte, len(http2.ClientPreface))
				if _, err := io.ReadFull(c, preface); err != nil {
					return
				}
				bw := bufio.NewWriterSize(c, 1<<20)
				fr := http2.NewFramer(bw, c)
				fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
				var hbuf bytes.Buffer
				henc := hpack.NewEncoder(&hbuf)
				enc := func(kv ...string) []byte {
					hbuf.Reset()
					for i := 0; i+1 < len(kv); i += 2 {
						_ = henc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
					}
					return append([]byte(nil), hbuf.Bytes()...)
				}
				_ = fr.WriteSettings()
				_ = bw.Flush()
				for {
					f, err := fr.ReadFrame()
					if err != nil {
						return
					}
					switch f := f.(type) {
					case *http2.SettingsFrame:
						if !f.IsAck() {
							_ = fr.WriteSettingsAck()
							_ = bw.Flush()
						}
					case *http2.GoAwayFrame:
						select {
						case goaways <- f.ErrCode:
						default:
						}
					case *http2.MetaHeadersFrame:
						ok := answer(onHeaders, fr, enc, f)
						if bw.Flush() != nil || !ok {
							return
						}
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		lis.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return lis.Addr().String(), goaways
}

// answer runs onHeaders; a panic in it (http.ErrAbortHandler) cuts the
// connection, after what it wrote.
func answer(onHeaders func(*http2.Framer, func(...string) []byte, *http2.MetaHeadersFrame), fr *http2.Framer,
	enc func(...string) []byte, f *http2.MetaHeadersFrame) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	onHeaders(fr, enc, f)
	return true
}

// REFUSED_STREAM and a GOAWAY below the stream's id fail the request with
// a StreamError of code REFUSED_STREAM (it was not processed: the
// gateway's retry policy may send it elsewhere); other resets keep their
// code.
func TestTransport_RefusedAndGoAway(t *testing.T) {
	tests := []struct {
		name   string
		answer func(fr *http2.Framer, f *http2.MetaHeadersFrame)
		want   http2.ErrCode
	}{
		{"RST_STREAM REFUSED_STREAM", func(fr *http2.Framer, f *http2.MetaHeadersFrame) {
			_ = fr.WriteRSTStream(f.StreamID, http2.ErrCodeRefusedStream)
		}, http2.ErrCodeRefusedStream},
		{"GOAWAY before the stream", func(fr *http2.Framer, f *http2.MetaHeadersFrame) {
			_ = fr.WriteGoAway(0, http2.ErrCodeNo, nil) // no stream processed
		}, http2.ErrCodeRefusedStream},
		{"RST_STREAM INTERNAL_ERROR", func(fr *http2.Framer, f *http2.MetaHeadersFrame) {
			_ = fr.WriteRSTStream(f.StreamID, http2.ErrCodeInternal)
		}, http2.ErrCodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := rawServer(t, func(fr *http2.Framer, _ func(...string) []byte, f *http2.MetaHeadersFrame) { tt.answer(fr, f) })
			tr, _ := newTransport(t)
			req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
			_, err := tr.RoundTrip(req)
			var se http2.StreamError
			if !errors.As(err, &se) || se.Code != tt.want {
				t.Errorf("RoundTrip = %v, want a StreamError %v", err, tt.want)
			}
		})
	}
}

// A server that dies mid-answer fails the body's read, not with EOF.
func TestTransport_ConnectionLostMidBody(t *testing.T) {
	addr := rawServer(t, func(fr *http2.Framer, enc func(...string) []byte, f *http2.MetaHeadersFrame) {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: f.StreamID, BlockFragment: enc(":status", "200"), EndHeaders: true})
		_ = fr.WriteData(f.StreamID, false, []byte("partial"))
		panic(http.ErrAbortHandler) // rawServer cuts the connection
	})
	tr, _ := newTransport(t)
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil || string(b) != "partial" {
		t.Errorf("body %q, %v; want \"partial\" and an error", b, err)
	}
}

// bufferedBody is a complete body that says so (as meshgate's server's
// request bodies do).
type bufferedBody struct{ *bytes.Reader }

func (b bufferedBody) Buffered() (int, bool) { return b.Len(), true }
func (bufferedBody) Close() error            { return nil }

// A complete body goes with the HEADERS; one over the server's window (or
// over the inline limit) streams; either way the server gets it whole.
func TestTransport_InlineBody(t *testing.T) {
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, _ = w.Write(b)
	})
	t.Run("window", func(t *testing.T) { inlineBodies(t, startH2(t, &http.HTTP2Config{}, echo)) })
	// A server window smaller than the body: it streams as the window opens.
	t.Run("small window", func(t *testing.T) {
		inlineBodies(t, startH2(t, &http.HTTP2Config{MaxReceiveBufferPerStream: 1024}, echo))
	})
}

func inlineBodies(t *testing.T, addr string) {
	tr, _ := newTransport(t)
	for _, size := range []int{0, 5, 16 << 10, 70 << 10} {
		payload := bytes.Repeat([]byte{'z'}, size)
		req, _ := http.NewRequest("POST", "http://"+addr+"/", bufferedBody{bytes.NewReader(payload)})
		req.ContentLength = -1
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Equal(got, payload) {
			t.Errorf("%d bytes: echoed %d bytes, %v", size, len(got), err)
		}
	}
}
