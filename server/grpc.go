package server

import (
	"errors"
	"io"
	"sync/atomic"

	"github.com/meshgate/meshgate/grpcframe"
	"github.com/meshgate/meshgate/server/h2"
	"golang.org/x/net/http2"
	"google.golang.org/grpc/codes"
)

// resetCode maps an HTTP/2 stream reset from the upstream to the gRPC status
// the client sees (h2.ResetCode).
func resetCode(err error) (codes.Code, bool) {
	var se http2.StreamError
	if !errors.As(err, &se) {
		return 0, false
	}
	return h2.ResetCode(se.Code), true
}

// errMessageTooLarge ends a request whose gRPC message is over the limit.
var errMessageTooLarge = errors.New("gRPC message larger than the listener's limit")

// errBodyTooLarge ends a request whose body is over the limit.
var errBodyTooLarge = errors.New("request body larger than the listener's limit")

// limitedBody passes a request body through and fails once it breaks a
// limit: a total byte count (HTTP) or the length prefix of any one gRPC
// message. It never buffers: it only watches the 5-byte message headers go
// by. It is read on the transport's goroutine; Tripped tells the handler
// which limit broke, whatever error the transport reported instead.
type limitedBody struct {
	io.ReadCloser
	maxBody uint64 // 0: none
	maxMsg  uint64 // 0: none; > 0 turns on gRPC framing (msgs)
	read    uint64
	msgs    grpcframe.SizeWatch
	tripped atomic.Pointer[error]
}

// Tripped returns the limit error, or nil.
func (b *limitedBody) Tripped() error {
	if e := b.tripped.Load(); e != nil {
		return *e
	}
	return nil
}

func (b *limitedBody) trip(err error) (int, error) {
	b.tripped.Store(&err)
	return 0, err
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if err := b.Tripped(); err != nil {
		return 0, err
	}
	n, err := b.ReadCloser.Read(p)
	b.read += uint64(n)
	if b.maxBody > 0 && b.read > b.maxBody {
		return b.trip(errBodyTooLarge)
	}
	if b.maxMsg > 0 {
		b.msgs.Max = b.maxMsg
		if !b.msgs.Scan(p[:n]) {
			return b.trip(errMessageTooLarge)
		}
	}
	return n, err
}

// Buffered forwards the wrapped body's (see h2.BufferedBody).
func (b *limitedBody) Buffered() (int, bool) { return bufferedOf(b.ReadCloser) }

// bufferedOf is what an h2.BufferedBody reports, (0, false) for others.
func bufferedOf(r io.Reader) (int, bool) {
	if bb, ok := r.(h2.BufferedBody); ok {
		return bb.Buffered()
	}
	return 0, false
}
