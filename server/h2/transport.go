// Package h2 is meshgate's HTTP/2 client for upstreams: an
// http.RoundTripper that multiplexes requests over one connection per host
// (more when the server's stream limit is reached), built on x/net's
// Framer and HPACK.
//
// It exists for speed. x/net's transport flushes every frame it writes
// (a write system call per HEADERS, DATA and trailer), runs each request
// on more goroutines and hands frames between them over channels; on a
// 2-core machine that was a fifth of the gateway's CPU per gRPC call. Here
// a frame is written under the connection's write lock by the goroutine
// that has it to send, and the buffer is flushed by the last writer of a
// burst: writers that queue behind one another share one system call
// (grpc-go's loopy writer batches the same way, with a goroutine more).
// One read loop per connection delivers frames to streams.
//
// What it keeps from x/net's: errors (http2.StreamError with the peer's
// code, so a REFUSED_STREAM is told apart), trailers in Response.Trailer
// once the body has been read to its end, flow control both ways (a slow
// reader of a response body holds the server back at its stream window),
// GOAWAY (no new streams; streams the server did not process fail as
// refused), PING keepalive, idle connection closing.
package h2

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// Defaults of the windows meshgate advertises: a stream may have 1 MiB of
// response in flight (buffered here until the handler reads it), a
// connection 16 MiB over all its streams.
const (
	DefaultStreamWindow = 1 << 20
	DefaultConnWindow   = 16 << 20
	// maxResponseHeaderBytes bounds a response's header list (decoded);
	// larger ones reset the stream.
	maxResponseHeaderBytes = 1 << 20
	// initialMaxStreams is assumed until the server's SETTINGS say (as
	// x/net does).
	initialMaxStreams = 100
	// unsaidMaxStreams is the stream limit of a server whose SETTINGS
	// give none.
	unsaidMaxStreams = 1000
)

// Transport is the pooled HTTP/2 client. Its zero value is not usable:
// Dial must be set.
type Transport struct {
	// Dial connects to a host address ("ip:port") and does the TLS
	// handshake when the host wants one; the connection then speaks
	// HTTP/2 (prior knowledge in cleartext, ALPN h2 over TLS).
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// IdleConnTimeout closes a connection that has had no stream for
	// that long (0: never).
	IdleConnTimeout time.Duration
	// PingInterval sends a PING when nothing has been read for that long,
	// and PingTimeout closes the connection when its answer does not come
	// in time (0: no keepalive; PingTimeout defaults to 15s).
	PingInterval, PingTimeout time.Duration
	// StreamWindow and ConnWindow are the receive windows advertised
	// (0: 1 MiB and 16 MiB).
	StreamWindow, ConnWindow int32

	mu      sync.Mutex
	conns   map[string][]*clientConn
	dialing map[string]*dialCall
	closed  bool
}

// dialCall is a dial that concurrent first requests to a host share.
type dialCall struct {
	done chan struct{}
	cc   *clientConn
	err  error
}

// ErrClosed is returned by RoundTrip once the transport is closed.
var ErrClosed = errors.New("h2: transport closed")

// RoundTrip sends req on a connection to req.URL.Host and returns the
// response once its headers arrive; the body streams after.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil || req.URL.Host == "" {
		closeBody(req)
		return nil, errors.New("h2: request has no host")
	}
	ctx := req.Context()
	if err := validHeaders(req); err != nil {
		closeBody(req)
		return nil, err
	}
	inline, body, done, err := takeInline(req)
	if err != nil {
		return nil, err
	}
	defer done()
	for attempt := 0; ; attempt++ {
		cc, err := t.connFor(ctx, req.URL.Host)
		if err != nil {
			if body != nil {
				_ = body.Close()
			}
			return nil, err
		}
		resp, err := cc.roundTrip(req, body, inline)
		if errors.Is(err, errConnUnusable) && attempt < 3 {
			// The connection went away before the request was written
			// (a GOAWAY or a close raced the pick): another one takes it.
			continue
		}
		return resp, err
	}
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// connFor returns a connection to addr with room for one more stream,
// dialing one when there is none (one dial for concurrent callers).
func (t *Transport) connFor(ctx context.Context, addr string) (*clientConn, error) {
	for {
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			return nil, ErrClosed
		}
		for _, cc := range t.conns[addr] {
			if cc.reserve() {
				t.mu.Unlock()
				return cc, nil
			}
		}
		call, ok := t.dialing[addr]
		if !ok {
			call = &dialCall{done: make(chan struct{})}
			if t.dialing == nil {
				t.dialing = map[string]*dialCall{}
			}
			t.dialing[addr] = call
			// The dial outlives the caller that started it: others may
			// wait on it, so only the transport's closing stops it.
			go t.dial(addr, call)
		}
		t.mu.Unlock()
		select {
		case <-call.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if call.err != nil {
			return nil, call.err
		}
		if call.cc.reserve() {
			return call.cc, nil
		}
		// Full already (or gone): look again; a new dial starts if needed.
	}
}

func (t *Transport) dial(addr string, call *dialCall) {
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	conn, err := t.Dial(ctx, addr)
	var cc *clientConn
	if err == nil {
		cc, err = newClientConn(ctx, t, addr, conn)
	}
	t.mu.Lock()
	delete(t.dialing, addr)
	if err == nil {
		if t.closed {
			err = ErrClosed
			cc.close(ErrClosed)
		} else {
			if t.conns == nil {
				t.conns = map[string][]*clientConn{}
			}
			t.conns[addr] = append(t.conns[addr], cc)
		}
	}
	t.mu.Unlock()
	call.cc, call.err = cc, err
	if err != nil {
		call.err = fmt.Errorf("h2: dial %s: %w", addr, err)
	}
	close(call.done)
}

// dialTimeout bounds a dial that no caller bounds (Dial's own timeout
// is usually shorter).
const dialTimeout = 30 * time.Second

// forget drops a connection that takes no more streams from the pool.
func (t *Transport) forget(cc *clientConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	list := t.conns[cc.addr]
	for i, c := range list {
		if c == cc {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(t.conns, cc.addr)
	} else {
		t.conns[cc.addr] = list
	}
}

// CloseIdleConnections closes the connections that carry no stream.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	var idle []*clientConn
	for _, list := range t.conns {
		for _, cc := range list {
			if cc.idle() {
				idle = append(idle, cc)
			}
		}
	}
	t.mu.Unlock()
	for _, cc := range idle {
		cc.closeIfIdle()
	}
}

// Close closes every connection, failing the streams on them, and makes
// RoundTrip fail from then on.
func (t *Transport) Close() {
	t.mu.Lock()
	t.closed = true
	var all []*clientConn
	for _, list := range t.conns {
		all = append(all, list...)
	}
	t.conns = nil
	t.mu.Unlock()
	for _, cc := range all {
		cc.close(ErrClosed)
	}
}

func (t *Transport) streamWindow() int32 {
	if t.StreamWindow > 0 {
		return t.StreamWindow
	}
	return DefaultStreamWindow
}

func (t *Transport) connWindow() int32 {
	if t.ConnWindow > 0 {
		return t.ConnWindow
	}
	return DefaultConnWindow
}
