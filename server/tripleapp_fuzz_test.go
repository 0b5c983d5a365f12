package server

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/meshgate/meshgate/grpcframe"
	localappv1 "github.com/meshgate/meshgate/proto/meshgate/extensions/filters/dubbo/local_app/v1"
	"github.com/meshgate/meshgate/server/cluster"
	"github.com/meshgate/meshgate/server/localapp"
	"github.com/meshgate/meshgate/triple"
)

// A Triple consumer's bytes, whatever they are, get a gRPC status and no
// panic from the local app's Triple front end.
func FuzzTripleApp(f *testing.F) {
	good, err := triple.EncodeRequest([]any{"x"}, []string{"java.lang.String"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add("/org.x.S/m", "application/grpc", grpcframe.Append(nil, 0, good))
	f.Add("/org.x.S/m", "application/grpc+proto", grpcframe.Append(nil, 0, []byte{0x0a, 0x03, 'b', 'a', 'd'}))
	f.Add("/org.x.S/", "application/grpc", []byte{0, 0, 0, 0, 9, 1})
	f.Add("/nope", "text/plain", []byte("hello"))
	app, err := localapp.Compile(&localappv1.LocalApp{Cluster: "app", Services: []*localappv1.Service{{Interface: "org.x.S",
		Methods: []*localappv1.Method{{Name: "m", ParamTypes: []string{"java.lang.String"}, ReturnType: "java.lang.String"}}}}},
		func(string) (*cluster.Cluster, bool) { return nil, false })
	if err != nil {
		f.Fatal(err)
	}
	p := &dubboProxy{srv: New(Options{}), listener: "fuzz", app: app}
	f.Fuzz(func(t *testing.T, path, contentType string, body []byte) {
		r, err := http.NewRequest(http.MethodPost, "http://x", bytes.NewReader(body))
		if err != nil {
			return
		}
		r.URL.Path = path
		r.Header.Set("Content-Type", contentType)
		w := httptest.NewRecorder()
		p.serveTripleApp(w, r)
		st := w.Header().Get("Grpc-Status")
		if st == "" {
			st = w.Result().Trailer.Get("Grpc-Status")
		}
		if n, err := strconv.Atoi(st); err != nil || n == 0 {
			t.Fatalf("%s %q (%d bytes): grpc-status %q, want an error status (the app is not configured)", path, contentType, len(body), st)
		}
	})
}

// A malformed grpc-timeout is refused with INVALID_ARGUMENT (as the
// gateway's own gRPC routes answer it), never served without the
// deadline the caller meant to set.
func TestTripleApp_BadTimeout(t *testing.T) {
	app, err := localapp.Compile(&localappv1.LocalApp{Cluster: "app", Services: []*localappv1.Service{{Interface: "org.x.S",
		Methods: []*localappv1.Method{{Name: "m", ParamTypes: []string{"java.lang.String"}, ReturnType: "java.lang.String"}}}}},
		func(string) (*cluster.Cluster, bool) { return nil, false })
	if err != nil {
		t.Fatal(err)
	}
	good, err := triple.EncodeRequest([]any{"x"}, []string{"java.lang.String"})
	if err != nil {
		t.Fatal(err)
	}
	p := &dubboProxy{srv: New(Options{}), listener: "t", app: app}
	for _, tc := range []struct{ timeout, want string }{
		{"1x", "3"},         // unknown unit
		{"123456789S", "3"}, // over 8 digits
		{"S", "3"},
		{"5S", "14"}, // well formed: the call goes on and finds no app (UNAVAILABLE)
	} {
		r := httptest.NewRequest(http.MethodPost, "http://x/org.x.S/m", bytes.NewReader(grpcframe.Append(nil, 0, good)))
		r.Header.Set("Content-Type", "application/grpc")
		r.Header.Set("Grpc-Timeout", tc.timeout)
		w := httptest.NewRecorder()
		p.serveTripleApp(w, r)
		st := w.Header().Get("Grpc-Status")
		if st == "" {
			st = w.Result().Trailer.Get("Grpc-Status")
		}
		if st != tc.want {
			t.Errorf("grpc-timeout %q: grpc-status %q (%s), want %s", tc.timeout, st, w.Header().Get("Grpc-Message"), tc.want)
		}
	}
}
