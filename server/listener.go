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

	"github.com/meshgate/meshgate/server/wire"
)

// sniffTimeout bounds how long a new connection may take to send its first
// byte when the port serves both TLS and cleartext.
const sniffTimeout = 10 * time.Second

// listener is one bound port. Its http.Server serves HTTP/1.1 and cleartext
// HTTP/2 (prior knowledge) on plain connections, and HTTP/2 or HTTP/1.1 by
// ALPN on TLS ones; the first byte of a connection tells which it is when
// the port serves both.
type listener struct {
	addr string
	raw  net.Listener
	srv  *http.Server
	// maxHeaderBytes is what srv enforces; set once, at bind time.
	maxHeaderBytes int
	log            *slog.Logger
	state          atomic.Pointer[listenerState]

	conns     chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// listenerState is what a reload changes on a running listener.
type listenerState struct {
	name  string
	plain *chain      // nil: cleartext is refused
	tls   []tlsChain  // by server name (SNI); none: TLS is refused
	dubbo *dubboProxy // nil: Dubbo2 consumers are refused
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

// serve runs srv on the listener until it is shut down.
func (l *listener) serve(srv *http.Server) {
	l.srv = srv
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
	sniff := (hasTLS && st.plain != nil) || (st.dubbo != nil && (hasTLS || st.plain != nil))
	if sniff {
		_ = c.SetReadDeadline(time.Now().Add(sniffTimeout))
		var b [1]byte
		if _, err := c.Read(b[:]); err != nil {
			_ = c.Close()
			return
		}
		_ = c.SetReadDeadline(time.Time{})
		first = b[0]
		out = &peekedConn{Conn: c, first: first, hasFirst: true}
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
	case st.plain == nil:
		_ = c.Close() // nothing serves what this connection speaks
		return
	}
	select {
	case l.conns <- out:
	case <-l.closed:
		_ = c.Close()
	}
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

// shutdown stops accepting, lets in-flight requests finish until ctx ends,
// then closes what is left.
func (l *listener) shutdown(ctx context.Context) error {
	l.closeOnce.Do(func() {
		close(l.closed)
		_ = l.raw.Close()
	})
	var err error
	if l.srv != nil {
		if err = l.srv.Shutdown(ctx); err != nil {
			_ = l.srv.Close()
		}
	}
	l.wg.Wait()
	return err
}

// ServeHTTP hands the request to the filter chain it arrived on.
func (l *listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := l.state.Load()
	ch := st.plain
	if r.TLS != nil {
		ch = nil
		if tc := st.tlsChainFor(r.TLS.ServerName); tc != nil {
			ch = tc.ch
		}
	}
	if ch == nil {
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

// peekedConn gives back the byte classify read.
type peekedConn struct {
	net.Conn
	first    byte
	hasFirst bool
}

func (c *peekedConn) Read(p []byte) (int, error) {
	if c.hasFirst && len(p) > 0 {
		p[0] = c.first
		c.hasFirst = false
		return 1, nil
	}
	return c.Conn.Read(p)
}
