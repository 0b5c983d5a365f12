package transcoder

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"

	transcoderv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/grpc_json_transcoder/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/meshgate/meshgate/grpcframe"
	"github.com/meshgate/meshgate/proto/descriptors"
	"github.com/meshgate/meshgate/proto/httprule"
	"github.com/meshgate/meshgate/server/wire"
)

// jsonTranscoder is a listener's gRPC-JSON transcoder (Envoy's
// grpc_json_transcoder, auto_mapping form): a JSON POST to
// /<package.Service>/<Method> of a listed service becomes a gRPC call, and
// the answer JSON again.
type jsonTranscoder struct {
	services map[string]protoreflect.ServiceDescriptor
	rules    *httprule.Table // google.api.http rules of the services
	auto     bool            // POST /<package.Service>/<Method> too
	marshal  protojson.MarshalOptions
	discard  bool // unknown request fields are ignored
	ndjson   bool // server streams as newline-delimited JSON, not an array
	request  httprule.RequestOptions
	ignored  []string // query parameters never mapped to fields
	files    []string // the .proto files known, for /config_dump
}

// transcodeCall is the gRPC method a JSON request reaches, and how.
type transcodeCall struct {
	md       protoreflect.MethodDescriptor
	rule     *httprule.Rule // nil: the auto-mapping form
	bindings []httprule.Binding
	// connectStream: Connect's streaming protocol with the JSON codec
	// (the request's one message in an envelope).
	connectStream bool
}

// responseBody is the answer field written ("" for the whole answer).
func (c *transcodeCall) responseBody() string {
	if c.rule == nil {
		return ""
	}
	return c.rule.ResponseBody
}

func compileTranscoder(cfg *transcoderv3.GrpcJsonTranscoder) (*jsonTranscoder, error) {
	var bin []byte
	switch d := cfg.GetDescriptorSet().(type) {
	case *transcoderv3.GrpcJsonTranscoder_ProtoDescriptorBin:
		bin = d.ProtoDescriptorBin
	case *transcoderv3.GrpcJsonTranscoder_ProtoDescriptor:
		b, err := os.ReadFile(d.ProtoDescriptor)
		if err != nil {
			return nil, fmt.Errorf("proto_descriptor: %w", err)
		}
		bin = b
	default:
		return nil, errors.New("proto_descriptor or proto_descriptor_bin is needed")
	}
	set, err := descriptors.Parse(bin)
	if err != nil {
		return nil, fmt.Errorf("the descriptor set: %w", err)
	}
	files, err := descriptors.Files(set)
	if err != nil {
		return nil, fmt.Errorf("the descriptor set: %w", err)
	}
	return newTranscoder(cfg, files)
}

// newTranscoder builds a transcoder for the configured services of files.
func newTranscoder(cfg *transcoderv3.GrpcJsonTranscoder, files *protoregistry.Files) (*jsonTranscoder, error) {
	t := &jsonTranscoder{services: map[string]protoreflect.ServiceDescriptor{},
		auto: cfg.GetAutoMapping(),
		marshal: protojson.MarshalOptions{
			UseProtoNames:   cfg.GetPrintOptions().GetPreserveProtoFieldNames(),
			EmitUnpopulated: cfg.GetPrintOptions().GetAlwaysPrintPrimitiveFields(),
			UseEnumNumbers:  cfg.GetPrintOptions().GetAlwaysPrintEnumsAsInts(),
		},
		discard: cfg.GetRequestValidationOptions() != nil && !cfg.GetRequestValidationOptions().GetRejectUnknownMethod(),
		ndjson:  cfg.GetPrintOptions().GetStreamNewlineDelimited(),
		ignored: cfg.GetIgnoredQueryParameters(),
	}
	t.request = httprule.RequestOptions{
		DiscardUnknown:     t.discard,
		IgnoreUnknownQuery: cfg.GetIgnoreUnknownQueryParameters() && !cfg.GetRequestValidationOptions().GetRejectUnknownQueryParameters(),
	}
	var rules []*httprule.Rule
	for _, name := range cfg.GetServices() {
		d, err := files.FindDescriptorByName(protoreflect.FullName(name))
		sd, ok := d.(protoreflect.ServiceDescriptor)
		if err != nil || !ok {
			return nil, fmt.Errorf("services: %q is not a service of the descriptor", name)
		}
		t.services[name] = sd
		r, err := httprule.Rules(sd)
		if err != nil {
			return nil, err
		}
		rules = append(rules, r...)
	}
	table, err := httprule.NewTable(rules)
	if err != nil {
		return nil, err
	}
	t.rules = table
	files.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		t.files = append(t.files, fd.Path())
		return true
	})
	slices.Sort(t.files)
	if !t.auto && table.Len() == 0 {
		return nil, errors.New("the services have no google.api.http rules and auto_mapping is off: nothing to transcode")
	}
	return t, nil
}

// method finds the method a JSON request reaches, or nil: by a
// google.api.http rule, else (with auto_mapping, or for a Connect caller)
// by its gRPC path.
func (t *jsonTranscoder) method(r *http.Request, connect bool) *transcodeCall {
	if !connect {
		if rule, bindings := t.rules.Match(r.Method, r.URL.EscapedPath()); rule != nil {
			return &transcodeCall{md: rule.RPC, rule: rule, bindings: bindings}
		}
	}
	if !t.auto && !connect || r.Method != http.MethodPost {
		return nil
	}
	service, name, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	sd := t.services[service]
	if !ok || sd == nil {
		return nil
	}
	md := sd.Methods().ByName(protoreflect.Name(name))
	if md == nil || md.IsStreamingClient() {
		return nil // a client stream has no one JSON body to come from
	}
	return &transcodeCall{md: md}
}

// transcodeRequest turns r into the gRPC call; a request that does not map
// onto the request message is the caller's error.
func (t *jsonTranscoder) transcodeRequest(r *http.Request, call *transcodeCall, limit uint64) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	_ = r.Body.Close()
	if err != nil {
		return fmt.Errorf("reading the request: %v", err)
	}
	if uint64(len(body)) > limit {
		return fmt.Errorf("the request is over %d bytes", limit)
	}
	if call.connectStream {
		if body, err = oneEnvelope(body); err != nil {
			return err
		}
	}
	var in *dynamicpb.Message
	if call.rule != nil {
		query := r.URL.Query()
		for _, k := range t.ignored {
			query.Del(k)
		}
		in, err = call.rule.Request(call.bindings, query, body, r.Header.Get("Content-Type"), t.request)
		if err != nil {
			return err
		}
	} else {
		in = dynamicpb.NewMessage(call.md.Input())
		if len(bytes.TrimSpace(body)) > 0 {
			if err := (protojson.UnmarshalOptions{DiscardUnknown: t.discard}).Unmarshal(body, in); err != nil {
				return fmt.Errorf("the body is not a %s in JSON: %v", call.md.Input().FullName(), err)
			}
		}
	}
	msg, err := proto.Marshal(in)
	if err != nil {
		return err
	}
	framed := grpcframe.Append(make([]byte, 0, grpcframe.HeaderLen+len(msg)), 0, msg)
	// The call goes on as gRPC: routed, and sent, by its gRPC path.
	path := "/" + string(call.md.Parent().FullName()) + "/" + string(call.md.Name())
	r.URL.Path, r.URL.RawPath, r.URL.RawQuery, r.RequestURI = path, "", "", path
	r.Method = http.MethodPost
	r.Body = io.NopCloser(bytes.NewReader(framed))
	r.ContentLength = int64(len(framed))
	r.Header.Set("Content-Length", strconv.Itoa(len(framed)))
	r.Header.Set("Content-Type", "application/grpc")
	r.Header.Set("Te", "trailers")
	r.Header.Del("Accept-Encoding")
	return nil
}

// transcodeWriter holds the gRPC answer and writes it as JSON: the
// response message, or google.rpc.Status with the code's HTTP status.
type transcodeWriter struct {
	w           http.ResponseWriter
	t           *jsonTranscoder
	call        *transcodeCall
	connect     bool // a Connect caller (JSON codec): Connect's errors
	wroteHeader bool
	buf         bytes.Buffer
	finished    bool
}

func (tw *transcodeWriter) Header() http.Header { return tw.w.Header() }
func (tw *transcodeWriter) WriteHeader(int)     { tw.wroteHeader = true }
func (tw *transcodeWriter) Flush()              {}
func (tw *transcodeWriter) Unwrap() http.ResponseWriter {
	return tw.w
}

func (tw *transcodeWriter) Write(p []byte) (int, error) {
	tw.wroteHeader = true
	if tw.buf.Len()+len(p) > wire.MaxUnaryMessage+5 {
		return 0, fmt.Errorf("the answer is over %d bytes", wire.MaxUnaryMessage)
	}
	return tw.buf.Write(p)
}

func (tw *transcodeWriter) finish() {
	if tw.finished || !tw.wroteHeader {
		return
	}
	tw.finished = true
	h := tw.w.Header()
	code, msg, _, _ := wire.GRPCOutcome(h)
	h.Del("Trailer")
	h.Del("Content-Length")
	fail := writeRPCStatus
	if tw.connect {
		fail = wire.WriteConnectError
	}
	if code != codes.OK {
		fail(tw.w, code, msg)
		return
	}
	answer, ok := grpcframe.Single(tw.buf.Bytes())
	if !ok {
		fail(tw.w, codes.Internal, "the upstream answer is not one uncompressed message")
		return
	}
	out := dynamicpb.NewMessage(tw.call.md.Output())
	if err := proto.Unmarshal(answer, out); err != nil {
		fail(tw.w, codes.Internal, fmt.Sprintf("the upstream answer is not a %s: %v", tw.call.md.Output().FullName(), err))
		return
	}
	ct, j, err := httprule.RenderResponse(out, tw.call.responseBody(), tw.t.marshal)
	if err != nil {
		fail(tw.w, codes.Internal, err.Error())
		return
	}
	if tw.connect {
		ct = "application/json" // Connect's JSON codec answers JSON, HttpBody or not
		if j, err = tw.t.marshal.Marshal(out); err != nil {
			fail(tw.w, codes.Internal, err.Error())
			return
		}
	}
	for k := range h {
		if strings.HasPrefix(strings.ToLower(k), "grpc-") {
			h.Del(k)
		}
	}
	h.Set("Content-Type", ct)
	h.Set("Content-Length", strconv.Itoa(len(j)))
	tw.w.WriteHeader(http.StatusOK)
	_, _ = tw.w.Write(j)
}

// writeRPCStatus is a transcoded call's error: google.rpc.Status in JSON
// with the HTTP status of the code (as Envoy's transcoder answers).
func writeRPCStatus(w http.ResponseWriter, code codes.Code, msg string) {
	b, _ := json.Marshal(map[string]any{"code": int(code), "message": msg})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	status := wire.HTTPStatus(code)
	if code == codes.Canceled {
		status = 499
	}
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// transcodeStreamWriter writes a server stream's messages as JSON as they
// come: a JSON array (or newline-delimited JSON). A failure before the
// first message is a google.rpc.Status answer; after it, the array is
// closed and the status goes in the trailers (grpc-status, grpc-message).
type transcodeStreamWriter struct {
	w        http.ResponseWriter
	t        *jsonTranscoder
	call     *transcodeCall
	started  bool // the answer's headers and opening are written
	any      bool // a message was written
	wrote    bool // the upstream answered at all
	pending  []byte
	finished bool
	err      error
}

func (sw *transcodeStreamWriter) Header() http.Header { return sw.w.Header() }
func (sw *transcodeStreamWriter) WriteHeader(int)     { sw.wrote = true }
func (sw *transcodeStreamWriter) Unwrap() http.ResponseWriter {
	return sw.w
}

func (sw *transcodeStreamWriter) Flush() {
	if f, ok := sw.w.(http.Flusher); ok && sw.started {
		f.Flush()
	}
}

func (sw *transcodeStreamWriter) start() {
	if sw.started {
		return
	}
	sw.started = true
	h := sw.w.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", "application/json")
	h.Set("Trailer", "Grpc-Status, Grpc-Message")
	sw.w.WriteHeader(http.StatusOK)
	if !sw.t.ndjson {
		_, _ = sw.w.Write([]byte("["))
	}
}

func (sw *transcodeStreamWriter) Write(p []byte) (int, error) {
	sw.wrote = true
	if sw.err != nil {
		return 0, sw.err
	}
	sw.pending = append(sw.pending, p...)
	for {
		msg, rest, ok, err := wire.NextFrame(sw.pending)
		if err != nil {
			sw.err = err
			return 0, err
		}
		if !ok {
			break
		}
		sw.pending = rest
		out := dynamicpb.NewMessage(sw.call.md.Output())
		if err := proto.Unmarshal(msg, out); err != nil {
			sw.err = fmt.Errorf("the upstream message is not a %s: %v", sw.call.md.Output().FullName(), err)
			return 0, sw.err
		}
		_, j, err := httprule.RenderResponse(out, sw.call.responseBody(), sw.t.marshal)
		if err != nil {
			sw.err = err
			return 0, err
		}
		sw.start()
		switch {
		case sw.t.ndjson:
			j = append(j, '\n')
		case sw.any:
			j = append([]byte(","), j...)
		}
		sw.any = true
		if _, err := sw.w.Write(j); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (sw *transcodeStreamWriter) finish() {
	if sw.finished || !sw.wrote {
		return
	}
	sw.finished = true
	h := sw.w.Header()
	code, msg, _, _ := wire.GRPCOutcome(h)
	if sw.err != nil && code == codes.OK {
		code, msg = codes.Internal, sw.err.Error()
	}
	if !sw.started && code != codes.OK {
		h.Del("Trailer")
		writeRPCStatus(sw.w, code, msg)
		return
	}
	sw.start()
	if !sw.t.ndjson {
		_, _ = sw.w.Write([]byte("]"))
	}
	h.Set("Grpc-Status", strconv.Itoa(int(code)))
	if msg != "" {
		h.Set("Grpc-Message", wire.EncodeGRPCMessage(msg))
	}
}
