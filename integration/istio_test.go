package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/internal/demo"
	demov1 "github.com/meshgate/meshgate/proto/demo/v1"
	"github.com/meshgate/meshgate/server"
	"github.com/meshgate/meshgate/server/stats"
	"github.com/meshgate/meshgate/xds"
)

// istioVersion is the istio.io/istio version integration/istiod pins; the
// built harness is cached under it.
const istioVersion = "v0.0.0-20260827124520-eed52ebb66ad"

// istiodBinary builds Istio's xDS server harness (integration/istiod) once
// and caches it in $HOME/.cache/meshgate: the cold build takes minutes.
var istiodBinary = sync.OnceValues(func() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	// Keyed by Istio's version and the harness's own source, so that a
	// change to either rebuilds it.
	h := sha256.New()
	srcs, err := filepath.Glob("istiod/*.go")
	if err != nil {
		return "", err
	}
	for _, f := range append(srcs, "istiod/go.mod", "istiod/go.sum") {
		h.Write([]byte(f))
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		h.Write(b)
	}
	bin := filepath.Join(home, ".cache", "meshgate", fmt.Sprintf("istiod-%s-%x", istioVersion[len(istioVersion)-12:], h.Sum(nil)[:4]), "istiod")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	start := time.Now()
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = "istiod"
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the istiod harness: %v\n%s", err, out)
	}
	fmt.Fprintf(os.Stderr, "built the istiod harness in %v (cached at %s)\n", time.Since(start).Round(time.Second), bin)
	return bin, nil
})

// istiod is Istio's discovery server running as a child process.
type istiod struct {
	t       *testing.T
	cmd     *exec.Cmd
	xds     string
	control string
	logs    *syncBuffer

	// With istiodOptions.Secure: istiod's secure port (TLS; the CA's
	// IstioCertificateService and ADS, like 15012; clients verify it with
	// rootPEM and ServerName istiod.istio-system.svc), the mesh root and
	// the file holding it (root-cert.pem in caDir).
	secure   string
	rootPEM  []byte
	rootFile string
	caDir    string
}

// istiodOptions are the options of startIstiodWith.
type istiodOptions struct {
	// XDSAddr is the plaintext xDS address; empty: a free port.
	XDSAddr string
	// Secure runs Istio's CA and istiod's secure port (TLS, service
	// account token or mesh client certificate authentication).
	Secure bool
	// SecureAddr is the secure port's address; empty: a free port.
	SecureAddr string
	// CADir keeps the CA (ca-cert.pem, ca-key.pem, root-cert.pem) and the
	// minted tokens; reuse it to restart istiod with the same mesh root and
	// tokens. Empty: a new temporary directory.
	CADir string
	// CertTTL is the workload certificate TTL the CA grants to a CSR that
	// asks for none (0: Istio's default, 24h).
	CertTTL time.Duration
	// MaxCertTTL is the longest TTL a CSR may ask for (0: CertTTL); the CA
	// rejects longer requests with InvalidArgument.
	MaxCertTTL time.Duration
	// Mesh is MeshConfig YAML applied over Istio's defaults (the istio
	// ConfigMap's mesh key), e.g. extensionProviders.
	Mesh string
	// Env adds Istio feature flags (NAME=value) to istiod's environment.
	Env []string
}

// mintToken returns a new service-account token for ns/sa that istiod's
// CA and secure xDS accept (the fake cluster's TokenReview knows it).
func (i *istiod) mintToken(ns, sa string) string {
	i.t.Helper()
	body, _ := json.Marshal(map[string]string{"namespace": ns, "serviceAccount": sa})
	return strings.TrimSpace(i.post("/token", "application/json", body))
}

// putSecret creates or updates the kubernetes.io/tls Secret ns/name in
// istiod's cluster (tls.crt, tls.key and, when caPEM is not empty, ca.crt)
// and returns once istiod has seen it; istiod then pushes it to proxies
// over SDS (kubernetes://name and kubernetes://name-cacert).
func (i *istiod) putSecret(ns, name string, certPEM, keyPEM, caPEM []byte) {
	i.t.Helper()
	body, _ := json.Marshal(map[string]string{"namespace": ns, "name": name,
		"cert": string(certPEM), "key": string(keyPEM), "ca": string(caPEM)})
	i.post("/secret", "application/json", body)
}

func (i *istiod) post(path, contentType string, body []byte) string {
	i.t.Helper()
	resp, err := http.Post("http://"+i.control+path, contentType, bytes.NewReader(body))
	if err != nil {
		i.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		i.t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		i.t.Fatalf("istiod %s: %s %s", path, resp.Status, b)
	}
	return string(b)
}

// lastNACKs returns, from istiod's own /debug/syncz, the error detail of
// the last NACK of each type (by type URL) that istiod received from the
// connected proxy.
func (i *istiod) lastNACKs(t *testing.T) map[string]string {
	t.Helper()
	resp, err := http.Get("http://" + i.control + "/debug/syncz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var syncz []struct {
		ProxyID   string `json:"proxy"`
		Resources map[string]struct {
			LastError string `json:"lastError"`
		} `json:"resources"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&syncz); err != nil {
		t.Fatalf("istiod /debug/syncz: %v", err)
	}
	out := map[string]string{}
	for _, p := range syncz {
		for typ, st := range p.Resources {
			if st.LastError != "" {
				out[typ] = st.LastError
			}
		}
	}
	return out
}

func startIstiod(t *testing.T, yaml string) *istiod {
	t.Helper()
	return startIstiodAt(t, yaml, freeAddr(t))
}

// startIstiodAt starts istiod serving xDS on xdsAddr.
func startIstiodAt(t *testing.T, yaml, xdsAddr string) *istiod {
	t.Helper()
	return startIstiodWith(t, yaml, istiodOptions{XDSAddr: xdsAddr})
}

// startIstiodWith starts istiod with opts.
func startIstiodWith(t *testing.T, yaml string, opts istiodOptions) *istiod {
	t.Helper()
	bin, err := istiodBinary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "istio.yaml")
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	if opts.XDSAddr == "" {
		opts.XDSAddr = freeAddr(t)
	}
	logs := &syncBuffer{}
	i := &istiod{t: t, xds: opts.XDSAddr, control: freeAddr(t), logs: logs}
	args := []string{"-addr", i.xds, "-control", i.control, "-config", cfg}
	if opts.Secure {
		if opts.SecureAddr == "" {
			opts.SecureAddr = freeAddr(t)
		}
		if opts.CADir == "" {
			opts.CADir = filepath.Join(dir, "ca")
		}
		i.secure, i.caDir, i.rootFile = opts.SecureAddr, opts.CADir, filepath.Join(opts.CADir, "root-cert.pem")
		args = append(args, "-secure", i.secure, "-ca-dir", i.caDir)
		if opts.CertTTL > 0 {
			args = append(args, "-cert-ttl", opts.CertTTL.String())
		}
		if opts.MaxCertTTL > 0 {
			args = append(args, "-max-cert-ttl", opts.MaxCertTTL.String())
		}
	}
	if opts.Mesh != "" {
		meshFile := filepath.Join(dir, "mesh.yaml")
		if err := os.WriteFile(meshFile, []byte(opts.Mesh), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-mesh", meshFile)
	}
	i.cmd = exec.Command(bin, args...)
	i.cmd.Dir = dir
	i.cmd.Env = append(os.Environ(), opts.Env...)
	stdout, err := i.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	i.cmd.Stderr = logs
	if err := i.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = i.cmd.Process.Kill()
		_ = i.cmd.Wait()
		if t.Failed() {
			t.Logf("istiod logs (tail):\n%s", tail(logs.String(), 40))
		}
	})
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "READY ") {
				ready <- nil
				_, _ = io.Copy(io.Discard, stdout)
				return
			}
		}
		ready <- fmt.Errorf("istiod exited before READY")
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("istiod not ready within 60s")
	}
	if opts.Secure {
		if i.rootPEM, err = os.ReadFile(i.rootFile); err != nil {
			t.Fatal(err)
		}
	}
	return i
}

// apply replaces istiod's Istio config.
func (i *istiod) apply(yaml string) {
	i.t.Helper()
	resp, err := http.Post("http://"+i.control+"/config", "application/yaml", strings.NewReader(yaml))
	if err != nil {
		i.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		i.t.Fatalf("istiod rejected the config: %s %s", resp.Status, b.String())
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// startIstioGateway runs the data plane with an ADS client that presents
// itself as Istio's ingress gateway.
func startIstioGateway(t *testing.T, xdsAddr string, delta bool) *xdsGateway {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv := server.New(server.Options{Logger: log, DrainTimeout: 2 * time.Second,
		IstioMetrics: &stats.Workload{Name: "istio-ingressgateway", Namespace: "istio-system"}})
	store := config.NewStore(srv)
	node, err := config.IstioNode(config.IstioNodeConfig{})
	if err != nil {
		t.Fatal(err)
	}
	client := xds.New(store, xds.Options{Address: xdsAddr, Node: node, InitialFetchTimeout: 5 * time.Second,
		BackoffBase: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond, Logger: log, Registerer: srv.Metrics().Registry,
		Delta: delta})
	ctx, cancel := context.WithCancel(context.Background())
	g := &xdsGateway{srv: srv, client: client, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(g.done)
		_ = client.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-g.done
		_ = srv.Shutdown(context.Background())
	})
	return g
}

// istioConfig: a Gateway on Port, a ServiceEntry "echo" with two STATIC
// endpoints (labels version v1 / v2), a DestinationRule with subsets and
// LEAST_REQUEST, and a VirtualService splitting /echo between the subsets
// and sending gRPC to the v1 backend's gRPC port.
const istioConfig = `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw, namespace: istio-system }
spec:
  selector: { istio: ingressgateway }
  servers:
  - port: { number: {{.Port}}, name: http, protocol: HTTP }
    hosts: ["*"]
{{if .WithEcho}}---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: echo, namespace: default }
spec:
  hosts: [echo.example.com]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - { number: 80, name: http, protocol: HTTP }
  - { number: 9000, name: grpc, protocol: GRPC }
  endpoints:
  - { address: 127.0.0.1, ports: { http: {{.V1HTTP}}, grpc: {{.V1GRPC}} }, labels: { version: v1 } }
  - { address: 127.0.0.1, ports: { http: {{.V2HTTP}}, grpc: {{.V2GRPC}} }, labels: { version: v2 } }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: by-dns, namespace: default }
spec:
  hosts: [dns.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [ { number: 80, name: http, protocol: HTTP } ]
  endpoints: [ { address: localhost, ports: { http: {{.V1HTTP}} } } ]
{{end}}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: echo, namespace: default }
spec:
  host: echo.example.com
  trafficPolicy:
    loadBalancer: { simple: LEAST_REQUEST }
    outlierDetection: { consecutive5xxErrors: 5, interval: 1s, baseEjectionTime: 30s }
    connectionPool: { http: { http2MaxRequests: 1000, maxRetries: 3 } }
  subsets:
  - { name: v1, labels: { version: v1 } }
  - name: v2
    labels: { version: v2 }
    trafficPolicy:
      loadBalancer: { consistentHash: { httpHeaderName: x-user } }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: echo, namespace: default }
spec:
  hosts: ["*"]
  gateways: [istio-system/gw]
  http:
  - match: [ { uri: { prefix: /dns } } ]
    rewrite: { uri: /echo/dns }
    route: [ { destination: { host: dns.example.com, port: { number: 80 } } } ]
  - match: [ { uri: { prefix: /demo.v1.DemoService/ } } ]
    route: [ { destination: { host: echo.example.com, subset: v1, port: { number: 9000 } } } ]
  - match: [ { uri: { prefix: /faulty } } ]
    fault: { delay: { fixedDelay: 200ms, percentage: { value: 100 } }, abort: { httpStatus: 418, percentage: { value: 100 } } }
    route: [ { destination: { host: echo.example.com, subset: v1, port: { number: 80 } } } ]
  - match: [ { uri: { prefix: /echo }, headers: { x-canary: { exact: "yes" } } } ]
    route: [ { destination: { host: echo.example.com, subset: v2, port: { number: 80 } } } ]
  - match: [ { uri: { prefix: /echo } } ]
    rewrite: { uri: /echo/rewritten }
    timeout: 5s
    retries: { attempts: 2, perTryTimeout: 2s, retryOn: "5xx,reset" }
    route:
    - { destination: { host: echo.example.com, subset: v1, port: { number: 80 } }, weight: {{.V1Weight}} }
    - { destination: { host: echo.example.com, subset: v2, port: { number: 80 } }, weight: {{.V2Weight}} }
`

type istioData struct {
	Port                           string
	V1HTTP, V1GRPC, V2HTTP, V2GRPC string
	V1Weight, V2Weight             int
	WithEcho                       bool
}

func newIstioData(t *testing.T, v1, v2 *demo.Backend) istioData {
	return istioData{
		Port:   port(freeAddr(t)),
		V1HTTP: port(v1.HTTPAddr), V1GRPC: port(v1.GRPCAddr),
		V2HTTP: port(v2.HTTPAddr), V2GRPC: port(v2.GRPCAddr),
		V1Weight: 80, V2Weight: 20, WithEcho: true,
	}
}

// waitIstio waits for the gateway's Istio listener to answer /echo.
func waitIstio(t *testing.T, g *xdsGateway, hc *http.Client, listener string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		addr := g.srv.ListenerAddr(listener)
		if addr != "" {
			if _, err := getEcho(hc, "http://"+addr+"/echo"); err == nil {
				return addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Istio listener %s did not serve /echo within 30s", listener)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Real Istio xDS generation drives the gateway: traffic reaches the
// ServiceEntry's backends with the VirtualService's routing; a weight change
// under load shifts traffic with no failed request; deleting the
// ServiceEntry removes its clusters.
func TestIstio_GatewayFromIstiod(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs Istio's discovery server; skipped with -short")
	}
	forBothProtocols(t, testGatewayFromIstiod)
}

func testGatewayFromIstiod(t *testing.T, delta bool) {
	v1, v2 := startBackend(t, "v1"), startBackend(t, "v2")
	data := newIstioData(t, v1, v2)
	ist := startIstiod(t, string(render(t, istioConfig, data)))
	g := startIstioGateway(t, ist.xds, delta)
	hc := httpClient(t)
	listener := "0.0.0.0_" + data.Port
	addr := waitIstio(t, g, hc, listener)
	if !g.client.Applied() {
		t.Fatal("serving before a complete config was applied")
	}

	t.Run("routing", func(t *testing.T) {
		counts := map[string]int{}
		for range 200 {
			e, err := getEcho(hc, "http://"+addr+"/echo")
			if err != nil {
				t.Fatal(err)
			}
			counts[e.Server]++
			if e.Path != "/echo/rewritten" {
				t.Fatalf("the backend saw path %q, want the VirtualService rewrite /echo/rewritten", e.Path)
			}
		}
		if counts["v1"] < 130 || counts["v1"] > 190 || counts["v2"] == 0 {
			t.Errorf("200 requests split %v, want about 80/20", counts)
		}
		// Istio's metrics name the destination as istiod described it: the
		// service from the cluster name, the workload from the endpoint
		// metadata (istio.workload).
		if line := istioRequestsLine(t, g, `destination_service="echo.example.com"`); line == "" {
			t.Error("no istio_requests_total series for echo.example.com")
		} else if !strings.Contains(line, `destination_workload_namespace="default"`) || strings.Contains(line, `destination_workload="unknown"`) ||
			!strings.Contains(line, `source_workload="istio-ingressgateway"`) || !strings.Contains(line, `response_code="200"`) {
			t.Errorf("istio_requests_total for echo: %s", line)
		} else {
			t.Logf("istio_requests_total{%s}", line)
		}
		req := newReq(t, "GET", "http://"+addr+"/echo", nil)
		req.Header.Set("X-Canary", "yes")
		_, body := do(t, hc, req)
		if !strings.Contains(string(body), `"server":"v2"`) {
			t.Errorf("header match x-canary: yes did not go to v2: %s", body)
		}
		// The VirtualService's fault (Envoy's per-route HTTPFault): delayed,
		// then aborted with its status.
		start := time.Now()
		fresp, fbody := do(t, hc, newReq(t, "GET", "http://"+addr+"/faulty", nil))
		if fresp.StatusCode != 418 || !strings.Contains(string(fbody), "fault filter abort") || time.Since(start) < 200*time.Millisecond {
			t.Errorf("the fault route: %d %s after %v, want 418 after at least 200ms", fresp.StatusCode, fbody, time.Since(start))
		}
		// A DNS ServiceEntry: a STRICT_DNS cluster resolving localhost.
		waitFor(t, "the DNS ServiceEntry to resolve", func() bool {
			e, err := getEcho(hc, "http://"+addr+"/dns")
			return err == nil && e.Server == "v1" && e.Path == "/echo/dns"
		})
		resp, err := demoClient(t, addr).Echo(context.Background(), &demov1.EchoRequest{Message: "via istio"})
		if err != nil || resp.GetServer() != "v1" {
			t.Errorf("gRPC through the Istio route: %v, %v; want an answer from v1", resp, err)
		}
	})

	t.Run("DestinationRule", func(t *testing.T) {
		set := g.srv.Config()
		c := set.Cluster("outbound|80|v1|echo.example.com")
		if c == nil || c.GetLbPolicy().String() != "LEAST_REQUEST" || c.GetOutlierDetection() == nil {
			t.Fatalf("subset cluster v1 = %v; want LEAST_REQUEST with outlier detection", c)
		}
		if c2 := set.Cluster("outbound|80|v2|echo.example.com"); c2 == nil || c2.GetLbPolicy().String() != "RING_HASH" {
			t.Errorf("subset cluster v2 = %v; want RING_HASH from consistentHash", c2)
		}
	})

	t.Run("weight shift under load", func(t *testing.T) {
		var ok, failed atomic.Int64
		var v2Seen atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					e, err := getEcho(hc, "http://"+addr+"/echo")
					if err != nil {
						failed.Add(1)
						continue
					}
					ok.Add(1)
					if e.Server == "v2" {
						v2Seen.Add(1)
					}
				}
			}()
		}
		time.Sleep(200 * time.Millisecond)
		d := data
		d.V1Weight, d.V2Weight = 0, 100
		ist.apply(string(render(t, istioConfig, d)))
		waitFor(t, "all traffic on v2", func() bool {
			for range 20 {
				if e, err := getEcho(hc, "http://"+addr+"/echo"); err != nil || e.Server != "v2" {
					return false
				}
			}
			return true
		})
		close(stop)
		wg.Wait()
		if failed.Load() != 0 {
			t.Errorf("%d of %d requests failed while the weights changed", failed.Load(), failed.Load()+ok.Load())
		}
		t.Logf("%d requests, 0 failed, through the weight change", ok.Load())
	})

	t.Run("ServiceEntry deleted", func(t *testing.T) {
		d := data
		d.WithEcho = false
		ist.apply(string(render(t, istioConfig, d)))
		waitFor(t, "the ServiceEntry's clusters to go", func() bool {
			return g.srv.Config().Cluster("outbound|80|v1|echo.example.com") == nil
		})
		for _, r := range g.srv.Config().All(config.ClusterType) {
			if strings.Contains(r.Name, "echo.example.com") {
				t.Errorf("cluster %s is left after the ServiceEntry was deleted", r.Name)
			}
		}
	})
}

// istioRequestsLine is the first istio_requests_total series (as text)
// whose labels contain want, "" when none.
func istioRequestsLine(t *testing.T, g *xdsGateway, want string) string {
	t.Helper()
	mfs, err := g.srv.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "istio_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var b strings.Builder
			for _, l := range m.GetLabel() {
				fmt.Fprintf(&b, "%s=%q,", l.GetName(), l.GetValue())
			}
			if strings.Contains(b.String(), want) {
				return b.String()
			}
		}
	}
	return ""
}
