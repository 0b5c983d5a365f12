// Package connect is Envoy's envoy.filters.http.connect_grpc_bridge filter:
// the Connect protocol (https://connectrpc.com/docs/protocol), which
// connect-web and many mobile clients speak, with the proto codec, onto
// the same upstream gRPC call: unary (the message as the body, errors as
// JSON with an HTTP status) and streaming (gRPC's envelopes, the trailers
// as a flagged end-of-stream JSON message). Connect with the JSON codec
// needs the method's descriptors: the JSON transcoder takes it.
package connect

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	bridgev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/connect_grpc_bridge/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/meshgate/meshgate/grpcframe"
	"github.com/meshgate/meshgate/server/httpfilter"
	"github.com/meshgate/meshgate/server/wire"
)

// Name is the filter's name, as Envoy spells it.
const Name = "envoy.filters.http.connect_grpc_bridge"

func init() {
	httpfilter.Register(&httpfilter.Factory{
		Name:   Name,
		Config: &bridgev3.FilterConfig{},
		Build: func(proto.Message, httpfilter.Build) (httpfilter.Filter, []string, error) {
			return filter{}, nil, nil
		},
	})
}

type filter struct{}

// PassesGRPCThrough: plain gRPC is not Connect (see httpfilter.GRPCPassThrough).
func (filter) PassesGRPCThrough(*http.Request, *httpfilter.Route) bool { return true }

// Decode turns a Connect proto request into gRPC and wraps the answer.
func (filter) Decode(s *httpfilter.Stream) httpfilter.Status {
	mode, ok, err := connectRequest(s.R)
	if !ok {
		return httpfilter.Continue
	}
	cw := &connectWriter{w: s.Below(), mode: mode}
	s.Wrap(cw, cw.finish)
	s.AsGRPC = true
	if err != nil {
		wire.WriteGRPCStatus(s.W, codes.InvalidArgument, err.Error())
		return httpfilter.Stop
	}
	return httpfilter.Continue
}

// connectMode tells a Connect request.
type connectMode struct {
	streaming bool
	codec     string // "proto"
}

// connectRequest reports whether r speaks Connect with the proto codec and
// turns it into the gRPC request the data plane forwards. A Connect call
// with the JSON codec is not converted here (that takes a descriptor).
func connectRequest(r *http.Request) (*connectMode, bool, error) {
	ct := r.Header.Get("Content-Type")
	var m *connectMode // (allocated only for a Connect call: not on every request)
	switch {
	case strings.HasPrefix(ct, "application/connect+proto"):
		m = &connectMode{streaming: true, codec: "proto"}
	case strings.HasPrefix(ct, "application/proto") && r.Header.Get("Connect-Protocol-Version") != "" && r.Method == http.MethodPost:
		m = &connectMode{codec: "proto"}
	default:
		return nil, false, nil
	}
	if v := r.Header.Get("Connect-Timeout-Ms"); v != "" {
		ms, err := strconv.ParseUint(v, 10, 63)
		if err != nil || ms == 0 {
			return m, true, fmt.Errorf("Connect-Timeout-Ms %q is not a positive number of milliseconds", v)
		}
		r.Header.Set("Grpc-Timeout", strconv.FormatUint(min(ms, 99999999), 10)+"m")
	}
	r.Header.Del("Connect-Protocol-Version")
	r.Header.Del("Connect-Timeout-Ms")
	r.Header.Set("Content-Type", "application/grpc+proto")
	if !m.streaming {
		body, err := io.ReadAll(io.LimitReader(r.Body, wire.MaxUnaryMessage+1))
		_ = r.Body.Close()
		if err != nil {
			return m, true, fmt.Errorf("reading the request: %v", err)
		}
		if len(body) > wire.MaxUnaryMessage {
			return m, true, fmt.Errorf("the request is over %d bytes", wire.MaxUnaryMessage)
		}
		framed := grpcframe.Append(make([]byte, 0, grpcframe.HeaderLen+len(body)), 0, body)
		r.Body = io.NopCloser(bytes.NewReader(framed))
		r.ContentLength = int64(len(framed))
		r.Header.Set("Content-Length", strconv.Itoa(len(framed)))
	}
	return m, true, nil
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
		if cw.buf.Len()+len(p) > wire.MaxUnaryMessage+5 {
			return 0, fmt.Errorf("the answer is over %d bytes", wire.MaxUnaryMessage)
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
	code, msg, metadata, _ := wire.GRPCOutcome(h)
	if cw.mode.streaming {
		_, _ = cw.w.Write(wire.ConnectEndStream(code, msg, metadata))
		return
	}
	h.Del("Trailer")
	h.Del("Content-Length")
	for k, vs := range metadata {
		h[http.CanonicalHeaderKey("Trailer-"+k)] = vs // Connect's unary trailers travel as prefixed headers
	}
	if code != codes.OK {
		wire.WriteConnectError(cw.w, code, msg)
		return
	}
	answer, ok := grpcframe.Single(cw.buf.Bytes())
	if !ok {
		wire.WriteConnectError(cw.w, codes.Internal, "the upstream answer is not one uncompressed message")
		return
	}
	h.Set("Content-Type", "application/"+cw.mode.codec)
	h.Set("Content-Length", strconv.Itoa(len(answer)))
	cw.w.WriteHeader(http.StatusOK)
	_, _ = cw.w.Write(answer)
}
