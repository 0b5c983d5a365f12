package h2

// The frame relay: a gRPC call the server's Relay func takes is passed
// frame by frame between the client's connection and an upstream
// connection by their two read loops, with no handler goroutine: HEADERS
// re-encoded (the Relay func gives the request as the upstream gets it),
// DATA forwarded as the windows allow and queued when they do not (the
// sender's window is given back only as bytes are forwarded, so a slow
// reader holds its writer back), trailers after the data, resets and lost
// connections mapped both ways, the deadline, the per-try timeout and the
// idle timeout watched by one timer per connection (or the connection's
// idle sweep when the idle timeout is all). Writes from a read loop are flushed before it next waits, so the
// frames of everything one read brought leave in one write per connection.
// An attempt that fails before any of its answer went to the client is
// handed, with its request, to a handler that makes the retries.
// A goroutine per stream and its hand-offs cost most of a gRPC call's CPU
// in the gateway (36 µs through a handler, ~20 relayed, on the bench).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshgate/meshgate/grpcframe"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/meshgate/meshgate/server/h2/hpackcodec"
	"google.golang.org/grpc/codes"
)

// RelayFunc decides, in the downstream read loop and without blocking,
// whether a request is relayed, and where to.
type RelayFunc func(req *http.Request) (*RelayTarget, bool)

// RelayTarget is where a relayed request goes and what governs it.
type RelayTarget struct {
	Transport *Transport
	Addr      string
	// Start commits the call to the relay once an upstream connection is
	// booked: the request's head as the upstream gets it and what is told,
	// once, how the call ended. false: the call goes to a handler after all.
	Start func() (out RequestHead, done func(RelayEnd), ok bool)
	// Timeout ends the call (DEADLINE_EXCEEDED) that long after it began;
	// Idle when no frame went either way that long. 0: none.
	Timeout, Idle time.Duration
	// Retry, when set, is asked about an attempt that failed before any of
	// its answer went to the client, the whole request sent and held (at
	// most RetryBuffer bytes of DATA): true hands the call to a handler,
	// which makes the retries, with req (its body the held DATA) and
	// handedOver in its context (HandedOver; its Done method, if any, is
	// called once the handler returned). The attempt's done is told first,
	// with RelayEnd.HandedOver set.
	Retry       func(RelayEnd) (req *http.Request, handedOver any, ok bool)
	RetryBuffer int
	// MaxMessage ends the call (RESOURCE_EXHAUSTED) when a request message
	// is longer (the listener's max_grpc_message_bytes); 0: no limit.
	MaxMessage uint64
	// PerTry ends an attempt whose response headers have not come that
	// long after it began (the route's per_try_timeout): a retry may
	// follow (Retry), else DEADLINE_EXCEEDED. 0: none.
	PerTry time.Duration
	// EditResponse, when set, edits the response's headers (the route's
	// response header mutations) before they go to the client; not
	// trailers, not the relay's own answers (as on the handler path).
	EditResponse func(http.Header)
}

type handedOverKey struct{}

// HandedOver is what the relay's Retry gave for a call it handed to a
// handler after a failed attempt; nil for a call that came to the handler
// first.
func HandedOver(ctx context.Context) any { return ctx.Value(handedOverKey{}) }

// RelayEnd is how a relayed call ended.
type RelayEnd struct {
	// Status is the :status sent to the client (0: none), GRPCStatus the
	// grpc-status seen in the response or its trailers ("": none).
	Status     int
	GRPCStatus string
	// Err says why the call ended before the response did (nil: it
	// ended); ClientGone that the client reset or left.
	Err        error
	ClientGone bool
	Local      bool // the answer was the relay's own (timeout, upstream failure)
	// Refused: the upstream refused the stream or went away before it
	// (REFUSED_STREAM, GOAWAY), so it did not process it.
	Refused bool
	// HandedOver: the call went on to a handler that retries it; this
	// attempt is over, the call is not (not answered here).
	HandedOver bool
	// BytesIn and BytesOut are the DATA bytes taken from the client and
	// passed to it (access logs' BYTES_RECEIVED and BYTES_SENT).
	BytesIn, BytesOut int64
}

// ErrRelayTimeout, ErrRelayIdle, ErrRelayMessageTooLarge,
// ErrRelayPerTryTimeout and ErrRelayFlowControl end a relayed call
// (RelayEnd.Err).
var (
	ErrRelayTimeout         = errors.New("upstream request timeout")
	ErrRelayIdle            = errors.New("stream idle timeout")
	ErrRelayMessageTooLarge = errors.New("gRPC message larger than the listener's limit")
	ErrRelayPerTryTimeout   = errors.New("upstream per-try timeout")
	ErrRelayFlowControl     = errors.New("h2: the client overran its stream window")
)

// relayItem is what waits for a window: DATA, or trailers behind it.
type relayItem struct {
	data    []byte
	buf     *[]byte             // the pooled chunk data was copied into, if any
	trailer []hpack.HeaderField // non-nil: trailers (END_STREAM)
	end     bool
}

// queuedBytes is how many DATA bytes wait in q.
func queuedBytes(q []relayItem) int32 {
	n := int32(0)
	for i := range q {
		n += int32(len(q[i].data))
	}
	return n
}

// releaseItems gives the pooled chunks of a queue back.
func releaseItems(q []relayItem) {
	for i := range q {
		if q[i].buf != nil {
			putChunk(q[i].buf)
			q[i].buf = nil
		}
	}
}

// relay is one relayed call: the client's stream did on sc, the
// upstream's uid on cc.
type relay struct {
	sc     *serverConn
	did    uint32
	cc     *clientConn
	uid    atomic.Uint32
	tgt    *RelayTarget
	report func(RelayEnd)

	// dsend is the downstream stream's send window (under sc.mu), usend
	// the upstream stream's (under cc.mu).
	dsend, usend int32

	mu           sync.Mutex
	drecv, urecv recvFlow
	toUp, toDown []relayItem
	// upRoom and downRoom back the queues' usual one item.
	upRoom, downRoom [1]relayItem
	reqEnded         bool // END_STREAM went to the upstream
	respEnded        bool // the upstream's END_STREAM came
	upReset          bool // RST_STREAM went or came on the upstream stream
	downEnded        bool // END_STREAM (or a reset) went to the client
	respStarted      bool // response HEADERS went to the client
	// swept: only an idle timeout bounds the call, watched by the
	// connection's sweep instead of a timer of its own (set before the
	// relay is known to the connection, then read-only).
	swept bool
	// msgs follows the request's message prefixes (MaxMessage > 0).
	msgs grpcframe.SizeWatch
	// held is the request's DATA so far while holding (a retry may replay
	// it: the target retries and it fits in RetryBuffer).
	held    []byte
	holding bool
	// heldResp: the response's HEADERS (200, more to come), kept back
	// while a retry may still happen until the first DATA or the trailers
	// say how the call went (grpc-go sends a failure in trailers after
	// headers once its handler set metadata).
	heldResp []hpack.HeaderField
	end      RelayEnd
	done     bool
	// handedTo is the stream a handler took the call on (set with done):
	// the client's frames read for the relay since go on there.
	handedTo *serverStream
	// wakeAt: when the connection's watch is to look at this relay's
	// timeouts again (zero: never).
	wakeAt   time.Time
	deadline time.Time
	perTryAt time.Time // zero: no per-try timeout
	last     time.Time
}

// warm dials addr in the background when it has no connection and none is
// being dialed (a read loop does not dial).
func (t *Transport) warm(addr string) {
	t.mu.Lock()
	busy := t.closed || len(t.conns[addr]) > 0 || t.dialing[addr] != nil
	t.mu.Unlock()
	if busy {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if cc, err := t.connFor(ctx, addr); err == nil {
			cc.unreserve()
		}
	}()
}

// unreserve gives back a reserve() that opened no stream.
func (cc *clientConn) unreserve() {
	cc.mu.Lock()
	cc.reserved--
	cc.maybeIdleLocked()
	cc.mu.Unlock()
}

// readyConn is an open connection to addr with room for a stream, booked
// (nil when there is none: no dial from a read loop).
func (t *Transport) readyConn(addr string) *clientConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, cc := range t.conns[addr] {
		if cc.reserve() {
			return cc
		}
	}
	return nil
}

// flushList is a read loop's writers to flush before it next waits.
type flushList []*frameWriter

func (l *flushList) add(w *frameWriter) {
	for _, x := range *l {
		if x == w {
			return
		}
	}
	*l = append(*l, w)
}

func (l *flushList) flush() {
	for i, w := range *l {
		_ = w.flushNow()
		(*l)[i] = nil
	}
	*l = (*l)[:0]
}

// write writes with w: buffered when the caller is a read loop (fl: it
// flushes before it waits), flushed at once otherwise.
func write(fl *flushList, w *frameWriter, fn func(fr *http2.Framer) error) {
	if fl == nil {
		_ = w.write(true, fn)
		return
	}
	_ = w.write(false, fn)
	fl.add(w)
}

// writeData is write of one DATA frame, without a closure per frame; it
// joins the DATA frame of the same stream written just before it when both
// fit in one frame of maxFrame bytes.
func writeData(fl *flushList, w *frameWriter, id uint32, end bool, p []byte, maxFrame uint32) {
	w.mu.Lock()
	err := w.err
	if err == nil {
		var started bool
		started, err = w.bw.writeData(id, end, p, maxFrame)
		w.fail1(err)
		if started {
			w.dataFrames.Add(1)
		}
	}
	w.mu.Unlock()
	if fl == nil {
		_ = w.write(true, nil)
		return
	}
	fl.add(w)
}

// tryRelay relays the request of stream id when the server's Relay takes
// it and an upstream connection is ready; false leaves it to a handler.
func (sc *serverConn) tryRelay(id uint32, req *http.Request, end bool) bool {
	tgt, ok := sc.s.Relay(req)
	if !ok {
		return false
	}
	cc := tgt.Transport.readyConn(tgt.Addr)
	if cc == nil {
		// This call goes to a handler; the next ones find the connection.
		tgt.Transport.warm(tgt.Addr)
		return false
	}
	out, done, ok := tgt.Start()
	if !ok {
		cc.unreserve()
		return false
	}
	out.NeverIndexed = NeverIndexed(req.Context())
	r := &relay{sc: sc, did: id, cc: cc, tgt: tgt, report: done, reqEnded: end, holding: tgt.Retry != nil,
		last: sc.readAt} // (a sweep may look at it as soon as it is known)
	r.swept = tgt.Timeout == 0 && tgt.PerTry == 0 && tgt.Idle > 0
	r.toUp, r.toDown = r.upRoom[:0], r.downRoom[:0]
	r.drecv = recvFlow{avail: sc.set.StreamWindow}
	r.urecv = recvFlow{avail: cc.t.streamWindow()}
	// Known on this side before the HEADERS can go out (another writer
	// may flush them at once, and the answer may come right back).
	sc.mu.Lock()
	if sc.relays == nil {
		sc.relays = map[uint32]*relay{}
	}
	sc.relays[id] = r
	r.dsend = sc.initialWindow
	if r.swept && !sc.sweepIdleLocked(tgt.Idle) {
		r.swept = false // a shorter idle timeout than the sweep serves: the watch's
	}
	sc.stopIdleLocked()
	sc.mu.Unlock()
	sc.handlers.Add(1) // a graceful shutdown waits for relays too
	opened := false
	err := cc.w.write(false, func(fr *http2.Framer) error {
		cc.mu.Lock()
		uid := cc.nextID.Load()
		if cc.closed || cc.goAway || uid > maxStreamID {
			cc.mu.Unlock()
			return nil
		}
		opened = true
		cc.nextID.Store(uid + 2)
		r.uid.Store(uid) // (atomic: a reset may read it from another goroutine)
		r.usend = cc.initialWindow
		if cc.relays == nil {
			cc.relays = map[uint32]*relay{}
		}
		cc.relays[uid] = r
		cc.reserved--
		maxFrame := int(cc.maxFrame)
		cc.mu.Unlock()
		block := cc.w.headerBlock(func(enc *hpackcodec.Encoder) { encodeRequestHeaders(enc, &out) })
		return writeHeaderBlock(fr, uid, block, end, maxFrame)
	})
	if !opened {
		// The connection went away since it was booked: nothing went
		// upstream, so a route that retries takes the request to a handler
		// as it comes (its DATA is still to be read); else the call ends
		// here, as an upstream that could not be reached.
		cc.unreserve()
		gone := RelayEnd{Err: errors.New("h2: the upstream connection went away"), Local: true, Refused: true}
		r.mu.Lock()
		r.upReset = true
		if tgt.Retry != nil && !r.done {
			if req, handedOver, ok := tgt.Retry(gone); ok {
				r.handOffLocked(nil, req, handedOver, gone, true)
				return true
			}
		}
		r.mu.Unlock()
		r.upstreamFailed(nil, gone.Err)
		return true
	}
	sc.toFlush.add(cc.w)
	if err != nil {
		r.upstreamFailed(nil, err)
		return true
	}
	now := sc.readAt
	r.mu.Lock()
	r.last = now
	if tgt.Timeout > 0 {
		r.deadline = now.Add(tgt.Timeout)
	}
	if tgt.PerTry > 0 {
		r.perTryAt = now.Add(tgt.PerTry)
	}
	var wake time.Time
	if d, ok := r.nextTimerLocked(now); ok && !r.done && !r.swept {
		wake = now.Add(d)
		r.wakeAt = wake
	}
	r.mu.Unlock()
	if !wake.IsZero() {
		sc.watchAt(wake)
	}
	return true
}

func (r *relay) nextTimerLocked(now time.Time) (time.Duration, bool) {
	var d time.Duration
	ok := false
	if !r.deadline.IsZero() {
		d, ok = r.deadline.Sub(now), true
	}
	if idle := r.tgt.Idle; idle > 0 {
		if left := idle - now.Sub(r.last); !ok || left < d {
			d, ok = left, true
		}
	}
	if r.waitingHeadersLocked() {
		if left := r.perTryAt.Sub(now); !ok || left < d {
			d, ok = left, true
		}
	}
	return d, ok
}

// waitingHeadersLocked: a per-try timeout runs and the response's headers
// have not come.
func (r *relay) waitingHeadersLocked() bool {
	return !r.perTryAt.IsZero() && !r.respStarted && r.heldResp == nil
}

// Relays bounded only by a stream idle timeout (Envoy's default is 5
// minutes; no route timeout, as Istio's routes) are watched by one sweep per
// connection: their idle time moves with every frame, and the watch would
// fire once per idle timeout for each. The sweep runs every eighth of the idle timeout, so a quiet
// stream ends between 1 and 1.125 times it.
const minSweep = 10 * time.Millisecond

// sweepIdleLocked (sc.mu held) makes sure the sweep runs often enough for
// idle; false when it runs less often (the relay is then the watch's).
func (sc *serverConn) sweepIdleLocked(idle time.Duration) bool {
	every := max(idle/8, minSweep)
	if sc.sweep == nil {
		sc.sweepEvery = every
		sc.sweep = time.AfterFunc(every, sc.sweepIdle)
		return true
	}
	return every >= sc.sweepEvery
}

// sweepIdle ends the swept relays quiet for their idle timeout, and runs
// again while there are any.
func (sc *serverConn) sweepIdle() {
	now := time.Now()
	sc.mu.Lock()
	var swept []*relay
	for _, r := range sc.relays {
		if r.swept {
			swept = append(swept, r)
		}
	}
	sc.mu.Unlock()
	for _, r := range swept {
		r.mu.Lock()
		quiet := !r.done && now.Sub(r.last) >= r.tgt.Idle
		r.mu.Unlock()
		if quiet {
			r.fail(nil, ErrRelayIdle, "4", ErrRelayIdle.Error(), http2.ErrCodeCancel, false)
		}
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for _, r := range sc.relays {
		if r.swept && !sc.closed {
			sc.sweep.Reset(sc.sweepEvery)
			return
		}
	}
	sc.sweep = nil // the next swept relay starts it again
}

// The relays' timeouts (route, per-try, stream idle when they have one of
// the others) are watched by one timer per connection, set for the
// earliest time any relay must be looked at: a timer per call, set and
// stopped, was ~5% of a relayed call's CPU. Calls that finish early leave
// the timer set; when it fires it looks at each relay, ends those due, and
// is set again for the earliest left (one firing per route timeout, for
// calls that all share it).

// watchAt makes sure the connection's watch fires by at.
func (sc *serverConn) watchAt(at time.Time) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.closed || (sc.watchArmed && !at.Before(sc.watchNext)) {
		return
	}
	sc.watchArmed, sc.watchNext = true, at
	d := time.Until(at)
	if sc.watch == nil {
		sc.watch = time.AfterFunc(d, sc.onWatch)
	} else {
		sc.watch.Reset(d)
	}
}

// onWatch sets the watch for the next relay due, then ends the relays whose
// timeouts passed, each on a goroutine of its own: ending one writes to its
// client and upstream, and a peer that stopped reading must not hold up
// the other relays' timeouts (as a timer of their own would not have).
func (sc *serverConn) onWatch() {
	sc.mu.Lock()
	sc.watchArmed = false
	relays := make([]*relay, 0, len(sc.relays))
	for _, r := range sc.relays {
		relays = append(relays, r)
	}
	sc.mu.Unlock()
	var next time.Time
	var due []*relay
	var whys []error
	for _, r := range relays {
		at, why := r.checkTimeouts()
		if why != nil {
			due, whys = append(due, r), append(whys, why)
		} else if !at.IsZero() && (next.IsZero() || at.Before(next)) {
			next = at
		}
	}
	if !next.IsZero() {
		sc.watchAt(next)
	}
	for i, r := range due {
		go r.fail(nil, whys[i], "4", whys[i].Error(), http2.ErrCodeCancel, false)
	}
}

// checkTimeouts returns the timeout that ends the relay, if one has
// passed; else when to look again (zero: never).
func (r *relay) checkTimeouts() (time.Time, error) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done || r.wakeAt.IsZero() {
		return time.Time{}, nil
	}
	if now.Before(r.wakeAt) {
		return r.wakeAt, nil
	}
	var why error
	switch {
	case !r.deadline.IsZero() && !now.Before(r.deadline):
		why = ErrRelayTimeout
	case r.waitingHeadersLocked() && !now.Before(r.perTryAt):
		why = ErrRelayPerTryTimeout
	case r.tgt.Idle > 0 && now.Sub(r.last) >= r.tgt.Idle:
		why = ErrRelayIdle
	default:
		r.wakeAt = time.Time{}
		if d, ok := r.nextTimerLocked(now); ok {
			r.wakeAt = now.Add(d)
		}
		return r.wakeAt, nil
	}
	r.wakeAt = time.Time{}
	return time.Time{}, why
}

// fromClient takes downstream DATA (downstream read loop).
func (r *relay) fromClient(data []byte, pad int32, end bool) {
	sc := r.sc
	n := int32(len(data)) + pad
	r.mu.Lock()
	if st := r.handedTo; st != nil {
		r.mu.Unlock()
		if pad > 0 {
			sc.consumed(pad)
		}
		st.onData(data, pad, end)
		return
	}
	if r.done || r.reqEnded {
		r.mu.Unlock()
		sc.consumed(n)
		return
	}
	if !r.drecv.take(n) {
		r.mu.Unlock()
		sc.consumed(n)
		r.fail(&sc.toFlush, ErrRelayFlowControl, "13", "flow control error", http2.ErrCodeFlowControl, false)
		return
	}
	r.end.BytesIn += int64(len(data))
	if max := r.tgt.MaxMessage; max > 0 {
		r.msgs.Max = max
		if !r.msgs.Scan(data) {
			r.mu.Unlock()
			sc.consumed(n)
			r.fail(&sc.toFlush, ErrRelayMessageTooLarge, "8", fmt.Sprintf("a gRPC message is over the limit of %d bytes", max), http2.ErrCodeCancel, false)
			return
		}
	}
	if pad > 0 {
		r.creditClientLocked(&sc.toFlush, pad)
	}
	r.last = sc.readAt
	if r.holding {
		if len(r.held)+len(data) > r.tgt.RetryBuffer {
			r.holding, r.held = false, nil // too big to replay
		} else {
			r.held = append(r.held, data...)
		}
	}
	r.toUp = append(r.toUp, relayItem{data: data, end: end})
	if end {
		r.reqEnded = true
	}
	r.pumpLocked(&sc.toFlush, true)
	keepQueued(&r.toUp)
	r.mu.Unlock()
}

// keepQueued copies the data of the last item of a queue, when some of it
// is still queued: it is the frame just read, whose buffer the framer
// reuses (the items before it were copied when they were queued). The copy
// goes into a pooled chunk, given back once the item is sent or dropped:
// a stream whose reader is slower than its writer queues every frame, and
// a fresh copy of each made the garbage collector a quarter of a relayed
// server stream's CPU. A frame that fits in the chunk of the item before it
// joins that item (DATA frames need not keep their boundaries), so a peer
// sending tiny frames cannot make each one hold a chunk: what is queued
// takes at most about twice its size.
func keepQueued(q *[]relayItem) {
	n := len(*q)
	if n == 0 || len((*q)[n-1].data) == 0 {
		return
	}
	it := &(*q)[n-1]
	if n >= 2 {
		prev := &(*q)[n-2]
		if prev.buf != nil && prev.trailer == nil && !prev.end && cap(*prev.buf)-len(*prev.buf) >= len(it.data) {
			off := len(*prev.buf) - len(prev.data) // prev.data is its chunk's unsent tail
			*prev.buf = append(*prev.buf, it.data...)
			prev.data, prev.end = (*prev.buf)[off:], it.end
			*it = relayItem{}
			*q = (*q)[:n-1]
			return
		}
	}
	if len(it.data) > chunkSizes[len(chunkSizes)-1] {
		it.data = cloneIfAny(it.data) // a frame larger than the largest chunk
		return
	}
	c := getChunk(len(it.data))
	*c = append(*c, it.data...)
	it.data, it.buf = *c, c
}

func cloneIfAny(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

// pumpLocked sends what waits in one direction's queue (up: to the
// upstream) as far as the receiver's windows let it, giving the bytes back
// to the sender as they go; trailers end the queue.
func (r *relay) pumpLocked(fl *flushList, up bool) {
	q, room, w, id, frameSize := &r.toDown, r.downRoom[:0], r.sc.w, r.did, r.sc.frameSize
	if up {
		q, room, w, id, frameSize = &r.toUp, r.upRoom[:0], r.cc.w, r.uid.Load(), r.cc.frameSize
	}
	var maxFrame uint32 // the peer's
	for len(*q) > 0 {
		it := &(*q)[0]
		if it.trailer != nil {
			writeFields(fl, w, id, it.trailer, true, int(frameSize()), nil)
			*q = nil
			r.downEnded = r.downEnded || !up
			return
		}
		k := int32(len(it.data))
		if k > 0 {
			if k, maxFrame = r.takeWindow(up, k); k <= 0 {
				return
			}
		} else if maxFrame == 0 {
			maxFrame = frameSize()
		}
		chunk := it.data[:k]
		last := int(k) == len(it.data)
		endNow := last && it.end
		writeData(fl, w, id, endNow, chunk, maxFrame)
		if k > 0 {
			if up {
				r.creditClientLocked(fl, k)
			} else {
				r.creditUpstreamLocked(fl, k)
			}
		}
		if !last {
			it.data = it.data[k:]
			continue
		}
		if it.buf != nil {
			putChunk(it.buf)
		}
		(*q)[0] = relayItem{}
		if *q = (*q)[1:]; len(*q) == 0 {
			*q = room
		}
		r.downEnded = r.downEnded || (endNow && !up)
	}
}

// takeWindow books up to n bytes (at most a frame) in the stream's and the
// connection's send windows towards the upstream (up) or the client; 0
// when they are shut or the connection closed. It also tells that peer's
// largest frame.
func (r *relay) takeWindow(up bool, n int32) (int32, uint32) {
	if up {
		cc := r.cc
		cc.mu.Lock()
		defer cc.mu.Unlock()
		if cc.closed {
			return 0, cc.maxFrame
		}
		return takeSend(&r.usend, &cc.sendWindow, cc.maxFrame, n), cc.maxFrame
	}
	sc := r.sc
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.closed {
		return 0, sc.maxFrame
	}
	return takeSend(&r.dsend, &sc.sendWindow, sc.maxFrame, n), sc.maxFrame
}

// writeFields writes fields (those keep lets by; nil: all) as stream id's
// header block on w.
func writeFields(fl *flushList, w *frameWriter, id uint32, fields []hpack.HeaderField, end bool, frameSize int, keep func(hpack.HeaderField) bool) {
	write(fl, w, func(fr *http2.Framer) error {
		block := w.headerBlock(func(enc *hpackcodec.Encoder) {
			for _, hf := range fields {
				if keep == nil || keep(hf) {
					enc.WriteField(hf)
				}
			}
		})
		return writeHeaderBlock(fr, id, block, end, frameSize)
	})
}

// creditClientLocked gives n forwarded bytes back to the client's windows.
func (r *relay) creditClientLocked(fl *flushList, n int32) {
	sc := r.sc
	if add := r.drecv.consumed(n, sc.set.StreamWindow); add > 0 && !r.done {
		id := r.did
		write(fl, sc.w, func(fr *http2.Framer) error { return fr.WriteWindowUpdate(id, uint32(add)) })
	}
	sc.consumed(n)
}

// fromUpstreamHeaders takes the response HEADERS or trailers (upstream read
// loop).
func (r *relay) fromUpstreamHeaders(f *http2.MetaHeadersFrame) {
	fl := &r.cc.relayFlush
	r.mu.Lock()
	if r.done {
		r.mu.Unlock()
		return
	}
	r.last = r.cc.readAt
	if gs := fieldValue(f.Fields, "grpc-status"); gs != "" {
		r.end.GRPCStatus = gs
	}
	if held := r.heldResp; held != nil && !r.respStarted {
		// The trailers behind held headers: retried on their status, or
		// both sent on.
		r.heldResp = nil
		if !f.StreamEnded() {
			r.mu.Unlock()
			r.upstreamFailed(fl, errors.New("h2: trailers without END_STREAM"))
			return
		}
		r.respEnded = true
		if r.retryLocked(fl, RelayEnd{Status: http.StatusOK, GRPCStatus: fieldValue(f.Fields, "grpc-status")}) {
			return
		}
		r.respStarted, r.end.Status = true, http.StatusOK
		writeFields(fl, r.sc.w, r.did, held, false, int(r.sc.frameSize()), nil)
		r.writeDownHeaders(fl, f.Fields, true)
		r.downEnded = true
		r.finishLocked()
		return
	}
	if !r.respStarted {
		status, err := strconv.Atoi(fieldValue(f.Fields, ":status"))
		if err != nil || status < 100 || status > 999 {
			r.mu.Unlock()
			r.upstreamFailed(fl, errors.New("h2: malformed :status"))
			return
		}
		if status < 200 {
			r.mu.Unlock()
			return // interim: the final answer follows
		}
		if f.StreamEnded() || status != http.StatusOK {
			// A trailers-only answer or an HTTP error: one the route's
			// retry policy may retry, before the client sees it.
			r.respEnded = f.StreamEnded()
			if r.retryLocked(fl, RelayEnd{Status: status, GRPCStatus: fieldValue(f.Fields, "grpc-status")}) {
				return
			}
		} else if r.mayRetryLocked() {
			r.heldResp = responseFields(r.headFields(f.Fields))
			r.mu.Unlock()
			return
		}
		r.respStarted, r.end.Status = true, status
		r.writeDownHeaders(fl, r.headFields(f.Fields), f.StreamEnded())
		end := f.StreamEnded()
		if end {
			r.respEnded, r.downEnded = true, true
			r.finishLocked()
			return
		}
		r.mu.Unlock()
		return
	}
	r.respEnded = true
	if !f.StreamEnded() {
		r.mu.Unlock()
		r.upstreamFailed(fl, errors.New("h2: trailers without END_STREAM"))
		return
	}
	if len(r.toDown) == 0 {
		// Nothing waits before them: sent as they came.
		r.writeDownHeaders(fl, f.Fields, true)
		r.downEnded = true
		r.finishLocked()
		return
	}
	r.toDown = append(r.toDown, relayItem{trailer: responseFields(f.Fields), end: true})
	r.pumpLocked(fl, false)
	if r.downEnded {
		r.finishLocked()
		return
	}
	r.mu.Unlock()
}

// headFields is the response's header fields as the client gets them: the
// target's EditResponse applied (through an http.Header: only routes with
// response header mutations pay for it).
func (r *relay) headFields(fields []hpack.HeaderField) []hpack.HeaderField {
	edit := r.tgt.EditResponse
	if edit == nil {
		return fields
	}
	h := make(http.Header, len(fields))
	var neverIndexed []string // the header map drops the flag: kept aside
	for _, hf := range fields {
		if sendOn(hf) && !hf.IsPseudo() {
			k := canonicalHeader(hf.Name)
			h[k] = append(h[k], hf.Value)
			if hf.Sensitive {
				neverIndexed = append(neverIndexed, hf.Name)
			}
		}
	}
	edit(h)
	out := make([]hpack.HeaderField, 1, 1+len(h))
	out[0] = hpack.HeaderField{Name: ":status", Value: fieldValue(fields, ":status")}
	for k, vs := range h {
		name := lowerHeader(k)
		sensitive := neverIndexed != nil && slices.Contains(neverIndexed, name)
		for _, v := range vs {
			out = append(out, hpack.HeaderField{Name: name, Value: v, Sensitive: sensitive})
		}
	}
	return out
}

// writeDownHeaders sends the upstream's header fields to the client as a
// HEADERS frame (sendOn's fields only).
func (r *relay) writeDownHeaders(fl *flushList, fields []hpack.HeaderField, end bool) {
	writeFields(fl, r.sc.w, r.did, fields, end, int(r.sc.frameSize()), sendOn)
}

// sendOn: a response field passed on (:status kept, other pseudo fields
// and connection-specific ones dropped).
func sendOn(hf hpack.HeaderField) bool {
	if hf.IsPseudo() {
		return hf.Name == ":status"
	}
	switch hf.Name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		return false
	}
	return true
}

// responseFields copies the fields to send on (for trailers that wait).
func responseFields(in []hpack.HeaderField) []hpack.HeaderField {
	out := make([]hpack.HeaderField, 0, len(in))
	for _, hf := range in {
		if sendOn(hf) {
			out = append(out, hf)
		}
	}
	return out
}

func fieldValue(fields []hpack.HeaderField, name string) string {
	for _, hf := range fields {
		if hf.Name == name {
			return hf.Value
		}
	}
	return ""
}

// fromUpstreamData takes response DATA (upstream read loop).
func (r *relay) fromUpstreamData(data []byte, pad int32, end bool) {
	cc := r.cc
	fl := &cc.relayFlush
	n := int32(len(data)) + pad
	r.mu.Lock()
	if held := r.heldResp; held != nil && !r.done {
		// The first message: the call goes on, so do its held headers.
		r.heldResp = nil
		r.respStarted, r.end.Status = true, http.StatusOK
		writeFields(fl, r.sc.w, r.did, held, false, int(r.sc.frameSize()), nil)
	}
	if r.done || !r.respStarted {
		started := r.respStarted
		r.mu.Unlock()
		cc.consumed(n)
		if !started {
			r.upstreamFailed(fl, errors.New("h2: DATA before HEADERS"))
		}
		return
	}
	if !r.urecv.take(n) {
		r.mu.Unlock()
		cc.consumed(n)
		r.upstreamFailed(fl, errors.New("h2: the upstream overran its stream window"))
		return
	}
	if pad > 0 {
		r.creditUpstreamLocked(fl, pad)
	}
	r.last = r.cc.readAt
	if end {
		r.respEnded = true
	}
	r.end.BytesOut += int64(len(data))
	r.toDown = append(r.toDown, relayItem{data: data, end: end})
	r.pumpLocked(fl, false)
	keepQueued(&r.toDown)
	if r.downEnded {
		r.finishLocked()
		return
	}
	r.mu.Unlock()
}

func (r *relay) creditUpstreamLocked(fl *flushList, n int32) {
	cc := r.cc
	if add := r.urecv.consumed(n, cc.t.streamWindow()); add > 0 && !r.done {
		id := r.uid.Load()
		write(fl, cc.w, func(fr *http2.Framer) error { return fr.WriteWindowUpdate(id, uint32(add)) })
	}
	cc.consumed(n)
}

// upstreamFailed ends the call for an upstream failure: UNAVAILABLE when
// nothing was answered yet, a reset after.
func (r *relay) upstreamFailed(fl *flushList, err error) {
	r.fail(fl, err, "14", "upstream failed: "+err.Error(), http2.ErrCodeCancel, false)
}

// fail ends the call with a local gRPC answer (grpcStatus, msg): trailers-
// only when the response has not started, else trailers after what went
// (what still waits is dropped); the upstream stream is reset with code
// unless it is over. clientGone: the client is not answered.
func (r *relay) fail(fl *flushList, err error, grpcStatus, msg string, code http2.ErrCode, clientGone bool) {
	r.mu.Lock()
	if r.done {
		r.mu.Unlock()
		return
	}
	if !clientGone && r.retryLocked(fl, RelayEnd{Err: err, Local: true, Refused: r.end.Refused}) {
		return
	}
	r.end.Err, r.end.ClientGone = err, clientGone
	sc, cc := r.sc, r.cc
	if !clientGone && !r.downEnded {
		if r.respStarted {
			// Said so the client can tell a call cut mid-answer (which no
			// retry can hide) from one that never reached an upstream.
			msg += " (after the response started)"
		}
		fields := []hpack.HeaderField{{Name: "grpc-status", Value: grpcStatus}, {Name: "grpc-message", Value: msg}}
		r.end.GRPCStatus, r.end.Local = grpcStatus, true
		if !r.respStarted {
			// Trailers-only: the whole answer in one HEADERS frame.
			r.end.Status = http.StatusOK
			fields = append([]hpack.HeaderField{{Name: ":status", Value: "200"}, {Name: "content-type", Value: "application/grpc"}}, fields...)
		}
		writeFields(fl, sc.w, r.did, fields, true, int(sc.frameSize()), nil)
		r.downEnded = true
	}
	if !r.upReset && !(r.reqEnded && r.respEnded) && r.uid.Load() != 0 {
		uid := r.uid.Load()
		write(fl, cc.w, func(fr *http2.Framer) error { return fr.WriteRSTStream(uid, code) })
		r.upReset = true
	}
	r.finishLocked()
}

// finishLocked (r.mu held; releases it) forgets the relay on both
// connections and reports how it ended.
func (r *relay) finishLocked() {
	if r.done {
		r.mu.Unlock()
		return
	}
	r.done = true
	queued, downQueued := queuedBytes(r.toUp), queuedBytes(r.toDown)
	releaseItems(r.toUp)
	releaseItems(r.toDown)
	r.toUp, r.toDown = nil, nil
	end := r.end
	upOpen := !r.reqEnded && !r.upReset && r.uid.Load() != 0
	r.mu.Unlock()
	sc, cc := r.sc, r.cc
	sc.consumed(queued)
	cc.consumed(downQueued)
	if upOpen {
		// The answer is complete: the rest of the request is not needed.
		_ = cc.w.write(true, func(fr *http2.Framer) error { return fr.WriteRSTStream(r.uid.Load(), http2.ErrCodeCancel) })
	}
	sc.mu.Lock()
	delete(sc.relays, r.did)
	sc.cond.Broadcast()
	sc.armIdleLocked()
	sc.closeIfDoneLocked()
	sc.mu.Unlock()
	cc.mu.Lock()
	delete(cc.relays, r.uid.Load())
	cc.maybeIdleLocked()
	cc.mu.Unlock()
	sc.handlers.Done()
	if r.report != nil {
		r.report(end)
	}
}

// retryLocked (r.mu held; released when true) hands the call to a handler
// when the attempt that ended so may be retried: the target retries, the
// request so far went and is held, nothing of the answer went to the
// client, and neither the call's own deadline nor the client's request
// (a message over the limit, DATA past its window: not held, and no other
// host would take it either) is what ended it.
func (r *relay) retryLocked(fl *flushList, e RelayEnd) bool {
	if !r.mayReplayLocked() || errors.Is(e.Err, ErrRelayTimeout) || errors.Is(e.Err, ErrRelayIdle) ||
		errors.Is(e.Err, ErrRelayMessageTooLarge) || errors.Is(e.Err, ErrRelayFlowControl) {
		return false
	}
	req, handedOver, ok := r.tgt.Retry(e)
	if !ok {
		return false
	}
	r.handOffLocked(fl, req, handedOver, e, false)
	return true
}

// mayRetryLocked: the attempt may still be retried (the target retries,
// the whole request went and is held, nothing of the answer went on).
func (r *relay) mayRetryLocked() bool {
	return r.reqEnded && r.mayReplayLocked()
}

// mayReplayLocked: what went of the request is held, so an attempt that
// failed may be retried, the rest of a request still coming following
// what is replayed (as Envoy's router does with its buffered body).
// DATA still queued for the upstream does not stand in the way: it is held
// too (a connection lost before it could go leaves it queued), and the
// hand-off gives its flow-control credit back.
func (r *relay) mayReplayLocked() bool {
	return r.tgt.Retry != nil && r.holding && !trailerQueued(r.toUp) && !r.respStarted && !r.done
}

// trailerQueued: the client's trailers wait in q (they are not held).
func trailerQueued(q []relayItem) bool {
	for i := range q {
		if q[i].trailer != nil {
			return true
		}
	}
	return false
}

// handOffLocked (r.mu held; releases it) ends this attempt and gives the
// client's stream to a handler with req, its body the held DATA, or, when
// unread (none of the request's DATA was read yet), what the client sends
// from now on.
func (r *relay) handOffLocked(fl *flushList, req *http.Request, handedOver any, e RelayEnd, unread bool) {
	r.done = true
	uid := r.uid.Load()
	resetUp := !r.upReset && !r.respEnded && uid != 0
	r.upReset = true
	sc, cc := r.sc, r.cc
	var st *serverStream
	switch {
	case unread:
		st = newServerStream(sc, r.did, req, r.reqEnded)
	case r.reqEnded:
		st = newServerStream(sc, r.did, req, true)
		st.req.Body, st.req.ContentLength = io.NopCloser(bytes.NewReader(r.held)), int64(len(r.held))
	default:
		// Part of the request went: the handler reads it from what is
		// held, then the rest as the client sends it, in the window the
		// client was given so far (the held bytes were credited already).
		st = newServerStream(sc, r.did, req, false)
		st.reqBody.pre = r.held
		st.received = int64(len(r.held))
	}
	// DATA queued for the upstream is in what is held: it counts as
	// consumed, as what went did.
	if queued := queuedBytes(r.toUp); queued > 0 {
		r.creditClientLocked(fl, queued)
	}
	st.recv = r.drecv
	r.handedTo = st
	releaseItems(r.toUp)
	releaseItems(r.toDown)
	r.held, r.toUp, r.toDown = nil, nil, nil
	r.mu.Unlock()
	if resetUp {
		write(fl, cc.w, func(fr *http2.Framer) error { return fr.WriteRSTStream(uid, http2.ErrCodeCancel) })
	}
	cc.mu.Lock()
	delete(cc.relays, uid)
	cc.maybeIdleLocked()
	cc.mu.Unlock()
	e.HandedOver = true
	if r.report != nil {
		r.report(e)
	}
	st.req = st.req.WithContext(context.WithValue(st.req.Context(), handedOverKey{}, handedOver))
	sc.mu.Lock()
	delete(sc.relays, r.did)
	if sc.closed {
		sc.cond.Broadcast()
		sc.closeIfDoneLocked()
		sc.mu.Unlock()
		st.cancel(errors.New("h2: connection closed"))
		sc.handlers.Done()
		handedOverDone(handedOver)
		return
	}
	sc.streams[r.did] = st
	st.sendWindow = r.dsend
	sc.mu.Unlock()
	go func() {
		st.run() // the relay's place in sc.handlers passes to it
		handedOverDone(handedOver)
	}()
}

func handedOverDone(v any) {
	if d, ok := v.(interface{ Done() }); ok {
		d.Done()
	}
}

// clientReset ends the call the client reset (or left); true when the
// answer had not begun (a premature reset).
func (r *relay) clientReset(code http2.ErrCode) bool {
	r.mu.Lock()
	premature := !r.respStarted && !r.done
	st := r.handedTo
	r.mu.Unlock()
	if st != nil {
		premature = !st.answered.Load()
		st.abort(http2.StreamError{StreamID: r.did, Code: code})
		return premature
	}
	r.fail(nil, fmt.Errorf("h2: the client reset the stream (%v)", code), "1", "", http2.ErrCodeCancel, true)
	return premature
}

// upstreamReset ends the call the upstream reset, with the gRPC status
// the reset code maps to (gRPC's HTTP/2 error code mapping).
// The upstream got the deadline in grpc-timeout and may give up a hair
// before the relay's timer fires: a reset that close to the deadline is
// the deadline's (DEADLINE_EXCEEDED, not the CANCELLED a reset maps to).
func (r *relay) upstreamReset(code http2.ErrCode) {
	r.mu.Lock()
	r.upReset = true // no RST back
	r.end.Refused = code == http2.ErrCodeRefusedStream
	timedOut := !r.deadline.IsZero() && time.Until(r.deadline) < DeadlineSlack
	r.mu.Unlock()
	if timedOut {
		r.fail(nil, ErrRelayTimeout, "4", ErrRelayTimeout.Error(), http2.ErrCodeCancel, false)
		return
	}
	r.fail(nil, http2.StreamError{StreamID: r.uid.Load(), Code: code}, strconv.Itoa(int(ResetCode(code))), "upstream reset: "+code.String(), http2.ErrCodeCancel, false)
}

// DeadlineSlack is how close to a call's deadline an upstream failure
// counts as the deadline passing.
const DeadlineSlack = 10 * time.Millisecond

// ResetCode is the gRPC status a client sees for a stream the upstream
// reset with code, as the gRPC spec's "Errors" table says.
func ResetCode(code http2.ErrCode) codes.Code {
	switch code {
	case http2.ErrCodeRefusedStream:
		return codes.Unavailable // not processed
	case http2.ErrCodeCancel:
		return codes.Canceled
	case http2.ErrCodeEnhanceYourCalm:
		return codes.ResourceExhausted
	case http2.ErrCodeInadequateSecurity:
		return codes.PermissionDenied
	}
	return codes.Internal
}

// fromClientTrailers takes the request's trailers (downstream read loop).
func (r *relay) fromClientTrailers(f *http2.MetaHeadersFrame) {
	r.mu.Lock()
	if st := r.handedTo; st != nil {
		r.mu.Unlock()
		_ = st.onTrailers(f)
		return
	}
	if r.done || r.reqEnded {
		r.mu.Unlock()
		return
	}
	var fields []hpack.HeaderField
	for _, hf := range f.Fields {
		if !hf.IsPseudo() {
			fields = append(fields, hf)
		}
	}
	if fields == nil {
		fields = []hpack.HeaderField{}
	}
	r.reqEnded = true
	r.holding, r.held = false, nil // request trailers are not replayed
	r.toUp = append(r.toUp, relayItem{trailer: fields, end: true})
	r.pumpLocked(&r.sc.toFlush, true)
	r.mu.Unlock()
}

// pumpDown sends what waits for the client's windows (after a
// WINDOW_UPDATE or SETTINGS); fl is the calling read loop's.
func (r *relay) pumpDown(fl *flushList) {
	r.mu.Lock()
	if r.done {
		r.mu.Unlock()
		return
	}
	r.pumpLocked(fl, false)
	if r.downEnded {
		r.finishLocked()
		return
	}
	r.mu.Unlock()
}

// pumpUp sends what waits for the upstream's windows.
func (r *relay) pumpUp(fl *flushList) {
	r.mu.Lock()
	if !r.done {
		r.pumpLocked(fl, true)
	}
	r.mu.Unlock()
}
