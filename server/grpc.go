package server

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc/codes"
)

// parseGRPCTimeout reads a grpc-timeout header: at most 8 digits and a unit
// (H, M, S, m, u, n), per the gRPC over HTTP/2 spec.
func parseGRPCTimeout(v string) (time.Duration, error) {
	if len(v) < 2 || len(v) > 9 {
		return 0, fmt.Errorf("grpc-timeout %q: want 1 to 8 digits and a unit", v)
	}
	n, err := strconv.ParseInt(v[:len(v)-1], 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("grpc-timeout %q: bad number", v)
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, fmt.Errorf("grpc-timeout %q: unknown unit", v)
	}
	const maxDigits = 99999999
	if n > maxDigits {
		return 0, fmt.Errorf("grpc-timeout %q: more than 8 digits", v)
	}
	if unit >= time.Minute && n > int64((1<<63-1)/unit) {
		return 1<<63 - 1, nil
	}
	return time.Duration(n) * unit, nil
}

// formatGRPCTimeout writes d as a grpc-timeout value with the finest unit
// that fits in 8 digits.
func formatGRPCTimeout(d time.Duration) string {
	if d <= 0 {
		return "1n"
	}
	const maxDigits = 99999999
	for _, u := range []struct {
		d time.Duration
		s string
	}{{time.Nanosecond, "n"}, {time.Microsecond, "u"}, {time.Millisecond, "m"}, {time.Second, "S"}, {time.Minute, "M"}} {
		if v := d / u.d; v <= maxDigits {
			// Round up so the upstream never gets more time than is left.
			if d%u.d != 0 {
				v++
			}
			return strconv.FormatInt(int64(v), 10) + u.s
		}
	}
	return strconv.FormatInt(int64(min(d/time.Hour+1, maxDigits)), 10) + "H"
}

// resetCode maps an HTTP/2 stream reset from the upstream to the gRPC status
// the client sees, as the gRPC spec's "Errors" table says.
func resetCode(err error) (codes.Code, bool) {
	var se http2.StreamError
	if !errors.As(err, &se) {
		return 0, false
	}
	switch se.Code {
	case http2.ErrCodeNo, http2.ErrCodeProtocol, http2.ErrCodeInternal, http2.ErrCodeFlowControl,
		http2.ErrCodeSettingsTimeout, http2.ErrCodeFrameSize, http2.ErrCodeCompression, http2.ErrCodeConnect:
		return codes.Internal, true
	case http2.ErrCodeRefusedStream:
		return codes.Unavailable, true
	case http2.ErrCodeCancel:
		return codes.Canceled, true
	case http2.ErrCodeEnhanceYourCalm:
		return codes.ResourceExhausted, true
	case http2.ErrCodeInadequateSecurity:
		return codes.PermissionDenied, true
	}
	return codes.Internal, true
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
	maxMsg  uint64 // 0: none; > 0 turns on gRPC framing
	read    uint64
	// gRPC framing state: bytes left in the current message, or the header
	// bytes gathered so far.
	left    uint64
	hdr     [5]byte
	hdrN    int
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
		if terr := b.scan(p[:n]); terr != nil {
			return b.trip(terr)
		}
	}
	return n, err
}

func (b *limitedBody) scan(p []byte) error {
	for len(p) > 0 {
		if b.left > 0 {
			k := min(uint64(len(p)), b.left)
			b.left -= k
			p = p[k:]
			continue
		}
		k := copy(b.hdr[b.hdrN:], p)
		b.hdrN += k
		p = p[k:]
		if b.hdrN < len(b.hdr) {
			return nil
		}
		b.hdrN = 0
		b.left = uint64(binary.BigEndian.Uint32(b.hdr[1:]))
		if b.left > b.maxMsg {
			return errMessageTooLarge
		}
	}
	return nil
}
