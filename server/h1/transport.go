// Package h1 is meshgate's HTTP/1.1 client for upstreams: an
// http.RoundTripper with a keep-alive pool per host, on net/http's own
// request writer (Request.Write) and response parser (http.ReadResponse).
//
// It exists for speed. net/http's Transport runs two goroutines per
// connection (a read loop and a write loop) and hands every request and
// response between them and the caller over channels: three goroutine
// switches and a select per request on top of the system calls. Here the
// caller's goroutine writes the request and reads the response itself; a
// request with a body has its body written by one goroutine of its own so
// that an answer that comes before the body is sent (an early 413, a
// duplex stream) is still read.
//
// What it keeps from net/http's: the wire format (both ends are
// net/http's), keep-alive reuse only of connections whose exchange ended
// cleanly, a retry on a fresh connection when a reused one turns out to be
// closed before any byte of the answer (the request was not processed),
// MaxConnsPerHost waiting for a free connection, idle connections closed
// after IdleConnTimeout, context cancellation at every step.
package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"syscall"
	"time"
)

// ErrClosed is returned by RoundTrip once the transport is closed.
var ErrClosed = errors.New("h1: transport closed")

// Buffer sizes of a connection (net/http's Transport uses the same).
const (
	readBufferSize  = 4 << 10
	writeBufferSize = 4 << 10
	// checkIdleAfter is how long a connection may sit idle before it is
	// checked (one non-blocking peek) for a close by the server before
	// reuse. Shorter idles rely on the retry of a reused connection.
	checkIdleAfter = time.Second
	// maxWriteWait is how long a finished answer waits for its request's
	// body to be written before the connection is given up instead of
	// reused (net/http's Transport waits as long).
	maxWriteWait = 50 * time.Millisecond
)

// Transport is the pooled HTTP/1.1 client. Dial must be set.
type Transport struct {
	// Dial connects to a host address ("host:port") and does the TLS
	// handshake when the host wants one.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// IdleConnTimeout closes a connection idle that long (0: never).
	IdleConnTimeout time.Duration
	// MaxConnsPerHost bounds the connections to one host, idle or busy;
	// a request beyond it waits for one (0: no bound).
	MaxConnsPerHost int
	// MaxIdleConnsPerHost bounds the idle connections kept per host
	// (0: 1024).
	MaxIdleConnsPerHost int

	mu     sync.Mutex
	hosts  map[string]*hostPool
	reaper *time.Timer // runs while some connection is idle
	closed bool

	now func() time.Time // tests move time
}

// hostPool is one host's connections.
type hostPool struct {
	idle    []*conn         // most recently used last
	open    int             // idle and busy
	waiters []chan dialSlot // FIFO, for MaxConnsPerHost
}

// dialSlot is what a waiter gets: an idle connection, or the right to dial.
type dialSlot struct{ c *conn }

// conn is one upstream connection.
type conn struct {
	t         *Transport
	addr      string
	nc        net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
	reused    bool
}

// RoundTrip sends req on a pooled connection to req.URL.Host and returns
// the response once its headers arrive; the body streams after, and the
// connection goes back to the pool when the body has been read to its end.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil || req.URL.Host == "" {
		closeBody(req)
		return nil, errors.New("h1: request has no host")
	}
	addr := hostPort(req.URL)
	ctx := req.Context()
	for try := 0; ; try++ {
		c, err := t.get(ctx, addr)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		resp, err := c.roundTrip(ctx, req)
		if err == nil {
			return resp, nil
		}
		var notSent *errNothingRead
		if !c.reused || !errors.As(err, &notSent) || try > 0 || ctx.Err() != nil {
			return nil, unwrapNotSent(err)
		}
		// The server closed the kept-alive connection as the request went
		// out: nothing was processed; once more on a fresh connection, if
		// the body can be sent again.
		if !rewind(req) {
			return nil, unwrapNotSent(err)
		}
	}
}

// CloseIdleConnections closes the connections that carry no request.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	var idle []*conn
	for _, hp := range t.hosts {
		idle = append(idle, hp.idle...)
		hp.open -= len(hp.idle)
		hp.idle = nil
		t.grantSlots(hp)
	}
	t.mu.Unlock()
	for _, c := range idle {
		_ = c.nc.Close()
	}
}

// Close closes the idle connections and makes later requests fail;
// requests in flight finish, and their connections close after.
func (t *Transport) Close() {
	t.mu.Lock()
	t.closed = true
	if t.reaper != nil {
		t.reaper.Stop()
	}
	t.mu.Unlock()
	t.CloseIdleConnections()
}

func (t *Transport) clock() time.Time {
	if t.now != nil {
		return t.now()
	}
	return time.Now()
}

func (t *Transport) maxIdle() int {
	if t.MaxIdleConnsPerHost > 0 {
		return t.MaxIdleConnsPerHost
	}
	return 1024
}

// get takes an idle connection to addr or dials one, waiting for a free
// one when MaxConnsPerHost is reached.
func (t *Transport) get(ctx context.Context, addr string) (*conn, error) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, ErrClosed
	}
	if t.hosts == nil {
		t.hosts = map[string]*hostPool{}
	}
	hp := t.hosts[addr]
	if hp == nil {
		hp = &hostPool{}
		t.hosts[addr] = hp
	}
	if c := t.takeIdle(hp); c != nil {
		t.mu.Unlock()
		return c, nil
	}
	if t.MaxConnsPerHost > 0 && hp.open >= t.MaxConnsPerHost {
		wait := make(chan dialSlot, 1)
		hp.waiters = append(hp.waiters, wait)
		t.mu.Unlock()
		select {
		case s := <-wait:
			if s.c != nil {
				return s.c, nil
			}
			// A connection closed: its place is ours (open already counts it).
		case <-ctx.Done():
			t.mu.Lock()
			removed := removeWaiter(hp, wait)
			t.mu.Unlock()
			if !removed {
				// Granted as we gave up: pass it on.
				if s := <-wait; s.c != nil {
					s.c.release(true)
				} else {
					t.closed1(addr)
				}
			}
			return nil, fmt.Errorf("h1: waiting for a connection to %s (max_connections %d): %w", addr, t.MaxConnsPerHost, ctx.Err())
		}
	} else {
		hp.open++
		t.mu.Unlock()
	}
	nc, err := t.Dial(ctx, addr)
	if err != nil {
		t.closed1(addr)
		return nil, err
	}
	return &conn{t: t, addr: addr, nc: nc,
		br: bufio.NewReaderSize(nc, readBufferSize), bw: bufio.NewWriterSize(nc, writeBufferSize)}, nil
}

// takeIdle pops the most recently used idle connection that is still
// good; under t.mu.
func (t *Transport) takeIdle(hp *hostPool) *conn {
	now := t.clock()
	for len(hp.idle) > 0 {
		c := hp.idle[len(hp.idle)-1]
		hp.idle[len(hp.idle)-1] = nil
		hp.idle = hp.idle[:len(hp.idle)-1]
		idle := now.Sub(c.idleSince)
		if (t.IdleConnTimeout > 0 && idle >= t.IdleConnTimeout) || (idle >= checkIdleAfter && !stillOpen(c.nc)) {
			hp.open--
			_ = c.nc.Close()
			continue
		}
		c.reused = true
		return c
	}
	return nil
}

// closed1 books the close of one of addr's connections (or a failed
// dial) and gives its place to a waiter.
func (t *Transport) closed1(addr string) {
	t.mu.Lock()
	hp := t.hosts[addr]
	hp.open--
	t.grantSlots(hp)
	if hp.open == 0 && len(hp.waiters) == 0 {
		delete(t.hosts, addr)
	}
	t.mu.Unlock()
}

// grantSlots lets waiters dial while there is room; under t.mu.
func (t *Transport) grantSlots(hp *hostPool) {
	for len(hp.waiters) > 0 && (t.MaxConnsPerHost <= 0 || hp.open < t.MaxConnsPerHost) {
		w := hp.waiters[0]
		hp.waiters = hp.waiters[1:]
		hp.open++
		w <- dialSlot{}
	}
}

func removeWaiter(hp *hostPool, w chan dialSlot) bool {
	for i, x := range hp.waiters {
		if x == w {
			hp.waiters = append(hp.waiters[:i], hp.waiters[i+1:]...)
			return true
		}
	}
	return false
}

// release ends c's use: back to the pool (or to a waiter) when reusable,
// closed otherwise.
func (c *conn) release(reusable bool) {
	t := c.t
	if !reusable {
		_ = c.nc.Close()
		t.closed1(c.addr)
		return
	}
	t.mu.Lock()
	hp := t.hosts[c.addr]
	if len(hp.waiters) > 0 {
		w := hp.waiters[0]
		hp.waiters = hp.waiters[1:]
		t.mu.Unlock()
		c.reused = true
		w <- dialSlot{c: c}
		return
	}
	if t.closed || len(hp.idle) >= t.maxIdle() {
		t.mu.Unlock()
		_ = c.nc.Close()
		t.closed1(c.addr)
		return
	}
	c.idleSince = t.clock()
	hp.idle = append(hp.idle, c)
	if t.IdleConnTimeout > 0 && t.reaper == nil {
		t.reaper = time.AfterFunc(t.IdleConnTimeout, t.reap)
	}
	t.mu.Unlock()
}

// reap closes the connections idle longer than IdleConnTimeout and runs
// again when the next one is due.
func (t *Transport) reap() {
	t.mu.Lock()
	now := t.clock()
	var old []*conn
	next := time.Duration(-1)
	for addr, hp := range t.hosts {
		keep := hp.idle[:0]
		for _, c := range hp.idle {
			left := t.IdleConnTimeout - now.Sub(c.idleSince)
			if left <= 0 {
				old = append(old, c)
				hp.open--
				continue
			}
			if next < 0 || left < next {
				next = left
			}
			keep = append(keep, c)
		}
		clear(hp.idle[len(keep):])
		hp.idle = keep
		t.grantSlots(hp)
		if hp.open == 0 && len(hp.waiters) == 0 {
			delete(t.hosts, addr)
		}
	}
	t.reaper = nil
	if next >= 0 && !t.closed {
		t.reaper = time.AfterFunc(next, t.reap)
	}
	t.mu.Unlock()
	for _, c := range old {
		_ = c.nc.Close()
	}
}

// errNothingRead wraps a failure of a reused connection before any byte
// of the answer came: the server closed it, the request was not processed.
type errNothingRead struct{ err error }

func (e *errNothingRead) Error() string { return e.err.Error() }
func (e *errNothingRead) Unwrap() error { return e.err }

func unwrapNotSent(err error) error {
	var ns *errNothingRead
	if errors.As(err, &ns) {
		return ns.err
	}
	return err
}

// roundTrip runs one exchange on c; c is released (pooled or closed) once
// the response body is done, or at once on an error.
func (c *conn) roundTrip(ctx context.Context, req *http.Request) (*http.Response, error) {
	// A cancelled context unblocks whatever waits on the connection; the
	// connection is then not reused.
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(aLongTimeAgo) })
	fail := func(err error) (*http.Response, error) {
		stop()
		c.release(false)
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		return nil, err
	}
	hasBody := req.Body != nil && req.Body != http.NoBody
	var wrote chan error
	if !hasBody {
		if err := req.Write(c.bw); err != nil {
			return fail(c.notSent(fmt.Errorf("h1: writing the request to %s: %w", c.addr, err)))
		}
		if err := c.bw.Flush(); err != nil {
			return fail(c.notSent(fmt.Errorf("h1: writing the request to %s: %w", c.addr, err)))
		}
	} else {
		// The body may be slow (a client uploading) or never end (a duplex
		// stream): it is written beside the reading of the answer.
		wrote = make(chan error, 1)
		// (A copy, not to change the caller's request: net/http's writer
		// hides the body's error in a type without Unwrap.)
		out := *req
		body := &readErrorBody{ReadCloser: req.Body}
		out.Body = body
		go func() {
			err := out.Write(c.bw)
			if err == nil {
				err = c.bw.Flush()
			} else if body.err != nil {
				err = body.err
			}
			wrote <- err
			if err != nil {
				// The request cannot be whole (the client's body failed or
				// was over a limit): the server would wait for the rest.
				_ = c.nc.Close()
			}
		}()
	}
	resp, err := c.readResponse(req)
	if err != nil {
		// A failed write is why the read failed (it closed the connection).
		// Closing the connection ends a writer still sending the body (one
		// still waiting for the client's body ends with the request).
		select {
		case werr := <-wrote:
			if werr != nil {
				err = fmt.Errorf("h1: writing the request to %s: %w", c.addr, werr)
			}
		default:
		}
		return fail(err)
	}
	b := &body{c: c, rc: resp.Body, stop: stop, wrote: wrote, ctx: ctx, reuse: !resp.Close && !req.Close}
	if resp.Body == http.NoBody {
		b.finish(true)
	} else {
		resp.Body = b
	}
	return resp, nil
}

// readResponse reads the answer's head, passing over 1xx interim answers.
func (c *conn) readResponse(req *http.Request) (*http.Response, error) {
	for first := true; ; first = false {
		if _, err := c.br.Peek(1); err != nil {
			err = fmt.Errorf("h1: reading the response from %s: %w", c.addr, err)
			if first {
				err = c.notSent(err)
			}
			return nil, err
		}
		resp, err := http.ReadResponse(c.br, req)
		if err != nil {
			return nil, fmt.Errorf("h1: reading the response from %s: %w", c.addr, err)
		}
		switch {
		case resp.StatusCode == http.StatusSwitchingProtocols:
			return nil, fmt.Errorf("h1: %s switched protocols, which was not asked", c.addr)
		case resp.StatusCode >= 100 && resp.StatusCode < 200:
			continue
		}
		return resp, nil
	}
}

// notSent marks err as "nothing of the answer came" when c was reused and
// the server had closed it: EOF or reset before the first byte.
func (c *conn) notSent(err error) error {
	if c.reused && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)) {
		return &errNothingRead{err: err}
	}
	return err
}

// body is a response body; at its end the connection goes back to the
// pool, and a body closed before its end closes the connection (net/http's
// own Close would read the rest first, which may never end).
type body struct {
	c     *conn
	rc    io.ReadCloser
	stop  func() bool
	wrote chan error // nil: the request had no body
	ctx   context.Context
	reuse bool

	mu   sync.Mutex
	done bool
	err  error // after done: what Read returns
}

// errBodyClosed is what a read after Close returns.
var errBodyClosed = errors.New("h1: read on a closed response body")

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return 0, b.err
	}
	n, err := b.rc.Read(p)
	switch {
	case err == io.EOF:
		b.finish(true)
	case err != nil:
		if cerr := b.ctx.Err(); cerr != nil {
			err = cerr
		}
		b.err = err
		b.finish(false)
	}
	return n, err
}

// Close ends the body; before its end the connection is closed (at once,
// so that a Read blocked in another goroutine returns).
func (b *body) Close() error {
	if !b.mu.TryLock() {
		_ = b.c.nc.Close()
		b.mu.Lock()
	}
	defer b.mu.Unlock()
	if !b.done {
		b.err = errBodyClosed
		b.finish(false)
	}
	return nil
}

// finish releases the connection once; whole says the body was read to
// its end.
func (b *body) finish(whole bool) {
	if b.done {
		return
	}
	b.done = true
	if b.err == nil {
		b.err = io.EOF
	}
	// Reused only after a clean end: the whole answer read, nothing more
	// from the server (bytes past the answer would be taken for the next
	// one's), the context's hook not fired, the request's body all sent.
	stopped := b.stop()
	reusable := whole && b.reuse && stopped && b.c.br.Buffered() == 0
	if reusable && b.wrote != nil {
		timer := time.NewTimer(maxWriteWait)
		select {
		case err := <-b.wrote:
			reusable = err == nil
		case <-timer.C:
			// Still writing: closing the connection ends the writer.
			reusable = false
		}
		timer.Stop()
	}
	b.c.release(reusable)
}

// readErrorBody keeps the first error of a request body other than EOF.
type readErrorBody struct {
	io.ReadCloser
	err error
}

func (b *readErrorBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

// aLongTimeAgo is a deadline that makes blocked reads and writes return.
var aLongTimeAgo = time.Unix(1, 0)

// rewind makes req's body readable again for a retry: true when it has
// none or can be had again (GetBody).
func rewind(req *http.Request) bool {
	if req.Body == nil || req.Body == http.NoBody {
		return true
	}
	if req.GetBody == nil {
		return false
	}
	body, err := req.GetBody()
	if err != nil {
		return false
	}
	req.Body = body
	return true
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// hostPort is the URL's host with the scheme's port when it has none.
func hostPort(u *url.URL) string {
	port := u.Port()
	switch {
	case port != "":
		return u.Host
	case u.Scheme == "https":
		port = "443"
	default:
		port = "80"
	}
	return net.JoinHostPort(u.Hostname(), port)
}
