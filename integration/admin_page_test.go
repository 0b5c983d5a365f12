package integration

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	demov1 "github.com/meshgate/meshgate/proto/demo/v1"
	"github.com/meshgate/meshgate/server/admin"
)

// The admin page, loaded in headless Chromium: the gateway's state at a
// glance — readiness, listeners with their routes, clusters with their
// hosts' health and counts. MESHGATE_ADMIN_SCREENSHOT=path also saves the
// screenshot there (the README's is made so).
func TestAdminPage_InChromium(t *testing.T) {
	deps := browserSetup(t, "admin.mjs")

	be := startBackend(t, "b1")
	g := startGateway(t, render(t, baseConfig, baseData{GRPC: be.GRPCAddr, HTTP: be.HTTPAddr}))
	client := demoClient(t, g.addr("main"))
	for range 3 {
		if _, err := client.Echo(context.Background(), &demov1.EchoRequest{Message: "admin"}); err != nil {
			t.Fatal(err)
		}
	}
	adm := httptest.NewServer(admin.Handler(g.srv, g.srv.Metrics().Registry))
	t.Cleanup(adm.Close)

	shot := filepath.Join(t.TempDir(), "admin.png")
	if p := os.Getenv("MESHGATE_ADMIN_SCREENSHOT"); p != "" {
		shot = p
	}
	run := exec.Command("node", "admin.mjs")
	run.Dir = deps
	run.Env = append(os.Environ(), "PAGE_URL="+adm.URL+"/", "CHROMIUM="+chromiumPath, "SHOT="+shot)
	var stderr strings.Builder
	run.Stderr = &stderr
	out, err := run.Output()
	if err != nil {
		t.Fatalf("the browser driver: %v\n%s", err, stderr.String())
	}
	var page struct {
		Title, Text string
		Logs        []string
	}
	if err := json.Unmarshal(out, &page); err != nil {
		t.Fatalf("the driver printed %q: %v", out, err)
	}
	if page.Title != "meshgate admin" {
		t.Errorf("title %q; driver logs: %v", page.Title, page.Logs)
	}
	for _, want := range []string{
		"State: LIVE",
		"main\t" + g.addr("main") + "\tSERVING", // the listener row
		"prefix /demo.v1.DemoService/ → grpc",   // one of its routes
		"prefix /echo → http",
		be.GRPCAddr + "\thealthy", // the gRPC cluster's host
		be.HTTPAddr + "\thealthy", // the HTTP cluster's host
		"grpc http2 · requests 3", // the cluster's counters: the three calls
	} {
		if !strings.Contains(page.Text, want) {
			t.Errorf("the page does not say %q; it says:\n%s", want, page.Text)
		}
	}
	if st, err := os.Stat(shot); err != nil || st.Size() < 10_000 {
		t.Errorf("screenshot %s: %v (%d bytes)", shot, err, st.Size())
	}
}
