package server

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// errStreamIdle is the cause of a request cancelled for idleness.
var errStreamIdle = errors.New("stream idle timeout")

// errRequestTimeout is the cause of a request cancelled because it did not
// arrive whole within the HCM's request_timeout.
var errRequestTimeout = errors.New("request timeout")

// callContext is a forwarded request's context with its deadline (the
// route timeout or grpc-timeout) and its stream idle timeout, cancelled by
// whichever comes first. One context and one timer do both: a
// context.WithTimeout under an idle watch of its own cost two contexts,
// two timers and the parents' child maps on every call.
//
// Activity is a timestamp bumped on every read, not a timer reset, so the
// hot path pays an atomic store; the timer re-arms itself for the rest.
type callContext struct {
	context.Context // cancelled with the cause: DeadlineExceeded or errStreamIdle
	cancel          context.CancelCauseFunc
	deadline        time.Time // zero: the parent's
	idle            time.Duration
	last            atomic.Int64 // unix nanoseconds of the last activity
	mu              sync.Mutex   // orders the timer's re-arming with stop
	timer           *time.Timer
	stopped         bool
	// arriveBy is when the whole request must have arrived (request_timeout;
	// zero: no such limit); arrived says it did, or that the answer began.
	arriveBy time.Time
	arrived  atomic.Bool
}

// newCallContext derives the call's context; timeout, idle and arrival 0
// mean none.
func newCallContext(parent context.Context, timeout, idle, arrival time.Duration) *callContext {
	c := &callContext{}
	c.init(parent, timeout, idle, arrival)
	return c
}

// init sets up a zero callContext (one kept inside a bigger struct, to save
// an allocation per call). arrival is request_timeout: the request must
// have arrived whole (see requestArrived) within it.
func (c *callContext) init(parent context.Context, timeout, idle, arrival time.Duration) {
	c.idle = idle
	c.Context, c.cancel = context.WithCancelCause(parent)
	now := time.Now()
	if arrival > 0 {
		c.arriveBy = now.Add(arrival)
	}
	if timeout > 0 {
		c.deadline = now.Add(timeout)
		if dl, ok := parent.Deadline(); ok && dl.Before(c.deadline) {
			c.deadline = dl
		}
	}
	c.last.Store(now.UnixNano())
	if d, ok := c.next(now); ok {
		c.mu.Lock()
		c.timer = time.AfterFunc(d, c.fire)
		c.mu.Unlock()
	}
}

// next is how long until the deadline or the idle timeout is due.
func (c *callContext) next(now time.Time) (time.Duration, bool) {
	var d time.Duration
	ok := false
	if !c.deadline.IsZero() {
		d, ok = c.deadline.Sub(now), true
	}
	if c.idle > 0 {
		left := c.idle - now.Sub(time.Unix(0, c.last.Load()))
		if !ok || left < d {
			d, ok = left, true
		}
	}
	if !c.arriveBy.IsZero() && !c.arrived.Load() {
		if left := c.arriveBy.Sub(now); !ok || left < d {
			d, ok = left, true
		}
	}
	return d, ok
}

// requestArrived disarms request_timeout: the request's body ended, or the
// answer began (as Envoy disarms it).
func (c *callContext) requestArrived() { c.arrived.Store(true) }

func (c *callContext) fire() {
	now := time.Now()
	switch {
	case !c.deadline.IsZero() && !now.Before(c.deadline):
		c.cancel(context.DeadlineExceeded)
		return
	case c.idle > 0 && now.Sub(time.Unix(0, c.last.Load())) >= c.idle:
		c.cancel(errStreamIdle)
		return
	case !c.arriveBy.IsZero() && !c.arrived.Load() && !now.Before(c.arriveBy):
		c.cancel(errRequestTimeout)
		return
	}
	d, ok := c.next(now)
	if !ok {
		return // nothing left to watch
	}
	c.mu.Lock()
	if !c.stopped {
		c.timer.Reset(d)
	}
	c.mu.Unlock()
}

// Deadline is the call's deadline, when it has one.
func (c *callContext) Deadline() (time.Time, bool) {
	if !c.deadline.IsZero() {
		return c.deadline, true
	}
	return c.Context.Deadline()
}

// Err says DeadlineExceeded when the deadline cancelled the call, as a
// context.WithTimeout would.
func (c *callContext) Err() error {
	err := c.Context.Err()
	if err != nil && context.Cause(c.Context) == context.DeadlineExceeded {
		return context.DeadlineExceeded
	}
	return err
}

// touch records activity (idle timeout only).
func (c *callContext) touch() {
	if c.idle > 0 {
		c.last.Store(time.Now().UnixNano())
	}
}

// stop releases the timer and cancels the context (the call is over).
func (c *callContext) stop() {
	c.mu.Lock()
	c.stopped = true
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
	c.cancel(nil)
}

// arrivalBody tells the call's context when the request body ended
// (request_timeout).
type arrivalBody struct {
	io.ReadCloser
	c *callContext
}

// Buffered forwards the wrapped body's (see h2.BufferedBody).
func (b *arrivalBody) Buffered() (int, bool) { return bufferedOf(b.ReadCloser) }

func (b *arrivalBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.c.requestArrived()
	}
	return n, err
}

// touchingBody bumps the call's idle clock on each read of the request body.
type touchingBody struct {
	io.ReadCloser
	c *callContext
}

// Buffered forwards the wrapped body's (see h2.BufferedBody).
func (b *touchingBody) Buffered() (int, bool) { return bufferedOf(b.ReadCloser) }

func (b *touchingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.c.touch()
	}
	return n, err
}
