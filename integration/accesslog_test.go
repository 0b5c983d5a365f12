package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	demov1 "github.com/meshgate/meshgate/proto/demo/v1"
)

const accessLogConfig = `
listeners:
  - name: main
    address: 127.0.0.1:0
    access_log:
      - { path: "{{.Dir}}/default.log" }
      - { path: "{{.Dir}}/custom.log", format: "%REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %GRPC_STATUS% %RESPONSE_FLAGS% %UPSTREAM_CLUSTER% %REQ(X-REQUEST-ID)%\n" }
      - path: "{{.Dir}}/json.log"
        json_format: { code: "%RESPONSE_CODE%", flags: "%RESPONSE_FLAGS%", grpc: "%GRPC_STATUS(NUMBER)%", path: "%REQ(:PATH)%", host: "%UPSTREAM_HOST%" }
    virtual_hosts:
      - routes:
          - match: { prefix: /demo.v1.DemoService/ClientStream, grpc: true }
            cluster: dead_grpc
          - match: { prefix: /demo.v1.DemoService/, grpc: true }
            cluster: grpc
          - match: { prefix: /echo }
            cluster: http
          - match: { prefix: /dead }
            cluster: dead
clusters:
  - { name: grpc, protocol: grpc, endpoints: [ "{{.GRPC}}" ] }
  - { name: http, endpoints: [ "{{.HTTP}}" ] }
  - { name: dead, endpoints: [ "127.0.0.1:1" ] }
  - { name: dead_grpc, protocol: grpc, endpoints: [ "127.0.0.1:1" ] }
`

// readLogLine waits (the writer flushes every second) for the line of a
// log that contains marker.
func readLogLine(t *testing.T, path, marker string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, marker) {
				return l
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no line with %q in:\n%s", filepath.Base(path), marker, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// One request, one line in each access log, in each format: Envoy's
// default, a custom text format and JSON; a gRPC call's status and a dead
// upstream's response flag (UF) among the fields.
func TestAccessLog_Formats(t *testing.T) {
	b := startBackend(t, "b1")
	dir := t.TempDir()
	g := startGateway(t, render(t, accessLogConfig, map[string]string{"Dir": dir, "GRPC": b.GRPCAddr, "HTTP": b.HTTPAddr}))
	addr := g.addr("main")
	c := httpClient(t)

	req, _ := http.NewRequest("GET", "http://"+addr+"/echo?log=1", nil)
	req.Header.Set("X-Request-Id", "log-req-1")
	req.Header.Set("User-Agent", "access-log-test")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	dead, err := c.Get("http://" + addr + "/dead")
	if err != nil {
		t.Fatal(err)
	}
	dead.Body.Close()
	client := demoClient(t, addr)
	for range 3 { // the later ones relayed
		if _, err := client.Echo(context.Background(), &demov1.EchoRequest{Message: "log"}); err != nil {
			t.Fatal(err)
		}
	}
	cs, err := client.ClientStream(context.Background())
	if err == nil {
		_, err = cs.CloseAndRecv()
	}
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("a call to a dead gRPC upstream: %v, want UNAVAILABLE", err)
	}

	// Envoy's default format, field by field.
	line := readLogLine(t, filepath.Join(dir, "default.log"), "log-req-1")
	def := regexp.MustCompile(`^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] "GET /echo\?log=1 HTTP/1.1" 200 - 0 (\d+) \d+ - "127\.0\.0\.1" "access-log-test" "log-req-1" "` +
		regexp.QuoteMeta(addr) + `" "` + regexp.QuoteMeta(b.HTTPAddr) + `"$`)
	if m := def.FindStringSubmatch(line); m == nil || m[1] == "0" {
		t.Errorf("default format line:\n%s\nwant it to match %s", line, def)
	}

	// The custom format: HTTP, the dead upstream, gRPC relayed and failed.
	custom := filepath.Join(dir, "custom.log")
	for marker, want := range map[string]*regexp.Regexp{
		"GET /echo?log=1": regexp.MustCompile(`^GET /echo\?log=1 200 - - http log-req-1$`),
		"GET /dead":       regexp.MustCompile(`^GET /dead 503 - UF dead [0-9a-f-]{36}$`),
		"Echo 200":        regexp.MustCompile(`^POST /demo.v1.DemoService/Echo 200 OK - grpc [0-9a-f-]{36}$`),
		"ClientStream":    regexp.MustCompile(`^POST /demo.v1.DemoService/ClientStream 200 Unavailable UF dead_grpc [0-9a-f-]{36}$`),
	} {
		if line := readLogLine(t, custom, marker); !want.MatchString(line) {
			t.Errorf("custom format line %q, want %s", line, want)
		}
	}
	b2, _ := os.ReadFile(custom)
	if n := strings.Count(string(b2), "POST /demo.v1.DemoService/Echo "); n != 3 {
		t.Errorf("%d lines for 3 Echo calls (one through a handler, two relayed):\n%s", n, b2)
	}

	// JSON: typed values.
	var entry map[string]any
	if err := json.Unmarshal([]byte(readLogLine(t, filepath.Join(dir, "json.log"), `"path":"/dead"`)), &entry); err != nil {
		t.Fatal(err)
	}
	if entry["code"] != 503.0 || entry["flags"] != "UF" || entry["grpc"] != nil || entry["host"] != "127.0.0.1:1" {
		t.Errorf("JSON line for the dead upstream: %v", entry)
	}
	if err := json.Unmarshal([]byte(readLogLine(t, filepath.Join(dir, "json.log"), "ClientStream")), &entry); err != nil {
		t.Fatal(err)
	}
	if entry["code"] != 200.0 || entry["grpc"] != 14.0 || entry["flags"] != "UF" {
		t.Errorf("JSON line for the dead gRPC upstream: %v", entry)
	}
}
