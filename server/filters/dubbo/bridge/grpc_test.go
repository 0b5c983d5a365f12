package bridge

import (
	"encoding/binary"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/meshgate/meshgate/dubbo"
	dubbotestv1 "github.com/meshgate/meshgate/proto/dubbotest/v1"
	dubbov1 "github.com/meshgate/meshgate/proto/meshgate/extensions/filters/http/dubbo/v1"
	"github.com/meshgate/meshgate/triple"
)

func descriptorBin(t testing.TB) []byte {
	set := &descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{protodesc.ToFileDescriptorProto(dubbotestv1.File_dubbotest_v1_greeter_proto)}}
	b, err := proto.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func grpcFrame(t testing.TB, m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 5+len(b))
	binary.BigEndian.PutUint32(out[1:], uint32(len(b)))
	copy(out[5:], b)
	return out
}

func grpcRequest(path string) *http.Request {
	r := httptest.NewRequest("POST", path, nil)
	r.Header.Set("Content-Type", "application/grpc")
	return r
}

func TestGRPCRequest(t *testing.T) {
	rt := mustCompile(t, &dubbov1.DubboRoute{Interface: "org.x.Greeter", ProtoDescriptorBin: descriptorBin(t)})
	c, err := rt.GRPCRequest(grpcRequest("/dubbotest.v1.GreeterService/Add"), grpcFrame(t, &dubbotestv1.AddRequest{A: 1 << 60}), Service{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Service.Method != "Add" || c.Service.Interface != "org.x.Greeter" || c.TypesSource != "proto" {
		t.Errorf("call %+v", c.Call)
	}
	if len(c.Args) != 2 || c.Args[0] != int64(1<<60) || c.Args[1] != int64(0) || c.Types[0] != "long" {
		t.Errorf("arguments %#v %v: want the two fields in order, zeros included, as longs", c.Args, c.Types)
	}
	// A published signature wins over the proto types.
	c, err = rt.GRPCRequest(grpcRequest("/dubbotest.v1.GreeterService/Add"), grpcFrame(t, &dubbotestv1.AddRequest{A: 1, B: 2}),
		Service{Signatures: map[string][][]string{"Add": {{"int", "int"}}}})
	if err != nil || c.Args[0] != int32(1) || c.TypesSource != "signature" {
		t.Errorf("with a signature: %+v, %v", c, err)
	}
	// A message field is a POJO argument.
	c, err = rt.GRPCRequest(grpcRequest("/dubbotest.v1.GreeterService/GetUser"),
		grpcFrame(t, &dubbotestv1.GetUserRequest{User: &dubbotestv1.User{Id: "u", Age: 3}}), Service{})
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := c.Args[0].(map[any]any); !ok || m["id"] != "u" || m["age"] != int64(3) {
		t.Errorf("the user argument %#v", c.Args[0])
	}
}

func TestGRPCRequest_Errors(t *testing.T) {
	rt := mustCompile(t, &dubbov1.DubboRoute{Interface: "I", ProtoDescriptorBin: descriptorBin(t)})
	good := grpcFrame(t, &dubbotestv1.SayHelloRequest{Name: "x"})
	compressed := append([]byte{1}, good[1:]...)
	tests := []struct {
		name, path string
		frame      []byte
		code       codes.Code
		says       string
	}{
		{"unknown service", "/x.Y/SayHello", good, codes.Unimplemented, "unknown service x.Y"},
		{"unknown method", "/dubbotest.v1.GreeterService/Nope", good, codes.Unimplemented, "unknown method Nope"},
		{"not a method path", "/dubbotest.v1.GreeterService", good, codes.Unimplemented, "not a gRPC method path"},
		{"no message", "/dubbotest.v1.GreeterService/SayHello", nil, codes.InvalidArgument, "no gRPC message"},
		{"compressed", "/dubbotest.v1.GreeterService/SayHello", compressed, codes.Unimplemented, "compressed"},
		{"two messages", "/dubbotest.v1.GreeterService/SayHello", append(good, good...), codes.InvalidArgument, "exactly one"},
		{"not the message", "/dubbotest.v1.GreeterService/SayHello", []byte{0, 0, 0, 0, 2, 0xff, 0xff}, codes.InvalidArgument, "not a dubbotest.v1.SayHelloRequest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := rt.GRPCRequest(grpcRequest(tt.path), tt.frame, Service{})
			br, ok := IsBadRequest(err)
			if !ok || br.GRPC != tt.code || !strings.Contains(br.Msg, tt.says) {
				t.Errorf("got %v, want %v saying %q", err, tt.code, tt.says)
			}
		})
	}
	if _, err := mustCompile(t, &dubbov1.DubboRoute{}).GRPCRequest(grpcRequest("/a.B/C"), good, Service{}); err == nil {
		t.Error("a route without a descriptor bridged a gRPC call")
	}
	if _, err := compile(&dubbov1.DubboRoute{ProtoDescriptorBin: []byte("not a descriptor set")}); err == nil {
		t.Error("a bad descriptor set compiled")
	}
}

func TestAnswerGRPC(t *testing.T) {
	rt := mustCompile(t, &dubbov1.DubboRoute{Interface: "I", ProtoDescriptorBin: descriptorBin(t)})
	decode := func(w *httptest.ResponseRecorder, m proto.Message) {
		t.Helper()
		b := w.Body.Bytes()
		if len(b) < 5 || int(binary.BigEndian.Uint32(b[1:5])) != len(b)-5 {
			t.Fatalf("not one gRPC message: %x", b)
		}
		if err := proto.Unmarshal(b[5:], m); err != nil {
			t.Fatal(err)
		}
		if w.Header().Get("Grpc-Status") != "0" {
			t.Errorf("trailers %v", w.Header())
		}
	}
	call := func(path string, m proto.Message) *GRPCCall {
		c, err := rt.GRPCRequest(grpcRequest(path), grpcFrame(t, m), Service{})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// A scalar answer fills a single-field response.
	w := httptest.NewRecorder()
	if err := rt.AnswerGRPC(w, call("/dubbotest.v1.GreeterService/SayHello", &dubbotestv1.SayHelloRequest{}), &dubbo.Response{Value: "hi"}); err != nil {
		t.Fatal(err)
	}
	var hello dubbotestv1.SayHelloResponse
	decode(w, &hello)
	if hello.GetMessage() != "hi" {
		t.Errorf("SayHello answer %v", &hello)
	}
	// An object fills the fields it names; unknown keys are dropped.
	w = httptest.NewRecorder()
	if err := rt.AnswerGRPC(w, call("/dubbotest.v1.GreeterService/GetUser", &dubbotestv1.GetUserRequest{}),
		&dubbo.Response{Value: map[any]any{"class": "x.User", "id": "u", "age": int32(4), "extra": true}}); err != nil {
		t.Fatal(err)
	}
	var user dubbotestv1.User
	decode(w, &user)
	if user.GetId() != "u" || user.GetAge() != 4 {
		t.Errorf("GetUser answer %v", &user)
	}
	// A scalar for a many-field message, or a value of the wrong type, is
	// the provider's answer not fitting: an error, nothing written.
	for _, v := range []any{"x", map[any]any{"age": "old"}} {
		w = httptest.NewRecorder()
		if err := rt.AnswerGRPC(w, call("/dubbotest.v1.GreeterService/GetUser", &dubbotestv1.GetUserRequest{}), &dubbo.Response{Value: v}); err == nil || w.Body.Len() != 0 {
			t.Errorf("answer %v: err %v, body %d bytes", v, err, w.Body.Len())
		}
	}
}

// FuzzGRPCRequest feeds arbitrary request bodies to the gRPC side.
func FuzzGRPCRequest(f *testing.F) {
	rt, err := compile(&dubbov1.DubboRoute{Interface: "I", ProtoDescriptorBin: descriptorBin(f)})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(grpcFrame(f, &dubbotestv1.GetUserRequest{User: &dubbotestv1.User{Id: "u", Name: "n", Age: 3}}))
	f.Add(grpcFrame(f, &dubbotestv1.AddRequest{A: -1, B: 1 << 62}))
	f.Add([]byte{0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, frame []byte) {
		for _, m := range []string{"GetUser", "Add", "SayHello"} {
			_, err := rt.GRPCRequest(grpcRequest("/dubbotest.v1.GreeterService/"+m), frame, Service{})
			if err != nil {
				if _, ok := IsBadRequest(err); !ok {
					t.Fatalf("not a BadRequest: %v", err)
				}
			}
		}
	})
}

func TestGRPCRequest_NonIDLWrapper(t *testing.T) {
	rt := mustCompile(t, &dubbov1.DubboRoute{Version: "1.0"})
	msg, err := triple.EncodeRequest([]any{"ann", map[any]any{"class": "org.x.User", "id": "u"}}, []string{"java.lang.String", "org.x.User"})
	if err != nil {
		t.Fatal(err)
	}
	frame := make([]byte, 5+len(msg))
	binary.BigEndian.PutUint32(frame[1:], uint32(len(msg)))
	copy(frame[5:], msg)
	r := httptest.NewRequest("POST", "/org.x.Greeter/hello", nil)
	r.Header.Set("Content-Type", "application/grpc+proto")
	c, err := rt.GRPCRequest(r, frame, Service{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Service.Interface != "org.x.Greeter" || c.Service.Method != "hello" || c.TypesSource != "wrapper" ||
		c.Types[1] != "org.x.User" || c.Args[0] != "ann" {
		t.Errorf("call %+v", c.Call)
	}
	if m, ok := c.Args[1].(map[any]any); !ok || m["class"] != "org.x.User" || m["id"] != "u" {
		t.Errorf("the POJO argument for a generic call: %#v", c.Args[1])
	}
	// The answer goes back in a TripleResponseWrapper.
	w := httptest.NewRecorder()
	if err := rt.AnswerGRPC(w, c, &dubbo.Response{Value: "hi"}); err != nil {
		t.Fatal(err)
	}
	if v, err := triple.DecodeResponse(w.Body.Bytes()[5:]); err != nil || v != "hi" {
		t.Errorf("wrapped answer %v, %v", v, err)
	}
	// Neither a wrapper nor a described service.
	if _, err := rt.GRPCRequest(r, grpcFrame(t, &dubbotestv1.SayHelloRequest{Name: "x"}), Service{}); err == nil {
		t.Error("a message that is no wrapper was bridged without a descriptor")
	}
}

func TestIDLTranscoding(t *testing.T) {
	rt := mustCompile(t, &dubbov1.DubboRoute{ProtoDescriptorBin: descriptorBin(t)})
	md, ok := rt.IDLMethod("/dubbotest.v1.GreeterService/Add")
	if !ok {
		t.Fatal("Add not found")
	}
	for _, p := range []string{"/dubbotest.v1.GreeterService/Nope", "/x.Y/Add", "/nopath"} {
		if _, ok := rt.IDLMethod(p); ok {
			t.Errorf("IDLMethod(%s) found one", p)
		}
	}
	b, err := JSONToProto([]byte(`{"a": "5", "b": 7}`), md)
	if err != nil {
		t.Fatal(err)
	}
	var in dubbotestv1.AddRequest
	if err := proto.Unmarshal(b, &in); err != nil || in.GetA() != 5 || in.GetB() != 7 {
		t.Errorf("JSONToProto: %v, %v", &in, err)
	}
	if _, err := JSONToProto([]byte(`{"c": 1}`), md); err == nil {
		t.Error("an unknown field was accepted")
	}
	out, _ := proto.Marshal(&dubbotestv1.AddResponse{Sum: 12})
	if j, err := ProtoToJSON(out, md); err != nil || !strings.Contains(string(j), `"sum":"12"`) {
		t.Errorf("ProtoToJSON: %s, %v", j, err)
	}
	if _, err := ProtoToJSON([]byte{0xff}, md); err == nil {
		t.Error("a broken answer was turned into JSON")
	}
}

// FuzzJSONToProto feeds arbitrary JSON bodies to the IDL transcoder.
func FuzzJSONToProto(f *testing.F) {
	rt, err := compile(&dubbov1.DubboRoute{ProtoDescriptorBin: descriptorBin(f)})
	if err != nil {
		f.Fatal(err)
	}
	md, ok := rt.IDLMethod("/dubbotest.v1.GreeterService/GetUser")
	if !ok {
		f.Fatal("GetUser not found")
	}
	f.Add([]byte(`{"user": {"id": "u", "age": 3, "iD": "x"}}`))
	f.Add([]byte(`{"user": null}`))
	f.Add([]byte(`[1, 2]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		msg, err := JSONToProto(body, md)
		if err != nil {
			if _, ok := IsBadRequest(err); !ok {
				t.Fatalf("not a BadRequest: %v", err)
			}
			return
		}
		// What the transcoder wrote is a valid input message.
		if err := proto.Unmarshal(msg, dynamicpb.NewMessage(md.Input())); err != nil {
			t.Fatalf("the request message does not read back: %v", err)
		}
	})
}
