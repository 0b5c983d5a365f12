package triple

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/meshgate/meshgate/grpcframe"
	"google.golang.org/grpc/codes"
)

// Service names a call's method: Triple's path is /<interface>/<method>,
// version and group go in Tri-Service-* headers.
type Service struct {
	Interface, Version, Group, Method string
}

// Request is one non-IDL Triple call.
type Request struct {
	Service     Service
	Args        []any
	Types       []string
	Attachments map[string]string
	// Timeout, when set, is sent as grpc-timeout.
	Timeout time.Duration
}

// StatusError is a call that ended with a gRPC status other than OK.
type StatusError struct {
	Code    codes.Code
	Message string
	// Answer is the one message that came before the status, if any (a
	// stream's answer ended by an error).
	Answer []byte
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("triple: status %s: %s", e.Code, e.Message)
}

// Response is a call's result and the provider's attachments (its tri-*
// and other attachable headers).
type Response struct {
	Value       any
	Attachments map[string]string
}

// ConnectError is a call that never reached the provider: the connection
// could not be made, so no method ran.
type ConnectError struct{ Err error }

func (e *ConnectError) Error() string { return e.Err.Error() }
func (e *ConnectError) Unwrap() error { return e.Err }

// EncodeError is a call whose request could not be written: the caller's
// arguments, not the provider, are at fault.
type EncodeError struct{ Err error }

func (e *EncodeError) Error() string { return "triple: encode " + e.Err.Error() }
func (e *EncodeError) Unwrap() error { return e.Err }

// ErrMalformed marks an answer (or a caller's wrapper) that cannot be
// read.
var ErrMalformed = errors.New("triple: malformed message")

// maxResponse bounds an answer (Dubbo's payload default).
const maxResponse = 8 << 20

// Call sends req to the provider at addr over rt (an HTTP/2 transport) in
// Triple's gRPC form, with the arguments in a TripleRequestWrapper, and
// reads the TripleResponseWrapper back. A refused connection comes back as
// *ConnectError, a provider's error status as *StatusError.
func Call(ctx context.Context, rt http.RoundTripper, scheme, addr string, req Request) (*Response, error) {
	msg, err := EncodeRequest(req.Args, req.Types)
	if err != nil {
		return nil, &EncodeError{Err: err}
	}
	h := http.Header{}
	for k, v := range req.Attachments {
		if attachable(k) {
			h.Set(k, v)
		}
	}
	if req.Service.Version != "" {
		h.Set("Tri-Service-Version", req.Service.Version)
	}
	if req.Service.Group != "" {
		h.Set("Tri-Service-Group", req.Service.Group)
	}
	body, respHeader, err := roundTrip(ctx, rt, scheme, addr, "/"+req.Service.Interface+"/"+req.Service.Method, msg, h, req.Timeout)
	if err != nil {
		return nil, err
	}
	v, err := DecodeResponse(body)
	if err != nil {
		return nil, err
	}
	return &Response{Value: v, Attachments: Attachments(respHeader)}, nil
}

// CallProto sends one protobuf message (an IDL request, or a non-IDL
// TripleRequestWrapper) in Triple's gRPC form to path at addr and returns
// the answer's message: Triple's unary application/proto form carried
// over to a provider without decoding either. hdr's attachable headers go
// along.
func CallProto(ctx context.Context, rt http.RoundTripper, scheme, addr, path string, msg []byte, hdr http.Header, timeout time.Duration) ([]byte, http.Header, error) {
	h := http.Header{}
	for k, vs := range hdr {
		if attachable(k) && len(vs) > 0 {
			h[k] = vs
		}
	}
	for _, k := range []string{"Tri-Service-Version", "Tri-Service-Group"} {
		if v := hdr.Get(k); v != "" {
			h.Set(k, v)
		}
	}
	return roundTrip(ctx, rt, scheme, addr, path, msg, h, timeout)
}

// roundTrip is one unary call in the gRPC form: the message framed, the
// answer's one message back, or the status as *StatusError.
func roundTrip(ctx context.Context, rt http.RoundTripper, scheme, addr, path string, msg []byte, h http.Header, timeout time.Duration) ([]byte, http.Header, error) {
	frame := grpcframe.Append(make([]byte, 0, grpcframe.HeaderLen+len(msg)), 0, msg)
	u := &url.URL{Scheme: scheme, Host: addr, Path: path}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(frame))
	if err != nil {
		return nil, nil, &EncodeError{Err: err}
	}
	hr.ContentLength = int64(len(frame))
	for k, vs := range h {
		hr.Header[k] = vs
	}
	hr.Header.Set("Content-Type", "application/grpc+proto")
	hr.Header.Set("Te", "trailers")
	if timeout > 0 {
		hr.Header.Set("Grpc-Timeout", strconv.FormatInt(max(timeout.Milliseconds(), 1), 10)+"m")
	}
	resp, err := rt.RoundTrip(hr)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, nil, &ConnectError{Err: fmt.Errorf("triple: dial %s: %w", addr, op.Err)}
		}
		return nil, nil, fmt.Errorf("triple: %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, nil, &StatusError{Code: CodeOfHTTP(resp.StatusCode), Message: fmt.Sprintf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(b))}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+6))
	if err != nil {
		return nil, nil, fmt.Errorf("triple: reading the answer from %s: %w", addr, err)
	}
	if st := status(resp); st != nil {
		if msg, ok := grpcframe.Single(body); ok {
			st.Answer = msg
		}
		return nil, nil, st
	}
	if len(body) > maxResponse+5 {
		return nil, nil, fmt.Errorf("%w: triple answer over %d bytes", ErrMalformed, maxResponse)
	}
	msg, ok := grpcframe.Single(body)
	if !ok {
		return nil, nil, fmt.Errorf("%w: the triple answer is not one uncompressed message (%d bytes)", ErrMalformed, len(body))
	}
	return msg, resp.Header, nil
}

// status reads grpc-status from the trailers (or the headers of a
// trailers-only answer); nil when OK.
func status(resp *http.Response) *StatusError {
	s := resp.Trailer.Get("Grpc-Status")
	m := resp.Trailer.Get("Grpc-Message")
	if s == "" {
		s, m = resp.Header.Get("Grpc-Status"), resp.Header.Get("Grpc-Message")
	}
	if s == "" {
		return &StatusError{Code: codes.Internal, Message: "the answer has no grpc-status"}
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return &StatusError{Code: codes.Internal, Message: fmt.Sprintf("malformed grpc-status %q", s)}
	}
	if n == 0 {
		return nil
	}
	if u, err := url.PathUnescape(m); err == nil {
		m = u
	}
	return &StatusError{Code: codes.Code(n), Message: m}
}

// attachable reports a header name that may carry an attachment: not
// HTTP's, gRPC's or Triple's own headers (Triple's other tri-* headers,
// tri-unit-info and the like, are attachments).
func attachable(k string) bool {
	k = strings.ToLower(k)
	if k == "" || strings.HasPrefix(k, ":") || strings.HasPrefix(k, "grpc-") || strings.HasPrefix(k, "tri-service-") || strings.HasPrefix(k, "triple-") {
		return false
	}
	switch k {
	case "content-type", "te", "content-length", "user-agent", "host", "connection", "trailer", "transfer-encoding",
		"accept-encoding", "date", "server":
		return false
	}
	return true
}

// Attachments are the Dubbo attachments a Triple call's (or answer's)
// headers carry, by lower-case name: the headers that are not the
// protocol's own.
func Attachments(h http.Header) map[string]string {
	out := map[string]string{}
	for k, vs := range h {
		if len(vs) > 0 && attachable(k) {
			out[strings.ToLower(k)] = vs[0]
		}
	}
	return out
}

// CodeOfHTTP maps an HTTP status of a non-gRPC answer to a gRPC code, as the
// gRPC spec does.
func CodeOfHTTP(s int) codes.Code {
	switch s {
	case http.StatusBadRequest:
		return codes.Internal
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusNotFound:
		return codes.Unimplemented
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return codes.Unavailable
	}
	return codes.Unknown
}
