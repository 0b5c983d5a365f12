package wire

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/meshgate/meshgate/grpcframe"
	"google.golang.org/grpc/codes"
)

// Connect's (https://connectrpc.com/docs/protocol) end-of-stream envelope
// flag; its compressed flag is gRPC's.
const (
	ConnectFlagCompressed = grpcframe.Compressed
	ConnectFlagEndStream  = 0x02
)

// MaxUnaryMessage bounds a message read whole to be reframed (a unary
// Connect body, a transcoded message): 8 MiB.
const MaxUnaryMessage = 8 << 20

// ConnectCodeName is a code as Connect spells it ("invalid_argument").
func ConnectCodeName(c codes.Code) string {
	if c == codes.Canceled {
		return "canceled"
	}
	return strings.ToLower(StatusName(c))
}

// WriteConnectError is Connect's unary error: the code's HTTP status and
// {"code": "...", "message": "..."}.
func WriteConnectError(w http.ResponseWriter, code codes.Code, msg string) {
	writeCodeBody(w, HTTPStatus(code), code, msg)
}

// writeCodeBody writes the JSON error body Connect and Triple share.
func writeCodeBody(w http.ResponseWriter, status int, code codes.Code, msg string) {
	b, _ := json.Marshal(map[string]string{"code": ConnectCodeName(code), "message": msg})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// ConnectEndStream is a Connect stream's end message: the error, if any,
// and the trailers.
func ConnectEndStream(code codes.Code, msg string, metadata map[string][]string) []byte {
	end := map[string]any{}
	if code != codes.OK {
		end["error"] = map[string]string{"code": ConnectCodeName(code), "message": msg}
	}
	if len(metadata) > 0 {
		end["metadata"] = metadata
	}
	b, _ := json.Marshal(end)
	return grpcframe.Append(make([]byte, 0, grpcframe.HeaderLen+len(b)), ConnectFlagEndStream, b)
}

// GRPCOutcome reads the status a gRPC answer ended with, from its trailers
// (removed from the headers) or a trailers-only answer's headers, with the
// other trailers as metadata. ok is false when there was no readable
// status (code and msg then say so).
func GRPCOutcome(h http.Header) (code codes.Code, msg string, metadata map[string][]string, ok bool) {
	metadata = map[string][]string{}
	status, message := "", ""
	for k, vs := range h {
		name, isTrailer := strings.CutPrefix(k, http.TrailerPrefix)
		if !isTrailer {
			continue
		}
		delete(h, k)
		switch strings.ToLower(name) {
		case "grpc-status":
			status = vs[0]
		case "grpc-message":
			message = vs[0]
		default:
			metadata[strings.ToLower(name)] = vs
		}
	}
	if status == "" {
		status, message = h.Get("Grpc-Status"), h.Get("Grpc-Message")
		h.Del("Grpc-Status")
		h.Del("Grpc-Message")
	}
	if status == "" {
		return codes.Internal, "the upstream answer ended without a status", metadata, false
	}
	n, err := strconv.Atoi(status)
	if err != nil {
		return codes.Internal, "malformed grpc-status " + status, metadata, false
	}
	return codes.Code(n), DecodeGRPCMessage(message), metadata, true
}

// DecodeGRPCMessage undoes grpc-message's percent-encoding.
func DecodeGRPCMessage(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}

// NextFrame cuts the first whole uncompressed gRPC message off buf; ok is
// false while buf holds less than one. A compressed message or one over
// MaxUnaryMessage is an error.
func NextFrame(buf []byte) (msg, rest []byte, ok bool, err error) {
	if len(buf) < grpcframe.HeaderLen {
		return nil, buf, false, nil
	}
	n := int(uint32(buf[1])<<24 | uint32(buf[2])<<16 | uint32(buf[3])<<8 | uint32(buf[4]))
	if n > MaxUnaryMessage || buf[0] != 0 {
		return nil, buf, false, errBadFrame
	}
	if len(buf) < grpcframe.HeaderLen+n {
		return nil, buf, false, nil
	}
	return buf[grpcframe.HeaderLen : grpcframe.HeaderLen+n], buf[grpcframe.HeaderLen+n:], true, nil
}

var errBadFrame = errors.New("the upstream sent a message that cannot be read here (compressed or over 8 MiB)")

// WriteTripleError is Triple's unary error (dubbo-go's triple protocol,
// Connect's form with its own status mapping): the code's HTTP status
// and {"code": "...", "message": "..."}.
func WriteTripleError(w http.ResponseWriter, code codes.Code, msg string) {
	writeCodeBody(w, TripleHTTPStatus(code), code, msg)
}

// TripleHTTPStatus is Triple's mapping of codes to HTTP statuses (dubbo-go's
// triple_protocol codeToHTTP), which differs from Connect's.
func TripleHTTPStatus(c codes.Code) int {
	switch c {
	case codes.Canceled, codes.DeadlineExceeded:
		return 408
	case codes.InvalidArgument, codes.OutOfRange:
		return 400
	case codes.NotFound, codes.Unimplemented:
		return 404
	case codes.AlreadyExists, codes.Aborted:
		return 409
	case codes.PermissionDenied:
		return 403
	case codes.ResourceExhausted:
		return 429
	case codes.FailedPrecondition:
		return 412
	case codes.Unavailable:
		return 503
	case codes.Unauthenticated:
		return 401
	}
	return 500
}
