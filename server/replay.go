package server

import (
	"errors"
	"io"
	"sync"
)

// errAttemptOver is what an abandoned attempt's body reads once a retry
// has taken over.
var errAttemptOver = errors.New("request attempt abandoned for a retry")

// replayBody keeps what a request body has sent so far, up to a limit, so
// that a retry can send it again and then carry on with the rest. Attempts
// read through their own cursor; one of them at a time reads the client's
// body, and what it reads is kept for the others. Past the limit the body
// can no longer be replayed and is only passed through.
type replayBody struct {
	src   io.ReadCloser
	limit int

	mu       sync.Mutex
	cond     sync.Cond
	buf      []byte
	total    int  // bytes read from src
	overflow bool // buf was dropped: no replay
	reading  bool // an attempt is reading src
	err      error
}

func newReplayBody(src io.ReadCloser, limit uint64) *replayBody {
	rb := &replayBody{src: src, limit: int(limit)}
	rb.cond.L = &rb.mu
	return rb
}

// Replayable reports whether a new attempt can still send the whole body.
func (rb *replayBody) Replayable() bool {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	return !rb.overflow
}

// Done reports whether the client has sent its whole body.
func (rb *replayBody) Done() bool {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	return rb.err == io.EOF
}

// attempt returns a reader for one attempt, starting at the beginning.
func (rb *replayBody) attempt() *attemptBody { return &attemptBody{rb: rb} }

// attemptBody is one attempt's view of the request body. The transport
// closes it when done; that never closes the client's body.
type attemptBody struct {
	rb     *replayBody
	pos    int
	closed bool // under rb.mu
}

func (a *attemptBody) Read(p []byte) (int, error) {
	rb := a.rb
	rb.mu.Lock()
	defer rb.mu.Unlock()
	for {
		switch {
		case a.closed:
			return 0, errAttemptOver
		case a.pos < rb.total && rb.overflow:
			// Bytes this attempt never saw are gone.
			return 0, errAttemptOver
		case a.pos < rb.total:
			n := copy(p, rb.buf[a.pos:])
			a.pos += n
			return n, nil
		case rb.err != nil:
			return 0, rb.err
		case rb.reading:
			rb.cond.Wait()
			continue
		}
		rb.reading = true
		rb.mu.Unlock()
		n, err := rb.src.Read(p)
		rb.mu.Lock()
		rb.reading = false
		if n > 0 {
			if !rb.overflow && len(rb.buf)+n <= rb.limit {
				rb.buf = append(rb.buf, p[:n]...)
			} else {
				rb.overflow, rb.buf = true, nil
			}
			rb.total += n
			a.pos += n
		}
		if err != nil {
			rb.err = err
		}
		rb.cond.Broadcast()
		if a.closed {
			// Abandoned while reading: the bytes stay for the next attempt.
			return 0, errAttemptOver
		}
		if n > 0 {
			return n, nil
		}
		return 0, err
	}
}

// Close ends this attempt's use of the body.
func (a *attemptBody) Close() error {
	a.rb.mu.Lock()
	a.closed = true
	a.rb.cond.Broadcast()
	a.rb.mu.Unlock()
	return nil
}
