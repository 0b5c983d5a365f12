package httpapp

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/apache/dubbo-go-hessian2/java_exception"

	"github.com/meshgate/meshgate/dubbo"
)

func greeter() *Service {
	return &Service{Interface: "org.apache.dubbo.samples.GreeterService", Version: "1.0.0", Methods: map[string]*Method{
		"SayHello": {Name: "SayHello", ParamTypes: []string{"java.lang.String"}, ParamNames: []string{"name"}, ReturnType: "java.lang.String"},
		"Add":      {Name: "Add", ParamTypes: []string{"long", "long"}, ReturnType: "long", HTTPMethod: "PUT", Path: "/math/add"},
		"Touch":    {Name: "Touch", ParamTypes: nil, ReturnType: "void"},
		"Ages":     {Name: "Ages", ParamTypes: []string{"java.util.List<java.lang.String>"}, ReturnType: "java.util.Map<java.lang.String,java.lang.Integer>"},
	}}
}

func TestLookup(t *testing.T) {
	tests := []struct {
		name    string
		method  string
		types   []string
		args    []any
		wantErr string
	}{
		{name: "declared", method: "SayHello", types: []string{"java.lang.String"}, args: []any{"x"}},
		{name: "types erased to compare", method: "Ages", types: []string{"java.util.List"}, args: []any{[]any{"a"}}},
		{name: "no types given (generic call)", method: "Add", args: []any{int64(1), int64(2)}},
		{name: "undeclared method", method: "Delete", types: []string{"long"}, args: []any{int64(1)},
			wantErr: "java.lang.NoSuchMethodException: org.apache.dubbo.samples.GreeterService.Delete(long)"},
		{name: "other overload", method: "SayHello", types: []string{"int"}, args: []any{int32(1)},
			wantErr: "NoSuchMethodException: org.apache.dubbo.samples.GreeterService.SayHello(int)"},
		{name: "argument count", method: "Add", args: []any{int64(1)}, wantErr: "takes 2 arguments, the call has 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := &dubbo.Invocation{Service: dubbo.Service{Interface: "org.apache.dubbo.samples.GreeterService", Method: tt.method}, Types: tt.types, Args: tt.args}
			m, err := greeter().Lookup(inv)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("error %v", err)
			case tt.wantErr == "" && m.Name != tt.method:
				t.Fatalf("method %q, want %q", m.Name, tt.method)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one saying %q", err, tt.wantErr)
			}
		})
	}
}

func TestRequestBody(t *testing.T) {
	s := greeter()
	tests := []struct {
		name   string
		method string
		args   []any
		want   string
		verb   string
		path   string
	}{
		{name: "by parameter name", method: "SayHello", args: []any{"Ann"}, want: `{"name":"Ann"}`, verb: "POST", path: "/SayHello"},
		{name: "in order, the route's verb and path", method: "Add", args: []any{int64(40), int64(2)}, want: `[40,2]`, verb: "PUT", path: "/math/add"},
		{name: "no arguments", method: "Touch", args: nil, want: `[]`, verb: "POST", path: "/Touch"},
		{name: "a hessian map and list", method: "Ages", args: []any{[]any{"a", "b"}}, want: `[["a","b"]]`, verb: "POST", path: "/Ages"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := s.Methods[tt.method]
			b, err := m.RequestBody(tt.args)
			if err != nil || string(b) != tt.want {
				t.Errorf("body %s, %v; want %s", b, err, tt.want)
			}
			if verb, path := m.Request(); verb != tt.verb || path != tt.path {
				t.Errorf("request %s %s, want %s %s", verb, path, tt.verb, tt.path)
			}
		})
	}
}

func TestAnswer(t *testing.T) {
	s := greeter()
	tests := []struct {
		name        string
		method      string
		status      int
		contentType string
		body        string
		want        any
		wantErr     string // substring of the exception; "" for a value
	}{
		{name: "a string", method: "SayHello", status: 200, contentType: "application/json", body: `"Hello Ann"`, want: "Hello Ann"},
		{name: "a long beyond 2^53, exact", method: "Add", status: 200, contentType: "application/json; charset=utf-8", body: `9007199254740993`, want: int64(9007199254740993)},
		{name: "no content type is read as JSON", method: "Add", status: 200, body: `42`, want: int64(42)},
		{name: "void ignores the body", method: "Touch", status: 204, body: ``, want: nil},
		{name: "the app failed with a JSON message", method: "SayHello", status: 500, body: `{"error":{"message":"db down"}}`,
			wantErr: "java.lang.RuntimeException: the local app answered SayHello with HTTP 500: db down"},
		{name: "the app failed with text", method: "SayHello", status: 404, body: `not here`, wantErr: "HTTP 404: not here"},
		{name: "not JSON", method: "SayHello", status: 200, contentType: "text/html", body: `<html>`, wantErr: `answered SayHello with "text/html", not JSON: <html>`},
		{name: "broken JSON", method: "SayHello", status: 200, contentType: "application/json", body: `{"a":`, wantErr: "is not JSON"},
		{name: "two values", method: "SayHello", status: 200, body: `"a" "b"`, wantErr: "more than one JSON value"},
		{name: "wrong shape", method: "Add", status: 200, body: `{"sum": 42}`, wantErr: "the local app's answer to Add is not a long"},
		{name: "out of range", method: "Ages", status: 200, body: `{"a": 3000000000}`, wantErr: "is not a java.util.Map<java.lang.String,java.lang.Integer>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := s.Methods[tt.method].Answer(tt.status, tt.contentType, []byte(tt.body))
			if tt.wantErr != "" {
				var th *java_exception.Throwable
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.As(err, &th) {
					t.Fatalf("answer %v, %v; want an exception saying %q", v, err, tt.wantErr)
				}
				// The consumer gets it as a Dubbo exception answer.
				b, encErr := dubbo.EncodeResponse(1, nil, err, nil)
				if encErr != nil {
					t.Fatalf("encode the exception: %v", encErr)
				}
				f, ferr := dubbo.ReadFrame(bytes.NewReader(b), 1<<20)
				if ferr != nil {
					t.Fatal(ferr)
				}
				if _, _, rerr := f.Response(); rerr == nil || !strings.Contains(rerr.Error(), tt.wantErr) {
					t.Errorf("the consumer reads %v, want the exception saying %q", rerr, tt.wantErr)
				}
				return
			}
			if err != nil || v != tt.want {
				t.Fatalf("answer %#v, %v; want %#v", v, err, tt.want)
			}
			if _, encErr := dubbo.EncodeResponse(1, v, nil, nil); encErr != nil {
				t.Errorf("encode the value: %v", encErr)
			}
		})
	}
}

// An app's answer is bytes from the network: whatever it is, the result is
// a value or an exception, never a panic, and it encodes as a Dubbo answer.
func FuzzAnswer(f *testing.F) {
	for _, seed := range []string{`"x"`, `42`, `{"error":"e"}`, `[1,2]`, `{"a":1}`, `<html>`, "\xff\xfe", `9999999999999999999999`} {
		f.Add(200, "application/json", []byte(seed))
	}
	s := greeter()
	f.Fuzz(func(t *testing.T, status int, contentType string, body []byte) {
		for _, m := range s.Methods {
			v, err := m.Answer(status, contentType, body)
			var th *java_exception.Throwable
			if err != nil && !errors.As(err, &th) {
				t.Fatalf("%s: error %v is not a Java exception", m.Name, err)
			}
			b, encErr := dubbo.EncodeResponse(1, v, err, nil)
			if encErr != nil {
				t.Fatalf("%s: encode %#v / %v: %v", m.Name, v, err, encErr)
			}
			// What the consumer reads back decodes.
			f, ferr := dubbo.ReadFrame(bytes.NewReader(b), 1<<24)
			if ferr != nil {
				t.Fatalf("%s: the answer frame: %v", m.Name, ferr)
			}
			if _, _, rerr := f.Response(); rerr != nil && err == nil {
				t.Fatalf("%s: the answer %#v does not decode: %v", m.Name, v, rerr)
			}
		}
	})
}
