package h2

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// errConnUnusable: the connection took no more streams by the time the
// request was to be written; RoundTrip tries another one.
var errConnUnusable = errors.New("h2: connection no longer takes new streams")

// clientConn is one HTTP/2 connection to a host.
type clientConn struct {
	t    *Transport
	addr string
	conn net.Conn
	fr   *http2.Framer // read by readLoop; written through w
	hr   *headerReader // the read loop's
	w    *frameWriter
	// nextID is the next stream id, taken under w's lock (ids go out in
	// order) and read by the read loop without it.
	nextID atomic.Uint32

	mu   sync.Mutex
	cond sync.Cond // send windows opened, streams ended, connection closed
	// streams are the open streams by id; reserved counts the requests
	// given this connection whose HEADERS are not written yet.
	streams  map[uint32]*clientStream
	reserved int
	// What the server's SETTINGS say.
	maxStreams    uint32
	maxFrame      uint32
	initialWindow int32
	// sendWindow is the connection's send window (DATA we may still send).
	sendWindow int32
	// recv is the connection's receive window.
	recv       recvFlow
	goAway     bool
	lastGoodID uint32 // with goAway: streams above it were not processed
	closed     bool
	err        error
	idleTimer  *time.Timer
	idleArmed  bool // idleTimer set and not stopped since (under mu)
	// settled is closed when the server's first SETTINGS came or the
	// connection closed.
	settled       chan struct{}
	firstSettings bool
	settleOnce    sync.Once

	// lastRead is when a frame last came (unix nanoseconds), for the
	// keepalive PING.
	lastRead   atomic.Int64
	pingTimer  *time.Timer
	pingWaited atomic.Bool

	relays     map[uint32]*relay // relayed streams (under mu)
	relayFlush flushList         // the read loop's: writers to flush before it waits
	run        dataRun           // the read loop's: response DATA not yet handed to its relay
	readAt     time.Time         // the read loop's: when its last read returned
}

// relayFlushReader is what the read loop's buffer reads from: before a
// read that may wait, what the loop wrote for relayed streams is flushed.
type relayFlushReader struct{ cc *clientConn }

func (r relayFlushReader) Read(p []byte) (int, error) {
	cc := r.cc
	if err := cc.flushRun(); err != nil {
		return 0, err
	}
	cc.relayFlush.flush()
	n, err := cc.conn.Read(p)
	// The read loop's clock: once per read, not per frame (a clock read
	// costs here, and every frame of a read arrived at once).
	cc.readAt = time.Now()
	cc.lastRead.Store(cc.readAt.UnixNano())
	return n, err
}

// newClientConn starts a connection: the client preface, its SETTINGS and
// connection window, then the read loop.
func newClientConn(ctx context.Context, t *Transport, addr string, conn net.Conn) (*clientConn, error) {
	cc := &clientConn{
		t: t, addr: addr, conn: conn,
		streams:       map[uint32]*clientStream{},
		maxStreams:    initialMaxStreams,
		maxFrame:      16384,
		initialWindow: 65535,
		sendWindow:    65535,
		recv:          recvFlow{avail: t.connWindow()},
		settled:       make(chan struct{}),
		firstSettings: true,
	}
	cc.cond.L = &cc.mu
	cc.nextID.Store(1)
	bw := &pooledWriter{w: conn}
	// 64 KiB: a backend streaming faster than its client reads leaves up
	// to a write buffer's worth per read, so what one read brings leaves in
	// one write (same-run A/B on server streaming against 32 KiB: 0.69-0.78
	// vs 0.78-0.79 µs of CPU per relayed message over four runs). Upstream
	// connections are few; downstream ones keep their smaller buffer.
	cc.fr = http2.NewFramer(bw, bufio.NewReaderSize(relayFlushReader{cc}, 64<<10))
	cc.w = newFrameWriter(bw, cc.fr, func(err error) { cc.close(fmt.Errorf("h2: write to %s: %w", addr, err)) })
	cc.fr.SetReuseFrames() // DATA is copied out before the next read
	cc.hr = newHeaderReader(maxResponseHeaderBytes)
	cc.fr.MaxHeaderListSize = maxResponseHeaderBytes
	cc.lastRead.Store(time.Now().UnixNano())

	if _, err := bw.WriteString(http2.ClientPreface); err != nil {
		conn.Close()
		return nil, err
	}
	err := cc.w.write(true, func(fr *http2.Framer) error {
		err := fr.WriteSettings(
			http2.Setting{ID: http2.SettingEnablePush, Val: 0},
			http2.Setting{ID: http2.SettingInitialWindowSize, Val: uint32(t.streamWindow())},
			http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: maxResponseHeaderBytes},
		)
		if err == nil && t.connWindow() > 65535 {
			err = fr.WriteWindowUpdate(0, uint32(t.connWindow()-65535))
		}
		return err
	})
	if err != nil {
		conn.Close()
		return nil, err
	}
	if t.PingInterval > 0 {
		cc.pingTimer = time.AfterFunc(t.PingInterval, cc.keepalive)
	}
	go cc.readLoop()
	// The server's SETTINGS come first: its stream limit is known before
	// any stream is opened (else a burst could open more than it takes,
	// to be refused).
	select {
	case <-cc.settled:
	case <-ctx.Done():
		cc.close(fmt.Errorf("h2: no SETTINGS from %s: %w", addr, ctx.Err()))
		return nil, ctx.Err()
	}
	cc.mu.Lock()
	err = cc.err
	cc.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return cc, nil
}

// reserve books room for one more stream, false when the connection is
// full, going away or closed.
func (cc *clientConn) reserve() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.closed || cc.goAway || uint32(len(cc.streams)+len(cc.relays)+cc.reserved) >= cc.maxStreams {
		return false
	}
	cc.reserved++
	cc.stopIdleLocked()
	return true
}

// idle reports a connection with no stream and no reservation.
func (cc *clientConn) idle() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return len(cc.streams)+len(cc.relays) == 0 && cc.reserved == 0
}

// closeIfIdle closes the connection unless a stream or reservation is on
// it, checked under the same lock that closes it: a request that reserved
// it between a separate check and the close would be failed, not retried.
func (cc *clientConn) closeIfIdle() {
	cc.shutdown(errors.New("h2: idle connection closed"), true)
}

// maybeIdleLocked starts the idle timer when the last stream ended; a
// connection told to go away closes then.
func (cc *clientConn) maybeIdleLocked() {
	if len(cc.streams)+len(cc.relays) != 0 || cc.reserved != 0 || cc.closed {
		return
	}
	if cc.goAway {
		go cc.close(errors.New("h2: server sent GOAWAY"))
		return
	}
	if d := cc.t.IdleConnTimeout; d > 0 {
		if cc.idleTimer == nil {
			cc.idleTimer = time.AfterFunc(d, cc.closeIfIdle)
		} else {
			cc.idleTimer.Reset(d)
		}
		cc.idleArmed = true
	}
}

// stopIdleLocked stops the idle timer if it was set: on a busy connection
// that is once, not a timer stop per call.
func (cc *clientConn) stopIdleLocked() {
	if cc.idleArmed {
		cc.idleTimer.Stop()
		cc.idleArmed = false
	}
}

// close ends the connection and fails its streams with err.
func (cc *clientConn) close(err error) { cc.shutdown(err, false) }

func (cc *clientConn) shutdown(err error, onlyIdle bool) {
	cc.mu.Lock()
	if cc.closed || onlyIdle && (len(cc.streams)+len(cc.relays) != 0 || cc.reserved != 0) {
		cc.mu.Unlock()
		return
	}
	cc.closed, cc.err = true, err
	cc.settleOnce.Do(func() { close(cc.settled) })
	streams := make([]*clientStream, 0, len(cc.streams))
	for _, cs := range cc.streams {
		streams = append(streams, cs)
	}
	relays := make([]*relay, 0, len(cc.relays))
	for _, r := range cc.relays {
		relays = append(relays, r)
	}
	cc.stopIdleLocked()
	if cc.pingTimer != nil {
		cc.pingTimer.Stop()
	}
	cc.cond.Broadcast()
	cc.mu.Unlock()
	cc.t.forget(cc)
	_ = cc.conn.Close()
	for _, cs := range streams {
		cs.abort(err, false)
	}
	for _, r := range relays {
		r.mu.Lock()
		r.upReset = true // the connection is gone: nothing to reset
		r.mu.Unlock()
		r.upstreamFailed(nil, err)
	}
}

// keepalive pings a connection that has been quiet for the ping interval
// and closes it when the answer does not come in time.
func (cc *clientConn) keepalive() {
	interval := cc.t.PingInterval
	quiet := time.Since(time.Unix(0, cc.lastRead.Load()))
	if quiet < interval {
		cc.mu.Lock()
		if !cc.closed {
			cc.pingTimer.Reset(interval - quiet)
		}
		cc.mu.Unlock()
		return
	}
	if cc.pingWaited.Load() {
		cc.close(fmt.Errorf("h2: no answer to PING from %s within %s", cc.addr, cc.pingTimeout()))
		return
	}
	cc.pingWaited.Store(true)
	_ = cc.w.write(true, func(fr *http2.Framer) error {
		return fr.WritePing(false, [8]byte{'m', 'e', 's', 'h', 'g', 'a', 't', 'e'})
	})
	cc.mu.Lock()
	if !cc.closed {
		cc.pingTimer.Reset(cc.pingTimeout())
	}
	cc.mu.Unlock()
}

func (cc *clientConn) pingTimeout() time.Duration {
	if cc.t.PingTimeout > 0 {
		return cc.t.PingTimeout
	}
	return 15 * time.Second
}

// stream finds an open stream.
func (cc *clientConn) stream(id uint32) *clientStream {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.streams[id]
}

// forgetStream removes a finished stream.
func (cc *clientConn) forgetStream(cs *clientStream) {
	cc.mu.Lock()
	if cc.streams[cs.id] == cs {
		delete(cc.streams, cs.id)
		cc.cond.Broadcast()
		cc.maybeIdleLocked()
	}
	cc.mu.Unlock()
}

// consumed gives n bytes of the connection window back once the
// streams' readers took them, in updates of a quarter window.
func (cc *clientConn) consumed(n int32) {
	if n <= 0 {
		return
	}
	cc.mu.Lock()
	add := int32(0)
	if !cc.closed {
		add = cc.recv.consumed(n, cc.t.connWindow())
	}
	cc.mu.Unlock()
	if add > 0 {
		_ = cc.w.write(true, func(fr *http2.Framer) error { return fr.WriteWindowUpdate(0, uint32(add)) })
	}
}

// readLoop reads frames until the connection fails.
func (cc *clientConn) readLoop() {
	err := cc.readFrames()
	var ce http2.ConnectionError
	if errors.As(err, &ce) {
		_ = cc.w.write(true, func(fr *http2.Framer) error { return fr.WriteGoAway(0, http2.ErrCode(ce), nil) })
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	cc.close(fmt.Errorf("h2: connection to %s lost: %w", cc.addr, err))
}

func (cc *clientConn) readFrames() error {
	first := true
	for {
		f, err := cc.hr.next(cc.fr)
		if d, ok := f.(*http2.DataFrame); ok && err == nil && cc.run.extend(d) {
			continue
		}
		if ferr := cc.flushRun(); ferr != nil {
			return ferr
		}
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				// A frame the framer refused for one stream (bad header
				// field): that stream is reset, the connection goes on.
				if cs := cc.stream(se.StreamID); cs != nil {
					cs.abort(se, true)
				}
				continue
			}
			return err
		}
		cc.pingWaited.Store(false)
		if first {
			if _, ok := f.(*http2.SettingsFrame); !ok {
				return http2.ConnectionError(http2.ErrCodeProtocol)
			}
			first = false
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			err = cc.onHeaders(f)
		case *http2.DataFrame:
			err = cc.onData(f)
		case *http2.RSTStreamFrame:
			if cs := cc.stream(f.StreamID); cs != nil {
				cs.abort(http2.StreamError{StreamID: f.StreamID, Code: f.ErrCode}, false)
			} else if r := cc.relay(f.StreamID); r != nil {
				r.upstreamReset(f.ErrCode)
			}
		case *http2.SettingsFrame:
			err = cc.onSettings(f)
		case *http2.WindowUpdateFrame:
			err = cc.onWindowUpdate(f)
		case *http2.PingFrame:
			if !f.IsAck() {
				data := f.Data
				// Flushed with the rest before the loop next waits: grpc-go
				// pings once per round trip (BDP estimation), a write each.
				err = cc.w.write(false, func(fr *http2.Framer) error { return fr.WritePing(true, data) })
				cc.relayFlush.add(cc.w)
			}
		case *http2.GoAwayFrame:
			cc.onGoAway(f)
		case *http2.PushPromiseFrame:
			return http2.ConnectionError(http2.ErrCodeProtocol) // we said ENABLE_PUSH 0
		}
		if err != nil {
			return err
		}
	}
}

// relay is the relayed stream id (nil: none).
func (cc *clientConn) relay(id uint32) *relay {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.relays[id]
}

func (cc *clientConn) onHeaders(f *http2.MetaHeadersFrame) error {
	cs := cc.stream(f.StreamID)
	if cs == nil {
		if r := cc.relay(f.StreamID); r != nil {
			if f.Truncated {
				r.upstreamFailed(&cc.relayFlush, fmt.Errorf("h2: response headers over %d bytes", maxResponseHeaderBytes))
				return nil
			}
			r.fromUpstreamHeaders(f)
			return nil
		}
		if f.StreamID >= cc.nextID.Load() {
			return http2.ConnectionError(http2.ErrCodeProtocol) // a stream we never opened
		}
		return nil // a stream we reset; its late frames are dropped
	}
	if f.Truncated {
		cs.abort(fmt.Errorf("h2: response headers over %d bytes", maxResponseHeaderBytes), true)
		return nil
	}
	cs.onHeaders(f)
	return nil
}

func (cc *clientConn) onData(f *http2.DataFrame) error {
	n := int32(f.Length)
	cc.mu.Lock()
	if !cc.recv.take(n) {
		cc.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	cs := cc.streams[f.StreamID]
	r := cc.relays[f.StreamID]
	cc.mu.Unlock()
	if r != nil {
		if !cc.run.start(r, f) {
			data := f.Data()
			r.fromUpstreamData(data, n-int32(len(data)), f.StreamEnded())
		}
		return nil
	}
	if cs == nil {
		if f.StreamID >= cc.nextID.Load() {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		cc.consumed(n) // nobody reads it: the window comes back at once
		return nil
	}
	data := f.Data()
	if pad := n - int32(len(data)); pad > 0 {
		cc.consumed(pad) // padding is flow-controlled but not kept
	}
	cs.onData(data, n-int32(len(data)), f.StreamEnded())
	return nil
}

func (cc *clientConn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	var ferr error
	var tableSize *uint32 // applied after the loop: the encoder's lock is not taken under mu
	var pump []*relay
	defer func() {
		for _, r := range pump {
			r.pumpUp(&cc.relayFlush)
		}
	}()
	cc.mu.Lock()
	if cc.firstSettings {
		// No limit said is no limit (RFC 9113 6.5.2); like x/net, 1000.
		cc.firstSettings = false
		if _, ok := f.Value(http2.SettingMaxConcurrentStreams); !ok {
			cc.maxStreams = unsaidMaxStreams
		}
	}
	cc.mu.Unlock()
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			return err
		}
		cc.mu.Lock()
		defer cc.mu.Unlock()
		switch s.ID {
		case http2.SettingMaxConcurrentStreams:
			cc.maxStreams = s.Val
		case http2.SettingMaxFrameSize:
			cc.maxFrame = s.Val
		case http2.SettingInitialWindowSize:
			delta := int64(s.Val) - int64(cc.initialWindow)
			cc.initialWindow = int32(s.Val)
			for _, cs := range cc.streams {
				if !grow(&cs.sendWindow, delta) {
					ferr = http2.ConnectionError(http2.ErrCodeFlowControl)
					return nil
				}
			}
			for _, r := range cc.relays {
				if !grow(&r.usend, delta) {
					ferr = http2.ConnectionError(http2.ErrCodeFlowControl)
					return nil
				}
				pump = append(pump, r)
			}
			cc.cond.Broadcast()
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
		cc.w.setHeaderTableSize(*tableSize)
	}
	err = cc.w.write(false, func(fr *http2.Framer) error { return fr.WriteSettingsAck() })
	cc.relayFlush.add(cc.w)
	cc.settleOnce.Do(func() { close(cc.settled) })
	return err
}

func (cc *clientConn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	var pump []*relay
	defer func() {
		for _, r := range pump {
			r.pumpUp(&cc.relayFlush)
		}
	}()
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if f.StreamID == 0 {
		if !grow(&cc.sendWindow, int64(f.Increment)) {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		for _, r := range cc.relays {
			pump = append(pump, r)
		}
		cc.cond.Broadcast()
		return nil
	}
	if r := cc.relays[f.StreamID]; r != nil {
		if !grow(&r.usend, int64(f.Increment)) {
			go r.upstreamFailed(nil, errors.New("h2: the upstream's window update overflowed"))
			return nil
		}
		pump = append(pump, r)
		return nil
	}
	cs := cc.streams[f.StreamID]
	if cs == nil {
		return nil
	}
	if !grow(&cs.sendWindow, int64(f.Increment)) {
		go cs.abort(http2.StreamError{StreamID: cs.id, Code: http2.ErrCodeFlowControl}, true)
		return nil
	}
	cc.cond.Broadcast()
	return nil
}

// onGoAway: no new streams; the ones above the last processed id were
// not processed and fail as refused (a retry may send them elsewhere).
func (cc *clientConn) onGoAway(f *http2.GoAwayFrame) {
	cc.mu.Lock()
	cc.goAway, cc.lastGoodID = true, f.LastStreamID
	var refused []*clientStream
	for id, cs := range cc.streams {
		if id > f.LastStreamID {
			refused = append(refused, cs)
		}
	}
	var refusedRelays []*relay
	for id, r := range cc.relays {
		if id > f.LastStreamID {
			refusedRelays = append(refusedRelays, r)
		}
	}
	cc.maybeIdleLocked()
	cc.mu.Unlock()
	cc.t.forget(cc)
	for _, cs := range refused {
		cs.abort(http2.StreamError{StreamID: cs.id, Code: http2.ErrCodeRefusedStream}, false)
	}
	for _, r := range refusedRelays {
		r.upstreamReset(http2.ErrCodeRefusedStream)
	}
}
