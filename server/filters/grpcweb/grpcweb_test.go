package grpcweb

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/meshgate/meshgate/grpcframe"
)

func TestGRPCWebRequestModes(t *testing.T) {
	tests := []struct {
		ct, accept string
		ok         bool
		want       grpcWebMode
		upstream   string
	}{
		{"application/grpc-web", "", true, grpcWebMode{}, "application/grpc"},
		{"application/grpc-web+proto", "", true, grpcWebMode{codec: "+proto"}, "application/grpc+proto"},
		{"application/grpc-web-text", "", true, grpcWebMode{textIn: true, textOut: true}, "application/grpc"},
		{"application/grpc-web-text+proto; charset=utf-8", "", true, grpcWebMode{textIn: true, textOut: true, codec: "+proto"}, "application/grpc+proto"},
		{"application/grpc-web+proto", "application/grpc-web-text", true, grpcWebMode{textOut: true, codec: "+proto"}, "application/grpc+proto"},
		{"application/grpc", "", false, grpcWebMode{}, ""},
		{"application/grpc-webfoo", "", false, grpcWebMode{}, ""},
		{"application/json", "", false, grpcWebMode{}, ""},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("POST", "/x.Y/Z", strings.NewReader(""))
		r.Header.Set("Content-Type", tt.ct)
		r.Header.Set("X-Grpc-Web", "1")
		if tt.accept != "" {
			r.Header.Set("Accept", tt.accept)
		}
		m, ok := grpcWebRequest(r)
		if ok != tt.ok || (ok && (*m != tt.want || r.Header.Get("Content-Type") != tt.upstream || r.Header.Get("X-Grpc-Web") != "")) {
			t.Errorf("%q: %v %+v, upstream %q; want %v %+v %q", tt.ct, ok, m, r.Header.Get("Content-Type"), tt.ok, tt.want, tt.upstream)
		}
	}
}

func TestBase64Body(t *testing.T) {
	// Two chunks encoded apart, each with its padding: one body.
	a, b := []byte{0, 0, 0, 0, 2, 'h', 'i'}, []byte{0, 0, 0, 0, 1, 'x'}
	in := base64.StdEncoding.EncodeToString(a) + "\r\n" + base64.StdEncoding.EncodeToString(b)
	got, err := io.ReadAll(&base64Body{src: bufioReader(in), closer: io.NopCloser(nil)})
	if err != nil || !bytes.Equal(got, append(a, b...)) {
		t.Errorf("got %v, %v; want %v", got, err, append(a, b...))
	}
	for _, bad := range []string{"AAA", "A*AA", "====", "AA=A"} {
		if _, err := io.ReadAll(&base64Body{src: bufioReader(bad), closer: io.NopCloser(nil)}); !errors.Is(err, errBadBase64) {
			t.Errorf("%q: %v, want errBadBase64", bad, err)
		}
	}
}

func bufioReader(s string) *bufio.Reader { return newBufio(strings.NewReader(s)) }

func newBufio(r io.Reader) *bufio.Reader { return bufio.NewReader(r) }

func TestGRPCWebWriter(t *testing.T) {
	for _, text := range []bool{false, true} {
		rec := httptest.NewRecorder()
		g := &grpcWebWriter{w: rec, mode: &grpcWebMode{textOut: text, codec: "+proto"}}
		g.Header().Set("Content-Type", "application/grpc+proto")
		g.Header().Set("Trailer", "Grpc-Status")
		g.WriteHeader(http.StatusOK)
		msg := []byte{0, 0, 0, 0, 3, 'a', 'b', 'c'}
		_, _ = g.Write(msg)
		g.Header().Set(http.TrailerPrefix+"Grpc-Status", "0")
		g.Header().Set(http.TrailerPrefix+"Grpc-Message", "ok")
		g.finish()
		body := rec.Body.Bytes()
		wantCT := "application/grpc-web+proto"
		if text {
			wantCT = "application/grpc-web-text+proto"
			dec, err := io.ReadAll(&base64Body{src: newBufio(bytes.NewReader(body)), closer: io.NopCloser(nil)})
			if err != nil {
				t.Fatalf("text answer: %v", err)
			}
			body = dec
		}
		want := append(append([]byte{}, msg...), trailerFrame(map[string]string{"grpc-status": "0", "grpc-message": "ok"})...)
		if rec.Header().Get("Content-Type") != wantCT || !bytes.Equal(body, want) || rec.Header().Get("Trailer") != "" {
			t.Errorf("text %v: %q %q, want %q %q", text, rec.Header().Get("Content-Type"), body, wantCT, want)
		}
		if !strings.Contains(string(want[len(msg)+5:]), "grpc-status: 0\r\n") || want[len(msg)] != grpcframe.TrailerFlag {
			t.Errorf("trailer frame %q", want[len(msg):])
		}
	}
	// Trailers-only: the status stays in the headers, no frame.
	rec := httptest.NewRecorder()
	g := &grpcWebWriter{w: rec, mode: &grpcWebMode{}}
	g.Header().Set("Grpc-Status", "14")
	g.WriteHeader(http.StatusOK)
	g.finish()
	if rec.Body.Len() != 0 || rec.Header().Get("Grpc-Status") != "14" {
		t.Errorf("trailers-only: %q %v", rec.Body.Bytes(), rec.Header())
	}
	// An answer that ended without a status gets one.
	rec = httptest.NewRecorder()
	g = &grpcWebWriter{w: rec, mode: &grpcWebMode{}}
	_, _ = g.Write([]byte{0, 0, 0, 0, 0})
	g.finish()
	if !strings.Contains(rec.Body.String(), "grpc-status: 13") {
		t.Errorf("a cut answer: %q", rec.Body.Bytes())
	}
}

// FuzzGRPCWebText feeds arbitrary bodies to the -text decoder: it returns
// bytes or an error, never more than the input holds.
func FuzzGRPCWebText(f *testing.F) {
	f.Add([]byte("AAAAAAJoaQ==AAAAAAF4"))
	f.Add([]byte("====\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		out, _ := io.ReadAll(&base64Body{src: newBufio(bytes.NewReader(in)), closer: io.NopCloser(nil)})
		if len(out) > len(in) {
			t.Fatalf("%d bytes out of %d", len(out), len(in))
		}
	})
}
