package bridge

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/dubbo-go-hessian2/java_exception"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshgate/meshgate/dubbo"
	"github.com/meshgate/meshgate/governance"
	dubbov1 "github.com/meshgate/meshgate/proto/meshgate/extensions/filters/http/dubbo/v1"
)

func mustCompile(t *testing.T, cfg *dubbov1.DubboRoute) *Route {
	t.Helper()
	a, err := anypb.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Compile(a)
	if err != nil {
		t.Fatal(err)
	}
	return r.(*Route)
}

func TestCompile_Errors(t *testing.T) {
	tests := []struct {
		name string
		cfg  *dubbov1.DubboRoute
		want string
	}{
		{"unknown source", &dubbov1.DubboRoute{Params: []*dubbov1.Param{{From: "cookie.x"}}}, "unknown source"},
		{"path var without template", &dubbov1.DubboRoute{Params: []*dubbov1.Param{{From: "path.id"}}}, "has no {id}"},
		{"template var missing", &dubbov1.DubboRoute{PathTemplate: "/u/{name}", Params: []*dubbov1.Param{{From: "path.id"}}}, "has no {id}"},
		{"relative template", &dubbov1.DubboRoute{PathTemplate: "u/{id}"}, "does not start with /"},
		{"twice", &dubbov1.DubboRoute{PathTemplate: "/u/{id}/{id}"}, "appears twice"},
		{"malformed", &dubbov1.DubboRoute{PathTemplate: "/u/{id"}, "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _ := anypb.New(tt.cfg)
			_, err := Compile(a)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
	wrong, _ := anypb.New(&dubbov1.Dubbo{})
	if _, err := Compile(wrong); err == nil {
		t.Error("a config of another type compiled")
	}
}

func request(method, target, body string, hdr ...string) *http.Request {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	return r
}

func TestRequest(t *testing.T) {
	mapped := &dubbov1.DubboRoute{
		Interface: "org.example.Users", Version: "2.0", Group: "blue", Method: "find",
		PathTemplate: "/users/{id}/orders/{order}",
		Params: []*dubbov1.Param{
			{From: "path.id", Type: "long"},
			{From: "path.order", Type: "java.lang.String"},
			{From: "query.deep", Type: "boolean"},
			{From: "header.x-tenant", Type: "java.lang.String"},
			{From: "body.filter.since", Type: "java.util.Date", Optional: true},
			{From: "body", Type: "org.example.Query"},
		},
		Attachments: &dubbov1.Attachments{Headers: []string{"X-User"}},
	}
	svc := Service{Interface: "from.metadata.Svc", Version: "9", Group: "meta",
		Methods:    []string{"add", "concat", "ping"},
		Signatures: map[string][][]string{"add": {{"int", "int"}, {"long", "long", "long"}}, "concat": {{}}, "ping": {{}}}}
	tests := []struct {
		name      string
		cfg       *dubbov1.DubboRoute
		req       *http.Request
		svc       Service
		wantSvc   dubbo.Service
		wantTypes []string
		source    string
		wantArgs  []any
		wantAtt   map[string]string
	}{
		{
			name: "convention, service from the cluster metadata, typed by the signature of that arity",
			cfg:  &dubbov1.DubboRoute{}, req: request("POST", "/api/add", `[1, 2, 3]`), svc: svc,
			wantSvc:   dubbo.Service{Interface: "from.metadata.Svc", Version: "9", Group: "meta", Method: "add"},
			wantTypes: []string{"long", "long", "long"}, source: "signature",
			wantArgs: []any{int64(1), int64(2), int64(3)}, wantAtt: map[string]string{},
		},
		{
			name: "convention, interface from the path, types inferred",
			cfg:  &dubbov1.DubboRoute{Version: "1.0"}, req: request("POST", "/dubbo/org.x.Svc/hello", `["a", 1, 2.5, {"k": true}]`),
			wantSvc:   dubbo.Service{Interface: "org.x.Svc", Version: "1.0", Method: "hello"},
			wantTypes: []string{"java.lang.String", "java.lang.Long", "java.lang.Double", "java.util.Map"}, source: "inferred",
			wantArgs: []any{"a", int64(1), 2.5, map[any]any{"k": true}}, wantAtt: map[string]string{},
		},
		{
			name: "convention with route types",
			cfg:  &dubbov1.DubboRoute{Interface: "org.x.Svc", Types: []string{"int", "java.math.BigInteger"}}, req: request("POST", "/x/sum", `[1, "2"]`),
			wantSvc:   dubbo.Service{Interface: "org.x.Svc", Method: "sum"},
			wantTypes: []string{"int", "java.math.BigInteger"}, source: "route",
			wantArgs: nil, wantAtt: map[string]string{},
		},
		{
			name: "mapped path, query, header and body, attachments from headers and trace context",
			cfg:  mapped,
			req: request("POST", "/users/42/orders/a%2Fb?deep=true", `{"filter": {"since": "2024-01-02"}, "x": 1}`,
				"X-Tenant", "acme", "X-User", "ann", "Traceparent", "00-abc-def-01", "X-Dubbo-Region", "eu", "Tri-Unit-Info", "unit-a", "Tri-Service-Group", "ignored"),
			wantSvc:   dubbo.Service{Interface: "org.example.Users", Version: "2.0", Group: "blue", Method: "find"},
			wantTypes: []string{"long", "java.lang.String", "boolean", "java.lang.String", "java.util.Date", "org.example.Query"}, source: "route",
			wantAtt: map[string]string{"x-user": "ann", "traceparent": "00-abc-def-01", "region": "eu", "tri-unit-info": "unit-a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := mustCompile(t, tt.cfg).Request(tt.req, readAll(t, tt.req), tt.svc)
			if err != nil {
				t.Fatal(err)
			}
			if c.Service != tt.wantSvc {
				t.Errorf("service %+v, want %+v", c.Service, tt.wantSvc)
			}
			if !reflect.DeepEqual(c.Types, tt.wantTypes) || c.TypesSource != tt.source {
				t.Errorf("types %v from %s, want %v from %s", c.Types, c.TypesSource, tt.wantTypes, tt.source)
			}
			if tt.wantArgs != nil && !reflect.DeepEqual(c.Args, tt.wantArgs) {
				t.Errorf("args %#v, want %#v", c.Args, tt.wantArgs)
			}
			if !reflect.DeepEqual(c.Attachments, tt.wantAtt) {
				t.Errorf("attachments %v, want %v", c.Attachments, tt.wantAtt)
			}
		})
	}

	// The mapped case's argument values, one by one.
	req := request("POST", "/users/42/orders/a%2Fb?deep=true", `{"filter": {"since": "2024-01-02"}}`, "X-Tenant", "acme")
	c, err := mustCompile(t, mapped).Request(req, readAll(t, req), Service{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Args[0] != int64(42) || c.Args[1] != "a/b" || c.Args[2] != true || c.Args[3] != "acme" {
		t.Errorf("path, query and header arguments %#v", c.Args[:4])
	}
	if m, ok := c.Args[5].(map[any]any); !ok || m["class"] != "org.example.Query" {
		t.Errorf("the body as a POJO: %#v", c.Args[5])
	}
}

func readAll(t *testing.T, r *http.Request) []byte {
	t.Helper()
	var b strings.Builder
	buf := make([]byte, 512)
	for {
		n, err := r.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return []byte(b.String())
}

func TestRequest_BadRequests(t *testing.T) {
	mapped := &dubbov1.DubboRoute{Interface: "I", Method: "m", PathTemplate: "/u/{id}",
		Params: []*dubbov1.Param{{From: "path.id", Type: "int"}, {From: "query.q"}, {From: "body.a.b", Optional: true}}}
	svc := Service{Interface: "I", Methods: []string{"add"}, Signatures: map[string][][]string{"add": {{"int", "int"}}}}
	tests := []struct {
		name   string
		cfg    *dubbov1.DubboRoute
		req    *http.Request
		svc    Service
		status int
		code   codes.Code
		want   string
	}{
		{"no method in the path", &dubbov1.DubboRoute{}, request("POST", "/", ``), Service{}, 404, codes.NotFound, "names no method"},
		{"unknown method", &dubbov1.DubboRoute{}, request("POST", "/api/sub", `[]`), svc, 404, codes.Unimplemented, `no method "sub"`},
		{"wrong arity", &dubbov1.DubboRoute{}, request("POST", "/api/add", `[1]`), svc, 400, codes.InvalidArgument, "takes (int, int), not 1 arguments"},
		{"wrong type", &dubbov1.DubboRoute{}, request("POST", "/api/add", `[1, "x"]`), svc, 400, codes.InvalidArgument, `argument 1 (int): "x" is not an integer`},
		{"not an array", &dubbov1.DubboRoute{}, request("POST", "/api/add", `{}`), svc, 400, codes.InvalidArgument, "JSON array"},
		{"two values", &dubbov1.DubboRoute{}, request("POST", "/api/add", `[1, 2] [3]`), svc, 400, codes.InvalidArgument, "more than one JSON value"},
		{"bad JSON", &dubbov1.DubboRoute{}, request("POST", "/api/add", `[1,`), svc, 400, codes.InvalidArgument, "not JSON"},
		{"template mismatch", mapped, request("POST", "/v/1?q=a", ``), Service{}, 404, codes.NotFound, "does not match"},
		{"missing query", mapped, request("POST", "/u/1", ``), Service{}, 400, codes.InvalidArgument, "argument 1 (query.q) is missing"},
		{"bad path value", mapped, request("POST", "/u/abc?q=a", ``), Service{}, 400, codes.InvalidArgument, `argument 0 (int): "abc" is not an integer`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := mustCompile(t, tt.cfg).Request(tt.req, readAll(t, tt.req), tt.svc)
			br, ok := IsBadRequest(err)
			if !ok {
				t.Fatalf("error %v, want a BadRequest", err)
			}
			if br.Status != tt.status || br.GRPC != tt.code || !strings.Contains(br.Msg, tt.want) {
				t.Errorf("%d %v %q, want %d %v saying %q", br.Status, br.GRPC, br.Msg, tt.status, tt.code, tt.want)
			}
		})
	}
	// An optional body field that is absent is null.
	req := request("POST", "/u/1?q=a", `{"a": {}}`)
	c, err := mustCompile(t, mapped).Request(req, readAll(t, req), Service{})
	if err != nil || c.Args[2] != nil {
		t.Errorf("optional missing field: %v, %v", c, err)
	}
}

func TestRequest_HashArguments(t *testing.T) {
	rt := mustCompile(t, &dubbov1.DubboRoute{Interface: "I", HashArguments: []uint32{0, 2}})
	hash := func(body string) uint64 {
		t.Helper()
		req := request("POST", "/x/m", body)
		c, err := rt.Request(req, readAll(t, req), Service{})
		if err != nil || !c.HasHash {
			t.Fatalf("%s: %v, hash %v", body, err, c != nil && c.HasHash)
		}
		return c.Hash
	}
	a := hash(`["alice", 1, {"k": 1}]`)
	if b := hash(`["alice", 2, {"k": 1}]`); a != b {
		t.Error("an argument not hashed changed the hash")
	}
	if b := hash(`["bob", 1, {"k": 1}]`); a == b {
		t.Error("a hashed argument did not change the hash")
	}
	if b := hash(`["alice", 1, {"k": 2}]`); a == b {
		t.Error("the second hashed argument did not change the hash")
	}
	_ = hash(`["alice"]`) // fewer arguments than hash_arguments name
	plain := mustCompile(t, &dubbov1.DubboRoute{Interface: "I"})
	req := request("POST", "/x/m", `["alice"]`)
	if c, _ := plain.Request(req, readAll(t, req), Service{}); c.HasHash {
		t.Error("a route without hash_arguments hashed")
	}
}

func TestAnswer(t *testing.T) {
	rt := mustCompile(t, &dubbov1.DubboRoute{LongsAsStrings: true})
	w := httptest.NewRecorder()
	err := rt.Answer(w, &dubbo.Response{
		Value:       map[any]any{"class": "x.User", "id": int64(1) << 60, "name": "a"},
		Attachments: map[string]string{"region": "eu", "bad header": "x", "evil": "a\nb"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(w.Body.String()); got != `{"id":"1152921504606846976","name":"a"}` {
		t.Errorf("body %s", got)
	}
	if w.Header().Get("X-Dubbo-Region") != "eu" || w.Header().Get("X-Dubbo-Evil") != "" || len(w.Header()) != 2 {
		t.Errorf("headers %v: want the valid attachment only, prefixed", w.Header())
	}
}

// genericException stands for what hessian decodes Java's
// GenericException into: the wrapped class and message, then a stack, in
// its detail message.
type genericException struct{ DetailMessage string }

func (genericException) Error() string { return "generic" }
func (genericException) JavaClassName() string {
	return "com.alibaba.dubbo.rpc.service.GenericException"
}
func (genericException) GetStackTrace() []java_exception.StackTraceElement { return nil }

func TestClassify(t *testing.T) {
	rt := mustCompile(t, &dubbov1.DubboRoute{ExceptionStatus: map[string]uint32{"org.x.NotFound": 404}})
	thr := java_exception.NewThrowable("boom")
	tests := []struct {
		name    string
		err     error
		http    int
		code    codes.Code
		outcome governance.Outcome
		want    string
	}{
		{"exception", &dubbo.ExceptionError{Err: thr}, 500, codes.Unknown, governance.Outcome{Status: 200}, "java.lang.Throwable: boom"},
		{"generic exception unwrapped, stack dropped", &dubbo.ExceptionError{Err: genericException{"java.lang.IllegalStateException: no stock\n\tat x.Y.z(Y.java:1)"}},
			500, codes.Unknown, governance.Outcome{Status: 200}, "java.lang.IllegalStateException: no stock"},
		{"status text without its stack", &dubbo.StatusError{Status: 70, Err: errors.New("java exception:RpcException: bad\n\tat a.B(B.java:1)")},
			500, codes.Internal, governance.Outcome{Status: 500}, "SERVICE_ERROR (cluster \"c\", host h:1): RpcException: bad"},
		{"plain error exception", &dubbo.ExceptionError{Err: errors.New("refused")}, 500, codes.Unknown, governance.Outcome{Status: 200}, "refused"},
		{"timeout status", &dubbo.StatusError{Status: 31, Err: errors.New("slow")}, 504, codes.DeadlineExceeded, governance.Outcome{Local: governance.Timeout}, "SERVER_TIMEOUT"},
		{"bad request status", &dubbo.StatusError{Status: 40}, 400, codes.InvalidArgument, governance.Outcome{Status: 200}, "BAD_REQUEST"},
		{"service not found", &dubbo.StatusError{Status: 60}, 404, codes.Unimplemented, governance.Outcome{Status: 200}, "SERVICE_NOT_FOUND"},
		{"thread pool exhausted", &dubbo.StatusError{Status: 100}, 503, codes.ResourceExhausted, governance.Outcome{Status: 503}, "THREADPOOL"},
		{"server error", &dubbo.StatusError{Status: 80}, 502, codes.Internal, governance.Outcome{Status: 502}, "SERVER_ERROR"},
		{"connect", &dubbo.ConnectError{Err: errors.New("refused")}, 503, codes.Unavailable, governance.Outcome{Local: governance.ConnectFailure}, "connect error"},
		{"going away", dubbo.ErrGoingAway, 503, codes.Unavailable, governance.Outcome{Local: governance.ConnectFailure}, "shutting down"},
		{"deadline", context.DeadlineExceeded, 504, codes.DeadlineExceeded, governance.Outcome{Local: governance.Timeout}, "timeout"},
		{"malformed", dubbo.ErrFrame, 502, codes.Internal, governance.Outcome{Status: 502}, "malformed"},
		{"reset", errors.New("dubbo: connection to x: EOF"), 503, codes.Unavailable, governance.Outcome{Local: governance.Reset}, "reset"},
		{"encode", &dubbo.EncodeError{Err: errors.New("chan")}, 400, codes.InvalidArgument, governance.Outcome{Status: 200}, "encode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := rt.Classify(context.Background(), tt.err, "c", "h:1")
			if f.HTTP != tt.http || f.GRPC != tt.code || f.Outcome != tt.outcome || !strings.Contains(f.Msg+f.DubboStatus, tt.want) || strings.Contains(f.Msg, "\tat ") {
				t.Errorf("got %d %v %+v %q %s, want %d %v %+v saying %q", f.HTTP, f.GRPC, f.Outcome, f.Msg, f.DubboStatus, tt.http, tt.code, tt.outcome, tt.want)
			}
		})
	}
	if rt.ExceptionStatus("org.x.NotFound") != 404 || rt.ExceptionStatus("other") != 500 {
		t.Error("exception_status is not applied")
	}
}
