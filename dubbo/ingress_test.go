package dubbo

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

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
