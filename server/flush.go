package server

import (
	"net/http"
	"sync"
	"time"
)

// flushDelay is how long a streamed response may hold written bytes back
// waiting for more. Reading the upstream usually returns at once while a
// response is arriving; flushing only when it would wait lets the headers,
// message and trailers of a unary call leave in one write instead of three.
const flushDelay = 50 * time.Microsecond

// coalescer flushes a streaming response when the upstream goes quiet
// rather than after every chunk. Its Write and the timer's flush run under
// one lock; the handler stops it before it returns.
type coalescer struct {
	mu      sync.Mutex
	w       *call
	pending bool
	stopped bool
	timer   *time.Timer
}

func newCoalescer(w *call) *coalescer {
	c := &coalescer{w: w}
	c.timer = time.AfterFunc(time.Hour, c.flush)
	c.timer.Stop()
	return c
}

func (c *coalescer) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending && !c.stopped {
		c.w.Flush()
		c.pending = false
	}
}

// markPending notes that written bytes wait for a flush (headers, say).
func (c *coalescer) markPending() {
	c.mu.Lock()
	c.pending = true
	c.mu.Unlock()
}

// beforeWait is called before a read that may block: pending bytes go out
// if the read takes longer than flushDelay.
func (c *coalescer) beforeWait() {
	c.mu.Lock()
	pending := c.pending
	c.mu.Unlock()
	if pending {
		c.timer.Reset(flushDelay)
	}
}

// afterWait is called when the read returned.
func (c *coalescer) afterWait() { c.timer.Stop() }

// write sends p (to be flushed later).
func (c *coalescer) write(p []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := c.w.Write(p)
	c.pending = true
	return err
}

// stop ends the coalescer; the handler may then touch the response freely.
func (c *coalescer) stop() {
	c.timer.Stop()
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
}

var _ http.Flusher = (*call)(nil)
