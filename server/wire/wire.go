// Package wire writes what meshgate answers itself, in each protocol's own
// form: gRPC statuses (trailers-only, or trailers after a started answer)
// and JSON error bodies in the shape of Google's API errors, and the gRPC
// length-prefixed message envelope. Every filter and the router answer
// through it, so that an error looks the same whoever raises it.
package wire

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"

	"github.com/meshgate/meshgate/governance"
	"github.com/meshgate/meshgate/server/router"
)

// statusNames are the canonical upper-case names of the gRPC codes, as
// google.rpc.Code and Google's JSON errors spell them.
var statusNames = [...]string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
}

// StatusName is a code's canonical upper-case name ("NOT_FOUND").
func StatusName(c codes.Code) string {
	if int(c) < len(statusNames) {
		return statusNames[c]
	}
	return "UNKNOWN"
}

// ErrorBody is the JSON of an HTTP error answer, in the shape of Google's
// API errors: {"error":{"code":404,"status":"NOT_FOUND","message":"..."}}.
type ErrorBody struct {
	Error struct {
		Code    int    `json:"code"`
		Status  string `json:"status"`
		Message string `json:"message"`
		// The Dubbo2 bridge's details: the exception a provider threw,
		// and its response status when not OK.
		Exception   any    `json:"exception,omitempty"`
		DubboStatus string `json:"dubbo_status,omitempty"`
	} `json:"error"`
}

// WriteError answers with the protocol's own error: a gRPC status for a
// gRPC request (as a trailers-only response), an HTTP status with a JSON
// body otherwise. It must be called before anything else is written.
func WriteError(w http.ResponseWriter, r *http.Request, httpCode int, grpcCode codes.Code, msg string) {
	if router.IsGRPC(r) {
		WriteGRPCStatus(w, grpcCode, msg)
		return
	}
	WriteErrorBody(w, httpCode, grpcCode, msg, nil)
}

// WriteErrorBody writes the JSON error; more adds details.
func WriteErrorBody(w http.ResponseWriter, httpCode int, grpcCode codes.Code, msg string, more func(*ErrorBody)) {
	var body ErrorBody
	body.Error.Code = httpCode
	body.Error.Status = StatusName(grpcCode)
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

// WriteGRPCStatus sends a trailers-only gRPC response.
func WriteGRPCStatus(w http.ResponseWriter, c codes.Code, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/grpc")
	h.Set("Grpc-Status", strconv.Itoa(int(c)))
	if msg != "" {
		h.Set("Grpc-Message", EncodeGRPCMessage(msg))
	}
	w.WriteHeader(http.StatusOK)
}

// SetGRPCTrailers ends a gRPC response whose headers are already sent.
func SetGRPCTrailers(w http.ResponseWriter, c codes.Code, msg string) {
	h := w.Header()
	h.Set(http.TrailerPrefix+"Grpc-Status", strconv.Itoa(int(c)))
	if msg != "" {
		h.Set(http.TrailerPrefix+"Grpc-Message", EncodeGRPCMessage(msg))
	}
}

// EncodeGRPCMessage percent-encodes what the gRPC spec does not allow raw
// in grpc-message: bytes outside printable ASCII, and '%'.
func EncodeGRPCMessage(s string) string {
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

// HTTPStatus is the HTTP status a gRPC code stands for when an answer is
// not gRPC: Envoy's mapping (which Connect's protocol shares), kept once in
// governance, where stats and outlier detection judge gRPC answers by it.
func HTTPStatus(c codes.Code) int { return governance.HTTPStatusFromGRPC(int(c)) }
