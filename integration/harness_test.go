package integration

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/filesource"
	"github.com/meshgate/meshgate/internal/demo"
	demov1 "github.com/meshgate/meshgate/proto/demo/v1"
	"github.com/meshgate/meshgate/server"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// nacos-sdk-go v2.2.5 leaves these behind after CloseClient: the
		// UDP push receiver of its HTTP naming proxy (started even when
		// it talks gRPC) and its log file roller. Both are the SDK's own;
		// the issue note records them.
		goleak.IgnoreAnyFunction("github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client/naming_http.(*PushReceiver).handleClient"),
		goleak.IgnoreTopFunction("gopkg.in/natefinch/lumberjack%2ev2.(*Logger).millRun"),
		// Its config client starts a goroutine per change notification
		// that sends to its listen loop; one that comes after
		// CloseClient waits forever (config_client.go,
		// asyncNotifyListenConfig). Seen with the traffic rules'
		// listeners.
		goleak.IgnoreTopFunction("github.com/nacos-group/nacos-sdk-go/v2/clients/config_client.(*ConfigClient).asyncNotifyListenConfig.func1"),
	)
}

// gateway is a meshgate data plane running in the test process, fed from a
// config file through the same file source the binary uses.
type gateway struct {
	t      *testing.T
	srv    *server.Server
	store  *config.Store
	source *filesource.Source
	path   string
}

// startBackend runs a demo backend (grpc-go and net/http) on free ports.
func startBackend(t *testing.T, name string) *demo.Backend {
	t.Helper()
	b, err := demo.Start(context.Background(), name, "127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("start backend: %v", err)
	}
	t.Cleanup(b.Stop)
	return b
}

// render fills a config template; {{.Name}} fields come from data.
func render(t *testing.T, tmpl string, data any) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := template.Must(template.New("cfg").Parse(tmpl)).Execute(&buf, data); err != nil {
		t.Fatalf("render config: %v", err)
	}
	return buf.Bytes()
}

// startGateway writes cfg to a file and serves it.
func startGateway(t *testing.T, cfg []byte) *gateway {
	t.Helper()
	return startGatewayIn(t, t.TempDir(), cfg)
}

// startGatewayIn is startGateway with the config file in dir, next to the
// files it names.
func startGatewayIn(t *testing.T, dir string, cfg []byte) *gateway {
	t.Helper()
	path := filepath.Join(dir, "meshgate.yaml")
	if err := os.WriteFile(path, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv := server.New(server.Options{Logger: log, DrainTimeout: 5 * time.Second})
	store := config.NewStore(srv)
	g := &gateway{t: t, srv: srv, store: store, path: path, source: filesource.New(store, log, path, nil)}
	if _, err := g.source.Load(context.Background()); err != nil {
		t.Fatalf("load config: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("gateway shutdown: %v", err)
		}
	})
	return g
}

// reload rewrites the config file and loads it.
func (g *gateway) reload(cfg []byte) error {
	if err := os.WriteFile(g.path, cfg, 0o600); err != nil {
		g.t.Fatal(err)
	}
	_, err := g.source.Load(context.Background())
	return err
}

// addr is the bound address of a listener.
func (g *gateway) addr(listener string) string {
	a := g.srv.ListenerAddr(listener)
	if a == "" {
		g.t.Fatalf("no listener %q", listener)
	}
	return a
}

// dialGRPC opens a grpc-go client connection to addr, closed with the test.
func dialGRPC(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func demoClient(t *testing.T, addr string) demov1.DemoServiceClient {
	return demov1.NewDemoServiceClient(dialGRPC(t, addr))
}

// httpClient is a plain HTTP/1.1 client whose idle connections close with
// the test.
func httpClient(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// testWriter sends gateway logs to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// baseConfig fronts one demo backend: gRPC under /demo.v1.DemoService/ and
// HTTP under /echo.
const baseConfig = `
listeners:
  - name: main
    address: 127.0.0.1:0
    max_request_body_bytes: {{if .MaxBody}}{{.MaxBody}}{{else}}0{{end}}
    max_grpc_message_bytes: {{if .MaxMsg}}{{.MaxMsg}}{{else}}0{{end}}
    virtual_hosts:
      - name: all
        routes:
          - name: grpc
            match: { prefix: /demo.v1.DemoService/, grpc: true }
            cluster: grpc
            timeout: {{if .Timeout}}{{.Timeout}}{{else}}0s{{end}}
          - name: echo
            match: { prefix: /echo }
            cluster: http
            request_headers_to_set: { x-gateway: "{{if .Tag}}{{.Tag}}{{else}}meshgate{{end}}" }
clusters:
  - name: grpc
    protocol: grpc
    endpoints: [ "{{.GRPC}}" ]
  - name: http
    endpoints: [ "{{.HTTP}}" ]
`

type baseData struct {
	GRPC, HTTP string
	MaxBody    int
	MaxMsg     int
	Timeout    string
	Tag        string
}
