package h2

// A read loop hands the DATA frames of one relayed stream that it reads
// back to back to the relay in one go, their data copied into a pooled
// chunk as they come: one relay lock, one window booking, one write and
// one window credit per run instead of per frame. A stream of 1 KiB gRPC
// messages arrives as one frame per message, twenty and more per read;
// the per-frame locks and calls were a fifth of a relayed stream's CPU in
// the gateway. A run is handed on before any other frame is handled,
// before the read loop reads again (so before it may wait: the windows
// the run's bytes take come back with them), and when its chunk is full.

import (
	"sync"

	"golang.org/x/net/http2"
)

// runChunk is the most a run holds: a chunk of the largest pooled size.
const runChunk = 16 << 10

// dataRun is a read loop's run: DATA of stream id for r, held in buf.
type dataRun struct {
	r   *relay
	id  uint32
	buf *[]byte // nil: no run
	// pad is the flow-controlled bytes of the frames beyond their data
	// (padding), untaken those not yet taken from the connection's
	// receive window (the run's first frame took its own).
	pad, untaken int32
	end          bool
}

// extend adds the frame f of stream id to the run when it continues it
// and fits; false leaves f to the caller.
func (d *dataRun) extend(f *http2.DataFrame) bool {
	if d.buf == nil || f.StreamID != d.id || d.end {
		return false
	}
	data := f.Data()
	if len(data) > cap(*d.buf)-len(*d.buf) {
		return false
	}
	n := int32(f.Length)
	*d.buf = append(*d.buf, data...)
	d.pad += n - int32(len(data))
	d.untaken += n
	d.end = f.StreamEnded()
	return true
}

// start begins a run for r with f, whose bytes the caller took from the
// connection's window; false when f is better handed on at once: it ends
// the stream, or it is over half a chunk (little would join it, and a
// bulk stream's full-size frames would each pay a copy for nothing).
func (d *dataRun) start(r *relay, f *http2.DataFrame) bool {
	data := f.Data()
	if f.StreamEnded() || len(data) > runChunk/2 {
		return false
	}
	d.r, d.id, d.buf = r, f.StreamID, getChunk(runChunk)
	*d.buf = append(*d.buf, data...)
	d.pad = int32(f.Length) - int32(len(data))
	return true
}

// hand ends the run and hands what it holds to its relay with to, once
// its bytes past the first frame's are booked in the connection's receive
// window (recv, under mu); an overrun is a connection FLOW_CONTROL_ERROR.
func (d *dataRun) hand(mu *sync.Mutex, recv *recvFlow, to func(r *relay, data []byte, pad int32, end bool)) error {
	if d.buf == nil {
		return nil
	}
	run := *d
	*d = dataRun{}
	defer putChunk(run.buf)
	if run.untaken > 0 {
		mu.Lock()
		ok := recv.take(run.untaken)
		mu.Unlock()
		if !ok {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
	}
	to(run.r, *run.buf, run.pad, run.end)
	return nil
}

// flushRun hands the upstream read loop's run to its relay.
func (cc *clientConn) flushRun() error {
	return cc.run.hand(&cc.mu, &cc.recv, (*relay).fromUpstreamData)
}

// flushRun hands the downstream read loop's run to its relay.
func (sc *serverConn) flushRun() error {
	return sc.run.hand(&sc.mu, &sc.recv, (*relay).fromClient)
}
