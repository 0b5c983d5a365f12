package server

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"

	"github.com/meshgate/meshgate/server/dubbobridge"
	"github.com/meshgate/meshgate/server/router"
)

// Codes used in error answers; the names gRPC gives them.
const (
	codeCancelled         = codes.Canceled
	codeUnknown           = codes.Unknown
	codeDeadlineExceeded  = codes.DeadlineExceeded
	codeResourceExhausted = codes.ResourceExhausted
	codeUnimplemented     = codes.Unimplemented
	codeInternal          = codes.Internal
	codeUnavailable       = codes.Unavailable
)

// statusNames are the canonical upper-case names of the gRPC codes, as
// google.rpc.Code and Google's JSON errors spell them.
var statusNames = [...]string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
}

func statusName(c codes.Code) string {
	if int(c) < len(statusNames) {
		return statusNames[c]
	}
	return "UNKNOWN"
}

// errorBody is the JSON of an HTTP error answer, in the shape of Google's
// API errors: {"error":{"code":404,"status":"NOT_FOUND","message":"..."}}.
type errorBody struct {
	Error struct {
		Code    int    `json:"code"`
		Status  string `json:"status"`
		Message string `json:"message"`
		// The Dubbo2 bridge's details: the exception a provider threw,
		// and its response status when not OK.
		Exception   *dubbobridge.Exception `json:"exception,omitempty"`
		DubboStatus string                 `json:"dubbo_status,omitempty"`
	} `json:"error"`
}

// writeError answers with the protocol's own error: a gRPC status for a
// gRPC request (as a trailers-only response), an HTTP status with a JSON
// body otherwise. It must be called before anything else is written.
func writeError(w http.ResponseWriter, r *http.Request, httpCode int, grpcCode codes.Code, msg string) {
	if router.IsGRPC(r) {
		writeGRPCStatus(w, grpcCode, msg)
		return
	}
	writeErrorBody(w, httpCode, grpcCode, msg, nil)
}

// writeErrorBody writes the JSON error; more adds details.
func writeErrorBody(w http.ResponseWriter, httpCode int, grpcCode codes.Code, msg string, more func(*errorBody)) {
	var body errorBody
	body.Error.Code = httpCode
	body.Error.Status = statusName(grpcCode)
	body.Error.Message = msg
	if more != nil {
		more(&body)
	}
	b, _ := json.Marshal(body)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(httpCode)
	_, _ = w.Write(append(b, '\n'))
}

// writeGRPCStatus sends a trailers-only gRPC response.
func writeGRPCStatus(w http.ResponseWriter, c codes.Code, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/grpc")
	h.Set("Grpc-Status", strconv.Itoa(int(c)))
	if msg != "" {
		h.Set("Grpc-Message", encodeGRPCMessage(msg))
	}
	w.WriteHeader(http.StatusOK)
}

// setGRPCTrailers ends a gRPC response whose headers are already sent.
func setGRPCTrailers(w http.ResponseWriter, c codes.Code, msg string) {
	h := w.Header()
	h.Set(http.TrailerPrefix+"Grpc-Status", strconv.Itoa(int(c)))
	if msg != "" {
		h.Set(http.TrailerPrefix+"Grpc-Message", encodeGRPCMessage(msg))
	}
}

// encodeGRPCMessage percent-encodes what the gRPC spec does not allow raw
// in grpc-message: bytes outside printable ASCII, and '%'.
func encodeGRPCMessage(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '%' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '%' {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
