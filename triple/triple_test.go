package triple

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	hessian "github.com/apache/dubbo-go-hessian2"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/meshgate/meshgate/dubbo"
	triplev1 "github.com/meshgate/meshgate/proto/meshgate/triple/v1"
)

func hessianBytes(t testing.TB, v any) []byte {
	e := hessian.NewEncoder()
	if err := e.Encode(v); err != nil {
		t.Fatal(err)
	}
	return e.Buffer()
}

func TestEncodeRequest_POJOsAsObjects(t *testing.T) {
	user := map[any]any{"class": "org.x.User", "id": "u1", "age": int32(3)}
	b, err := EncodeRequest([]any{"s", int64(7), user, []any{user}}, []string{"java.lang.String", "long", "org.x.User", "java.util.List"})
	if err != nil {
		t.Fatal(err)
	}
	args, types, err := DecodeRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(args) != 4 || args[0] != "s" || args[1] != int64(7) || types[2] != "org.x.User" {
		t.Fatalf("args %#v types %v", args, types)
	}
	// The decoder reads an object of a class it does not know as a map
	// naming the class: the POJO went as an object, not as a map.
	for _, v := range []any{args[2], args[3].([]any)[0]} {
		m, ok := v.(map[string]any)
		if !ok || m[hessian.ClassKey] != "org.x.User" || m["id"] != "u1" || m["age"] != int32(3) {
			t.Errorf("the POJO came back as %#v", v)
		}
	}
	// A plain map stays a map.
	b, _ = EncodeRequest([]any{map[any]any{"k": "v"}}, []string{"java.util.Map"})
	args, _, _ = DecodeRequest(b)
	if m, ok := args[0].(map[any]any); !ok || m["k"] != "v" || m[hessian.ClassKey] != nil {
		t.Errorf("a plain map came back as %#v", args[0])
	}
}

func TestDecodeResponse(t *testing.T) {
	wrap := func(w *triplev1.TripleResponseWrapper) []byte {
		b, err := proto.Marshal(w)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	v, err := DecodeResponse(wrap(&triplev1.TripleResponseWrapper{SerializeType: "hessian2", Data: hessianBytes(t, "hi"), Type: "java.lang.String"}))
	if err != nil || v != "hi" {
		t.Errorf("got %v, %v", v, err)
	}
	if v, err := DecodeResponse(wrap(&triplev1.TripleResponseWrapper{SerializeType: "hessian4", Data: hessianBytes(t, int64(5))})); err != nil || v != int64(5) {
		t.Errorf("Java's hessian4 name: %v, %v", v, err)
	}
	if v, err := DecodeResponse(wrap(&triplev1.TripleResponseWrapper{SerializeType: "hessian2"})); err != nil || v != nil {
		t.Errorf("a void answer: %v, %v", v, err)
	}
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"json serialization", wrap(&triplev1.TripleResponseWrapper{SerializeType: "json", Data: []byte(`"x"`)}), ErrSerialization},
		{"not a wrapper", []byte{0xff, 0xff, 0xff}, ErrMalformed},
		{"a list asking for 2^31 elements", wrap(&triplev1.TripleResponseWrapper{SerializeType: "hessian2", Data: []byte{0x58, 'I', 0x7f, 0xff, 0xff, 0xff}}), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeResponse(tt.b); !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
		})
	}
}

// fakeProvider answers Triple calls from handle over h2c.
func fakeProvider(t *testing.T, handle http.HandlerFunc) (addr string, rt http.RoundTripper) {
	t.Helper()
	srv := httptest.NewUnstartedServer(handle)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	return srv.Listener.Addr().String(), tr
}

func answer(w http.ResponseWriter, v any, status string) {
	w.Header().Set("Content-Type", "application/grpc+proto")
	w.Header().Set("Trailer", "Grpc-Status, Grpc-Message")
	w.Header().Set("X-Region", "eu")
	if v != nil {
		e := hessian.NewEncoder()
		_ = e.Encode(v)
		msg, _ := proto.Marshal(&triplev1.TripleResponseWrapper{SerializeType: "hessian2", Data: e.Buffer()})
		frame := make([]byte, 5+len(msg))
		binary.BigEndian.PutUint32(frame[1:], uint32(len(msg)))
		copy(frame[5:], msg)
		_, _ = w.Write(frame)
	}
	w.Header().Set("Grpc-Status", status)
	w.Header().Set("Grpc-Message", "refused%3A no")
}

func TestCall(t *testing.T) {
	var got *http.Request
	var gotArgs []any
	addr, rt := fakeProvider(t, func(w http.ResponseWriter, r *http.Request) {
		got = r
		body, _ := io.ReadAll(r.Body)
		gotArgs, _, _ = DecodeRequest(body[5:])
		switch r.URL.Path {
		case "/org.x.Greeter/fail":
			answer(w, nil, "2")
		case "/org.x.Greeter/none":
			w.Header().Set("Content-Type", "application/grpc")
			w.WriteHeader(http.StatusOK)
		case "/org.x.Greeter/http":
			http.Error(w, "no such thing", http.StatusNotFound)
		default:
			answer(w, "hello "+gotArgs[0].(string), "0")
		}
	})
	req := Request{Service: Service{Interface: "org.x.Greeter", Version: "1.0", Group: "g", Method: "hello"},
		Args: []any{"ann"}, Types: []string{"java.lang.String"}, Attachments: map[string]string{"x-user": "ann", "grpc-timeout": "1S"},
		Timeout: 2 * time.Second}
	resp, err := Call(context.Background(), rt, "http", addr, req)
	if err != nil || resp.Value != "hello ann" || resp.Attachments["x-region"] != "eu" {
		t.Fatalf("got %+v, %v", resp, err)
	}
	h := got.Header
	if h.Get("Tri-Service-Version") != "1.0" || h.Get("Tri-Service-Group") != "g" || h.Get("X-User") != "ann" ||
		h.Get("Grpc-Timeout") != "2000m" || h.Get("Content-Type") != "application/grpc+proto" {
		t.Errorf("request headers %v", h)
	}
	for path, want := range map[string]codes.Code{"fail": codes.Unknown, "none": codes.Internal, "http": codes.Unimplemented} {
		req.Service.Method = path
		_, err := Call(context.Background(), rt, "http", addr, req)
		var st *StatusError
		if !errors.As(err, &st) || st.Code != want {
			t.Errorf("%s: error %v, want status %v", path, err, want)
		}
		if path == "fail" && (st == nil || st.Message != "refused: no") {
			t.Errorf("the status message %q is not decoded", st.Message)
		}
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	var ce *ConnectError
	if _, err := Call(context.Background(), rt, "http", dead, req); !errors.As(err, &ce) {
		t.Errorf("a refused connection: %v, want a ConnectError", err)
	}
	if attachable("Content-Type") || attachable(":path") || attachable("grpc-status") || !attachable("x-user") {
		t.Error("attachable lets the protocol's own headers through")
	}
	att := Attachments(http.Header{"X-User": {"u"}, "Tri-Service-Version": {"1.0.0"}, "Triple-Timeout-Ms": {"5"}, "Grpc-Timeout": {"1S"},
		"Accept-Encoding": {"gzip"}, "Content-Type": {"application/grpc+proto"}, "Dubbo.tag": {"gray"}, "Tri-Unit-Info": {"unit-7"}})
	if want := map[string]string{"x-user": "u", "dubbo.tag": "gray", "tri-unit-info": "unit-7"}; !maps.Equal(att, want) {
		t.Errorf("Attachments = %v, want %v", att, want)
	}
	if !strings.Contains((&StatusError{Code: codes.Unknown, Message: "m"}).Error(), "Unknown") {
		t.Error("StatusError does not name its code")
	}
}

// FuzzDecodeWrappers feeds arbitrary bytes to both wrapper decoders.
func FuzzDecodeWrappers(f *testing.F) {
	resp, _ := proto.Marshal(&triplev1.TripleResponseWrapper{SerializeType: "hessian2", Data: hessianBytes(f, map[any]any{"a": []any{int64(1), "x"}})})
	f.Add(resp)
	req, _ := EncodeRequest([]any{"a", map[any]any{"class": "x.Y", "f": 1.5}}, []string{"java.lang.String", "x.Y"})
	f.Add(req)
	f.Fuzz(func(t *testing.T, b []byte) {
		if v, err := DecodeResponse(b); err == nil {
			_ = dubbo.ToJSON(v, dubbo.JSONOptions{})
		}
		_, _, _ = DecodeRequest(b)
	})
}
