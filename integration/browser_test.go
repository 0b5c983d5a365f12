package integration

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"

	demov1 "github.com/meshgate/meshgate/proto/demo/v1"
)

// chromiumPath is Debian's Chromium, which `make peers` installs.
const chromiumPath = "/usr/bin/chromium"

// browserSetup skips a test that cannot drive Chromium here (-short, no
// Chromium, no node: each says why), and otherwise copies files of
// integration/browser next to the cached npm packages, whose directory it
// returns.
func browserSetup(t *testing.T, files ...string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs headless Chromium; skipped with -short")
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("Chromium is not installed (%v): `make peers` installs Debian's chromium package", err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skipf("no node to drive the browser: %v", err)
	}
	deps, err := browserDeps()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join("browser", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(deps, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return deps
}

// browserDeps installs integration/browser's npm packages (pinned by its
// package-lock.json) once, cached in $HOME/.cache/meshgate/browser-<hash>,
// and returns that directory.
var browserDeps = sync.OnceValues(func() (string, error) {
	h := sha256.New()
	for _, f := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(filepath.Join("browser", f))
		if err != nil {
			return "", err
		}
		h.Write(b)
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(home, ".cache", "meshgate", fmt.Sprintf("browser-%x", h.Sum(nil)[:6]))
	if _, err := os.Stat(filepath.Join(dir, "node_modules", ".bin", "esbuild")); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	for _, f := range []string{"package.json", "package-lock.json"} {
		b, _ := os.ReadFile(filepath.Join("browser", f))
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			return "", err
		}
	}
	start := time.Now()
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("npm ci in %s: %v\n%s", dir, err, out)
	}
	fmt.Fprintf(os.Stderr, "installed the browser test's npm packages in %v (cached at %s)\n", time.Since(start).Round(time.Second), dir)
	return dir, nil
})

const browserConfig = `
listeners:
  - name: main
    address: 127.0.0.1:0
    grpc_json: { proto_descriptor: "{{.Desc}}", services: [ demo.v1.DemoService ] }
    virtual_hosts:
      - cors: { allow_origins: [ "{{.Origin}}" ] }
        routes:
          - match: { prefix: /demo.v1.DemoService/, grpc: true }
            cluster: grpc
            timeout: 10s
          - match: { prefix: /echo }
            cluster: http
clusters:
  - { name: grpc, protocol: grpc, endpoints: [ "{{.GRPC}}" ] }
  - { name: http, endpoints: [ "{{.HTTP}}" ] }
`

// A real browser calls the demo service through meshgate from a page of
// another origin (so the CORS preflights are real): the official grpc-web
// client in text mode (unary and server streaming), connect-web's gRPC-Web
// transport (binary) and its Connect transport (unary and server
// streaming), and fetch() to a REST route. Any failed call fails the test.
func TestBrowser_GRPCWebConnectAndREST(t *testing.T) {
	deps := browserSetup(t, "app.js", "run.mjs")
	// The page's script, bundled with the cached packages.
	work := t.TempDir()
	bundle := filepath.Join(work, "bundle.js")
	build := exec.Command(filepath.Join(deps, "node_modules", ".bin", "esbuild"), "app.js", "--bundle", "--format=esm", "--outfile="+bundle)
	build.Dir = deps
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("esbuild: %v\n%s", err, out)
	}
	js, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := proto.Marshal(protodesc.ToFileDescriptorProto(demov1.File_demo_v1_demo_proto))
	if err != nil {
		t.Fatal(err)
	}

	b := startBackend(t, "browser")
	// The page's origin is known before its server serves: the gateway's
	// CORS policy names it, and the page names the gateway.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pageURL := "http://" + ln.Addr().String()
	g := startGateway(t, render(t, browserConfig, map[string]string{"Origin": pageURL, "GRPC": b.GRPCAddr, "HTTP": b.HTTPAddr,
		"Desc": descriptorFile(t, demov1.File_demo_v1_demo_proto)}))
	gateway := "http://" + g.addr("main")
	page := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/":
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprintf(w, `<!doctype html><html><head><script>window.__MESHGATE = {gateway: %q, desc: %q};</script>
<script type="module" src="/bundle.js"></script></head><body>meshgate browser test</body></html>`, gateway, base64.StdEncoding.EncodeToString(desc))
		case "/bundle.js":
			w.Header().Set("Content-Type", "text/javascript")
			_, _ = w.Write(js)
		default:
			http.NotFound(w, r)
		}
	})}}
	page.Start()
	t.Cleanup(page.Close)

	run := exec.Command("node", "run.mjs")
	run.Dir = deps
	run.Env = append(os.Environ(), "PAGE_URL="+page.URL+"/", "CHROMIUM="+chromiumPath)
	var stderr strings.Builder
	run.Stderr = &stderr
	out, err := run.Output()
	if err != nil {
		t.Fatalf("the browser driver: %v\n%s", err, stderr.String())
	}
	var report struct {
		Results map[string]struct {
			OK    bool   `json:"ok"`
			Value any    `json:"value"`
			Error string `json:"error"`
		} `json:"results"`
		Logs []string `json:"logs"`
	}
	if err := json.Unmarshal(out, &report); err != nil {
		t.Fatalf("the driver printed %q: %v", out, err)
	}
	want := map[string]string{
		"grpcweb_text_unary":             "grpc-web",
		"grpcweb_text_stream":            "3",
		"connectweb_grpcweb_unary":       "connectweb_grpcweb",
		"connectweb_grpcweb_stream":      "3",
		"connectweb_connect_unary":       "connectweb_connect",
		"connectweb_connect_stream":      "3",
		"connectweb_connect_json_unary":  "json",
		"connectweb_connect_json_stream": "3",
		"fetch_rest":                     "200",
	}
	for name, value := range want {
		r, ok := report.Results[name]
		switch {
		case !ok:
			t.Errorf("%s: no result (results %v)", name, report.Results)
		case !r.OK:
			t.Errorf("%s failed in the browser: %s", name, r.Error)
		case fmt.Sprint(r.Value) != value:
			t.Errorf("%s answered %v, want %s", name, r.Value, value)
		}
	}
	if t.Failed() {
		t.Logf("browser logs:\n%s", strings.Join(report.Logs, "\n"))
	}
}
