package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingServer is an httptest server that counts the connections it
// accepted and has open.
type countingServer struct {
	*httptest.Server
	accepted, open atomic.Int32
}

func newCountingServer(t *testing.T, h http.Handler) *countingServer {
	t.Helper()
	cs := &countingServer{}
	cs.Server = httptest.NewUnstartedServer(h)
	cs.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			cs.accepted.Add(1)
			cs.open.Add(1)
		case http.StateClosed, http.StateHijacked:
			cs.open.Add(-1)
		}
	}
	cs.Start()
	t.Cleanup(cs.Close)
	return cs
}

func newTransport(dials *atomic.Int32) *Transport {
	var d net.Dialer
	return &Transport{Dial: func(ctx context.Context, addr string) (net.Conn, error) {
		if dials != nil {
			dials.Add(1)
		}
		return d.DialContext(ctx, "tcp", addr)
	}}
}

func get(t *testing.T, tr *Transport, method, url string, body io.Reader) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	_ = resp.Body.Close()
	return resp, string(b)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestTransport_Exchanges(t *testing.T) {
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/length":
			w.Header().Set("Content-Length", "5")
			_, _ = io.WriteString(w, "hello")
		case "/chunked":
			w.Header().Set("Trailer", "X-Sum")
			_, _ = io.WriteString(w, "part1,")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "part2")
			w.Header().Set("X-Sum", "42")
		case "/interim":
			w.Header().Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			_, _ = io.WriteString(w, "after hints")
		case "/echo":
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s %s %d", r.Method, b, r.ContentLength)
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
		case "/query":
			_, _ = io.WriteString(w, r.URL.RawQuery+" "+r.Host)
		default:
			http.NotFound(w, r)
		}
	}))
	tr := newTransport(nil)
	defer tr.Close()
	tests := []struct {
		name, method, path string
		body               io.Reader
		wantStatus         int
		wantBody           string
		wantTrailer        string
	}{
		{name: "content length", method: "GET", path: "/length", wantStatus: 200, wantBody: "hello"},
		{name: "chunked with trailer", method: "GET", path: "/chunked", wantStatus: 200, wantBody: "part1,part2", wantTrailer: "42"},
		{name: "1xx passed over", method: "GET", path: "/interim", wantStatus: 200, wantBody: "after hints"},
		{name: "known-length body", method: "POST", path: "/echo", body: strings.NewReader("ping"), wantStatus: 200, wantBody: "POST ping 4"},
		{name: "streamed body", method: "PUT", path: "/echo", body: io.MultiReader(strings.NewReader("a"), strings.NewReader("b")), wantStatus: 200, wantBody: "PUT ab -1"},
		{name: "no content", method: "GET", path: "/nocontent", wantStatus: 204},
		{name: "head", method: "HEAD", path: "/length", wantStatus: 200},
		{name: "query and host", method: "GET", path: "/query?a=1&b=%20", wantStatus: 200, wantBody: "a=1&b=%20 " + strings.TrimPrefix(srv.URL, "http://")},
		{name: "not found", method: "GET", path: "/nope", wantStatus: 404, wantBody: "404 page not found\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(t, tr, tc.method, srv.URL+tc.path, tc.body)
			if resp.StatusCode != tc.wantStatus || body != tc.wantBody {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, body, tc.wantStatus, tc.wantBody)
			}
			if got := resp.Trailer.Get("X-Sum"); got != tc.wantTrailer {
				t.Fatalf("trailer X-Sum = %q, want %q", got, tc.wantTrailer)
			}
		})
	}
	// Every exchange ended cleanly: one connection carried them all.
	if n := srv.accepted.Load(); n != 1 {
		t.Fatalf("the server accepted %d connections, want 1 (kept alive)", n)
	}
}

func TestTransport_ConnectionCloseIsHonoured(t *testing.T) {
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/close" {
			w.Header().Set("Connection", "close")
		}
		_, _ = io.WriteString(w, "ok")
	}))
	tr := newTransport(nil)
	defer tr.Close()
	for _, path := range []string{"/close", "/close", "/keep", "/keep"} {
		if _, body := get(t, tr, "GET", srv.URL+path, nil); body != "ok" {
			t.Fatalf("%s: %q", path, body)
		}
	}
	if n := srv.accepted.Load(); n != 3 {
		t.Fatalf("accepted %d connections, want 3 (two closed by the server, then one kept)", n)
	}
	// A request that asks to close closes too.
	req, _ := http.NewRequest("GET", srv.URL+"/keep", nil)
	req.Close = true
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	waitFor(t, "the connection to close", func() bool { return srv.open.Load() == 0 })
}

// rawServer answers each connection with handle (it reads the request
// itself).
func rawServer(t *testing.T, handle func(c net.Conn, br *bufio.Reader)) (addr string, accepted *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	accepted = &atomic.Int32{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer c.Close()
				handle(c, bufio.NewReader(c))
			}()
		}
	}()
	return ln.Addr().String(), accepted
}

func readRequest(t *testing.T, br *bufio.Reader) bool {
	req, err := http.ReadRequest(br)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, req.Body)
	return true
}

// oneAnswerPerConn is a server that answers one request per connection,
// with keep-alive, and then closes it.
func oneAnswerPerConn(t *testing.T) (string, *atomic.Int32) {
	return rawServer(t, func(c net.Conn, br *bufio.Reader) {
		if readRequest(t, br) {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
}

func TestTransport_RetriesAReusedConnectionTheServerClosed(t *testing.T) {
	// The server answers one request per connection with keep-alive and
	// then closes: the second request finds its pooled connection closed
	// before any answer, which is retried once on a new connection.
	addr, accepted := oneAnswerPerConn(t)
	tr := newTransport(nil)
	defer tr.Close()
	for i := range 3 {
		if _, body := get(t, tr, "GET", "http://"+addr+"/", nil); body != "ok" {
			t.Fatalf("request %d: %q", i, body)
		}
	}
	if n := accepted.Load(); n != 3 {
		t.Fatalf("accepted %d, want 3", n)
	}
	// A body that cannot be sent again is not retried: the error shows.
	tr2 := newTransport(nil)
	defer tr2.Close()
	get(t, tr2, "GET", "http://"+addr+"/", nil)
	time.Sleep(20 * time.Millisecond) // the server has closed
	req, _ := http.NewRequest("POST", "http://"+addr+"/", io.MultiReader(strings.NewReader("once")))
	if _, err := tr2.RoundTrip(req); err == nil {
		t.Fatal("a request with a body that cannot be rewound succeeded on a closed connection")
	}
}

func TestTransport_IdleConnectionClosedByServerIsNotReused(t *testing.T) {
	addr, accepted := oneAnswerPerConn(t)
	var dials atomic.Int32
	tr := newTransport(&dials)
	defer tr.Close()
	now := time.Now()
	tr.now = func() time.Time { return now }
	get(t, tr, "GET", "http://"+addr+"/", nil)
	time.Sleep(20 * time.Millisecond) // the server has closed
	now = now.Add(2 * checkIdleAfter)
	if _, body := get(t, tr, "GET", "http://"+addr+"/", nil); body != "ok" {
		t.Fatalf("%q", body)
	}
	// Found closed by the peek: a fresh dial, no failed attempt.
	if d, a := dials.Load(), accepted.Load(); d != 2 || a != 2 {
		t.Fatalf("dials %d, accepted %d; want 2, 2", d, a)
	}
}

func TestTransport_UnaskedBytesAreNotTakenForTheNextAnswer(t *testing.T) {
	addr, accepted := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		for readRequest(t, br) {
			// An answer and the start of another nobody asked for.
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n")
		}
	})
	tr := newTransport(nil)
	defer tr.Close()
	for range 3 {
		if resp, body := get(t, tr, "GET", "http://"+addr+"/", nil); resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
	}
	if n := accepted.Load(); n != 3 {
		t.Fatalf("accepted %d, want 3 (no connection reused after unasked bytes)", n)
	}
}

func TestTransport_BodyClosedEarlyClosesTheConnection(t *testing.T) {
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := 0; r.Context().Err() == nil && i < 1000; i++ {
			_, _ = w.Write(make([]byte, 32<<10))
			w.(http.Flusher).Flush()
			time.Sleep(time.Millisecond)
		}
	}))
	tr := newTransport(nil)
	defer tr.Close()
	req, _ := http.NewRequest("GET", srv.URL, nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = resp.Body.Close()
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Close took %v: it read the rest of the body", d)
	}
	if _, err := resp.Body.Read(make([]byte, 10)); !errors.Is(err, errBodyClosed) {
		t.Fatalf("read after close: %v", err)
	}
	waitFor(t, "the server to see the connection closed", func() bool { return srv.open.Load() == 0 })
}

func TestTransport_CloseUnblocksARead(t *testing.T) {
	release := make(chan struct{})
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "first")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer close(release)
	tr := newTransport(nil)
	defer tr.Close()
	req, _ := http.NewRequest("GET", srv.URL, nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	n, err := resp.Body.Read(buf)
	if err != nil || string(buf[:n]) != "first" {
		t.Fatalf("%q %v", buf[:n], err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := resp.Body.Read(buf)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	_ = resp.Body.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the blocked read returned no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock a read waiting in another goroutine")
	}
}

func TestTransport_ContextCancel(t *testing.T) {
	release := make(chan struct{})
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/body" {
			_, _ = io.WriteString(w, "head")
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer close(release)
	tr := newTransport(nil)
	defer tr.Close()
	for _, path := range []string{"/headers", "/body"} {
		t.Run(path, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+path, nil)
			time.AfterFunc(30*time.Millisecond, cancel)
			resp, err := tr.RoundTrip(req)
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				_ = resp.Body.Close()
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("got %v, want context.Canceled", err)
			}
		})
	}
	waitFor(t, "the cancelled exchanges' connections to close", func() bool { return srv.open.Load() == 0 })
}

func TestTransport_MaxConnsPerHost(t *testing.T) {
	var inFlight, most atomic.Int32
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(10 * time.Millisecond)
		inFlight.Add(-1)
		_, _ = io.WriteString(w, "ok")
	}))
	tr := newTransport(nil)
	tr.MaxConnsPerHost = 2
	defer tr.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", srv.URL, nil)
			resp, err := tr.RoundTrip(req)
			if err == nil {
				var b []byte
				b, err = io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if err == nil && string(b) != "ok" {
					err = fmt.Errorf("body %q", b)
				}
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if m, a := most.Load(), srv.accepted.Load(); m > 2 || a > 2 {
		t.Fatalf("%d requests at once on %d connections; max_connections is 2", m, a)
	}

	// A waiter gives up with its context.
	block := make(chan struct{})
	srv2 := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer close(block)
	tr2 := newTransport(nil)
	tr2.MaxConnsPerHost = 1
	defer tr2.Close()
	go func() {
		req, _ := http.NewRequest("GET", srv2.URL, nil)
		if resp, err := tr2.RoundTrip(req); err == nil {
			_ = resp.Body.Close()
		}
	}()
	waitFor(t, "the first request to hold the connection", func() bool { return srv2.accepted.Load() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv2.URL, nil)
	_, err := tr2.RoundTrip(req)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "max_connections 1") {
		t.Fatalf("got %v, want a deadline waiting for a connection", err)
	}
}

func TestTransport_IdleConnTimeout(t *testing.T) {
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	tr := newTransport(nil)
	tr.IdleConnTimeout = 30 * time.Millisecond
	defer tr.Close()
	get(t, tr, "GET", srv.URL, nil)
	if srv.open.Load() != 1 {
		t.Fatal("the connection was not kept")
	}
	waitFor(t, "the idle connection to be closed", func() bool { return srv.open.Load() == 0 })
	get(t, tr, "GET", srv.URL, nil)
	if n := srv.accepted.Load(); n != 2 {
		t.Fatalf("accepted %d, want 2", n)
	}
}

func TestTransport_EarlyAnswerWhileTheBodyIsStillSending(t *testing.T) {
	// The server answers as soon as it has the request's head, keeping
	// the connection open (net/http's server would wait for the body).
	addr, accepted := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 8\r\n\r\ntoo big!")
		_, _ = io.Copy(io.Discard, br)
	})
	tr := newTransport(nil)
	defer tr.Close()
	pr, pw := io.Pipe() // a client that never finishes its upload
	defer pw.Close()
	go func() { _, _ = pw.Write([]byte("some bytes")) }()
	req, _ := http.NewRequest("POST", "http://"+addr, pr)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 413 || string(b) != "too big!" {
		t.Fatalf("got %d %q %v", resp.StatusCode, b, err)
	}
	_ = resp.Body.Close()
	// The request was not all sent: that connection is not reused.
	req2, _ := http.NewRequest("GET", "http://"+addr, nil)
	resp2, err := tr.RoundTrip(req2)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp2.Body.Close()
	if n := accepted.Load(); n != 2 {
		t.Fatalf("accepted %d, want 2", n)
	}
}

func TestTransport_DialErrorAndClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	tr := newTransport(nil)
	req, _ := http.NewRequest("GET", "http://"+addr, nil)
	_, err = tr.RoundTrip(req)
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		t.Fatalf("got %v, want the dial's *net.OpError", err)
	}
	tr.Close()
	if _, err := tr.RoundTrip(req); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// failingReader gives some bytes and then fails, as a client's body cut off
// or over a limit does.
type failingReader struct{ sent bool }

var errClientBody = errors.New("client body over the limit")

func (f *failingReader) Read(p []byte) (int, error) {
	if !f.sent {
		f.sent = true
		return copy(p, "some"), nil
	}
	return 0, errClientBody
}

func TestTransport_RequestBodyFailureEndsTheExchange(t *testing.T) {
	srv := newCountingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body) // waits for the rest of the chunked body
		_, _ = io.WriteString(w, "ok")
	}))
	tr := newTransport(nil)
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL, &failingReader{})
	_, err := tr.RoundTrip(req)
	if !errors.Is(err, errClientBody) {
		t.Fatalf("got %v, want the body's error", err)
	}
	waitFor(t, "the connection to close", func() bool { return srv.open.Load() == 0 })
}
