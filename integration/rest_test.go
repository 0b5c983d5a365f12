package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/meshgate/meshgate/internal/resttest"
)

const restConfig = `
listeners:
  - name: main
    address: 127.0.0.1:0
    grpc_json:
      services: [ resttest.v1.LibraryService ]
{{.Source}}
    virtual_hosts:
      - routes:
          - match: { prefix: /resttest.v1.LibraryService/, grpc: true }
            cluster: library
            timeout: 2s
clusters:
  - { name: library, protocol: grpc, endpoints: [ "{{.Addr}}" ] }
`

// startLibrary serves the REST test service (a real grpc-go server) with
// the reflection service given.
func startLibrary(t *testing.T, refl resttest.Reflection) string {
	t.Helper()
	srv, err := resttest.NewServer(context.Background(), refl)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

// REST callers reach a real grpc-go backend through the google.api.http
// rules of its annotated .proto; the descriptors come from a
// FileDescriptorSet file, from the .proto compiled when the config loads,
// and from the backend by gRPC reflection (v1, and v1alpha alone).
func TestREST_GoogleAPIHTTP(t *testing.T) {
	set, err := resttest.Descriptors(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	bin, err := proto.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	descFile := filepath.Join(t.TempDir(), "library.binpb")
	if err := os.WriteFile(descFile, bin, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		refl   resttest.Reflection
		source string
	}{
		{"descriptor-file", resttest.ReflectionNone, `      proto_descriptor: "` + descFile + `"`},
		{"proto-compiled", resttest.ReflectionNone, `      protos: [ "` + filepath.Join(resttest.ProtoDir(), resttest.ProtoFile) + `" ]
      import_paths: [ "` + resttest.ProtoDir() + `" ]`},
		{"reflection-v1", resttest.ReflectionV1, `      reflection: { cluster: library }`},
		{"reflection-v1alpha", resttest.ReflectionV1Alpha, `      reflection: { cluster: library, refresh_interval: 1s }`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := startLibrary(t, tc.refl)
			g := startGateway(t, render(t, restConfig, map[string]string{"Addr": addr, "Source": tc.source}))
			checkLibrary(t, "http://"+g.addr("main"))
		})
	}
}

// checkLibrary walks the library's REST API; every expected answer is
// written out by hand.
func checkLibrary(t *testing.T, base string) {
	c := httpClient(t)
	do := func(method, path, ctype, body string) (int, http.Header, string) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	steps := []struct {
		method, path, ctype, body string
		status                    int
		want                      string // the answer, JSON compared as values
	}{
		{"POST", "/v1/shelves/s1/books?bookId=rose", "application/json",
			`{"title":"The Name of the Rose","author":"Eco","genre":"GENRE_FICTION","pages":"512","published":"1980-01-01T00:00:00Z","tags":["novel"]}`,
			200, `{"name":"shelves/s1/books/rose","title":"The Name of the Rose","author":"Eco","genre":"GENRE_FICTION","tags":["novel"],"pages":"512","published":"1980-01-01T00:00:00Z"}`},
		{"POST", "/v1/shelves/s1/books?bookId=decline", "application/json",
			`{"title":"Decline and Fall","author":"Gibbon","genre":"GENRE_HISTORY","published":"1776-02-17T00:00:00Z"}`,
			200, `{"name":"shelves/s1/books/decline","title":"Decline and Fall","author":"Gibbon","genre":"GENRE_HISTORY","published":"1776-02-17T00:00:00Z"}`},
		{"POST", "/v1/shelves/s1/books?bookId=rose", "application/json", `{"title":"again"}`,
			409, `{"code":6,"message":"shelves/s1/books/rose exists"}`},
		{"POST", "/v1/shelves/s1/books", "application/json", `{"title":"no id"}`,
			400, `{"code":3,"message":"parent and book_id are needed"}`},
		{"GET", "/v1/shelves/s1/books/rose", "", "",
			200, `{"name":"shelves/s1/books/rose","title":"The Name of the Rose","author":"Eco","genre":"GENRE_FICTION","tags":["novel"],"pages":"512","published":"1980-01-01T00:00:00Z"}`},
		{"GET", "/v1/shelves/s1/books/nope", "", "", 404, `{"code":5,"message":"no book \"shelves/s1/books/nope\""}`},
		// Query parameters: nested, repeated, enums by name and number.
		{"GET", "/v1/shelves/s1/books?genres=GENRE_HISTORY&genres=1&filter.author=Gibbon", "", "",
			200, `{"books":[{"name":"shelves/s1/books/decline","title":"Decline and Fall","author":"Gibbon","genre":"GENRE_HISTORY","published":"1776-02-17T00:00:00Z"}],"titles":["Decline and Fall"]}`},
		{"GET", "/v1/shelves/s1/books?filter.after=1800-01-01T00:00:00Z", "", "",
			200, `{"books":[{"name":"shelves/s1/books/rose","title":"The Name of the Rose","author":"Eco","genre":"GENRE_FICTION","tags":["novel"],"pages":"512","published":"1980-01-01T00:00:00Z"}],"titles":["The Name of the Rose"]}`},
		// The additional binding.
		{"GET", "/v1/books?pageSize=1", "", "",
			200, `{"books":[{"name":"shelves/s1/books/decline","title":"Decline and Fall","author":"Gibbon","genre":"GENRE_HISTORY","published":"1776-02-17T00:00:00Z"}],"titles":["Decline and Fall"]}`},
		{"GET", "/v1/books?pageSize=many", "", "", 400, ``},
		{"GET", "/v1/books?color=red", "", "", 400, ``},
		{"GET", "/v1/books?genres=GENRE_POETRY", "", "", 400, ``},
		// body: "book" with the name from the path.
		{"PATCH", "/v1/shelves/s1/books/rose", "application/json", `{"title":"Il nome della rosa"}`,
			200, `{"name":"shelves/s1/books/rose","title":"Il nome della rosa","author":"Eco","genre":"GENRE_FICTION","tags":["novel"],"pages":"512","published":"1980-01-01T00:00:00Z"}`},
		{"PATCH", "/v1/shelves/s1/books/rose", "application/json", `{"title":`, 400, ``},
		// body: "*" and a verb.
		{"POST", "/v1/shelves/s1/books/rose:move", "application/json", `{"toShelf":"shelves/s2"}`,
			200, `{"name":"shelves/s2/books/rose","title":"Il nome della rosa","author":"Eco","genre":"GENRE_FICTION","tags":["novel"],"pages":"512","published":"1980-01-01T00:00:00Z"}`},
		// response_body: only the titles, through a "**" variable.
		{"GET", "/v1/titles/shelves/s2", "", "", 200, `["Il nome della rosa"]`},
		// A custom method with body: "filter".
		{"SEARCH", "/v1/books", "application/json", `{"author":"Gibbon"}`,
			200, `{"books":[{"name":"shelves/s1/books/decline","title":"Decline and Fall","author":"Gibbon","genre":"GENRE_HISTORY","published":"1776-02-17T00:00:00Z"}],"titles":["Decline and Fall"]}`},
		// A server stream as a JSON array.
		{"GET", "/v1/shelves/s1/books:watch", "", "",
			200, `[{"name":"shelves/s1/books/decline","title":"Decline and Fall","author":"Gibbon","genre":"GENRE_HISTORY","published":"1776-02-17T00:00:00Z"}]`},
		{"DELETE", "/v1/shelves/s1/books/decline", "", "", 200, `{}`},
		{"DELETE", "/v1/shelves/s1/books/decline", "", "", 404, `{"code":5,"message":"no book \"shelves/s1/books/decline\""}`},
		// A method without a rule, by auto-mapping.
		{"POST", "/resttest.v1.LibraryService/Ping", "application/json", `{}`, 200, `{}`},
		// No rule for this method and path.
		{"PUT", "/v1/books", "application/json", `{}`, 404, ``},
	}
	for _, s := range steps {
		status, _, got := do(s.method, s.path, s.ctype, s.body)
		if status != s.status {
			t.Errorf("%s %s: %d %s, want %d", s.method, s.path, status, got, s.status)
			continue
		}
		if s.want == "" {
			if status == 400 && !strings.Contains(got, `"code":3`) {
				t.Errorf("%s %s: 400 without google.rpc.Status INVALID_ARGUMENT: %s", s.method, s.path, got)
			}
			continue
		}
		if !sameJSONValue(got, s.want) {
			t.Errorf("%s %s:\n got %s\nwant %s", s.method, s.path, got, s.want)
		}
	}
	// google.api.HttpBody both ways: the cover's bytes as sent.
	png := "\x89PNG\r\n\x1a\n\x00\x01binary"
	status, _, got := do("PUT", "/v1/shelves/s2/books/rose/cover", "image/png", png)
	var book struct {
		CoverBytes string `json:"coverBytes"`
	}
	if status != 200 || json.Unmarshal([]byte(got), &book) != nil || book.CoverBytes != "16" {
		t.Errorf("PUT cover: %d %s", status, got)
	}
	status, _, got = do("PUT", "/v1/shelves/s2/books/rose/cover", "text/plain", "x")
	if status != 400 {
		t.Errorf("PUT a text cover: %d %s, want 400 from the backend's INVALID_ARGUMENT", status, got)
	}
	status, h, got := do("GET", "/v1/shelves/s2/books/rose/cover", "", "")
	if status != 200 || h.Get("Content-Type") != "image/png" || !bytes.Equal([]byte(got), []byte(png)) {
		t.Errorf("GET cover: %d %q %q", status, h.Get("Content-Type"), got)
	}
}

// sameJSONValue compares two JSON texts as values.
func sameJSONValue(a, b string) bool {
	var x, y any
	return json.Unmarshal([]byte(a), &x) == nil && json.Unmarshal([]byte(b), &y) == nil && reflect.DeepEqual(x, y)
}
