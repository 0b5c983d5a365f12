package h2

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/meshgate/meshgate/server/h2/hpackcodec"
)

// Server serves HTTP/2 connections (cleartext with prior knowledge, or TLS
// after ALPN h2) to an http.Handler, for the same reason as the client:
// net/http's server hands every frame between three goroutines and flushes
// each one. Here the connection's goroutine reads frames and starts one
// goroutine per request; a handler writes its frames itself under the
// connection's write lock, and the socket is flushed when the handler
// flushes or ends (a unary answer's HEADERS, DATA and trailers leave in
// one system call) or when a burst of writers is over.
//
// Streams count against MaxConcurrentStreams until their handler returns,
// even when the client reset them, so that resetting streams as fast as
// they open (CVE-2023-44487) runs no more handlers than the limit.
type Server struct {
	Handler http.Handler
	// MaxConcurrentStreams is advertised and enforced (0: 1024); streams
	// over it are refused (REFUSED_STREAM).
	MaxConcurrentStreams uint32
	// MaxHeaderBytes bounds a request's decoded header list (0: 1 MiB);
	// a larger one is answered 431.
	MaxHeaderBytes int
	// IdleTimeout closes a connection without streams for that long
	// (GOAWAY first); 0: never.
	IdleTimeout time.Duration
	// WriteTimeout fails a connection whose writes stall that long (a
	// client that stops reading); 0: 30s.
	WriteTimeout time.Duration
	// StreamWindow and ConnWindow are the receive windows advertised for
	// request bodies (0: 1 MiB and 16 MiB).
	StreamWindow, ConnWindow int32
	// ConnState, when set, is told of each connection's start
	// (http.StateNew) and end (http.StateClosed).
	ConnState func(net.Conn, http.ConnState)
	Logger    *slog.Logger
	// Relay, when set, is asked of each request (in the read loop,
	// without blocking) whether to relay it frame by frame to an upstream
	// instead of running Handler (see relay.go).
	Relay RelayFunc

	mu       sync.Mutex
	conns    map[*serverConn]struct{}
	shutdown bool
	draining bool          // Drain was called: connections are told to go
	idle     chan struct{} // signalled when a connection ends during Shutdown
}

// connBufSize is each connection's read buffer: a DATA frame and its
// headers fit, and 10k idle connections stay under 64 KiB each
// (TestServer_IdleConnectionMemory). Writes gather in a pooled buffer held
// only until flushed (pooledWriter).
const connBufSize = 16 << 10

func (s *Server) maxStreams() uint32 {
	if s.MaxConcurrentStreams > 0 {
		return s.MaxConcurrentStreams
	}
	return 1024
}

func (s *Server) maxHeaderBytes() uint32 {
	if s.MaxHeaderBytes > 0 {
		return uint32(s.MaxHeaderBytes)
	}
	return 1 << 20
}

func (s *Server) streamWindow() int32 {
	if s.StreamWindow > 0 {
		return s.StreamWindow
	}
	return DefaultStreamWindow
}

func (s *Server) connWindow() int32 {
	if s.ConnWindow > 0 {
		return s.ConnWindow
	}
	return DefaultConnWindow
}

func (s *Server) writeTimeout() time.Duration {
	if s.WriteTimeout > 0 {
		return s.WriteTimeout
	}
	return 30 * time.Second
}

// ConnSettings are one connection's limits (ServeConnWith), under the
// names of Envoy's HttpConnectionManager; a zero field takes the Server's.
type ConnSettings struct {
	// MaxConcurrentStreams, StreamWindow and ConnWindow: as the Server's
	// (http2_protocol_options max_concurrent_streams,
	// initial_stream_window_size, initial_connection_window_size).
	MaxConcurrentStreams     uint32
	StreamWindow, ConnWindow int32
	// MaxRequests: once this many streams were opened the connection gets
	// its final GOAWAY (later streams are refused, safe to retry) and
	// closes when they ended (max_requests_per_connection); 0: no limit.
	MaxRequests uint32
	// MaxDuration: this long after it opened, the connection is drained as
	// by Server.Drain (max_connection_duration); 0: no limit.
	MaxDuration time.Duration
	// MaxHeaders bounds the fields of a request's header block, pseudo
	// headers aside: more is answered 431 (max_headers_count); 0: none.
	MaxHeaders int
}

// ServeConn serves one connection until it ends, with the Server's
// settings. The client preface is the first thing c reads.
func (s *Server) ServeConn(c net.Conn) { s.ServeConnWith(c, ConnSettings{}) }

// ServeConnWith serves one connection until it ends, with its own limits.
func (s *Server) ServeConnWith(c net.Conn, set ConnSettings) {
	set.MaxConcurrentStreams = cmp.Or(set.MaxConcurrentStreams, s.maxStreams())
	set.StreamWindow = cmp.Or(set.StreamWindow, s.streamWindow())
	set.ConnWindow = cmp.Or(set.ConnWindow, s.connWindow())
	sc := &serverConn{
		s: s, set: set, conn: c, remoteAddr: c.RemoteAddr().String(),
		streams:       map[uint32]*serverStream{},
		initialWindow: 65535,
		sendWindow:    65535,
		maxFrame:      16384,
		recv:          recvFlow{avail: set.ConnWindow},
	}
	if tc, ok := c.(*tls.Conn); ok {
		st := tc.ConnectionState()
		sc.tls = &st
	}
	sc.cond.L = &sc.mu
	bw := &pooledWriter{w: &deadlineWriter{c: c, timeout: s.writeTimeout()}}
	sc.br = bufio.NewReaderSize(&flushingReader{sc: sc}, connBufSize)
	sc.fr = http2.NewFramer(bw, sc.br)
	sc.w = newFrameWriter(bw, sc.fr, func(err error) { sc.close(fmt.Errorf("h2: write to %s: %w", sc.remoteAddr, err)) })
	sc.fr.SetReuseFrames() // DATA is copied out before the next read
	sc.hr = newHeaderReader(s.maxHeaderBytes())
	sc.fr.MaxHeaderListSize = s.maxHeaderBytes()
	// As net/http's server does: the address the connection arrived at, for
	// whoever matches on it (RBAC's destination_ip and destination_port,
	// %DOWNSTREAM_LOCAL_ADDRESS%).
	sc.ctx, sc.cancel = context.WithCancel(context.WithValue(context.Background(), http.LocalAddrContextKey, c.LocalAddr()))
	sc.baseReq = (&http.Request{}).WithContext(sc.ctx)

	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		_ = c.Close()
		return
	}
	if s.conns == nil {
		s.conns = map[*serverConn]struct{}{}
	}
	s.conns[sc] = struct{}{}
	s.mu.Unlock()
	if s.ConnState != nil {
		s.ConnState(c, http.StateNew)
	}
	err := sc.serve()
	if ce := (http2.ConnectionError(0)); errors.As(err, &ce) {
		sc.linger() // its GOAWAY went: let the client read it
	}
	sc.close(err)
	sc.handlers.Wait()
	s.mu.Lock()
	delete(s.conns, sc)
	if s.idle != nil {
		select {
		case s.idle <- struct{}{}:
		default:
		}
	}
	s.mu.Unlock()
	if s.ConnState != nil {
		s.ConnState(c, http.StateClosed)
	}
}

// Drain tells every connection, and each new one once its SETTINGS went,
// to go away while refusing nothing yet: a GOAWAY naming the highest
// stream id, then a PING; when the PING's ACK comes back every stream the
// client opened before it read the GOAWAY has arrived, and a second
// GOAWAY names the last of them (the two steps RFC 9113 §6.8 describes,
// as Envoy drains). The connection closes once those streams end. New
// connections are still served: a client that reaches a draining gateway
// is answered and moves on.
func (s *Server) Drain() {
	s.mu.Lock()
	s.draining = true // connections registered from now on drain themselves
	s.mu.Unlock()
	s.DrainOpen()
}

func (s *Server) isDraining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}

// DrainOpen drains the open connections as Drain does, but not the ones
// that open later (the overload action disable_http_keepalive).
func (s *Server) DrainOpen() { s.eachConn((*serverConn).drain) }

// GoAway sends every connection its final GOAWAY: streams above the last
// one seen are refused, and each connection closes once its streams end.
// It does not wait for that (Shutdown does).
func (s *Server) GoAway() {
	s.eachConn(func(sc *serverConn) { sc.goAway(http2.ErrCodeNo, true) })
}

// eachConn calls f on each open connection (s.mu not held during f).
func (s *Server) eachConn(f func(*serverConn)) {
	s.mu.Lock()
	conns := s.connList()
	s.mu.Unlock()
	for _, sc := range conns {
		f(sc)
	}
}

// connList copies the open connections (s.mu held).
func (s *Server) connList() []*serverConn {
	conns := make([]*serverConn, 0, len(s.conns))
	for sc := range s.conns {
		conns = append(conns, sc)
	}
	return conns
}

// Shutdown sends GOAWAY on every connection, lets their streams finish
// until ctx ends, then closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutdown = true
	s.idle = make(chan struct{}, 1)
	conns := s.connList()
	s.mu.Unlock()
	for _, sc := range conns {
		sc.goAway(http2.ErrCodeNo, true)
	}
	for {
		s.mu.Lock()
		n := len(s.conns)
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-s.idle:
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			s.Close()
			return ctx.Err()
		}
	}
}

// Close closes every connection now.
func (s *Server) Close() {
	s.mu.Lock()
	s.shutdown = true
	conns := s.connList()
	s.mu.Unlock()
	for _, sc := range conns {
		sc.close(errors.New("h2: server closed"))
	}
}

// flushingReader is what the read loop's buffer reads from: before a read
// that may block, the answers the loop wrote are flushed, so that a burst
// of PINGs gets its ACKs in one write and none waits behind a quiet client.
type flushingReader struct{ sc *serverConn }

func (r *flushingReader) Read(p []byte) (int, error) {
	if err := r.sc.flushRun(); err != nil {
		return 0, err
	}
	r.sc.toFlush.flush()
	n, err := r.sc.conn.Read(p)
	r.sc.readAt = time.Now() // the read loop's clock, once per read
	return n, err
}

// deadlineWriter bounds each write, so that a client that stops reading
// cannot hold the connection's writers forever.
type deadlineWriter struct {
	c       net.Conn
	timeout time.Duration
	until   time.Time // the deadline set last
}

// Write moves the write deadline only when less than three quarters of
// the timeout is left on it: each move re-arms a runtime timer, a cost a
// write per call felt; a stalled write still fails within the timeout.
func (w *deadlineWriter) Write(p []byte) (int, error) {
	now := time.Now()
	if w.until.Sub(now) < w.timeout*3/4 {
		w.until = now.Add(w.timeout)
		_ = w.c.SetWriteDeadline(w.until)
	}
	return w.c.Write(p)
}

// serverConn is one client connection.
type serverConn struct {
	s          *Server
	set        ConnSettings // the Server's where the caller gave none
	conn       net.Conn
	tls        *tls.ConnectionState
	remoteAddr string
	// baseReq is an empty request with the connection's context: each
	// request starts as a copy of it (no allocation for the context).
	baseReq  *http.Request
	fr       *http2.Framer
	hr       *headerReader // the read loop's
	br       *bufio.Reader
	ctx      context.Context
	cancel   context.CancelFunc
	handlers sync.WaitGroup

	w *frameWriter

	mu   sync.Mutex
	cond sync.Cond // send windows opened, streams ended, connection closed
	// streams are the streams whose handler runs (or whose request is
	// still being received).
	streams       map[uint32]*serverStream
	maxClientID   uint32
	initialWindow int32
	sendWindow    int32
	maxFrame      uint32
	recv          recvFlow
	goingAway     bool
	closed        bool
	// settingsSent: the server's SETTINGS went (nothing may precede them);
	// drainSent: the first GOAWAY of a drain went.
	settingsSent, drainSent bool
	failed                  bool        // a GOAWAY with an error code went
	opened                  uint32      // streams accepted (for MaxRequests)
	opening                 int         // streams accepted whose handler or relay is not registered yet
	maxAge                  *time.Timer // drains at MaxDuration
	idleTimer               *time.Timer
	idleArmed               bool              // idleTimer set and not stopped since (under mu)
	relays                  map[uint32]*relay // relayed streams (under mu)
	toFlush                 flushList         // the read loop's: writers to flush before it waits
	run                     dataRun           // the read loop's: request DATA not yet handed to its relay
	readAt                  time.Time         // the read loop's: when its last read returned
	// sweep watches the relays bounded only by an idle timeout, every
	// sweepEvery (under mu; nil when none is running).
	sweep      *time.Timer
	sweepEvery time.Duration
	// watch looks at the relays' timeouts, due by watchNext while
	// watchArmed (under mu; see watchAt).
	watch      *time.Timer
	watchNext  time.Time
	watchArmed bool

	// The read loop's: streams reset by the client before their answer
	// began (rapid reset, CVE-2023-44487: a reset stream stops counting
	// against the stream limit soon — a relayed one at once — so the
	// connection is judged by their share of the streams it opened).
	prematureResets int
	floods          floodWatch // the read loop's
}

// Control frames a client may send (PING and SETTINGS that ask for an
// ACK) within each floodWindow beyond maxControlFrames plus
// controlPerStreamFrame for each HEADERS or DATA frame of the same window,
// read or written: a PING or SETTINGS flood makes the server write an ACK
// for each (CVE-2019-9512, CVE-2019-9515). grpc-go pings at most once per
// DATA frame it receives (BDP estimation: one PING a round trip while data
// flows, thousands a second on a long server stream whose client sends
// nothing else), and keepalives are seconds apart.
const (
	floodWindow           = 10 * time.Second
	maxControlFrames      = 1000
	controlPerStreamFrame = 4
)

// floodWatch counts a connection's control and stream frames per window.
type floodWatch struct {
	start           time.Time
	control, stream int
	// sentAtStart is the count of DATA frames the connection had written
	// when the window began.
	sentAtStart uint64
}

// noteStream counts a HEADERS or DATA frame read at now, when the
// connection had written sent DATA frames.
func (w *floodWatch) noteStream(now time.Time, sent uint64) {
	w.roll(now, sent)
	w.stream++
}

// roll begins a new window when the current one is over.
func (w *floodWatch) roll(now time.Time, sent uint64) {
	if now.Sub(w.start) > floodWindow {
		*w = floodWatch{start: now, sentAtStart: sent}
	}
}

// note counts f, read at now, when the connection had written sent DATA
// frames; an error when the control frames are a flood.
func (w *floodWatch) note(f http2.Frame, now time.Time, sent uint64) error {
	control := false
	switch f := f.(type) {
	case *http2.PingFrame:
		control = !f.IsAck()
	case *http2.SettingsFrame:
		control = !f.IsAck()
	case *http2.MetaHeadersFrame, *http2.DataFrame:
	default:
		return nil
	}
	if !control {
		w.noteStream(now, sent)
		return nil
	}
	w.roll(now, sent)
	w.control++
	streamFrames := w.stream + int(sent-w.sentAtStart)
	if w.control > maxControlFrames+controlPerStreamFrame*streamFrames {
		return fmt.Errorf("h2: %d PING and SETTINGS frames within %v against %d HEADERS and DATA read and written (a control frame flood): %w",
			w.control, floodWindow, streamFrames, http2.ConnectionError(http2.ErrCodeEnhanceYourCalm))
	}
	return nil
}

func (sc *serverConn) serve() error {
	preface := make([]byte, len(http2.ClientPreface))
	_ = sc.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(sc.conn, preface); err != nil {
		return fmt.Errorf("h2: reading the client preface: %w", err)
	}
	_ = sc.conn.SetReadDeadline(time.Time{})
	if string(preface) != http2.ClientPreface {
		return errors.New("h2: bad client preface")
	}
	err := sc.w.write(true, func(fr *http2.Framer) error {
		err := fr.WriteSettings(
			http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: sc.set.MaxConcurrentStreams},
			http2.Setting{ID: http2.SettingInitialWindowSize, Val: uint32(sc.set.StreamWindow)},
			http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: sc.s.maxHeaderBytes()},
		)
		if err == nil && sc.set.ConnWindow > 65535 {
			err = fr.WriteWindowUpdate(0, uint32(sc.set.ConnWindow-65535))
		}
		return err
	})
	if err != nil {
		return err
	}
	sc.mu.Lock()
	sc.settingsSent = true
	sc.armIdleLocked()
	if d := sc.set.MaxDuration; d > 0 {
		sc.maxAge = time.AfterFunc(d, sc.drain)
	}
	sc.mu.Unlock()
	if sc.s.isDraining() {
		sc.drain()
	}
	first := true
	for {
		f, err := sc.hr.next(sc.fr)
		if d, ok := f.(*http2.DataFrame); ok && err == nil && sc.run.extend(d) {
			sc.floods.noteStream(sc.readAt, sc.w.dataFrames.Load())
			continue
		}
		if ferr := sc.flushRun(); ferr != nil {
			sc.goAway(http2.ErrCodeFlowControl, false)
			return ferr
		}
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				sc.resetStream(se.StreamID, se.Code)
				continue
			}
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				sc.goAway(http2.ErrCode(ce), false)
			}
			return err
		}
		if first {
			if _, ok := f.(*http2.SettingsFrame); !ok {
				sc.goAway(http2.ErrCodeProtocol, false)
				return errors.New("h2: the client's first frame is not SETTINGS")
			}
			first = false
		}
		if err = sc.floods.note(f, sc.readAt, sc.w.dataFrames.Load()); err != nil {
			sc.goAway(http2.ErrCodeEnhanceYourCalm, false)
			return err
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			err = sc.onHeaders(f)
		case *http2.DataFrame:
			err = sc.onData(f)
		case *http2.RSTStreamFrame:
			err = sc.onReset(f)
		case *http2.SettingsFrame:
			err = sc.onSettings(f)
		case *http2.WindowUpdateFrame:
			err = sc.onWindowUpdate(f)
		case *http2.PingFrame:
			if !f.IsAck() {
				data := f.Data
				err = sc.w.write(false, func(fr *http2.Framer) error { return fr.WritePing(true, data) })
				sc.toFlush.add(sc.w) // with what the read loop flushes before it waits
			} else if f.Data == drainPing {
				sc.goAway(http2.ErrCodeNo, true) // the drain's second GOAWAY
			}
		case *http2.GoAwayFrame:
			sc.mu.Lock()
			sc.goingAway = true
			sc.closeIfDoneLocked()
			sc.mu.Unlock()
		case *http2.PushPromiseFrame:
			err = http2.ConnectionError(http2.ErrCodeProtocol)
		}
		if err != nil {
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				sc.goAway(http2.ErrCode(ce), false)
			}
			return err
		}
	}
}

// goAway tells the client that no stream above the last one seen will be
// processed; graceful keeps the connection until its streams end.
func (sc *serverConn) goAway(code http2.ErrCode, graceful bool) {
	sc.mu.Lock()
	if sc.closed {
		sc.mu.Unlock()
		return
	}
	sc.goingAway = true
	// A GOAWAY with an error ends the read loop, which lingers and closes
	// the connection; streams ending meanwhile must not close it first.
	sc.failed = sc.failed || code != http2.ErrCodeNo
	last := sc.maxClientID
	sc.mu.Unlock()
	_ = sc.w.write(true, func(fr *http2.Framer) error { return fr.WriteGoAway(last, code, nil) })
	if graceful {
		sc.mu.Lock()
		sc.closeIfDoneLocked()
		sc.mu.Unlock()
	}
}

// drainPing is the PING a drain's first GOAWAY is followed by.
var drainPing = [8]byte{'d', 'r', 'a', 'i', 'n', 'i', 'n', 'g'}

// drain sends the first GOAWAY of a graceful drain (see Server.Drain); a
// connection whose SETTINGS have not gone yet drains once they have.
func (sc *serverConn) drain() {
	sc.mu.Lock()
	if sc.closed || sc.goingAway || sc.drainSent || !sc.settingsSent {
		sc.mu.Unlock()
		return
	}
	sc.drainSent = true
	sc.mu.Unlock()
	_ = sc.w.write(true, func(fr *http2.Framer) error {
		if err := fr.WriteGoAway(1<<31-1, http2.ErrCodeNo, nil); err != nil {
			return err
		}
		return fr.WritePing(false, drainPing)
	})
}

// closeIfDoneLocked closes a connection going away once its streams ended.
// What the last stream wrote may still be buffered for another read loop
// to flush (a relayed answer is flushed by the upstream connection's): it
// is flushed first, or the client would read the close before its answer.
func (sc *serverConn) closeIfDoneLocked() {
	if sc.goingAway && len(sc.streams)+len(sc.relays)+sc.opening == 0 && !sc.closed && !sc.failed {
		go func() {
			_ = sc.w.flushNow()
			sc.close(errors.New("h2: connection done after GOAWAY"))
		}()
	}
}

// armIdleLocked starts the idle timer when no stream is left.
func (sc *serverConn) armIdleLocked() {
	d := sc.s.IdleTimeout
	if d <= 0 || len(sc.streams)+len(sc.relays) != 0 || sc.closed {
		return
	}
	sc.idleArmed = true
	if sc.idleTimer == nil {
		sc.idleTimer = time.AfterFunc(d, func() {
			sc.mu.Lock()
			idle := len(sc.streams)+len(sc.relays) == 0
			sc.mu.Unlock()
			if idle {
				sc.goAway(http2.ErrCodeNo, true)
			}
		})
		return
	}
	sc.idleTimer.Reset(d)
}

// stopIdleLocked stops the idle timer if it was set: on a busy connection
// that is once, not a timer stop per call.
func (sc *serverConn) stopIdleLocked() {
	if sc.idleArmed {
		sc.idleTimer.Stop()
		sc.idleArmed = false
	}
}

func (sc *serverConn) close(err error) {
	sc.mu.Lock()
	if sc.closed {
		sc.mu.Unlock()
		return
	}
	sc.closed = true
	if sc.idleTimer != nil {
		sc.idleTimer.Stop()
	}
	if sc.maxAge != nil {
		sc.maxAge.Stop()
	}
	if sc.sweep != nil {
		sc.sweep.Stop()
	}
	if sc.watch != nil {
		sc.watch.Stop()
	}
	streams := make([]*serverStream, 0, len(sc.streams))
	for _, st := range sc.streams {
		streams = append(streams, st)
	}
	relays := make([]*relay, 0, len(sc.relays))
	for _, r := range sc.relays {
		relays = append(relays, r)
	}
	sc.cond.Broadcast()
	sc.mu.Unlock()
	sc.cancel()
	_ = sc.conn.Close()
	for _, st := range streams {
		st.abort(fmt.Errorf("h2: client connection closed: %w", err))
	}
	for _, r := range relays {
		r.clientReset(http2.ErrCodeCancel)
	}
}

func (sc *serverConn) stream(id uint32) *serverStream {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.streams[id]
}

// resetStream resets a stream the framer refused a frame of.
func (sc *serverConn) resetStream(id uint32, code http2.ErrCode) {
	if st := sc.stream(id); st != nil {
		st.abort(http2.StreamError{StreamID: id, Code: code})
	}
	_ = sc.w.write(true, func(fr *http2.Framer) error { return fr.WriteRSTStream(id, code) })
}

func (sc *serverConn) onHeaders(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	if id%2 == 0 {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	sc.mu.Lock()
	if st := sc.streams[id]; st != nil {
		sc.mu.Unlock()
		return st.onTrailers(f)
	}
	if r := sc.relays[id]; r != nil {
		sc.mu.Unlock()
		if !f.StreamEnded() {
			return http2.ConnectionError(http2.ErrCodeProtocol) // trailers without END_STREAM
		}
		r.fromClientTrailers(f)
		return nil
	}
	if id <= sc.maxClientID {
		sc.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeProtocol) // HEADERS on a closed stream
	}
	sc.maxClientID = id
	refuse := sc.goingAway || sc.closed || uint32(len(sc.streams)+len(sc.relays)) >= sc.set.MaxConcurrentStreams
	if !refuse {
		sc.opened++
		sc.opening++
	}
	last := sc.set.MaxRequests > 0 && sc.opened == sc.set.MaxRequests
	sc.mu.Unlock()
	if refuse {
		_ = sc.w.write(true, func(fr *http2.Framer) error { return fr.WriteRSTStream(id, http2.ErrCodeRefusedStream) })
		return nil
	}
	// Until this stream is registered (or answered here), a GOAWAY sent
	// meanwhile must not close the connection under it when the other
	// streams end.
	defer func() {
		sc.mu.Lock()
		sc.opening--
		sc.closeIfDoneLocked()
		sc.mu.Unlock()
	}()
	if last {
		sc.goAway(http2.ErrCodeNo, false) // this stream is served; later ones are refused
	}
	if f.Truncated || (sc.set.MaxHeaders > 0 && len(f.RegularFields()) > sc.set.MaxHeaders) {
		return sc.answer(id, http.StatusRequestHeaderFieldsTooLarge)
	}
	room := new(requestRoom)
	req := &room.req
	if status := sc.newRequest(f, room); status != 0 {
		if status < 0 {
			_ = sc.w.write(true, func(fr *http2.Framer) error { return fr.WriteRSTStream(id, http2.ErrCodeProtocol) })
			return nil
		}
		return sc.answer(id, status)
	}
	if sc.s.Relay != nil && sc.tryRelay(id, req, f.StreamEnded()) {
		return nil
	}
	st := newServerStream(sc, id, req, f.StreamEnded())
	sc.mu.Lock()
	sc.streams[id] = st
	st.sendWindow = sc.initialWindow
	sc.stopIdleLocked()
	sc.mu.Unlock()
	sc.handlers.Add(1)
	go st.run()
	return nil
}

// answer ends a stream with a status and no body, without a handler.
func (sc *serverConn) answer(id uint32, status int) error {
	return sc.w.write(true, func(fr *http2.Framer) error {
		block := sc.w.headerBlock(func(enc *hpackcodec.Encoder) {
			enc.WriteField(hpack.HeaderField{Name: ":status", Value: statusCode(status)})
		})
		return writeHeaderBlock(fr, id, block, true, int(sc.frameSize()))
	})
}

func (sc *serverConn) frameSize() uint32 {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.maxFrame
}

func (sc *serverConn) onData(f *http2.DataFrame) error {
	n := int32(f.Length)
	sc.mu.Lock()
	if !sc.recv.take(n) {
		sc.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	st := sc.streams[f.StreamID]
	known := f.StreamID <= sc.maxClientID
	r := sc.relays[f.StreamID]
	sc.mu.Unlock()
	if r != nil {
		if !sc.run.start(r, f) {
			data := f.Data()
			r.fromClient(data, n-int32(len(data)), f.StreamEnded())
		}
		return nil
	}
	if st == nil {
		sc.consumed(n)
		if !known {
			return http2.ConnectionError(http2.ErrCodeProtocol) // DATA on an idle stream
		}
		_ = sc.w.write(true, func(fr *http2.Framer) error { return fr.WriteRSTStream(f.StreamID, http2.ErrCodeStreamClosed) })
		return nil
	}
	data := f.Data()
	if pad := n - int32(len(data)); pad > 0 {
		sc.consumed(pad)
	}
	st.onData(data, n-int32(len(data)), f.StreamEnded())
	return nil
}

// consumed gives n bytes of the connection window back, in updates of a
// quarter window.
func (sc *serverConn) consumed(n int32) {
	if n <= 0 {
		return
	}
	sc.mu.Lock()
	add := int32(0)
	if !sc.closed {
		add = sc.recv.consumed(n, sc.set.ConnWindow)
	}
	sc.mu.Unlock()
	if add > 0 {
		_ = sc.w.write(true, func(fr *http2.Framer) error { return fr.WriteWindowUpdate(0, uint32(add)) })
	}
}

// Premature resets tolerated per connection, and their share of the
// streams past that (Envoy's premature_reset_* overload defaults are alike).
const (
	maxPrematureResets     = 100
	maxPrematureResetShare = 2 // at most 1 in 2 relayed streams
)

// prematureReset counts a stream the client reset before its answer
// began; a connection that does it too often fails with
// ENHANCE_YOUR_CALM (the read loop sends GOAWAY and closes).
func (sc *serverConn) prematureReset() error {
	sc.prematureResets++
	if sc.prematureResets >= maxPrematureResets && uint32(sc.prematureResets*maxPrematureResetShare) >= sc.opened {
		return fmt.Errorf("h2: too many streams reset by the client before their answer (rapid reset): %w",
			http2.ConnectionError(http2.ErrCodeEnhanceYourCalm))
	}
	return nil
}

func (sc *serverConn) onReset(f *http2.RSTStreamFrame) error {
	sc.mu.Lock()
	r := sc.relays[f.StreamID]
	sc.mu.Unlock()
	if r != nil {
		if r.clientReset(f.ErrCode) {
			return sc.prematureReset()
		}
		return nil
	}
	if st := sc.stream(f.StreamID); st != nil {
		premature := !st.answered.Load()
		st.abort(http2.StreamError{StreamID: f.StreamID, Code: f.ErrCode})
		if premature {
			return sc.prematureReset()
		}
	}
	return nil
}

// lingerTime is how long a connection that failed with a connection error
// is read (and what it sends dropped) after its GOAWAY, before it is
// closed: closing a socket with unread bytes sends a TCP reset, which
// can discard the GOAWAY before the client reads why it was closed.
const lingerTime = 250 * time.Millisecond

// linger half-closes the connection after its GOAWAY and drains what the
// client still sends, for lingerTime or 1 MiB, whichever comes first.
func (sc *serverConn) linger() {
	if cw, ok := sc.conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = sc.conn.SetReadDeadline(time.Now().Add(lingerTime))
	_, _ = io.Copy(io.Discard, io.LimitReader(sc.conn, 1<<20))
}

func (sc *serverConn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	var ferr error
	var tableSize *uint32 // applied after the loop: the encoder's lock is not taken under mu
	var pump []*relay
	defer func() {
		for _, r := range pump {
			r.pumpDown(&sc.toFlush)
		}
	}()
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			return err
		}
		sc.mu.Lock()
		defer sc.mu.Unlock()
		switch s.ID {
		case http2.SettingMaxFrameSize:
			sc.maxFrame = s.Val
		case http2.SettingInitialWindowSize:
			delta := int64(s.Val) - int64(sc.initialWindow)
			sc.initialWindow = int32(s.Val)
			for _, st := range sc.streams {
				if !grow(&st.sendWindow, delta) {
					ferr = http2.ConnectionError(http2.ErrCodeFlowControl)
					return nil
				}
			}
			for _, r := range sc.relays {
				if !grow(&r.dsend, delta) {
					ferr = http2.ConnectionError(http2.ErrCodeFlowControl)
					return nil
				}
				pump = append(pump, r)
			}
			sc.cond.Broadcast()
		case http2.SettingHeaderTableSize:
			tableSize = &s.Val
		}
		return nil
	})
	if err == nil {
		err = ferr
	}
	if err != nil {
		return err
	}
	if tableSize != nil {
		sc.w.setHeaderTableSize(*tableSize)
	}
	sc.toFlush.add(sc.w) // with what the read loop flushes before it waits
	return sc.w.write(false, func(fr *http2.Framer) error { return fr.WriteSettingsAck() })
}

func (sc *serverConn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	var pump []*relay
	defer func() {
		for _, r := range pump {
			r.pumpDown(&sc.toFlush)
		}
	}()
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if f.StreamID == 0 {
		if !grow(&sc.sendWindow, int64(f.Increment)) {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		for _, r := range sc.relays {
			pump = append(pump, r)
		}
		sc.cond.Broadcast()
		return nil
	}
	if r := sc.relays[f.StreamID]; r != nil {
		if !grow(&r.dsend, int64(f.Increment)) {
			go r.fail(nil, errors.New("h2: the client's window update overflowed"), "13", "flow control error", http2.ErrCodeFlowControl, false)
			return nil
		}
		pump = append(pump, r)
		return nil
	}
	st := sc.streams[f.StreamID]
	if st == nil {
		return nil
	}
	if !grow(&st.sendWindow, int64(f.Increment)) {
		go sc.resetStream(f.StreamID, http2.ErrCodeFlowControl)
		return nil
	}
	sc.cond.Broadcast()
	return nil
}

// forgetStream drops a stream whose handler returned.
func (sc *serverConn) forgetStream(st *serverStream) {
	sc.mu.Lock()
	delete(sc.streams, st.id)
	sc.cond.Broadcast()
	sc.armIdleLocked()
	sc.closeIfDoneLocked()
	sc.mu.Unlock()
}
