package transcoder

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	transcoderv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/grpc_json_transcoder/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	grpcreflectionv1 "github.com/meshgate/meshgate/proto/meshgate/extensions/filters/http/grpc_reflection/v1"
	openapiv1 "github.com/meshgate/meshgate/proto/meshgate/extensions/filters/http/openapi/v1"
	"github.com/meshgate/meshgate/server/httpfilter"
	"github.com/meshgate/meshgate/server/wire"
)

// Names of the filters, as configs spell them.
const (
	Name           = "envoy.filters.http.grpc_json_transcoder"
	ReflectionName = "meshgate.filters.http.grpc_reflection"
	OpenAPIName    = "meshgate.filters.http.openapi"
)

func init() {
	httpfilter.Register(&httpfilter.Factory{Name: Name, Config: &transcoderv3.GrpcJsonTranscoder{}, Build: build})
	// The reflection and OpenAPI filters configure the transcoder (their
	// configs are read by it from the chain): nothing runs for them.
	httpfilter.Register(&httpfilter.Factory{Name: ReflectionName, Config: &grpcreflectionv1.GrpcReflection{},
		Build: func(proto.Message, httpfilter.Build) (httpfilter.Filter, []string, error) { return nil, nil, nil }})
	httpfilter.Register(&httpfilter.Factory{Name: OpenAPIName, Config: &openapiv1.OpenAPI{},
		Build: func(cfg proto.Message, _ httpfilter.Build) (httpfilter.Filter, []string, error) {
			if p := cfg.(*openapiv1.OpenAPI).GetPath(); p != "" && !strings.HasPrefix(p, "/") {
				return nil, nil, fmt.Errorf("path %q must start with /", p)
			}
			return nil, nil, nil
		}})
}

// filter transcodes JSON calls (REST by google.api.http rules, POSTs to a
// method's gRPC path with auto_mapping, Connect's JSON codec) into gRPC and
// the answers back, and serves the OpenAPI document of its methods.
type filter struct {
	static    *jsonTranscoder      // descriptors from the config
	reflected *reflectedTranscoder // or from a cluster by gRPC reflection
	openAPI   string               // "": not served
	maxBody   uint64
}

// defaultMaxBody bounds a JSON body when the listener sets no limit (it is
// read whole to be converted).
const defaultMaxBody = 8 << 20

func build(cfg proto.Message, b httpfilter.Build) (httpfilter.Filter, []string, error) {
	tc, ok := cfg.(*transcoderv3.GrpcJsonTranscoder)
	if !ok {
		return nil, nil, errors.New("needs a GrpcJsonTranscoder config")
	}
	f := &filter{openAPI: defaultOpenAPIPath, maxBody: b.MaxBody}
	if f.maxBody == 0 {
		f.maxBody = defaultMaxBody
	}
	var reflection *grpcreflectionv1.GrpcReflection
	for i, hf := range b.Chain {
		switch {
		case hf.GetName() == OpenAPIName:
			var o openapiv1.OpenAPI
			if hf.GetTypedConfig().UnmarshalTo(&o) == nil {
				switch {
				case o.GetDisabled():
					f.openAPI = ""
				case o.GetPath() != "":
					f.openAPI = o.GetPath()
				}
			}
		case hf.GetName() == ReflectionName && i < b.Index:
			// The reflection filter just before configures this transcoder.
			reflection = &grpcreflectionv1.GrpcReflection{}
			if hf.GetTypedConfig().UnmarshalTo(reflection) != nil {
				return nil, nil, fmt.Errorf("%s: want a %s", ReflectionName, reflection.ProtoReflect().Descriptor().FullName())
			}
		}
	}
	if reflection == nil {
		t, err := compileTranscoder(tc)
		if err != nil {
			return nil, nil, err
		}
		f.static = t
		return f, nil, nil
	}
	state := &reflectionState{}
	if b.Keep != nil {
		state = b.Keep(reflectionKey(reflection, tc), func() any { return &reflectionState{} }).(*reflectionState)
	}
	rt, err := newReflectedTranscoder(tc, reflection, state)
	if err != nil {
		return nil, nil, fmt.Errorf("reflection: %w", err)
	}
	rt.listener, rt.clusters, rt.log, rt.goBg = b.Listener, b.Cluster, b.Log, b.Go
	if _, ok := rt.clusters(rt.cluster); !ok {
		return nil, nil, fmt.Errorf("reflection: cluster %q is not configured", rt.cluster)
	}
	f.reflected = rt
	return f, nil, nil
}

// current is the transcoder to use now (nil: the reflected descriptors
// cannot be had).
func (f *filter) current(ctx context.Context) *jsonTranscoder {
	if f.reflected != nil {
		return f.reflected.current(ctx)
	}
	return f.static
}

// Decode takes the JSON calls it knows; gRPC and gRPC-Web (translated by
// its filter before) are not its, as in Envoy, which leaves
// application/grpc* alone.
// PassesGRPCThrough: gRPC requests go by untouched (see
// httpfilter.GRPCPassThrough).
func (f *filter) PassesGRPCThrough(*http.Request, *httpfilter.Route) bool { return true }

func (f *filter) Decode(s *httpfilter.Stream) httpfilter.Status {
	r := s.R
	if s.AsGRPC || strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
		return httpfilter.Continue
	}
	tr := f.current(r.Context())
	if tr == nil {
		// Without its descriptors the transcoder cannot say whether this
		// was one of its calls: where no route takes it either, say why
		// instead of "no route".
		if s.Route() == nil {
			wire.WriteError(s.W, r, http.StatusServiceUnavailable, codes.Unavailable, f.reflected.unavailable())
			return httpfilter.Stop
		}
		return httpfilter.Continue
	}
	if serveOpenAPI(tr, f.openAPI, s.W, r) {
		return httpfilter.Stop
	}
	connectStream := strings.HasPrefix(r.Header.Get("Content-Type"), "application/connect+json")
	connect := connectStream || r.Header.Get("Connect-Protocol-Version") != ""
	call := tr.method(r, connect)
	if call == nil {
		return httpfilter.Continue
	}
	// JSON to a gRPC method (plain, or Connect's JSON codec): forwarded as
	// gRPC, answered in JSON.
	call.connectStream = connectStream
	if connect {
		if v := r.Header.Get("Connect-Timeout-Ms"); v != "" {
			if ms, err := strconv.ParseUint(v, 10, 63); err == nil && ms > 0 {
				r.Header.Set("Grpc-Timeout", strconv.FormatUint(min(ms, 99999999), 10)+"m")
			}
		}
		r.Header.Del("Connect-Protocol-Version")
		r.Header.Del("Connect-Timeout-Ms")
	}
	var cs *connectJSONStreamWriter
	if connectStream {
		cs = &connectJSONStreamWriter{w: s.Below(), t: tr, call: call}
		s.Wrap(cs, cs.finish)
		s.AsGRPC = true
	}
	if err := tr.transcodeRequest(r, call, f.maxBody); err != nil {
		switch {
		case connectStream:
			cs.fail(codes.InvalidArgument, err.Error())
		case connect:
			wire.WriteConnectError(s.W, codes.InvalidArgument, err.Error())
		default:
			writeRPCStatus(s.W, codes.InvalidArgument, err.Error())
		}
		return httpfilter.Stop
	}
	s.ClearRouteCache() // the request is now a gRPC call on its method's path
	switch {
	case connectStream:
		// cs writes the stream's messages and its end.
	case call.md.IsStreamingServer() && connect:
		wire.WriteConnectError(s.W, codes.InvalidArgument, "a server-streaming method takes Connect's streaming protocol (application/connect+json)")
		return httpfilter.Stop
	case call.md.IsStreamingServer():
		sw := &transcodeStreamWriter{w: s.Below(), t: tr, call: call}
		s.Wrap(sw, sw.finish)
		s.AsGRPC = true
	default:
		tw := &transcodeWriter{w: s.Below(), t: tr, call: call, connect: connect}
		s.Wrap(tw, tw.finish)
		s.AsGRPC = true
	}
	return httpfilter.Continue
}

// Describe reports the descriptors the transcoder uses, for /config_dump.
func (f *filter) Describe(listener string) proto.Message {
	if f.reflected != nil {
		return f.reflected.describe(listener)
	}
	return f.static.describe(listener, "descriptor_set")
}
