package admin_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/internal/testpki"
	"github.com/meshgate/meshgate/server"
	"github.com/meshgate/meshgate/server/admin"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// setup runs a gateway with one route to an HTTP backend and sends it a
// request, so that counters have something in them.
func setup(t *testing.T) (*server.Server, http.Handler) {
	t.Helper()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(backend.Close)
	srv := server.New(server.Options{})
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	l, err := config.Load([]byte(`
listeners: [{name: web, address: "127.0.0.1:0", virtual_hosts: [{name: vh, routes: [{name: all, match: {prefix: /}, cluster: be}]}]}]
clusters: [{name: be, endpoints: ["`+strings.TrimPrefix(backend.URL, "http://")+`"]}]
`), "")
	if err != nil {
		t.Fatal(err)
	}
	store := config.NewStore(srv)
	if err := store.Apply(context.Background(), config.Update{Source: "file", Version: "file:abc", Replace: config.ResourceTypes, Resources: l.Resources}); err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	resp, err := (&http.Client{Transport: tr}).Get("http://" + srv.ListenerAddr("web") + "/x")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return srv, admin.Handler(srv, srv.Metrics().Registry)
}

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec.Code, rec.Body.String()
}

func TestAdmin_Ready(t *testing.T) {
	srv, h := setup(t)
	if code, body := get(t, h, "/ready"); code != 200 || strings.TrimSpace(body) != "LIVE" {
		t.Errorf("/ready = %d %q, want 200 LIVE", code, body)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, h, "/ready"); code != 503 {
		t.Errorf("/ready while shut down = %d, want 503", code)
	}
}

// /config_dump is an envoy.admin.v3.ConfigDump that Envoy tooling can read,
// with each resource's version.
func TestAdmin_ConfigDump(t *testing.T) {
	_, h := setup(t)
	code, body := get(t, h, "/config_dump")
	if code != 200 {
		t.Fatalf("/config_dump = %d", code)
	}
	var dump adminv3.ConfigDump
	if err := protojson.Unmarshal([]byte(body), &dump); err != nil {
		t.Fatalf("/config_dump is not a ConfigDump: %v", err)
	}
	var clusters adminv3.ClustersConfigDump
	var listeners adminv3.ListenersConfigDump
	if len(dump.GetConfigs()) != 5 || dump.GetConfigs()[0].UnmarshalTo(&clusters) != nil || dump.GetConfigs()[1].UnmarshalTo(&listeners) != nil {
		t.Fatalf("configs = %v, want clusters, listeners, routes, endpoints, secrets", dump.GetConfigs())
	}
	if len(clusters.GetDynamicActiveClusters()) != 1 {
		t.Fatalf("clusters = %v", clusters.GetDynamicActiveClusters())
	}
	dc := clusters.GetDynamicActiveClusters()[0]
	var c clusterv3.Cluster
	if err := dc.GetCluster().UnmarshalTo(&c); err != nil || c.GetName() != "be" || dc.GetVersionInfo() != "file:abc" {
		t.Errorf("cluster %q version %q (%v), want be at file:abc", c.GetName(), dc.GetVersionInfo(), err)
	}
	if l := listeners.GetDynamicListeners(); len(l) != 1 || l[0].GetName() != "web" || l[0].GetActiveState().GetVersionInfo() != "file:abc" {
		t.Errorf("listeners = %v, want web at file:abc", l)
	}
}

// Secrets are dumped as Envoy dumps them: the certificate shown, the
// private key "[redacted]".
func TestAdmin_ConfigDumpRedactsSecrets(t *testing.T) {
	srv, h := setup(t)
	ca := testpki.NewCA(t, "mesh")
	leaf := ca.Issue(t, testpki.LeafOptions{URIs: []string{"spiffe://cluster.local/ns/a/sa/b"}})
	store := config.NewStore(srv)
	sec := &tlsv3.Secret{Name: "default", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: leaf.CertPEM}},
		PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: leaf.KeyPEM}},
	}}}
	if err := store.Apply(context.Background(), config.Update{Source: "identity", Replace: []string{config.SecretType}, Resources: []proto.Message{sec}}); err != nil {
		t.Fatal(err)
	}
	_, body := get(t, h, "/config_dump")
	if strings.Contains(body, "PRIVATE KEY") || strings.Contains(body, base64.StdEncoding.EncodeToString(leaf.KeyPEM)[:40]) {
		t.Fatalf("/config_dump shows the private key:\n%s", body)
	}
	var dump adminv3.ConfigDump
	if err := protojson.Unmarshal([]byte(body), &dump); err != nil {
		t.Fatal(err)
	}
	var secrets adminv3.SecretsConfigDump
	if err := dump.GetConfigs()[4].UnmarshalTo(&secrets); err != nil {
		t.Fatal(err)
	}
	var got tlsv3.Secret
	if len(secrets.GetDynamicActiveSecrets()) != 1 || secrets.GetDynamicActiveSecrets()[0].GetSecret().UnmarshalTo(&got) != nil {
		t.Fatalf("secrets = %v, want default", secrets.GetDynamicActiveSecrets())
	}
	if k := got.GetTlsCertificate().GetPrivateKey().GetInlineString(); k != "[redacted]" {
		t.Errorf("private key shown as %q, want [redacted]", k)
	}
	if !bytes.Equal(got.GetTlsCertificate().GetCertificateChain().GetInlineBytes(), leaf.CertPEM) {
		t.Errorf("certificate chain not shown")
	}
}

func TestAdmin_Clusters(t *testing.T) {
	_, h := setup(t)
	_, text := get(t, h, "/clusters")
	for _, want := range []string{"be::upstream_rq_total::1", "::rq_total::1", "::cx_total::1", "::health_flags::healthy"} {
		if !strings.Contains(text, want) {
			t.Errorf("/clusters lacks %q:\n%s", want, text)
		}
	}
	_, js := get(t, h, "/clusters?format=json")
	var cs adminv3.Clusters
	if err := protojson.Unmarshal([]byte(js), &cs); err != nil {
		t.Fatalf("/clusters?format=json: %v", err)
	}
	if len(cs.GetClusterStatuses()) != 1 || len(cs.GetClusterStatuses()[0].GetHostStatuses()) != 1 {
		t.Errorf("cluster statuses = %v", cs.GetClusterStatuses())
	}
}

func TestAdmin_Prometheus(t *testing.T) {
	_, h := setup(t)
	_, text := get(t, h, "/stats/prometheus")
	for _, want := range []string{
		`meshgate_http_requests_total{cluster="be",code="200",grpc_status="",listener="web",route="all"} 1`,
		`meshgate_http_request_duration_seconds_count{cluster="be",listener="web",route="all"} 1`,
		`meshgate_cluster_upstream_rq_total{cluster="be"} 1`,
		`meshgate_cluster_membership_hosts{cluster="be"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/stats/prometheus lacks %q", want)
		}
	}
}
