package dubbo

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	hessian "github.com/apache/dubbo-go-hessian2"
	"github.com/meshgate/meshgate/dubbo/safehessian"
)

// HeaderLen is the size of a Dubbo2 frame header.
const HeaderLen = hessian.HEADER_LENGTH

// Hessian2SerialID is hessian2's serialization id in the header.
const Hessian2SerialID = 2

// Frame is one whole Dubbo2 message: its 16-byte header and its body.
type Frame struct {
	Header hessian.DubboHeader
	raw    []byte // header and body
}

// ErrFrame marks a malformed frame.
var ErrFrame = errors.New("dubbo: malformed frame")

// ReadFrame reads one frame, refusing a body larger than maxBody.
func ReadFrame(r io.Reader, maxBody int) (*Frame, error) {
	var hdr [HeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	if hdr[0] != 0xda || hdr[1] != 0xbb {
		return nil, fmt.Errorf("%w: bad magic %x", ErrFrame, hdr[:2])
	}
	n := binary.BigEndian.Uint32(hdr[12:16])
	if int64(n) > int64(maxBody) {
		return nil, fmt.Errorf("%w: body of %d bytes is over the limit of %d", ErrFrame, n, maxBody)
	}
	raw := make([]byte, HeaderLen+int(n))
	copy(raw, hdr[:])
	if _, err := io.ReadFull(r, raw[HeaderLen:]); err != nil {
		return nil, fmt.Errorf("dubbo: frame body: %w", err)
	}
	f := &Frame{raw: raw}
	// The codec reads the header from a reader that holds the whole frame.
	codec := hessian.NewHessianCodec(bufio.NewReaderSize(bytes.NewReader(raw), len(raw)))
	if err := codec.ReadHeader(&f.Header); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFrame, err)
	}
	return f, nil
}

// Heartbeat reports whether the frame is a heartbeat event.
func (f *Frame) Heartbeat() bool { return f.Header.Type&hessian.PackageHeartbeat != 0 }

// Response decodes a response frame: the value, or the provider's error
// (an exception or a non-OK status).
func (f *Frame) Response() (any, map[string]string, error) {
	if f.Header.Type&hessian.PackageResponse == 0 {
		return nil, nil, fmt.Errorf("%w: not a response", ErrFrame)
	}
	codec := hessian.NewHessianCodec(bufio.NewReaderSize(bytes.NewReader(f.raw), len(f.raw)))
	var h hessian.DubboHeader
	if err := codec.ReadHeader(&h); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrFrame, err)
	}
	if err := checkHessian(f.raw[HeaderLen:]); err != nil {
		return nil, nil, err
	}
	resp := &hessian.Response{}
	if err := decodeSafely(func() error { return codec.ReadBody(resp) }); err != nil {
		return nil, nil, fmt.Errorf("dubbo: response body: %w", err)
	}
	if f.Header.ResponseStatus != hessian.Response_OK {
		return nil, resp.Attachments, &StatusError{Status: f.Header.ResponseStatus, Err: resp.Exception}
	}
	if resp.Exception != nil {
		return nil, resp.Attachments, &ExceptionError{Err: resp.Exception}
	}
	return resp.RspObj, resp.Attachments, nil
}

// decodeSafely runs a decode of a frame's hessian2, a decoder panic
// becoming ErrFrame.
func decodeSafely(f func() error) error {
	if err := safehessian.Guard(f); err != nil {
		if errors.Is(err, safehessian.ErrMalformed) {
			return fmt.Errorf("%w: %w", ErrFrame, err)
		}
		return err
	}
	return nil
}

// checkHessian is safehessian.Check for a frame's body: ErrFrame.
func checkHessian(b []byte) error {
	if err := safehessian.Check(b); err != nil {
		return fmt.Errorf("%w: %w", ErrFrame, err)
	}
	return nil
}

// StatusError is a response whose status is not OK (timeout, service not
// found, bad request, ...).
type StatusError struct {
	Status byte
	Err    error
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("dubbo: status %d (%s): %v", e.Status, StatusName(e.Status), e.Err)
}

// ExceptionError is an exception the provider's method threw.
type ExceptionError struct{ Err error }

func (e *ExceptionError) Error() string { return fmt.Sprintf("dubbo: provider exception: %v", e.Err) }

// StatusName names a Dubbo2 response status.
func StatusName(s byte) string {
	switch s {
	case 20:
		return "OK"
	case 30:
		return "CLIENT_TIMEOUT"
	case 31:
		return "SERVER_TIMEOUT"
	case 35:
		return "CHANNEL_INACTIVE"
	case 40:
		return "BAD_REQUEST"
	case 50:
		return "BAD_RESPONSE"
	case 60:
		return "SERVICE_NOT_FOUND"
	case 70:
		return "SERVICE_ERROR"
	case 80:
		return "SERVER_ERROR"
	case 90:
		return "CLIENT_ERROR"
	case 100:
		return "SERVER_THREADPOOL_EXHAUSTED_ERROR"
	}
	return "UNKNOWN"
}

// DecodeHessian decodes one hessian2 value from bytes off the network:
// checked first (counts within the bytes, nesting bounded), decoder panics
// recovered.
func DecodeHessian(b []byte) (any, error) {
	v, err := safehessian.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFrame, err)
	}
	return v, nil
}
