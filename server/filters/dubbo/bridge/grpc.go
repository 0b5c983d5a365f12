package bridge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/meshgate/meshgate/dubbo"
	"github.com/meshgate/meshgate/grpcframe"
	"github.com/meshgate/meshgate/triple"
)

// descriptors reads the route's FileDescriptorSet.
func descriptors(b []byte) (*protoregistry.Files, error) {
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("proto_descriptor_bin: %w", err)
	}
	files, err := protodesc.NewFiles(&set)
	if err != nil {
		return nil, fmt.Errorf("proto_descriptor_bin: %w", err)
	}
	return files, nil
}

// GRPCCall is a gRPC or Triple call turned into a generic one.
type GRPCCall struct {
	*Call
	output  protoreflect.MessageDescriptor
	wrapped bool // a non-IDL Triple call: the answer goes in a TripleResponseWrapper
}

// GRPCRequest builds the generic call for a unary gRPC request whose body
// (the whole of it, one length-prefixed message) is frame. A caller's
// mistake comes back as *BadRequest with a gRPC code.
func (rt *Route) GRPCRequest(r *http.Request, frame []byte, svc Service) (*GRPCCall, error) {
	service, method, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if !ok || service == "" || method == "" || strings.Contains(method, "/") {
		return nil, &BadRequest{Status: http.StatusNotFound, GRPC: codes.Unimplemented, Msg: fmt.Sprintf("%q is not a gRPC method path", r.URL.Path)}
	}
	var sd protoreflect.ServiceDescriptor
	if rt.files != nil {
		if d, err := rt.files.FindDescriptorByName(protoreflect.FullName(service)); err == nil {
			sd, _ = d.(protoreflect.ServiceDescriptor)
		}
	}
	if sd == nil {
		// Not a service the descriptor knows: a non-IDL Triple call, its
		// hessian2 arguments in a TripleRequestWrapper?
		if c, err := rt.wrappedRequest(r, frame, svc); c != nil || err != nil {
			return c, err
		}
		if rt.files == nil {
			return nil, &BadRequest{Status: http.StatusNotImplemented, GRPC: codes.Unimplemented,
				Msg: "the route bridges IDL gRPC calls only with a proto descriptor (dubbo.proto_descriptor); this call is no non-IDL Triple call either"}
		}
		return nil, &BadRequest{Status: http.StatusNotFound, GRPC: codes.Unimplemented, Msg: fmt.Sprintf("unknown service %s", service)}
	}
	md := sd.Methods().ByName(protoreflect.Name(method))
	if md == nil {
		return nil, &BadRequest{Status: http.StatusNotFound, GRPC: codes.Unimplemented, Msg: fmt.Sprintf("unknown method %s for service %s", method, service)}
	}
	if md.IsStreamingClient() || md.IsStreamingServer() {
		return nil, &BadRequest{Status: http.StatusNotImplemented, GRPC: codes.Unimplemented,
			Msg: fmt.Sprintf("%s/%s streams: Dubbo2 calls are unary", service, method)}
	}
	msg, err := grpcMessage(frame)
	if err != nil {
		return nil, err
	}
	in := dynamicpb.NewMessage(md.Input())
	if err := proto.Unmarshal(msg, in); err != nil {
		return nil, &BadRequest{Status: http.StatusBadRequest, GRPC: codes.InvalidArgument, Msg: fmt.Sprintf("the request is not a %s: %v", md.Input().FullName(), err)}
	}
	// The JSON form, every field present (a zero is an argument too), with
	// the proto field names that params' body.<field> sources name.
	body, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(in)
	if err != nil {
		return nil, &BadRequest{Status: http.StatusBadRequest, GRPC: codes.InvalidArgument, Msg: err.Error()}
	}
	if rt.cfg.GetMethod() == "" {
		// The Dubbo method is the gRPC one; the URL's last segment says so.
		r = r.Clone(r.Context())
		r.URL.Path = "/" + service + "/" + method
	}
	if len(rt.params) > 0 {
		c, err := rt.Request(r, body, svc)
		if err != nil {
			return nil, err
		}
		return &GRPCCall{Call: c, output: md.Output()}, nil
	}
	// The request message's fields are the arguments, in order, typed by
	// their proto types unless a signature or the route says otherwise.
	var doc map[string]any
	d2 := json.NewDecoder(bytes.NewReader(body))
	d2.UseNumber()
	if err := d2.Decode(&doc); err != nil {
		return nil, &BadRequest{Status: http.StatusBadRequest, GRPC: codes.InvalidArgument, Msg: err.Error()}
	}
	fields := md.Input().Fields()
	values := make([]any, fields.Len())
	protoTypes := make([]string, fields.Len())
	for i := range fields.Len() {
		f := fields.Get(i)
		values[i] = doc[string(f.Name())]
		protoTypes[i] = javaTypeOf(f)
	}
	c, err := rt.call(r, values, svc, protoTypes)
	if err != nil {
		return nil, err
	}
	return &GRPCCall{Call: c, output: md.Output()}, nil
}

// wrappedRequest reads a non-IDL Triple call (a TripleRequestWrapper with
// hessian2 arguments): nil, nil when the message is no such wrapper.
func (rt *Route) wrappedRequest(r *http.Request, frame []byte, svc Service) (*GRPCCall, error) {
	ct := strings.ToLower(r.Header.Get("Content-Type"))
	if ct != "application/grpc+proto" && ct != "application/grpc" {
		return nil, nil
	}
	msg, err := grpcMessage(frame)
	if err != nil {
		return nil, err
	}
	args, types, err := triple.DecodeRequest(msg)
	if err != nil {
		return nil, nil
	}
	s, err := rt.service(r, svc)
	if err != nil {
		return nil, err
	}
	c := &Call{Service: s, TypesSource: "wrapper", Attachments: rt.attachments(r)}
	c.Args = make([]any, len(args))
	for i, a := range args {
		c.Args[i] = triple.Generic(a)
	}
	c.Types = make([]string, len(args))
	for i := range c.Types {
		if i < len(types) && types[i] != "" {
			c.Types[i] = dubbo.EraseType(types[i])
		} else {
			c.Types[i] = dubbo.InferType(c.Args[i])
		}
	}
	return &GRPCCall{Call: c, wrapped: true}, nil
}

// IDLMethod finds the method a path names in the route's descriptor: an
// IDL Triple (or gRPC) method that JSON callers reach through it.
func (rt *Route) IDLMethod(path string) (protoreflect.MethodDescriptor, bool) {
	if rt.files == nil {
		return nil, false
	}
	service, method, ok := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if !ok {
		return nil, false
	}
	d, err := rt.files.FindDescriptorByName(protoreflect.FullName(service))
	sd, isService := d.(protoreflect.ServiceDescriptor)
	if err != nil || !isService {
		return nil, false
	}
	md := sd.Methods().ByName(protoreflect.Name(method))
	return md, md != nil && !md.IsStreamingClient() && !md.IsStreamingServer()
}

// JSONToProto reads a JSON request body as the method's input message.
func JSONToProto(body []byte, md protoreflect.MethodDescriptor) ([]byte, error) {
	in := dynamicpb.NewMessage(md.Input())
	if len(bytes.TrimSpace(body)) > 0 {
		if err := protojson.Unmarshal(body, in); err != nil {
			return nil, &BadRequest{Status: http.StatusBadRequest, GRPC: codes.InvalidArgument,
				Msg: fmt.Sprintf("the body is not a %s in JSON: %v", md.Input().FullName(), err)}
		}
	}
	return proto.Marshal(in)
}

// ProtoToJSON writes an answer message as JSON.
func ProtoToJSON(msg []byte, md protoreflect.MethodDescriptor) ([]byte, error) {
	out := dynamicpb.NewMessage(md.Output())
	if err := proto.Unmarshal(msg, out); err != nil {
		return nil, fmt.Errorf("%w: the answer is not a %s: %v", dubbo.ErrFrame, md.Output().FullName(), err)
	}
	return protojson.Marshal(out)
}

// grpcMessage takes the one message out of a unary request body.
func grpcMessage(frame []byte) ([]byte, error) {
	n, ok := grpcframe.Length(frame)
	switch {
	case !ok:
		return nil, &BadRequest{Status: http.StatusBadRequest, GRPC: codes.InvalidArgument, Msg: "the request holds no gRPC message"}
	case frame[0] != 0:
		return nil, &BadRequest{Status: http.StatusBadRequest, GRPC: codes.Unimplemented, Msg: "compressed gRPC messages are not supported by the Dubbo2 bridge"}
	case uint64(n) != uint64(len(frame)-grpcframe.HeaderLen):
		return nil, &BadRequest{Status: http.StatusBadRequest, GRPC: codes.InvalidArgument,
			Msg: fmt.Sprintf("the request must hold exactly one gRPC message (a %d-byte message in %d bytes)", n, len(frame)-grpcframe.HeaderLen)}
	}
	return frame[grpcframe.HeaderLen:], nil
}

// javaTypeOf is the Java type a proto field's JSON form maps onto.
func javaTypeOf(f protoreflect.FieldDescriptor) string {
	if f.IsMap() {
		return "java.util.Map"
	}
	if f.IsList() {
		return "java.util.List"
	}
	switch f.Kind() {
	case protoreflect.BoolKind:
		return "boolean"
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind, protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return "int"
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return "long"
	case protoreflect.FloatKind:
		return "float"
	case protoreflect.DoubleKind:
		return "double"
	case protoreflect.StringKind, protoreflect.EnumKind:
		return "java.lang.String"
	case protoreflect.BytesKind:
		return "byte[]"
	}
	return "" // a message: a POJO whose class only a signature knows
}

// AnswerGRPC writes a successful result as the method's response message:
// a JSON object fills its fields, anything else the response's single
// field. An error comes before anything is written.
func (rt *Route) AnswerGRPC(w http.ResponseWriter, c *GRPCCall, resp *dubbo.Response) error {
	if c.wrapped {
		msg, err := triple.EncodeResponse(resp.Value)
		if err != nil {
			return err
		}
		return rt.writeGRPC(w, msg, resp)
	}
	v := dubbo.ToJSON(resp.Value, rt.json)
	out := dynamicpb.NewMessage(c.output)
	if _, isObject := v.(map[string]any); !isObject && v != nil {
		fields := c.output.Fields()
		if fields.Len() != 1 {
			return fmt.Errorf("the answer is not an object and %s has %d fields, not one to hold it", c.output.FullName(), fields.Len())
		}
		v = map[string]any{fields.Get(0).JSONName(): v}
	}
	if v != nil {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("the answer as JSON: %w", err)
		}
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, out); err != nil {
			return fmt.Errorf("the answer does not fit %s: %w", c.output.FullName(), err)
		}
	}
	msg, err := proto.Marshal(out)
	if err != nil {
		return err
	}
	return rt.writeGRPC(w, msg, resp)
}

// writeGRPC answers with one message and an OK status.
func (rt *Route) writeGRPC(w http.ResponseWriter, msg []byte, resp *dubbo.Response) error {
	h := w.Header()
	for k, val := range resp.Attachments {
		if validHeader(k) && validValue(val) {
			h.Set(rt.prefix+k, val)
		}
	}
	h.Set("Content-Type", "application/grpc")
	h.Set("Trailer", "Grpc-Status, Grpc-Message")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(grpcframe.Append(make([]byte, 0, grpcframe.HeaderLen+len(msg)), 0, msg))
	h.Set("Grpc-Status", "0")
	return nil
}
