package server

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"time"
)

// errStreamIdle is the cause of a request cancelled for idleness.
var errStreamIdle = errors.New("stream idle timeout")

// idleWatch cancels a request when no bytes move either way for a while.
// Activity is a timestamp bumped on every read, not a timer reset, so the
// hot path pays an atomic store; the timer re-arms itself for the rest.
type idleWatch struct {
	timeout time.Duration
	last    atomic.Int64 // unix nanoseconds of the last activity
	timer   *time.Timer
	cancel  context.CancelCauseFunc
}

func newIdleWatch(ctx context.Context, timeout time.Duration) (*idleWatch, context.Context) {
	ctx, cancel := context.WithCancelCause(ctx)
	w := &idleWatch{timeout: timeout, cancel: cancel}
	w.touch()
	w.timer = time.AfterFunc(timeout, w.check)
	return w, ctx
}

func (w *idleWatch) touch() { w.last.Store(time.Now().UnixNano()) }

func (w *idleWatch) check() {
	idle := time.Since(time.Unix(0, w.last.Load()))
	if idle >= w.timeout {
		w.cancel(errStreamIdle)
		return
	}
	w.timer.Reset(w.timeout - idle)
}

func (w *idleWatch) stop() {
	w.timer.Stop()
	w.cancel(nil)
}

// touchingBody bumps the watch on each read of the request body.
type touchingBody struct {
	io.ReadCloser
	w *idleWatch
}

// Buffered forwards the wrapped body's (see h2.BufferedBody).
func (b *touchingBody) Buffered() (int, bool) { return bufferedOf(b.ReadCloser) }

func (b *touchingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.w.touch()
	}
	return n, err
}
