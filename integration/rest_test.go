package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/meshgate/meshgate/internal/resttest"
	"github.com/meshgate/meshgate/server/admin"
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
	return startLibraryAt(t, refl, "127.0.0.1:0")
}

func startLibraryAt(t *testing.T, refl resttest.Reflection, addr string) string {
	t.Helper()
	srv, err := resttest.NewServer(context.Background(), refl)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
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
      import_paths: [ "` + resttest.ProtoDir() + `" ]
      openapi: { path: /docs/openapi.json }`},
		{"reflection-v1", resttest.ReflectionV1, `      reflection: { cluster: library }`},
		{"reflection-v1alpha", resttest.ReflectionV1Alpha, `      reflection: { cluster: library, refresh_interval: 1s }`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := startLibrary(t, tc.refl)
			g := startGateway(t, render(t, restConfig, map[string]string{"Addr": addr, "Source": tc.source}))
			checkLibrary(t, "http://"+g.addr("main"))
			openapi := "/openapi.json"
			if tc.name == "proto-compiled" {
				openapi = "/docs/openapi.json"
				if resp, err := http.Get("http://" + g.addr("main") + "/openapi.json"); err != nil || resp.StatusCode != 404 {
					t.Errorf("the default OpenAPI path still answers when moved: %v %v", resp.StatusCode, err)
				} else {
					resp.Body.Close()
				}
			}
			checkLibraryOpenAPI(t, "http://"+g.addr("main")+openapi)
			// /config_dump reports where the descriptors came from.
			d := descriptorsDump(t, g)
			source := "descriptor_set"
			if tc.refl != resttest.ReflectionNone {
				source = "reflection"
			}
			if len(d) != 1 || d[0].Source != source || d[0].HTTPRules != 12 || !slices.Contains(d[0].Files, resttest.ProtoFile) ||
				!slices.Equal(d[0].Services, []string{resttest.Service}) || d[0].Error != "" {
				t.Errorf("config_dump descriptors: %+v", d)
			}
			if tc.refl != resttest.ReflectionNone && (d[0].Cluster != "library" || d[0].LastUpdated == "") {
				t.Errorf("config_dump descriptors by reflection: %+v", d)
			}
		})
	}
}

// A backend without reflection: REST calls get 503 saying why, gRPC calls
// still pass, and /config_dump shows the failure.
func TestREST_ReflectionUnavailable(t *testing.T) {
	addr := startLibrary(t, resttest.ReflectionNone)
	g := startGateway(t, render(t, restConfig, map[string]string{"Addr": addr, "Source": `      reflection: { cluster: library }`}))
	c := httpClient(t)
	resp, err := c.Get("http://" + g.addr("main") + "/v1/books")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(b), "Unimplemented") || !strings.Contains(string(b), "reflection") {
		t.Errorf("REST call without descriptors: %d %s", resp.StatusCode, b)
	}
	d := descriptorsDump(t, g)
	if len(d) != 1 || d[0].Source != "reflection" || !strings.Contains(d[0].Error, "Unimplemented") || len(d[0].Files) != 0 {
		t.Errorf("config_dump descriptors: %+v", d)
	}
	// The gRPC path is not the transcoder's business.
	req, _ := http.NewRequest("POST", "http://"+g.addr("main")+"/resttest.v1.LibraryService/Ping", bytes.NewReader([]byte{0, 0, 0, 0, 0}))
	req.Header.Set("Content-Type", "application/grpc")
	tr := h2cTransport()
	defer tr.CloseIdleConnections()
	resp, err = tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Trailer.Get("Grpc-Status") != "0" {
		t.Errorf("gRPC Ping: %d, grpc-status %q", resp.StatusCode, resp.Trailer.Get("Grpc-Status"))
	}
}

// A backend that is down when the first REST call comes: 503, then, once
// it is up and the retry spacing (1s) has passed, the descriptors are
// fetched and the call goes through.
func TestREST_ReflectionRecovers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	g := startGateway(t, render(t, restConfig, map[string]string{"Addr": addr, "Source": `      reflection: { cluster: library }`}))
	c := httpClient(t)
	get := func() (int, string) {
		resp, err := c.Get("http://" + g.addr("main") + "/v1/books")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := get(); status != 503 {
		t.Fatalf("backend down: %d %s, want 503", status, body)
	}
	startLibraryAt(t, resttest.ReflectionV1, addr)
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, body := get()
		if status == 200 && sameJSONValue(body, `{}`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backend up: %d %s, want 200 {}", status, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkLibraryOpenAPI reads the OpenAPI document and checks what it says
// of a few of the library's bindings.
func checkLibraryOpenAPI(t *testing.T, url string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	type param struct {
		Name   string         `json:"name"`
		In     string         `json:"in"`
		Schema map[string]any `json:"schema"`
	}
	type op struct {
		OperationID string  `json:"operationId"`
		Parameters  []param `json:"parameters"`
		RequestBody struct {
			Content map[string]struct {
				Schema map[string]any `json:"schema"`
			} `json:"content"`
		} `json:"requestBody"`
		Responses map[string]struct {
			Content map[string]struct {
				Schema map[string]any `json:"schema"`
			} `json:"content"`
		} `json:"responses"`
	}
	var doc struct {
		OpenAPI string                   `json:"openapi"`
		Paths   map[string]map[string]op `json:"paths"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || resp.StatusCode != 200 || doc.OpenAPI != "3.0.3" {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	names := func(ps []param) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.In+":"+p.Name)
		}
		return out
	}
	get := doc.Paths["/v1/{name}"]["get"]
	if get.OperationID != "resttest.v1.LibraryService.GetBook" || !slices.Equal(names(get.Parameters), []string{"path:name"}) {
		t.Errorf("GET /v1/{name}: %+v", get)
	}
	list := doc.Paths["/v1/{parent}/books"]["get"]
	if !slices.Equal(names(list.Parameters), []string{"path:parent", "query:pageSize", "query:filter.author", "query:filter.after", "query:genres"}) {
		t.Errorf("GET /v1/{parent}/books parameters: %v", names(list.Parameters))
	}
	if doc.Paths["/v1/books"]["get"].OperationID != "resttest.v1.LibraryService.ListBooks_1" {
		t.Errorf("the additional binding: %+v", doc.Paths["/v1/books"])
	}
	if _, ok := doc.Paths["/v1/books"]["search"]; ok {
		t.Error("a custom method (SEARCH) in an OpenAPI 3.0 document")
	}
	titles := doc.Paths["/v1/titles/{parent}"]["get"].Responses["200"].Content["application/json"].Schema
	if titles["type"] != "array" {
		t.Errorf("response_body titles: %v", titles)
	}
	if _, ok := doc.Paths["/v1/{name}/cover"]["get"].Responses["200"].Content["*/*"]; !ok {
		t.Errorf("GET cover is not raw bytes: %+v", doc.Paths["/v1/{name}/cover"]["get"])
	}
	if _, ok := doc.Paths["/v1/{name}/cover"]["put"].RequestBody.Content["*/*"]; !ok {
		t.Errorf("PUT cover does not take raw bytes: %+v", doc.Paths["/v1/{name}/cover"]["put"])
	}
	if _, ok := doc.Paths["/resttest.v1.LibraryService/Ping"]["post"]; !ok {
		t.Error("no auto-mapped POST /resttest.v1.LibraryService/Ping")
	}
}

type dumpedDescriptors struct {
	Listener    string   `json:"listener"`
	Source      string   `json:"source"`
	Cluster     string   `json:"cluster"`
	Services    []string `json:"services"`
	Files       []string `json:"files"`
	HTTPRules   int      `json:"http_rules"`
	LastUpdated string   `json:"last_updated"`
	Error       string   `json:"error"`
}

// descriptorsDump reads the descriptors part of the admin /config_dump.
func descriptorsDump(t *testing.T, g *gateway) []dumpedDescriptors {
	t.Helper()
	rec := httptest.NewRecorder()
	admin.Handler(g.srv, prometheus.NewRegistry(), admin.WithDescriptors(g.srv.Descriptors)).
		ServeHTTP(rec, httptest.NewRequest("GET", "/config_dump", nil))
	var dump struct {
		Configs []struct {
			Type        string              `json:"@type"`
			Transcoders []dumpedDescriptors `json:"transcoders"`
		} `json:"configs"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &dump); err != nil {
		t.Fatalf("config_dump: %v", err)
	}
	for _, c := range dump.Configs {
		if c.Type == "type.googleapis.com/meshgate.admin.v1.DescriptorsConfigDump" {
			return c.Transcoders
		}
	}
	return nil
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

// healthREST is grpc.health.v1's Check with a google.api.http rule: the
// gateway's own view of a dubbo-go provider's IDL Triple service.
const healthREST = `syntax = "proto3";
package grpc.health.v1;
import "google/api/annotations.proto";
message HealthCheckRequest { string service = 1; }
message HealthCheckResponse {
  enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; }
  ServingStatus status = 1;
}
service Health {
  rpc Check(HealthCheckRequest) returns (HealthCheckResponse) {
    option (google.api.http) = { get: "/v1/health/{service}" };
  }
}
`

const restTripleConfig = `
listeners:
  - name: rules
    address: "{{.A1}}"
    grpc_json: { services: [ grpc.health.v1.Health ], protos: [ healthrest.proto ] }
    virtual_hosts:
      - routes:
          - match: { prefix: /grpc.health.v1.Health/, grpc: true }
            cluster: tri
            timeout: 2s
  - name: reflected
    address: "{{.A2}}"
    grpc_json: { services: [ grpc.health.v1.Health ], reflection: { cluster: tri } }
    virtual_hosts:
      - routes:
          - match: { prefix: /grpc.health.v1.Health/, grpc: true }
            cluster: tri
            timeout: 2s
clusters:
  - { name: tri, protocol: tri, endpoints: [ "127.0.0.1:{{.Tri}}" ] }
`

// REST and gRPC-Web callers reach a dubbo-go v3 provider's IDL Triple
// service: by a google.api.http rule (the .proto compiled at load), by
// auto-mapping with the descriptors fetched from dubbo-go by reflection
// (it serves v1alpha only), and by gRPC-Web.
func TestREST_DubboGoTriple(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a dubbo-go peer; skipped with -short")
	}
	p := startProvider(t, providerSpec{App: "rest-tri", Registry: "none", Mode: "interface", Version: "1.0.0", Group: "g1"})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "healthrest.proto"), []byte(healthREST), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGatewayIn(t, dir, render(t, restTripleConfig, map[string]string{"Tri": p.triPort, "A1": freeAddr(t), "A2": freeAddr(t)}))
	c := httpClient(t)
	for _, tc := range []struct {
		listener, method, path, body string
		status                       int
		want                         string
	}{
		{"rules", "GET", "/v1/health/grpc.health.v1.Health", "", 200, `{"status":"SERVING"}`},
		// dubbo-go answers an unknown service with its own code 17.
		{"rules", "GET", "/v1/health/no.such.Service", "", 500, `{"code":17,"message":"unknown service"}`},
		{"reflected", "POST", "/grpc.health.v1.Health/Check", `{"service":"grpc.health.v1.Health"}`, 200, `{"status":"SERVING"}`},
	} {
		req, _ := http.NewRequest(tc.method, "http://"+g.addr(tc.listener)+tc.path, strings.NewReader(tc.body))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !sameJSONValue(string(b), tc.want) {
			t.Errorf("%s %s on %s: %d %s, want %d %s\n%s", tc.method, tc.path, tc.listener, resp.StatusCode, b, tc.status, tc.want, p.logs.String())
		}
	}
	// gRPC-Web (binary) to the same Triple service.
	msg := []byte{0x0a, byte(len("grpc.health.v1.Health"))}
	msg = append(msg, "grpc.health.v1.Health"...)
	req, _ := http.NewRequest("POST", "http://"+g.addr("rules")+"/grpc.health.v1.Health/Check", bytes.NewReader(connectEnvelope(0, string(msg))))
	req.Header.Set("Content-Type", "application/grpc-web+proto")
	req.Header.Set("X-Grpc-Web", "1")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// One data frame holding HealthCheckResponse{status: SERVING} (08 01),
	// then the trailer frame with grpc-status 0.
	if resp.StatusCode != 200 || !bytes.HasPrefix(b, []byte{0, 0, 0, 0, 2, 0x08, 0x01, 0x80}) || !bytes.Contains(b, []byte("grpc-status: 0\r\n")) {
		t.Errorf("gRPC-Web to Triple: %d %q", resp.StatusCode, b)
	}
}
