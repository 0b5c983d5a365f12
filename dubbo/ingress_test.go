package dubbo

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	hessian "github.com/apache/dubbo-go-hessian2"
)

func TestParseTypeDesc(t *testing.T) {
	tests := []struct {
		desc string
		want []string
	}{
		{"", nil},
		{"Ljava/lang/String;", []string{"java.lang.String"}},
		{"IJZDFSBC", []string{"int", "long", "boolean", "double", "float", "short", "byte", "char"}},
		{"[I[[Ljava/lang/String;Lorg/x/User;", []string{"int[]", "java.lang.String[][]", "org.x.User"}},
	}
	for _, tt := range tests {
		got, err := ParseTypeDesc(tt.desc)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseTypeDesc(%q) = %v, %v; want %v", tt.desc, got, err, tt.want)
		}
	}
	for _, bad := range []string{"Ljava/lang/String", "[", "Q"} {
		if _, err := ParseTypeDesc(bad); !errors.Is(err, ErrFrame) {
			t.Errorf("ParseTypeDesc(%q): %v, want ErrFrame", bad, err)
		}
	}
}

func TestFrameRequest(t *testing.T) {
	b, err := hessian.NewHessianCodec(nil).Write(hessian.Service{Path: "org.x.Svc", Interface: "org.x.Svc", Version: "1.0", Group: "g1", Method: "hello"},
		hessian.DubboHeader{SerialID: 2, Type: hessian.PackageRequest_TwoWay, ID: 42}, hessian.NewRequest([]any{"ann", int64(3)}, map[string]string{"x-user": "u"}))
	if err != nil {
		t.Fatal(err)
	}
	f, err := ReadFrame(bytes.NewReader(b), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := f.Request()
	if err != nil {
		t.Fatal(err)
	}
	if inv.Service != (Service{Interface: "org.x.Svc", Version: "1.0", Group: "g1", Method: "hello"}) ||
		!reflect.DeepEqual(inv.Args, []any{"ann", int64(3)}) || !reflect.DeepEqual(inv.Types, []string{"java.lang.String", "long"}) ||
		inv.Attachments["x-user"] != "u" || f.ID() != 42 || !f.TwoWay() {
		t.Errorf("invocation %+v", inv)
	}
	// The same frame under another id, and back.
	moved, err := ReadFrame(bytes.NewReader(f.WithID(7)), 1<<20)
	if err != nil || moved.ID() != 7 || !bytes.Equal(moved.WithID(42), b) {
		t.Errorf("WithID: %v, %v", moved, err)
	}
	// Answers decode as a consumer reads them.
	ok, _ := EncodeResponse(42, "hi", nil, nil)
	if v, _, err := mustFrame(t, ok).Response(); err != nil || v != "hi" {
		t.Errorf("EncodeResponse: %v, %v", v, err)
	}
	st, _ := EncodeStatus(42, StatusServiceNotFound, "no route")
	var se *StatusError
	if _, _, err := mustFrame(t, st).Response(); !errors.As(err, &se) || se.Status != StatusServiceNotFound {
		t.Errorf("EncodeStatus: %v", err)
	}
	hb, _ := HeartbeatResponse(9)
	if f := mustFrame(t, hb); !f.Heartbeat() || f.IsRequest() || f.ID() != 9 {
		t.Errorf("HeartbeatResponse: %+v", f.Header)
	}
}

func mustFrame(t *testing.T, b []byte) *Frame {
	t.Helper()
	f, err := ReadFrame(bytes.NewReader(b), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestInvocation_Unwrapped(t *testing.T) {
	svc := Service{Interface: "org.x.S", Method: "$invoke"}
	tests := []struct {
		name      string
		args      []any
		wantOK    bool
		wantName  string
		wantTypes []string
	}{
		{name: "types as strings", args: []any{"SayHello", []string{"java.lang.String"}, []any{"x"}}, wantOK: true, wantName: "SayHello", wantTypes: []string{"java.lang.String"}},
		{name: "types as objects", args: []any{"Add", []any{"long", "long"}, []any{int64(1), int64(2)}}, wantOK: true, wantName: "Add", wantTypes: []string{"long", "long"}},
		{name: "no method name", args: []any{"", nil, nil}},
		{name: "types not strings", args: []any{"m", []any{1}, nil}},
		{name: "two arguments", args: []any{"m", nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, ok := (&Invocation{Service: svc, Args: tt.args}).Unwrapped()
			if ok != tt.wantOK {
				t.Fatalf("ok %v, want %v", ok, tt.wantOK)
			}
			if ok && (out.Service.Method != tt.wantName || strings.Join(out.Types, ",") != strings.Join(tt.wantTypes, ",") || out.Service.Interface != "org.x.S") {
				t.Errorf("unwrapped %+v", out)
			}
		})
	}
	plain := &Invocation{Service: Service{Interface: "org.x.S", Method: "SayHello"}}
	if out, ok := plain.Unwrapped(); !ok || out != plain {
		t.Error("a plain call was not kept as it is")
	}
}

func TestInvocation_Timeout(t *testing.T) {
	for _, tt := range []struct {
		attachment string
		want       time.Duration
	}{
		{"", 15 * time.Second}, {"3000", 3 * time.Second}, {"0", 15 * time.Second}, {"-5", 15 * time.Second}, {"x", 15 * time.Second},
		{"1h30", 15 * time.Second}, {"2m3", 15 * time.Second}, {"1.5", 15 * time.Second}, {"99999999999999999", 15 * time.Second},
	} {
		inv := &Invocation{Attachments: map[string]string{"timeout": tt.attachment}}
		if got := inv.Timeout(15 * time.Second); got != tt.want {
			t.Errorf("timeout attachment %q: %v, want %v", tt.attachment, got, tt.want)
		}
	}
}
