package integration

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshgate/meshgate/convert/pixiu"
	demov1 "github.com/meshgate/meshgate/proto/demo/v1"
)

// pixiuConf is a Pixiu conf.yaml in the shapes of Pixiu's HTTP and gRPC
// samples, pointing at the test's demo backend.
const pixiuConf = `
static_resources:
  listeners:
    - name: http
      protocol_type: HTTP
      address: { socket_address: { address: 127.0.0.1, port: 0 } }
      filter_chains:
        filters:
          - name: dgp.filter.httpconnectionmanager
            config:
              route_config:
                routes:
                  - match: { prefix: /echo }
                    route: { cluster: echo }
              http_filters:
                - name: dgp.filter.http.httpproxy
                  config:
    - name: grpc
      protocol_type: HTTP
      address: { socket_address: { address: 127.0.0.1, port: 0 } }
      filter_chains:
        filters:
          - name: dgp.filter.httpconnectionmanager
            config:
              route_config:
                routes:
                  - match: { prefix: / }
                    route: { cluster: demo-grpc }
              http_filters:
                - name: dgp.filter.http.grpcproxy
                  config:
                    path: {{.Protos}}
  clusters:
    - name: echo
      lb_policy: RoundRobin
      endpoints: [ { socket_address: { address: 127.0.0.1, port: {{.HTTPPort}} } } ]
    - name: demo-grpc
      endpoints: [ { socket_address: { address: 127.0.0.1, port: {{.GRPCPort}}, protocol_type: GRPC } } ]
`

// A Pixiu config, converted, runs in the gateway and serves HTTP, gRPC and
// JSON-to-gRPC calls against real backends.
func TestPixiuConvert(t *testing.T) {
	b := startBackend(t, "pixiu-backend")
	protos, err := filepath.Abs("../proto/demo/v1")
	if err != nil {
		t.Fatal(err)
	}
	port := func(addr string) string { return addr[strings.LastIndex(addr, ":")+1:] }
	dir := t.TempDir()
	confPath := filepath.Join(dir, "conf.yaml")
	conf := render(t, pixiuConf, map[string]string{"Protos": protos, "HTTPPort": port(b.HTTPAddr), "GRPCPort": port(b.GRPCAddr)})
	if err := os.WriteFile(confPath, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := pixiu.ConvertFile(confPath, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) > 0 {
		t.Errorf("warnings for a fully convertible config: %q", res.Warnings)
	}
	out, err := res.YAML()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("converted:\n%s", out)
	g := startGateway(t, out)

	// HTTP proxy route.
	resp, err := httpClient(t).Get("http://" + g.addr("http") + "/echo/hi?x=1")
	if err != nil {
		t.Fatal(err)
	}
	var echo map[string]any
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err := json.Unmarshal(body, &echo); err != nil || resp.StatusCode != 200 || echo["path"] != "/echo/hi" || echo["server"] != "pixiu-backend" {
		t.Errorf("GET /echo/hi = %d %s", resp.StatusCode, body)
	}

	// gRPC clients pass through.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := demoClient(t, g.addr("grpc")).Echo(ctx, &demov1.EchoRequest{Message: "via pixiu config"})
	if err != nil || r.GetMessage() != "via pixiu config" {
		t.Errorf("gRPC Echo = %v, %v", r, err)
	}

	// JSON callers, as Pixiu's grpcproxy served them (without its route
	// prefix), through the transcoder.
	resp, err = httpClient(t).Post("http://"+g.addr("grpc")+"/demo.v1.DemoService/Echo", "application/json", strings.NewReader(`{"message":"json"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"message":"json"`) {
		t.Errorf("JSON Echo = %d %s", resp.StatusCode, body)
	}
}
