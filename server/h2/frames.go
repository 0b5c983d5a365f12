package h2

import (
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/net/http2"

	"github.com/meshgate/meshgate/server/h2/hpackcodec"
)

// frameWriter is a connection's write side, the client's and the
// server's: whoever has frames to send writes them under mu, and with
// flush the last of the writers queued behind one another flushes the
// buffer for all (one system call for a burst). The first write error is
// kept, every later write returns it, and fail gets it once (in its own
// goroutine: it closes the connection).
type frameWriter struct {
	mu      sync.Mutex
	bw      *pooledWriter
	fr      *http2.Framer // written only here; its reads are the read loop's
	henc    *hpackcodec.Encoder
	err     error
	pending atomic.Int32
	fail    func(error)
	// dataFrames counts the DATA frames written: a peer may ping for each
	// it receives (see floodWatch).
	dataFrames atomic.Uint64
}

func newFrameWriter(bw *pooledWriter, fr *http2.Framer, fail func(error)) *frameWriter {
	return &frameWriter{bw: bw, fr: fr, fail: fail, henc: hpackcodec.NewEncoder()}
}

// write runs fn (nil: nothing) with the framer under the lock; flush sends
// the buffer unless another writer queued behind will.
func (w *frameWriter) write(flush bool, fn func(fr *http2.Framer) error) error {
	if flush {
		w.pending.Add(1)
	}
	w.mu.Lock()
	err := w.err
	if err == nil && fn != nil {
		err = fn(w.fr)
	}
	if !flush || err != nil || w.pending.Load() > 1 || w.bw.Buffered() == 0 {
		if flush {
			w.pending.Add(-1)
		}
		w.fail1(err)
		w.mu.Unlock()
		return err
	}
	// Last in line: let the goroutines that are ready (other streams'
	// handlers, woken by the same read) add their frames first, so one
	// system call carries them all.
	w.mu.Unlock()
	runtime.Gosched()
	w.mu.Lock()
	if w.pending.Add(-1) == 0 && w.err == nil && w.bw.Buffered() > 0 {
		err = w.bw.Flush()
	}
	if err == nil {
		err = w.err
	}
	w.fail1(err)
	w.mu.Unlock()
	return err
}

// flushNow sends what is buffered without yielding first (for a read
// loop flushing what it wrote in a burst).
func (w *frameWriter) flushNow() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	err := w.err
	if err == nil && w.bw.Buffered() > 0 {
		err = w.bw.Flush()
		w.fail1(err)
	}
	return err
}

// fail1 keeps the first write error and closes the connection for it.
func (w *frameWriter) fail1(err error) {
	if err != nil && w.err == nil {
		w.err = err
		go w.fail(err)
	}
}

// headerBlock encodes fields with the connection's HPACK encoder; called
// within write (the encoder's state follows the order blocks go out).
func (w *frameWriter) headerBlock(fields func(enc *hpackcodec.Encoder)) []byte {
	w.henc.Reset()
	fields(w.henc)
	return w.henc.Bytes()
}

// setHeaderTableSize applies the peer's SETTINGS_HEADER_TABLE_SIZE.
func (w *frameWriter) setHeaderTableSize(size uint32) {
	w.mu.Lock()
	w.henc.SetMaxDynamicTableSizeLimit(size)
	w.mu.Unlock()
}

// writeHeaderBlock writes a header block as HEADERS and as many
// CONTINUATION frames as the peer's frame size asks.
func writeHeaderBlock(fr *http2.Framer, id uint32, block []byte, endStream bool, maxFrame int) error {
	first := true
	for first || len(block) > 0 {
		chunk := block
		if len(chunk) > maxFrame {
			chunk = chunk[:maxFrame]
		}
		block = block[len(chunk):]
		var err error
		if first {
			err = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: chunk, EndStream: endStream, EndHeaders: len(block) == 0})
			first = false
		} else {
			err = fr.WriteContinuation(id, len(block) == 0, chunk)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// recvFlow is one receive window, a connection's or a stream's: what the
// peer may still send, and what was read and not yet given back.
type recvFlow struct {
	avail, unacked int32
}

// take books n received bytes; false when they overrun the window (a
// flow-control error).
func (f *recvFlow) take(n int32) bool {
	if n > f.avail {
		return false
	}
	f.avail -= n
	return true
}

// consumed gives n read bytes back and returns the WINDOW_UPDATE increment
// to send: 0 until a quarter of the window (size) is due.
func (f *recvFlow) consumed(n, size int32) int32 {
	f.unacked += n
	if f.unacked < size/4 {
		return 0
	}
	add := f.unacked
	f.unacked = 0
	f.avail += add
	return add
}

// takeSend books up to n bytes, at most a frame, in a stream's and its
// connection's send windows (their lock held); 0 when either is shut.
func takeSend(stream, conn *int32, maxFrame uint32, n int32) int32 {
	k := min(n, *stream, *conn, int32(maxFrame))
	if k <= 0 {
		return 0
	}
	*stream -= k
	*conn -= k
	return k
}

// grow changes a send window by delta (a WINDOW_UPDATE, or a new
// SETTINGS_INITIAL_WINDOW_SIZE); false past 2^31-1, a flow-control error.
func grow(w *int32, delta int64) bool {
	v := int64(*w) + delta
	if v > math.MaxInt32 {
		return false
	}
	*w = int32(v)
	return true
}
