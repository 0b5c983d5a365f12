package integration

import (
	"bytes"
	"context"
	"io"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/meshgate/meshgate/config"
	demov1 "github.com/meshgate/meshgate/proto/demo/v1"
	"github.com/meshgate/meshgate/server"
	"github.com/meshgate/meshgate/server/admin"
	"github.com/meshgate/meshgate/server/stats"
)

// /stats/prometheus passes Prometheus's own linter (promtool check
// metrics, from Debian's prometheus package, which `make peers`
// installs), with every metric family present: requests, clusters,
// access log, overload, the connection cap, and Istio's standard request
// metrics (whose duration is in milliseconds by Istio's name: the one
// complaint allowed).
func TestMetrics_PromtoolCheck(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skipf("promtool is not installed (%v): `make peers` installs Debian's prometheus package", err)
	}
	b := startBackend(t, "b1")
	srv := server.New(server.Options{DrainTimeout: 2 * time.Second, Overload: config.OverloadSettings{
		MaxHeapBytes: 1 << 40, MaxActiveDownstreamConnections: 1000, RefreshInterval: 50 * time.Millisecond},
		IstioMetrics: &stats.Workload{Name: "meshgate-test", Namespace: "istio-system"}})
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	cfg := strings.Replace(string(render(t, baseConfig, baseData{GRPC: b.GRPCAddr, HTTP: b.HTTPAddr})),
		"    virtual_hosts:", "    access_log: [ { path: \""+t.TempDir()+"/access.log\" } ]\n    virtual_hosts:", 1)
	l, err := config.Load([]byte(cfg), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := config.NewStore(srv).Apply(context.Background(), config.Update{Source: "file", Replace: config.ResourceTypes, Resources: l.Resources}); err != nil {
		t.Fatal(err)
	}
	client := demoClient(t, srv.ListenerAddr("main"))
	for range 3 { // the first through a handler, the next relayed
		if _, err := client.Echo(context.Background(), &demov1.EchoRequest{Message: "m"}); err != nil {
			t.Fatal(err)
		}
	}
	get, err := httpClient(t).Get("http://" + srv.ListenerAddr("main") + "/echo")
	if err != nil {
		t.Fatal(err)
	}
	get.Body.Close()
	adm := httptest.NewServer(admin.Handler(srv, srv.Metrics().Registry))
	t.Cleanup(adm.Close)
	resp, err := httpClient(t).Get(adm.URL + "/stats/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, family := range []string{"meshgate_http_requests_total", "meshgate_cluster_upstream_rq_total", "meshgate_access_log_dropped_total",
		"meshgate_overload_action_active", "meshgate_downstream_cx_overload_reject_total", "meshgate_cluster_membership_hosts"} {
		if !bytes.Contains(body, []byte("\n"+family)) {
			t.Errorf("no %s in /stats/prometheus", family)
		}
	}
	// Istio's metrics, with its standard labels: the three gRPC calls and
	// the HTTP one.
	for _, want := range []string{
		`destination_service="grpc",destination_service_name="grpc",destination_service_namespace="unknown",`,
		`grpc_response_status="0",reporter="source",request_protocol="grpc",response_code="200",response_flags="-",`,
		`source_workload="meshgate-test",source_workload_namespace="istio-system"} 3`,
		`request_protocol="http",response_code="200"`,
	} {
		found := false
		for _, line := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(line, "istio_requests_total{") && strings.Contains(line, want) {
				found = true
			}
		}
		if !found {
			t.Errorf("no istio_requests_total line with %s", want)
		}
	}
	for _, family := range []string{"istio_request_duration_milliseconds_bucket", "istio_request_bytes_sum", "istio_response_bytes_count"} {
		if !bytes.Contains(body, []byte("\n"+family+"{")) {
			t.Errorf("no %s in /stats/prometheus", family)
		}
	}
	// promtool's one complaint may be Istio's own name: the dashboards
	// read istio_request_duration_milliseconds, not a _seconds metric.
	check := exec.Command(promtool, "check", "metrics")
	check.Stdin = bytes.NewReader(body)
	out, err := check.CombinedOutput()
	const istioName = `istio_request_duration_milliseconds use base unit "seconds" instead of "milliseconds"`
	var problems []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line != "" && line != istioName {
			problems = append(problems, line)
		}
	}
	if len(problems) > 0 || (err != nil && !strings.Contains(string(out), istioName)) {
		t.Errorf("promtool check metrics: %v\n%s", err, strings.Join(problems, "\n"))
	}
}
