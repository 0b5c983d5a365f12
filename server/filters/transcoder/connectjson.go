package transcoder

import (
	"errors"
	"fmt"
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/meshgate/meshgate/grpcframe"
	"github.com/meshgate/meshgate/server/wire"
)

// oneEnvelope unwraps the one message of a Connect streaming request (a
// server stream's request): anything else is the caller's error.
func oneEnvelope(body []byte) ([]byte, error) {
	n, ok := grpcframe.Length(body)
	switch {
	case !ok:
		return nil, errors.New("the request is not a Connect envelope")
	case body[0]&wire.ConnectFlagCompressed != 0:
		return nil, errors.New("compressed Connect messages are not accepted")
	case body[0] != 0:
		return nil, fmt.Errorf("unexpected envelope flags 0x%02x", body[0])
	case uint64(n) != uint64(len(body)-grpcframe.HeaderLen):
		return nil, errors.New("the request is not exactly one Connect message (client streaming is not transcoded)")
	}
	return body[grpcframe.HeaderLen:], nil
}

// connectJSONStreamWriter answers Connect's streaming protocol with the
// JSON codec: each gRPC message of the answer becomes a JSON envelope, and
// the status and trailers the end-of-stream message.
type connectJSONStreamWriter struct {
	w        http.ResponseWriter
	t        *jsonTranscoder
	call     *transcodeCall
	started  bool
	pending  []byte
	err      error
	finished bool
}

func (cs *connectJSONStreamWriter) Header() http.Header { return cs.w.Header() }
func (cs *connectJSONStreamWriter) WriteHeader(int)     { cs.start() }
func (cs *connectJSONStreamWriter) Unwrap() http.ResponseWriter {
	return cs.w
}

func (cs *connectJSONStreamWriter) Flush() {
	if f, ok := cs.w.(http.Flusher); ok && cs.started {
		f.Flush()
	}
}

// start writes the answer's headers: a Connect stream always answers 200.
func (cs *connectJSONStreamWriter) start() {
	if cs.started {
		return
	}
	cs.started = true
	h := cs.w.Header()
	h.Del("Content-Length")
	h.Del("Trailer")
	h.Set("Content-Type", "application/connect+json")
	cs.w.WriteHeader(http.StatusOK)
}

func (cs *connectJSONStreamWriter) Write(p []byte) (int, error) {
	cs.start()
	if cs.err != nil {
		return 0, cs.err
	}
	cs.pending = append(cs.pending, p...)
	for {
		msg, rest, ok, err := wire.NextFrame(cs.pending)
		if err != nil {
			cs.err = err
			return 0, err
		}
		if !ok {
			break
		}
		cs.pending = rest
		out := dynamicpb.NewMessage(cs.call.md.Output())
		if err := proto.Unmarshal(msg, out); err != nil {
			cs.err = fmt.Errorf("the upstream message is not a %s: %v", cs.call.md.Output().FullName(), err)
			return 0, cs.err
		}
		j, err := cs.t.marshal.Marshal(out)
		if err != nil {
			cs.err = err
			return 0, err
		}
		if _, err := cs.w.Write(envelope(0, j)); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// fail ends the stream with an error before anything went upstream.
func (cs *connectJSONStreamWriter) fail(code codes.Code, msg string) {
	cs.start()
	cs.end(code, msg, nil)
}

func (cs *connectJSONStreamWriter) finish() {
	if cs.finished || !cs.started {
		return
	}
	code, msg, metadata, _ := wire.GRPCOutcome(cs.w.Header())
	if cs.err != nil && code == codes.OK {
		code, msg = codes.Internal, cs.err.Error()
	}
	cs.end(code, msg, metadata)
}

func (cs *connectJSONStreamWriter) end(code codes.Code, msg string, metadata map[string][]string) {
	if cs.finished {
		return
	}
	cs.finished = true
	_, _ = cs.w.Write(wire.ConnectEndStream(code, msg, metadata))
}

// envelope frames one Connect (or gRPC) message.
func envelope(flags byte, msg []byte) []byte {
	return grpcframe.Append(make([]byte, 0, grpcframe.HeaderLen+len(msg)), flags, msg)
}
