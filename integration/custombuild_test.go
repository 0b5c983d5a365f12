package integration

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// apiKeyConfig is an Envoy bootstrap whose listener runs the example API
// key filter (a filter written outside meshgate, its config in a
// TypedStruct) before the router.
const apiKeyConfig = `
admin: { address: { socket_address: { address: 127.0.0.1, port_value: {{.Admin}} } } }
static_resources:
  listeners:
  - name: web
    address: { socket_address: { address: 127.0.0.1, port_value: {{.Port}} } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: web
          route_config: { virtual_hosts: [ { name: all, domains: ["*"], routes: [ { match: { prefix: / }, route: { cluster: echo } } ] } ] }
          http_filters:
          - name: example.filters.http.apikey
            typed_config:
              "@type": type.googleapis.com/xds.type.v3.TypedStruct
              type_url: type.googleapis.com/example.apikey.Config
              value: { header: x-api-key, keys: [ "k-123" ] }
          - { name: envoy.filters.http.router, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } }
  clusters:
  - name: echo
    type: STATIC
    load_assignment: { cluster_name: echo, endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: {{.Backend}} } } } } ] } ] }
`

// A filter written outside meshgate, in its own package, is served by a
// custom build (a main that imports meshgate's command and the filter):
// the test builds examples/apikey/cmd/meshgate-apikey into its own binary
// and calls it over the network; the stock binary refuses the same config.
func TestCustomBuild_APIKeyFilter(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "meshgate-apikey")
	build := exec.Command("go", "build", "-o", bin, "./examples/apikey/cmd/meshgate-apikey")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the custom binary: %v\n%s", err, out)
	}
	b := startBackend(t, "echo")
	_, backendPort, _ := net.SplitHostPort(b.HTTPAddr)
	adminAddr, addr := freeAddr(t), freeAddr(t)
	cfg := filepath.Join(t.TempDir(), "envoy.yaml")
	if err := os.WriteFile(cfg, render(t, apiKeyConfig, map[string]string{"Admin": port(adminAddr), "Port": port(addr), "Backend": backendPort}), 0o600); err != nil {
		t.Fatal(err)
	}

	stock, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(stock, "validate", "-c", cfg).CombinedOutput()
	if err == nil || !strings.Contains(string(out), `"example.filters.http.apikey"`) {
		t.Errorf("the stock binary on the custom filter's config: %v %s; want it refused, naming the filter", err, out)
	}

	var logs syncBuffer
	p := exec.Command(bin, "run", "-c", cfg)
	p.Stdout, p.Stderr = &logs, &logs
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.Process.Kill()
		_ = p.Wait()
		if t.Failed() {
			t.Logf("meshgate-apikey logs:\n%s", logs.String())
		}
	})
	hc := httpClient(t)
	waitFor(t, "the custom build to be ready", func() bool {
		resp, err := hc.Get("http://" + adminAddr + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})

	call := func(key string) (int, []byte) {
		req, _ := http.NewRequest("GET", "http://"+addr+"/echo/x", nil)
		if key != "" {
			req.Header.Set("X-Api-Key", key)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}
	for _, key := range []string{"", "wrong"} {
		if code, body := call(key); code != 401 || !strings.Contains(string(body), "UNAUTHENTICATED") {
			t.Errorf("key %q: %d %s, want 401 UNAUTHENTICATED", key, code, body)
		}
	}
	code, body := call("k-123")
	var e echoed
	if code != 200 || json.Unmarshal(body, &e) != nil || e.Server != "echo" {
		t.Fatalf("the right key: %d %s, want the backend's answer", code, body)
	}
	if _, leaked := e.Headers["x-api-key"]; leaked || len(e.Headers) == 0 {
		t.Errorf("the backend saw headers %v: want some, without the key", e.Headers)
	}
}
