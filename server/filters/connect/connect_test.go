package connect

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestConnectRequest(t *testing.T) {
	r := httptest.NewRequest("POST", "/a.B/C", strings.NewReader("msg"))
	r.Header.Set("Content-Type", "application/proto")
	r.Header.Set("Connect-Protocol-Version", "1")
	r.Header.Set("Connect-Timeout-Ms", "250")
	m, ok, err := connectRequest(r)
	if !ok || err != nil || m.streaming {
		t.Fatalf("unary: %v %v %v", m, ok, err)
	}
	body, _ := io.ReadAll(r.Body)
	if !bytes.Equal(body, []byte{0, 0, 0, 0, 3, 'm', 's', 'g'}) || r.Header.Get("Content-Type") != "application/grpc+proto" ||
		r.Header.Get("Grpc-Timeout") != "250m" || r.Header.Get("Connect-Protocol-Version") != "" {
		t.Errorf("framed %v, headers %v", body, r.Header)
	}
	r = httptest.NewRequest("POST", "/a.B/C", nil)
	r.Header.Set("Content-Type", "application/connect+proto")
	if m, ok, _ := connectRequest(r); !ok || !m.streaming {
		t.Errorf("streaming: %v %v", m, ok)
	}
	for _, ct := range []string{"application/proto", "application/json", "application/grpc"} {
		r = httptest.NewRequest("POST", "/a.B/C", nil)
		r.Header.Set("Content-Type", ct) // no Connect-Protocol-Version
		if _, ok, _ := connectRequest(r); ok {
			t.Errorf("%s without the version header taken as Connect", ct)
		}
	}
	r = httptest.NewRequest("POST", "/a.B/C", nil)
	r.Header.Set("Content-Type", "application/connect+proto")
	r.Header.Set("Connect-Timeout-Ms", "-1")
	if _, ok, err := connectRequest(r); !ok || err == nil {
		t.Error("a bad timeout was accepted")
	}
}

func TestConnectWriter(t *testing.T) {
	// Unary success: the message unframed.
	rec := httptest.NewRecorder()
	cw := &connectWriter{w: rec, mode: &connectMode{codec: "proto"}}
	cw.Header().Set("Content-Type", "application/grpc")
	cw.WriteHeader(200)
	_, _ = cw.Write([]byte{0, 0, 0, 0, 2, 'o', 'k'})
	cw.Header().Set(http.TrailerPrefix+"Grpc-Status", "0")
	cw.Header().Set(http.TrailerPrefix+"X-Meta", "m")
	cw.finish()
	if rec.Code != 200 || rec.Body.String() != "ok" || rec.Header().Get("Content-Type") != "application/proto" || rec.Header().Get("Trailer-X-Meta") != "m" {
		t.Errorf("unary success: %d %q %v", rec.Code, rec.Body.Bytes(), rec.Header())
	}
	// Unary trailers-only failure: Connect's error.
	rec = httptest.NewRecorder()
	cw = &connectWriter{w: rec, mode: &connectMode{codec: "proto"}}
	cw.Header().Set("Grpc-Status", "7")
	cw.Header().Set("Grpc-Message", "no%20entry")
	cw.WriteHeader(200)
	cw.finish()
	var e map[string]string
	_ = json.Unmarshal(rec.Body.Bytes(), &e)
	if rec.Code != 403 || e["code"] != "permission_denied" || e["message"] != "no entry" {
		t.Errorf("unary failure: %d %q", rec.Code, rec.Body.Bytes())
	}
	// Streaming: envelopes pass, the end message closes.
	rec = httptest.NewRecorder()
	cw = &connectWriter{w: rec, mode: &connectMode{streaming: true, codec: "proto"}}
	cw.WriteHeader(200)
	_, _ = cw.Write([]byte{0, 0, 0, 0, 1, 'a'})
	cw.Header().Set(http.TrailerPrefix+"Grpc-Status", "14")
	cw.finish()
	b := rec.Body.Bytes()
	if rec.Header().Get("Content-Type") != "application/connect+proto" || len(b) < 6 || b[6] != 0x02 {
		t.Fatalf("stream: %v %q", rec.Header(), b)
	}
	n := binary.BigEndian.Uint32(b[7:11])
	if !strings.Contains(string(b[11:11+n]), `"code":"unavailable"`) {
		t.Errorf("end message %q", b[11:11+n])
	}
}
