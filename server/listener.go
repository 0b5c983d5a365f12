package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshgate/meshgate/server/h2"
	"github.com/meshgate/meshgate/server/overload"
	"github.com/meshgate/meshgate/server/wire"
)

// sniffTimeout bounds how long a new connection may take to send its first
// byte when the port serves both TLS and cleartext.
const sniffTimeout = 10 * time.Second

// dubboSniffTimeout is how long a port serving Dubbo2 and Triple waits for
// a consumer's first byte: Dubbo's idle timeout (three heartbeats).
const dubboSniffTimeout = 3 * time.Minute

// listener is one bound port. Its http.Server serves HTTP/1.1 and cleartext
// HTTP/2 (prior knowledge) on plain connections, and HTTP/2 or HTTP/1.1 by
// ALPN on TLS ones; the first byte of a connection tells which it is when
// the port serves both.
type listener struct {
	addr string
	raw  net.Listener
	srv  *http.Server
	// h2 serves the HTTP/2 connections (prior knowledge, or ALPN h2);
	// srv the HTTP/1.x ones.
	h2 *h2.Server
	// maxHeaderBytes is what srv enforces; set once, at bind time, as are
	// the connection timeouts the servers apply (headersTimeout,
	// idleTimeout): a reload that changes them is logged, not applied.
	maxHeaderBytes              int
	headersTimeout, idleTimeout time.Duration
	// connCap, when set, caps the open downstream connections of every
	// listener (set at bind time).
	connCap *overload.ConnLimit
	log     *slog.Logger
	state   atomic.Pointer[listenerState]

	conns     chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// listenerState is what a reload changes on a running listener.
type listenerState struct {
	name string
	// inbound: the listener's traffic_direction is INBOUND (what
	// /drain_listeners?inboundonly drains).
	inbound bool
	plain   *chain      // nil: cleartext is refused
	tls     []tlsChain  // by server name (SNI); none: TLS is refused
	dubbo   *dubboProxy // nil: Dubbo2 consumers are refused
}

// listen binds addr. The listener does not accept until serve is called.
func listen(ctx context.Context, addr string, log *slog.Logger) (*listener, error) {
	var lc net.ListenConfig
	raw, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &listener{
		addr:   addr,
		raw:    raw,
		log:    log,
		conns:  make(chan net.Conn),
		closed: make(chan struct{}),
	}, nil
}

// serve runs srv (HTTP/1.x) and h2srv (HTTP/2) on the listener until it
// is shut down.
func (l *listener) serve(srv *http.Server, h2srv *h2.Server) {
	l.srv, l.h2 = srv, h2srv
	l.wg.Add(2)
	go func() {
		defer l.wg.Done()
		l.acceptLoop()
	}()
	go func() {
		defer l.wg.Done()
		if err := srv.Serve((*virtualListener)(l)); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			l.log.Error("listener stopped", "address", l.addr, "error", err)
		}
	}()
}

func (l *listener) acceptLoop() {
	var delay time.Duration
	for {
		c, err := l.raw.Accept()
		if err != nil {
			select {
			case <-l.closed:
				return
			default:
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			// Out of file descriptors and the like: back off as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			l.log.Warn("accept failed", "address", l.addr, "error", err, "retry_in", delay)
			select {
			case <-time.After(delay):
			case <-l.closed:
				return
			}
			continue
		}
		delay = 0
		if l.connCap != nil {
			if !l.connCap.Admit() {
				_ = c.Close() // max_active_downstream_connections reached
				continue
			}
			c = &countedConn{Conn: c, release: l.connCap.Release}
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.classify(c)
		}()
	}
}

// classify decides between TLS and cleartext and hands the connection to
// the http.Server.
func (l *listener) classify(c net.Conn) {
	st := l.state.Load()
	var out net.Conn = c
	var first byte
	hasTLS := len(st.tls) > 0
	// A Dubbo listener whose local app serves Triple consumers too tells
	// them apart by the first byte, as Dubbo 3's port unification does.
	tripleApp := st.dubbo != nil && st.dubbo.app != nil && st.plain == nil && !hasTLS
	sniff := (hasTLS && st.plain != nil) || (st.dubbo != nil && (hasTLS || st.plain != nil)) || tripleApp
	if sniff {
		wait := sniffTimeout
		if tripleApp {
			// Dubbo consumers connect ahead of their first call and
			// speak first only then (or at their heartbeat, 60s).
			wait = dubboSniffTimeout
		}
		_ = c.SetReadDeadline(time.Now().Add(wait))
		// A connection that has not spoken yet holds no request: it goes
		// when the port stops accepting.
		spoke, watched := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(watched)
			select {
			case <-l.closed:
				_ = c.SetReadDeadline(time.Now())
			case <-spoke:
			}
		}()
		var b [1]byte
		_, err := c.Read(b[:])
		close(spoke)
		<-watched // its deadline, if it set one, is cleared below, not after
		if err != nil {
			_ = c.Close()
			return
		}
		_ = c.SetReadDeadline(time.Time{})
		first = b[0]
		out = &prefixedConn{Conn: c, prefix: b[:]}
	}
	switch {
	case st.dubbo != nil && (!sniff || first == 0xda):
		// Dubbo2's magic: a Dubbo consumer.
		l.serveDubbo(out, st.dubbo)
		return
	case hasTLS && st.plain != nil:
		if first == 0x16 { // a TLS handshake record
			out = tls.Server(out, l.tlsConfig())
		}
	case hasTLS:
		if sniff && first != 0x16 {
			_ = c.Close() // cleartext on a TLS-only port
			return
		}
		out = tls.Server(out, l.tlsConfig())
	case tripleApp: // served by ServeHTTP
	case st.plain == nil:
		_ = c.Close() // nothing serves what this connection speaks
		return
	}
	if l.h2 != nil {
		if l.isHTTP2(&out) {
			l.h2.ServeConnWith(out, l.h2Settings(out))
			return
		}
		if out == nil {
			return // it failed its handshake or said nothing
		}
	}
	select {
	case l.conns <- out:
	case <-l.closed:
		_ = c.Close()
	}
}

// isHTTP2 tells an HTTP/2 connection: ALPN h2 after the TLS handshake,
// or the client preface in cleartext (read as far as it matches, and
// given back to whoever serves the connection). A connection that fails
// its handshake or sends nothing within the sniff timeout is closed.
func (l *listener) isHTTP2(c *net.Conn) bool {
	if tc, ok := (*c).(*tls.Conn); ok {
		ctx, cancel := context.WithTimeout(context.Background(), sniffTimeout)
		defer cancel()
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = tc.Close()
			*c = nil
			return false
		}
		return tc.ConnectionState().NegotiatedProtocol == "h2"
	}
	const preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
	conn := *c
	buf := make([]byte, len(preface))
	n := 0
	_ = conn.SetReadDeadline(time.Now().Add(sniffTimeout))
	defer func() { _ = conn.SetReadDeadline(time.Time{}) }()
	for n < len(preface) {
		k, err := conn.Read(buf[n:])
		for i := n; i < n+k; i++ {
			if buf[i] != preface[i] {
				*c = &prefixedConn{Conn: conn, prefix: buf[:n+k]}
				return false
			}
		}
		n += k
		if err != nil {
			_ = conn.Close()
			*c = nil
			return false
		}
	}
	*c = &prefixedConn{Conn: conn, prefix: buf}
	return true
}

// h2Settings are the limits of the chain an HTTP/2 connection is served
// by: the cleartext one, or the TLS one of its server name.
func (l *listener) h2Settings(c net.Conn) h2.ConnSettings {
	var cs *tls.ConnectionState
	if tc, ok := c.(*tls.Conn); ok {
		st := tc.ConnectionState()
		cs = &st
	}
	if ch := l.state.Load().chainFor(cs); ch != nil {
		return ch.limits.h2
	}
	return h2.ConnSettings{}
}

// prefixedConn gives back the bytes read to tell the protocol (the first
// byte classify sniffs, the HTTP/2 preface).
type prefixedConn struct {
	net.Conn
	prefix []byte
}

// CloseWrite half-closes a TCP connection, which net/http does before
// closing one it answered an error on (so the client reads the answer).
func (c *prefixedConn) CloseWrite() error { return closeWrite(c.Conn) }

// closeWrite half-closes c when it can (a TCP or TLS connection).
func closeWrite(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *prefixedConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// tlsConfig picks, at each handshake, the TLS chain of the client's
// server name (SNI) and its current config, so that a reload changes them
// without rebinding.
func (l *listener) tlsConfig() *tls.Config {
	return &tls.Config{
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			st := l.state.Load()
			tc := st.tlsChainFor(hello.ServerName)
			if tc == nil {
				if len(st.tls) == 0 {
					return nil, errors.New("TLS is no longer served on this port")
				}
				return nil, fmt.Errorf("no filter chain serves server name %q", hello.ServerName)
			}
			return tc.conf, nil
		},
	}
}

// drain starts a graceful drain (Server.DrainListeners): the port still
// accepts, and its connections, new ones too, are told to go: HTTP/1.x
// answers carry Connection: close and their connections close after
// them, HTTP/2 connections get GOAWAY.
func (l *listener) drain() {
	if l.srv != nil {
		l.srv.SetKeepAlivesEnabled(false)
	}
	if l.h2 != nil {
		l.h2.Drain()
	}
}

// keepAlive turns HTTP keep-alive on or off (the overload action
// disable_http_keepalive): off, HTTP/1.x answers carry Connection: close
// and idle HTTP/1.x connections close; open HTTP/2 connections are told to
// go.
func (l *listener) keepAlive(on bool) {
	if l.srv != nil {
		l.srv.SetKeepAlivesEnabled(on)
	}
	if !on && l.h2 != nil {
		l.h2.DrainOpen()
	}
}

// countedConn releases its place under the connection cap once, when it
// closes.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// CloseWrite half-closes, as the TCP connection it wraps does.
func (c *countedConn) CloseWrite() error { return closeWrite(c.Conn) }

// closeSocket stops accepting (once).
func (l *listener) closeSocket() {
	l.closeOnce.Do(func() {
		close(l.closed)
		_ = l.raw.Close()
	})
}

// stopAccepting closes the port's socket; open connections are told to go
// and close as their requests end (shutdown waits for them).
func (l *listener) stopAccepting() {
	l.closeSocket()
	if l.srv != nil {
		l.srv.SetKeepAlivesEnabled(false)
	}
	if l.h2 != nil {
		l.h2.GoAway()
	}
}

// shutdown stops accepting, lets in-flight requests finish until ctx ends,
// then closes what is left.
func (l *listener) shutdown(ctx context.Context) error {
	l.closeSocket()
	errs := make(chan error, 2)
	go func() {
		var err error
		if l.srv != nil {
			if err = l.srv.Shutdown(ctx); err != nil {
				_ = l.srv.Close()
			}
		}
		errs <- err
	}()
	go func() {
		var err error
		if l.h2 != nil {
			err = l.h2.Shutdown(ctx)
		}
		errs <- err
	}()
	err := <-errs
	if e := <-errs; err == nil {
		err = e
	}
	l.wg.Wait()
	return err
}

// chainFor is the filter chain r arrived on (nil: the listener no longer
// serves that kind of connection).
func (l *listener) chainFor(r *http.Request) *chain {
	return l.state.Load().chainFor(r.TLS)
}

// chainFor is the chain of a connection: the cleartext one (cs nil), or
// the TLS one of its server name; nil when the listener serves no such.
func (st *listenerState) chainFor(cs *tls.ConnectionState) *chain {
	if cs == nil {
		return st.plain
	}
	if tc := st.tlsChainFor(cs.ServerName); tc != nil {
		return tc.ch
	}
	return nil
}

// ServeHTTP hands the request to the filter chain it arrived on.
func (l *listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ch := l.chainFor(r)
	if ch == nil {
		if st := l.state.Load(); st.dubbo != nil && st.dubbo.app != nil && r.TLS == nil {
			st.dubbo.serveTripleApp(w, r)
			return
		}
		wire.WriteError(w, r, http.StatusMisdirectedRequest, codeUnavailable, "this listener no longer serves this kind of connection")
		return
	}
	ch.serveHTTP(w, r)
}

// virtualListener is what the http.Server accepts from: the connections
// classify hands over.
type virtualListener listener

func (v *virtualListener) Accept() (net.Conn, error) {
	select {
	case c := <-v.conns:
		return c, nil
	case <-v.closed:
		return nil, net.ErrClosed
	}
}

func (v *virtualListener) Close() error {
	v.closeOnce.Do(func() {
		close(v.closed)
		_ = v.raw.Close()
	})
	return nil
}

func (v *virtualListener) Addr() net.Addr { return v.raw.Addr() }
