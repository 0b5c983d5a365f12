package dubbo

import (
	"bytes"
	"errors"
	"testing"
	"time"

	hessian "github.com/apache/dubbo-go-hessian2"
)

// FuzzReadFrame feeds arbitrary provider bytes to the frame reader and the
// response and event decoders: they must return an error, never panic or
// allocate past the limit.
func FuzzReadFrame(f *testing.F) {
	codec := hessian.NewHessianCodec(nil)
	for _, resp := range []*hessian.Response{
		{RspObj: "hello", Attachments: map[string]string{"dubbo": "2.0.2"}},
		{RspObj: map[any]any{"class": "x.User", "id": "u", "when": time.UnixMilli(1)}, Attachments: map[string]string{"dubbo": "2.0.2"}},
		{RspObj: []any{int64(1), 2.5, true, nil}},
		{Exception: errors.New("boom"), Attachments: map[string]string{"dubbo": "2.0.2"}},
	} {
		b, err := codec.Write(hessian.Service{}, hessian.DubboHeader{SerialID: 2, Type: hessian.PackageResponse, ID: 7, ResponseStatus: hessian.Response_OK}, resp)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	status, err := codec.Write(hessian.Service{}, hessian.DubboHeader{SerialID: 2, Type: hessian.PackageResponse, ID: 8, ResponseStatus: 60}, &hessian.Response{Exception: errors.New("not found")})
	if err == nil {
		f.Add(status)
	}
	hb, _ := codec.Write(hessian.Service{}, hessian.DubboHeader{SerialID: 2, Type: hessian.PackageHeartbeat, ID: 9}, hessian.NewRequest([]any{}, nil))
	f.Add(hb)
	f.Add([]byte{0xda, 0xbb, 0xe2, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 2, 0x01, 'R'})
	for _, args := range [][]any{{"a"}, {int64(1), 2.5, map[any]any{"k": []any{"v"}}}, {}} {
		req, err := codec.Write(hessian.Service{Path: "x.Svc", Interface: "x.Svc", Version: "1.0", Method: "m"},
			hessian.DubboHeader{SerialID: 2, Type: hessian.PackageRequest_TwoWay, ID: 3}, hessian.NewRequest(args, map[string]string{"group": "g"}))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(req)
	}
	f.Add([]byte{0xda, 0xbb, 0x02, 20, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := ReadFrame(bytes.NewReader(b), 1<<16)
		if err != nil {
			return
		}
		if fr.Header.Type&hessian.PackageRequest != 0 {
			if fr.Heartbeat() {
				_, _ = fr.eventBody()
				return
			}
			if inv, err := fr.Request(); err == nil {
				if inv.Service.Method == "" {
					t.Fatal("a request without a method was accepted")
				}
				// A generic call's arguments are the consumer's too.
				if call, ok := inv.Unwrapped(); ok && call.Service.Method == "" {
					t.Fatal("a generic call without a method name was unwrapped")
				}
			}
			return
		}
		v, _, err := fr.Response()
		if err == nil {
			_ = ToJSON(v, JSONOptions{})
		}
	})
}
