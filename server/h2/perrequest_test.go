package h2

import (
	"bytes"
	"net/http"
	"testing"

	"golang.org/x/net/http2/hpack"
)

// Per-request values (request ids, trace context) go out as literals never
// indexed: they must not take the HPACK table's places from the fields that
// repeat on every call. The decoder sees that as Sensitive.
func TestEncodeRequestHeaders_PerRequestFieldsNotIndexed(t *testing.T) {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	h := &RequestHead{Method: "POST", Scheme: "http", Authority: "x", Path: "/p", Header: http.Header{
		"X-Request-Id": {"9b1f4c2e-0000-4000-8000-000000000001"}, "Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
		"Content-Type": {"application/grpc"},
	}}
	encodeRequestHeaders(enc, h)
	fields, err := hpack.NewDecoder(4096, nil).DecodeFull(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, f := range fields {
		want := f.Name == "x-request-id" || f.Name == "traceparent"
		if want {
			seen++
		}
		if f.Sensitive != want {
			t.Errorf("%s: never indexed %v, want %v", f.Name, f.Sensitive, want)
		}
	}
	if seen != 2 {
		t.Errorf("%d of the 2 per-request fields were encoded", seen)
	}
}
