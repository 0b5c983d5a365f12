package integration

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pythonApp is the local application of the sidecar tests: Python's
// http.server answering JSON (no framework, no Dubbo SDK).
const pythonApp = `
import http.server, json, os, sys, urllib.request

class App(http.server.BaseHTTPRequestHandler):
    def answer(self, status, body, ctype="application/json"):
        data = json.dumps(body).encode() if ctype == "application/json" else body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        # An attachment for the consumer (meshgate passes these back).
        self.send_header("Dubbo-Attachment-Served-By", "python")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health":
            self.answer(200, {"status": "ok"})
        else:
            self.answer(404, {"error": "no route " + self.path})

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        args = json.loads(self.rfile.read(n) or b"null")
        if self.path == "/greet":
            self.answer(200, "Hello %s from python (trace %s)" % (args["name"], self.headers.get("traceparent", "none")[:2]))
        elif self.path == "/relay":
            # Calls a Dubbo provider back through the sidecar's outbound
            # port: plain HTTP/JSON, no Dubbo SDK.
            req = urllib.request.Request(os.environ["OUTBOUND_URL"], data=json.dumps([args["name"]]).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=5) as resp:
                self.answer(200, "python relayed: " + json.loads(resp.read()))
        elif self.path == "/Boom":
            self.answer(500, {"error": {"message": "the database is down: " + args[0]}})
        elif self.path == "/Check":
            # grpc.health.v1.Health/Check in proto3's JSON mapping.
            service = (args or {}).get("service", "")
            if service == "boom":
                self.answer(500, {"error": {"message": "the health store is down"}})
            elif service == "shape":
                self.answer(200, {"status": {"not": "an enum"}})
            else:
                self.answer(200, {"status": "NOT_SERVING" if service == "down" else "SERVING"})
        elif self.path == "/Shape":
            self.answer(200, {"not": "a number"})
        elif self.path == "/Html":
            self.answer(200, "<html>oops</html>", "text/html")
        else:
            self.answer(404, {"error": "no route " + self.path})

    def log_message(self, *a):
        pass

srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), App)
print(srv.server_address[1], flush=True)
srv.serve_forever()
`

// startPythonApp runs pythonApp and returns its address.
func startPythonApp(t *testing.T) string {
	t.Helper()
	addr, _ := startPythonAppProcess(t)
	return addr
}

// startPythonAppProcess runs pythonApp and returns its address and
// process (killed with the test). env is added to its environment.
func startPythonAppProcess(t *testing.T, env ...string) (string, *os.Process) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is needed for the sidecar's local app: %v", err)
	}
	script := filepath.Join(t.TempDir(), "app.py")
	if err := os.WriteFile(script, []byte(pythonApp), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, script)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	port := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		port <- strings.TrimSpace(line)
	}()
	select {
	case p := <-port:
		return "127.0.0.1:" + p, cmd.Process
	case <-time.After(10 * time.Second):
		t.Fatal("the Python app did not start")
	}
	return "", nil
}

const sidecarInboundConfig = `
dubbo_listeners:
  - name: dubbo-in
    address: 127.0.0.1:0
    routes: []
    local_app:
      cluster: app
      services:
        - interface: org.apache.dubbo.samples.GreeterService
          version: 1.0.0
          group: g1
          methods:
            - { name: SayHello, param_types: [java.lang.String], param_names: [name], return_type: java.lang.String, path: /greet }
            - { name: Boom, param_types: [java.lang.String], return_type: java.lang.String }
            - { name: Html, param_types: [java.lang.String], return_type: java.lang.String }
            - { name: Shape, param_types: [java.lang.String], return_type: long }
clusters:
  - name: app
    endpoints: [ "{{.App}}" ]
`

// The sidecar's inbound side: a dubbo-go v3.3.2 consumer calls a Python
// HTTP app through meshgate's Dubbo listener, over Dubbo2 and over Triple
// (non-IDL, hessian2) on the same port: a declared method is answered by
// the app (its JSON string as java.lang.String), the app's failure and its
// non-JSON answer reach the consumer as exceptions (Triple: a status)
// saying what happened, an undeclared method is a NoSuchMethodException
// naming it, and the listener keeps serving after each.
func TestSidecar_DubboConsumerCallsPythonApp(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a dubbo-go consumer and a Python app; skipped with -short")
	}
	app := startPythonApp(t)
	g := startGateway(t, render(t, sidecarInboundConfig, map[string]string{"App": app}))
	tests := []struct {
		method, arg string
		result      string // "" when an error is wanted
		errParts    []string
	}{
		{method: "SayHello", arg: "dubbo-go", result: "Hello dubbo-go from python (trace no)"},
		{method: "Boom", arg: "x", errParts: []string{"java.lang.RuntimeException", "the local app answered Boom with HTTP 500: the database is down: x"}},
		{method: "Html", arg: "x", errParts: []string{"java.lang.IllegalStateException", `not JSON: <html>oops</html>`}},
		{method: "Shape", arg: "x", errParts: []string{"java.lang.IllegalStateException", "the local app's answer to Shape is not a long"}},
		{method: "Missing", arg: "x", errParts: []string{"java.lang.NoSuchMethodException", "org.apache.dubbo.samples.GreeterService.Missing(java.lang.String)"}},
		{method: "SayHello", arg: "again", result: "Hello again from python (trace no)"},
	}
	for _, proto := range []string{"dubbo", "tri"} {
		t.Run(proto, func(t *testing.T) {
			url := proto + "://" + g.addr("dubbo-in")
			for _, tt := range tests {
				got := dubboGoCall(t, "-mode", proto, "-url", url, "-iface", "org.apache.dubbo.samples.GreeterService", "-version", "1.0.0", "-group", "g1",
					"-method", tt.method, "-arg", tt.arg)
				if tt.result != "" {
					if got["result"] != tt.result {
						t.Errorf("%s(%q): %v, want result %q", tt.method, tt.arg, got, tt.result)
					}
					continue
				}
				msg, _ := got["error"].(string)
				for _, part := range tt.errParts {
					if !strings.Contains(msg, part) {
						t.Errorf("%s(%q): error %q, want it to say %q", tt.method, tt.arg, msg, part)
					}
				}
			}
		})
	}
}
