package transcoder

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	transcoderv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/grpc_json_transcoder/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"

	demov1 "github.com/meshgate/meshgate/proto/demo/v1"
)

func demoTranscoderConfig(t *testing.T, services ...string) *transcoderv3.GrpcJsonTranscoder {
	set := &descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{protodesc.ToFileDescriptorProto(demov1.File_demo_v1_demo_proto)}}
	b, err := proto.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return &transcoderv3.GrpcJsonTranscoder{DescriptorSet: &transcoderv3.GrpcJsonTranscoder_ProtoDescriptorBin{ProtoDescriptorBin: b},
		Services: services, AutoMapping: true}
}

func TestTranscoder(t *testing.T) {
	tr, err := compileTranscoder(demoTranscoderConfig(t, "demo.v1.DemoService"))
	if err != nil {
		t.Fatal(err)
	}
	for path, unary := range map[string]bool{
		"/demo.v1.DemoService/Echo": true, "/demo.v1.DemoService/ServerStream": true, "/demo.v1.DemoService/ClientStream": false,
		"/demo.v1.DemoService/Nope": false, "/other.Svc/Echo": false,
	} {
		if got := tr.method(httptest.NewRequest("POST", path, nil), false) != nil; got != unary {
			t.Errorf("%s: transcoded %v, want %v", path, got, unary)
		}
	}
	if tr.method(httptest.NewRequest("GET", "/demo.v1.DemoService/Echo", nil), false) != nil {
		t.Error("a GET was transcoded")
	}
	r := httptest.NewRequest("POST", "/demo.v1.DemoService/Echo", strings.NewReader(`{"message":"m","delayMs":"5"}`))
	if err := tr.transcodeRequest(r, tr.method(r, false), 1<<20); err != nil {
		t.Fatal(err)
	}
	framed, _ := io.ReadAll(r.Body)
	var in demov1.EchoRequest
	if r.Header.Get("Content-Type") != "application/grpc" || proto.Unmarshal(framed[5:], &in) != nil || in.GetMessage() != "m" || in.GetDelayMs() != 5 {
		t.Errorf("transcoded request %v %v", r.Header, &in)
	}
	r = httptest.NewRequest("POST", "/demo.v1.DemoService/Echo", strings.NewReader(strings.Repeat("x", 100)))
	if err := tr.transcodeRequest(r, tr.method(r, false), 10); err == nil {
		t.Error("a body over the limit was transcoded")
	}
	for _, cfg := range []*transcoderv3.GrpcJsonTranscoder{
		demoTranscoderConfig(t, "demo.v1.Missing"),
		{Services: []string{"x"}, AutoMapping: true},
		func() *transcoderv3.GrpcJsonTranscoder {
			c := demoTranscoderConfig(t, "demo.v1.DemoService")
			c.AutoMapping = false
			return c
		}(),
	} {
		if _, err := compileTranscoder(cfg); err == nil {
			t.Errorf("compiled %v", cfg.GetServices())
		}
	}
	w := httptest.NewRecorder()
	writeRPCStatus(w, codes.NotFound, "gone")
	if w.Code != 404 || strings.TrimSpace(w.Body.String()) != `{"code":5,"message":"gone"}` {
		t.Errorf("rpc status %d %s", w.Code, w.Body.String())
	}
}

func TestOpenAPI(t *testing.T) {
	tr, err := compileTranscoder(demoTranscoderConfig(t, "demo.v1.DemoService"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := tr.openAPI()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI    string                    `json:"openapi"`
		Paths      map[string]map[string]any `json:"paths"`
		Components struct {
			Schemas map[string]struct {
				Properties map[string]map[string]any `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.0.3" || doc.Paths["/demo.v1.DemoService/Echo"]["post"] == nil {
		t.Errorf("paths %v", doc.Paths)
	}
	if _, clientStream := doc.Paths["/demo.v1.DemoService/ClientStream"]; clientStream {
		t.Error("a client-streaming method is described as a JSON POST")
	}
	stream, _ := json.Marshal(doc.Paths["/demo.v1.DemoService/ServerStream"])
	if !strings.Contains(string(stream), `"type":"array"`) {
		t.Errorf("a server stream's answer is not an array: %s", stream)
	}
	req := doc.Components.Schemas["demo.v1.EchoRequest"].Properties
	if req["message"]["type"] != "string" || req["payload"]["format"] != "byte" || req["delayMs"]["format"] != "int64" || req["failCode"]["type"] != "integer" {
		t.Errorf("EchoRequest schema %v", req)
	}
	resp := doc.Components.Schemas["demo.v1.EchoResponse"].Properties
	if resp["metadata"]["type"] != "object" || resp["metadata"]["additionalProperties"] == nil {
		t.Errorf("EchoResponse schema %v", resp)
	}
}

func TestTranscodeStreamWriter(t *testing.T) {
	cfg := demoTranscoderConfig(t, "demo.v1.DemoService")
	tr, err := compileTranscoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	md := tr.method(httptest.NewRequest("POST", "/demo.v1.DemoService/ServerStream", nil), false)
	frame := func(msg string) []byte {
		b, _ := proto.Marshal(&demov1.EchoResponse{Message: msg})
		return append([]byte{0, 0, 0, 0, byte(len(b))}, b...)
	}
	// Frames split across writes; an array, the status in the trailers.
	rec := httptest.NewRecorder()
	sw := &transcodeStreamWriter{w: rec, t: tr, call: md}
	all := append(frame("a"), frame("b")...)
	for _, chunk := range [][]byte{all[:3], all[3:9], all[9:]} {
		if _, err := sw.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	sw.Header().Set(http.TrailerPrefix+"Grpc-Status", "0")
	sw.finish()
	if got := rec.Body.String(); got != `[{"message":"a"},{"message":"b"}]` || rec.Header().Get("Grpc-Status") != "0" {
		t.Errorf("array %q, headers %v", got, rec.Header())
	}
	// Newline-delimited.
	cfg.PrintOptions = &transcoderv3.GrpcJsonTranscoder_PrintOptions{StreamNewlineDelimited: true}
	nd, _ := compileTranscoder(cfg)
	rec = httptest.NewRecorder()
	sw = &transcodeStreamWriter{w: rec, t: nd, call: md}
	_, _ = sw.Write(all)
	sw.finish()
	if got := rec.Body.String(); got != "{\"message\":\"a\"}\n{\"message\":\"b\"}\n" {
		t.Errorf("ndjson %q", got)
	}
	// A failure before any message: google.rpc.Status.
	rec = httptest.NewRecorder()
	sw = &transcodeStreamWriter{w: rec, t: tr, call: md}
	sw.Header().Set("Grpc-Status", "5")
	sw.WriteHeader(200)
	sw.finish()
	if rec.Code != 404 || !strings.Contains(rec.Body.String(), `"code":5`) {
		t.Errorf("early failure %d %q", rec.Code, rec.Body.String())
	}
}

// FuzzTranscodeStream feeds arbitrary upstream bytes to the stream
// transcoder: JSON out or an error, never a panic.
func FuzzTranscodeStream(f *testing.F) {
	b, _ := proto.Marshal(&demov1.EchoResponse{Message: "a", Metadata: map[string]string{"k": "v"}})
	f.Add(append([]byte{0, 0, 0, 0, byte(len(b))}, b...))
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{1, 0, 0, 0, 1, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		cfg := &transcoderv3.GrpcJsonTranscoder{DescriptorSet: demoDescriptorBin, Services: []string{"demo.v1.DemoService"}, AutoMapping: true}
		tr, err := compileTranscoder(cfg)
		if err != nil {
			t.Fatal(err)
		}
		md := tr.method(httptest.NewRequest("POST", "/demo.v1.DemoService/ServerStream", nil), false)
		rec := httptest.NewRecorder()
		sw := &transcodeStreamWriter{w: rec, t: tr, call: md}
		_, _ = sw.Write(in)
		sw.finish()
	})
}

var demoDescriptorBin = func() *transcoderv3.GrpcJsonTranscoder_ProtoDescriptorBin {
	set := &descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{protodesc.ToFileDescriptorProto(demov1.File_demo_v1_demo_proto)}}
	b, _ := proto.Marshal(set)
	return &transcoderv3.GrpcJsonTranscoder_ProtoDescriptorBin{ProtoDescriptorBin: b}
}()
