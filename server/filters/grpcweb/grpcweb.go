// Package grpcweb is Envoy's envoy.filters.http.grpc_web filter: it
// terminates gRPC-Web (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-WEB.md)
// from browsers. The request goes on as plain gRPC over HTTP/2, and the
// answer comes back with its trailers as a flagged last frame, in base64
// for the -text variants.
package grpcweb

import (
	"bufio"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"sort"
	"strings"

	grpcwebv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/grpc_web/v3"
	"google.golang.org/protobuf/proto"

	"github.com/meshgate/meshgate/grpcframe"
	"github.com/meshgate/meshgate/server/httpfilter"
)

// Name is the filter's name, as Envoy spells it.
const Name = "envoy.filters.http.grpc_web"

func init() {
	httpfilter.Register(&httpfilter.Factory{
		Name:   Name,
		Config: &grpcwebv3.GrpcWeb{},
		Build: func(proto.Message, httpfilter.Build) (httpfilter.Filter, []string, error) {
			return filter{}, nil, nil
		},
	})
}

// filter turns gRPC-Web requests into gRPC ones and their answers back;
// it lets every other request by.
type filter struct{}

// PassesGRPCThrough: plain gRPC is not gRPC-Web (see httpfilter.GRPCPassThrough).
func (filter) PassesGRPCThrough(*http.Request, *httpfilter.Route) bool { return true }

func (filter) Decode(s *httpfilter.Stream) httpfilter.Status {
	mode, ok := grpcWebRequest(s.R)
	if !ok {
		return httpfilter.Continue
	}
	gw := &grpcWebWriter{w: s.Below(), mode: mode}
	s.Wrap(gw, gw.finish)
	s.AsGRPC = true
	return httpfilter.Continue
}

const (
	grpcWebPrefix     = "application/grpc-web"
	grpcWebTextPrefix = "application/grpc-web-text"
)

// grpcWebMode tells a gRPC-Web request and how to answer it.
type grpcWebMode struct {
	textIn, textOut bool
	// codec is the content type's subtype suffix ("+proto", "+json", "").
	codec string
}

// grpcWebRequest reports whether r is gRPC-Web and turns it into the gRPC
// request the rest of the data plane forwards.
func grpcWebRequest(r *http.Request) (*grpcWebMode, bool) {
	ct := r.Header.Get("Content-Type")
	if !strings.HasPrefix(ct, grpcWebPrefix) {
		return nil, false
	}
	rest := strings.TrimPrefix(ct, grpcWebPrefix)
	m := &grpcWebMode{}
	if strings.HasPrefix(rest, "-text") {
		m.textIn, rest = true, strings.TrimPrefix(rest, "-text")
	}
	if rest != "" && rest[0] != '+' && rest[0] != ';' {
		return nil, false // application/grpc-webfoo
	}
	if codec, _, _ := strings.Cut(rest, ";"); strings.HasPrefix(codec, "+") {
		m.codec = codec
	}
	m.textOut = m.textIn || strings.Contains(r.Header.Get("Accept"), grpcWebTextPrefix)
	r.Header.Set("Content-Type", "application/grpc"+m.codec)
	r.Header.Del("X-Grpc-Web")
	r.Header.Del("Content-Length") // a text body shrinks when decoded
	if m.textIn {
		r.Body = &base64Body{src: bufio.NewReader(r.Body), closer: r.Body}
		r.ContentLength = -1
	}
	return m, true
}

// base64Body decodes a -text request body: base64 in 4-character groups,
// each of which may carry padding (a client may encode frame by frame).
type base64Body struct {
	src    *bufio.Reader
	closer io.Closer
	out    []byte
	err    error
}

var errBadBase64 = errors.New("gRPC-Web text body: invalid base64")

func (b *base64Body) Read(p []byte) (int, error) {
	for len(b.out) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		var quad [4]byte
		n := 0
		for n < 4 {
			c, err := b.src.ReadByte()
			if err != nil {
				if err == io.EOF && n > 0 {
					err = errBadBase64 // a cut group
				}
				b.err = err
				break
			}
			if c == '\r' || c == '\n' || c == ' ' || c == '\t' {
				continue
			}
			quad[n] = c
			n++
		}
		if n < 4 {
			continue
		}
		var dec [3]byte
		m, err := base64.StdEncoding.Decode(dec[:], quad[:])
		if err != nil {
			b.err = errBadBase64
			continue
		}
		b.out = append(b.out, dec[:m]...)
	}
	n := copy(p, b.out)
	b.out = b.out[n:]
	return n, nil
}

func (b *base64Body) Close() error { return b.closer.Close() }

// grpcWebWriter answers a gRPC-Web request from the gRPC answer the data
// plane writes: the content type, base64 for -text, and the trailers as
// the last frame (written by finish).
type grpcWebWriter struct {
	w           http.ResponseWriter
	mode        *grpcWebMode
	wroteHeader bool
	finished    bool
}

func (g *grpcWebWriter) Header() http.Header { return g.w.Header() }

func (g *grpcWebWriter) contentType() string {
	if g.mode.textOut {
		return grpcWebTextPrefix + g.mode.codec
	}
	return grpcWebPrefix + g.mode.codec
}

func (g *grpcWebWriter) WriteHeader(code int) {
	if g.wroteHeader {
		return
	}
	g.wroteHeader = true
	h := g.w.Header()
	if strings.HasPrefix(h.Get("Content-Type"), "application/grpc") || h.Get("Content-Type") == "" {
		h.Set("Content-Type", g.contentType())
	}
	// Trailers travel in the body; the length is not known up front.
	h.Del("Trailer")
	h.Del("Content-Length")
	g.w.WriteHeader(code)
}

func (g *grpcWebWriter) Write(p []byte) (int, error) {
	if !g.wroteHeader {
		g.WriteHeader(http.StatusOK)
	}
	if !g.mode.textOut {
		return g.w.Write(p)
	}
	// Each write is encoded whole, with its padding: gRPC-Web text
	// decoders take padding mid-stream.
	if _, err := g.w.Write([]byte(base64.StdEncoding.EncodeToString(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (g *grpcWebWriter) Flush() {
	if f, ok := g.w.(http.Flusher); ok {
		f.Flush()
	}
}

func (g *grpcWebWriter) Unwrap() http.ResponseWriter { return g.w }

// finish moves the trailers the answer set into the trailer frame. A
// trailers-only answer (grpc-status in the headers, no body) needs none.
func (g *grpcWebWriter) finish() {
	if g.finished {
		return
	}
	g.finished = true
	h := g.w.Header()
	trailers := map[string]string{}
	for k, vs := range h {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			if len(vs) > 0 {
				trailers[strings.ToLower(name)] = vs[0]
			}
			delete(h, k)
		}
	}
	if !g.wroteHeader {
		if len(trailers) == 0 {
			return // nothing was answered: the caller's own error path
		}
		g.WriteHeader(http.StatusOK)
	}
	if len(trailers) == 0 {
		if h.Get("Grpc-Status") != "" {
			return // trailers-only, in the headers
		}
		// An answer cut short: say so rather than end without a status.
		trailers["grpc-status"] = "13"
		trailers["grpc-message"] = "the upstream answer ended without a status"
	}
	_, _ = g.Write(trailerFrame(trailers))
	g.Flush()
}

// trailerFrame is the flagged frame of "name: value\r\n" lines.
func trailerFrame(trailers map[string]string) []byte {
	keys := make([]string, 0, len(trailers))
	for k := range trailers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var block strings.Builder
	for _, k := range keys {
		block.WriteString(k)
		block.WriteString(": ")
		block.WriteString(trailers[k])
		block.WriteString("\r\n")
	}
	return grpcframe.Append(make([]byte, 0, grpcframe.HeaderLen+block.Len()), grpcframe.TrailerFlag, []byte(block.String()))
}
