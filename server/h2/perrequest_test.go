package h2

import (
	"bytes"
	"net/http"
	"net/url"
	"testing"

	"golang.org/x/net/http2/hpack"

	"github.com/meshgate/meshgate/server/h2/hpackcodec"
)

// Per-request values (request ids, trace context) go out as literals not
// indexed: they must not take the HPACK table's places from the fields that
// repeat on every call. So the second request's block still carries them
// whole, while content-type has become an index.
func TestEncodeRequestHeaders_PerRequestFieldsNotIndexed(t *testing.T) {
	enc := hpackcodec.NewEncoder()
	dec := hpack.NewDecoder(4096, nil)
	h := &RequestHead{Method: "POST", Scheme: "http", Authority: "x", Path: "/p", Header: http.Header{
		"X-Request-Id": {"9b1f4c2e-0000-4000-8000-000000000001"}, "Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
		"Content-Type": {"application/grpc"},
	}}
	for round := 1; round <= 2; round++ {
		enc.Reset()
		encodeRequestHeaders(enc, h)
		block := enc.Bytes()
		fields, err := dec.DecodeFull(block)
		if err != nil {
			t.Fatal(err)
		}
		if len(fields) != 7 {
			t.Fatalf("round %d: decoded %v", round, fields)
		}
		if round == 1 {
			continue
		}
		for _, v := range []string{h.Header.Get("X-Request-Id"), h.Header.Get("Traceparent")} {
			if !bytes.Contains(block, hpack.AppendHuffmanString(nil, v)) {
				t.Errorf("second block %x does not carry %q: it was indexed", block, v)
			}
		}
		if bytes.Contains(block, hpack.AppendHuffmanString(nil, "application/grpc")) {
			t.Errorf("second block %x carries content-type's value again: it was not indexed", block)
		}
	}
}

// A plain path makes the URL url.ParseRequestURI would make of it.
func TestPlainPath(t *testing.T) {
	for _, c := range []struct {
		path  string
		plain bool
	}{
		{"/grpc.health.v1.Health/Check", true},
		{"/", true},
		{"/a/b-c_d~e.f/", true},
		{"/a?b=1", false},
		{"/a%20b", false},
		{"/a b", false},
		{"/a#b", false},
		{"a/b", false},
		{"", false},
		{"//host/x", true},
		{"/a;b=c", false},
	} {
		if got := plainPath(c.path); got != c.plain {
			t.Errorf("plainPath(%q) = %v, want %v", c.path, got, c.plain)
		}
		if !c.plain {
			continue
		}
		want, err := url.ParseRequestURI(c.path)
		if err != nil {
			t.Fatalf("%q: %v", c.path, err)
		}
		if got := (url.URL{Path: c.path}); got != *want {
			t.Errorf("%q: built %#v, url.ParseRequestURI made %#v", c.path, got, *want)
		}
	}
}

// FuzzPlainPath: whatever the path, when plainPath takes it, the URL built
// without parsing is the one url.ParseRequestURI makes.
func FuzzPlainPath(f *testing.F) {
	for _, p := range []string{"/grpc.health.v1.Health/Check", "/", "//x", "/a?b", "/a%2F", "/a b", "*"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if !plainPath(p) {
			return
		}
		want, err := url.ParseRequestURI(p)
		if err != nil {
			t.Fatalf("plainPath took %q, which url.ParseRequestURI refuses: %v", p, err)
		}
		if got := (url.URL{Path: p}); got != *want {
			t.Fatalf("%q: built %#v, url.ParseRequestURI made %#v", p, got, *want)
		}
	})
}
