package server

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"

	"github.com/meshgate/meshgate/server/wire"
)

// The Connect protocol (https://connectrpc.com/docs/protocol), which
// connect-web and many mobile clients speak, is terminated here onto the
// same upstream gRPC call: unary with the proto codec (the message as the
// body, errors as JSON with an HTTP status), and streaming (gRPC's
// envelopes, the trailers as a flagged end-of-stream JSON message).

// connectMode tells a Connect request.
type connectMode struct {
	streaming bool
	codec     string // "proto"
}

// connectMaxUnary bounds a unary Connect body (it is read whole to be
// framed for gRPC).
const connectMaxUnary = 8 << 20

// connectRequest reports whether r speaks Connect with the proto codec and
// turns it into the gRPC request the data plane forwards. A Connect call
// with the JSON codec is not converted here (that takes a descriptor).
func connectRequest(r *http.Request) (*connectMode, bool, error) {
	ct := r.Header.Get("Content-Type")
	var m connectMode
	switch {
	case strings.HasPrefix(ct, "application/connect+proto"):
		m = connectMode{streaming: true, codec: "proto"}
	case strings.HasPrefix(ct, "application/proto") && r.Header.Get("Connect-Protocol-Version") != "" && r.Method == http.MethodPost:
		m = connectMode{codec: "proto"}
	default:
		return nil, false, nil
	}
	if v := r.Header.Get("Connect-Timeout-Ms"); v != "" {
		ms, err := strconv.ParseUint(v, 10, 63)
		if err != nil || ms == 0 {
			return &m, true, fmt.Errorf("Connect-Timeout-Ms %q is not a positive number of milliseconds", v)
		}
		r.Header.Set("Grpc-Timeout", strconv.FormatUint(min(ms, 99999999), 10)+"m")
	}
	r.Header.Del("Connect-Protocol-Version")
	r.Header.Del("Connect-Timeout-Ms")
	r.Header.Set("Content-Type", "application/grpc+proto")
	if !m.streaming {
		body, err := io.ReadAll(io.LimitReader(r.Body, connectMaxUnary+1))
		_ = r.Body.Close()
		if err != nil {
			return &m, true, fmt.Errorf("reading the request: %v", err)
		}
		if len(body) > connectMaxUnary {
			return &m, true, fmt.Errorf("the request is over %d bytes", connectMaxUnary)
		}
		framed := wire.AppendFrame(make([]byte, 0, wire.FrameHeaderLen+len(body)), 0, body)
		r.Body = io.NopCloser(bytes.NewReader(framed))
		r.ContentLength = int64(len(framed))
		r.Header.Set("Content-Length", strconv.Itoa(len(framed)))
	}
	return &m, true, nil
}

// connectWriter answers a Connect call from the gRPC answer the data plane
// writes. Unary answers are held until the status is known; streams pass
// their envelopes and end with the end-of-stream message.
type connectWriter struct {
	w           http.ResponseWriter
	mode        *connectMode
	status      int
	wroteHeader bool
	buf         bytes.Buffer // unary: the gRPC body
	finished    bool
}

func (cw *connectWriter) Header() http.Header { return cw.w.Header() }

func (cw *connectWriter) WriteHeader(code int) {
	if cw.wroteHeader {
		return
	}
	cw.wroteHeader, cw.status = true, code
	if !cw.mode.streaming {
		return // held until finish
	}
	h := cw.w.Header()
	h.Set("Content-Type", "application/connect+"+cw.mode.codec)
	h.Del("Trailer")
	h.Del("Content-Length")
	cw.w.WriteHeader(code)
}

func (cw *connectWriter) Write(p []byte) (int, error) {
	if !cw.wroteHeader {
		cw.WriteHeader(http.StatusOK)
	}
	if !cw.mode.streaming {
		if cw.buf.Len()+len(p) > connectMaxUnary+5 {
			return 0, fmt.Errorf("the answer is over %d bytes", connectMaxUnary)
		}
		return cw.buf.Write(p)
	}
	return cw.w.Write(p)
}

func (cw *connectWriter) Flush() {
	if !cw.mode.streaming {
		return
	}
	if f, ok := cw.w.(http.Flusher); ok {
		f.Flush()
	}
}

func (cw *connectWriter) Unwrap() http.ResponseWriter { return cw.w }

// grpcOutcome reads the status the gRPC answer ended with, from the
// trailers (removed from the headers) or a trailers-only answer's headers.
func grpcOutcome(h http.Header) (code codes.Code, msg string, metadata map[string][]string, ok bool) {
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
	return codes.Code(n), decodeGRPCMessage(message), metadata, true
}

// finish writes what the unary answer held, or the stream's end message.
func (cw *connectWriter) finish() {
	if cw.finished {
		return
	}
	cw.finished = true
	h := cw.w.Header()
	if !cw.wroteHeader {
		return // nothing answered: the caller's own error path ran
	}
	code, msg, metadata, _ := grpcOutcome(h)
	if cw.mode.streaming {
		_, _ = cw.w.Write(connectEndStream(code, msg, metadata))
		return
	}
	h.Del("Trailer")
	h.Del("Content-Length")
	for k, vs := range metadata {
		h[http.CanonicalHeaderKey("Trailer-"+k)] = vs // Connect's unary trailers travel as prefixed headers
	}
	if code != codes.OK {
		writeConnectError(cw.w, code, msg)
		return
	}
	body := cw.buf.Bytes()
	if len(body) < 5 || int(binary.BigEndian.Uint32(body[1:5])) != len(body)-5 || body[0] != 0 {
		writeConnectError(cw.w, codes.Internal, "the upstream answer is not one uncompressed message")
		return
	}
	h.Set("Content-Type", "application/"+cw.mode.codec)
	h.Set("Content-Length", strconv.Itoa(len(body)-5))
	cw.w.WriteHeader(http.StatusOK)
	_, _ = cw.w.Write(body[5:])
}

// writeConnectError is Connect's unary error: the code's HTTP status and
// {"code": "...", "message": "..."}.
func writeConnectError(w http.ResponseWriter, code codes.Code, msg string) {
	b, _ := json.Marshal(map[string]string{"code": connectCodeName(code), "message": msg})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(wire.HTTPStatus(code))
	_, _ = w.Write(b)
}

// connectCodeName is the code as Connect spells it ("invalid_argument").
func connectCodeName(c codes.Code) string {
	if c == codes.Canceled {
		return "canceled"
	}
	return strings.ToLower(wire.StatusName(c))
}

// decodeGRPCMessage undoes grpc-message's percent-encoding.
func decodeGRPCMessage(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}
