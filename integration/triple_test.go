package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/meshgate/meshgate/dubbo"
	"github.com/meshgate/meshgate/internal/peers"
	"github.com/meshgate/meshgate/registry"
	"github.com/meshgate/meshgate/triple"
)

// consumerBinary builds integration/dubbogo/consumer (a dubbo-go v3.3.2
// consumer: generic Dubbo2, non-IDL and IDL Triple), cached like the
// provider.
var consumerBinary = sync.OnceValues(func() (string, error) {
	return peers.BuildDubboGo("dubbogo", "consumer", "./consumer", "consumer/main.go", "go.mod", "go.sum")
})

// dubboGoCall runs the consumer once and returns what it printed.
func dubboGoCall(t *testing.T, args ...string) map[string]any {
	t.Helper()
	bin, err := consumerBinary()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = t.TempDir()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("consumer %v: %v\n%s", args, err, tail(stderr.String(), 20))
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var v map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &v); err != nil {
		t.Fatalf("consumer %v printed %q", args, out)
	}
	return v
}

const tripleConfig = `
listeners:
  - name: main
    address: 127.0.0.1:0
    virtual_hosts:
      - routes:
          # Triple's gRPC form (IDL and non-IDL): passed through.
          - match: { prefix: /org.apache.dubbo.samples., grpc: true }
            cluster: tri
          - match: { prefix: /grpc.health.v1.Health/, grpc: true }
            cluster: tri
          # JSON to the IDL health service: transcoded with its descriptor.
          - match: { prefix: /grpc.health.v1.Health/ }
            cluster: tri
            dubbo: { proto_descriptor: "{{.Desc}}" }
          # Triple's unary HTTP form (JSON): the bridge, to the non-IDL provider.
          - match: { prefix: /org.apache.dubbo.samples. }
            cluster: tri
            timeout: 2s
            dubbo: {}
clusters:
  - { name: tri, protocol: tri, endpoints: [ "127.0.0.1:{{.Tri}}" ] }
`

// Triple through the gateway, with real dubbo-go peers: a dubbo-go Triple
// consumer reaches a dubbo-go provider's non-IDL (hessian2) service and its
// IDL health service, and an HTTP client using Triple's unary form (JSON,
// tri-service-* headers) reaches the non-IDL service and gets Triple's
// errors.
func TestTriple_DubboGoThroughGateway(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ZooKeeper and dubbo-go peers; skipped with -short")
	}
	zkServer := startZooKeeper(t)
	p := startProvider(t, providerSpec{App: "tri-provider", Registry: "zookeeper", RegistryAddr: zkServer.addr, Mode: "interface", Version: "1.0.0", Group: "g1", Bridge: true})
	g := startGateway(t, render(t, tripleConfig, map[string]string{"Tri": p.triPort,
		"Desc": descriptorFile(t, healthpb.File_grpc_health_v1_health_proto)}))
	gw := g.addr("main")

	// A dubbo-go Triple consumer, non-IDL: hessian2 in Triple's wrapper,
	// passed through as gRPC.
	got := dubboGoCall(t, "-mode", "tri", "-url", "tri://"+gw, "-iface", greeter, "-version", "1.0.0", "-group", "g1", "-method", "SayHello", "-arg", "consumer")
	if got["result"] != "Hello consumer from tri-provider" {
		t.Errorf("non-IDL Triple consumer through the gateway: %v", got)
	}
	// IDL: grpc.health.v1.Health over Triple.
	got = dubboGoCall(t, "-mode", "tri-health", "-url", "tri://"+gw, "-arg", "grpc.health.v1.Health")
	if got["result"] != "SERVING" {
		t.Errorf("IDL Triple consumer through the gateway: %v", got)
	}

	// Triple's unary HTTP form with application/proto: a non-IDL call's
	// wrapper, carried to the provider in the gRPC form without decoding.
	wrapped, err := triple.EncodeRequest([]any{"proto"}, []string{"java.lang.String"})
	if err != nil {
		t.Fatal(err)
	}
	preq, _ := http.NewRequest(http.MethodPost, "http://"+gw+"/org.apache.dubbo.samples.GreeterService/SayHello", bytes.NewReader(wrapped))
	preq.Header.Set("Content-Type", "application/proto")
	preq.Header.Set("Triple-Protocol-Version", "0.1.0")
	preq.Header.Set("Tri-Service-Version", "1.0.0")
	preq.Header.Set("Tri-Service-Group", "g1")
	presp, err := httpClient(t).Do(preq)
	if err != nil {
		t.Fatal(err)
	}
	pbody, _ := io.ReadAll(presp.Body)
	presp.Body.Close()
	if v, err := triple.DecodeResponse(pbody); presp.StatusCode != 200 || presp.Header.Get("Content-Type") != "application/proto" || err != nil || v != "Hello proto from tri-provider" {
		t.Errorf("unary application/proto: %d %s %v %v", presp.StatusCode, presp.Header.Get("Content-Type"), v, err)
	}

	// The health service has no version or group.
	noServiceID := []string{"Tri-Service-Version", "", "Tri-Service-Group", ""}

	// Triple's unary HTTP form, as curl sends it.
	c := httpClient(t)
	call := func(path, body string, hdr ...string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://"+gw+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Triple-Protocol-Version", "0.1.0")
		req.Header.Set("Tri-Service-Version", "1.0.0")
		req.Header.Set("Tri-Service-Group", "g1")
		for i := 0; i+1 < len(hdr); i += 2 {
			if hdr[i+1] == "" {
				req.Header.Del(hdr[i])
				continue
			}
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	for _, tc := range []struct {
		path, body string
		hdr        []string
		status     int
		want       string
	}{
		{"/org.apache.dubbo.samples.GreeterService/SayHello", `["curl"]`, nil, 200, `"Hello curl from tri-provider"`},
		{"/org.apache.dubbo.samples.GreeterService/Add", `[40, 2]`, nil, 200, `42`},
		{"/org.apache.dubbo.samples.GreeterService/Add", `[1,`, nil, 400, `"code":"invalid_argument"`},
		{"/org.apache.dubbo.samples.BridgeService/Fail", `["no"]`, nil, 500, `{"code":"unknown","message":"the provider answered Unknown`},
		{"/org.apache.dubbo.samples.BridgeService/Sleep", `[3000]`, []string{"Triple-Timeout-Ms", "300"}, 408, `"code":"deadline_exceeded"`},
		{"/org.apache.dubbo.samples.BridgeService/Sleep", `[1]`, []string{"Triple-Timeout-Ms", "soon"}, 400, `Triple-Timeout-Ms`},
		{"/org.apache.dubbo.samples.GreeterService/Nope", `[]`, nil, 404, `"code":"unimplemented"`},
		// JSON to an IDL method, transcoded with the route's descriptor.
		{"/grpc.health.v1.Health/Check", `{"service": "grpc.health.v1.Health"}`, noServiceID, 200, `{"status":"SERVING"}`},
		{"/grpc.health.v1.Health/Check", `{"nope": 1}`, noServiceID, 400, `"code":"invalid_argument"`},
		// tri-* headers reach the provider as attachments.
		{"/org.apache.dubbo.samples.BridgeService/Attachment", `["tri-unit-info"]`, []string{"Tri-Unit-Info", "unit-7"}, 200, `"unit-7"`},
	} {
		t.Run(tc.path+" "+tc.body, func(t *testing.T) {
			start := time.Now()
			status, body := call(tc.path, tc.body, tc.hdr...)
			if status != tc.status || !strings.Contains(body, tc.want) {
				t.Errorf("%d %s, want %d with %s", status, body, tc.status, tc.want)
			}
			if tc.status == 408 && time.Since(start) > 2*time.Second {
				t.Errorf("the Triple timeout was not applied: %v", time.Since(start))
			}
		})
	}
}

const dubboIngressConfig = `
dubbo_listeners:
  - name: dubbo-in
    address: 127.0.0.1:0
    routes:
      # BridgeService.Instance goes to a Dubbo2 provider as it came; the
      # rest of BridgeService and GreeterService to a Triple one.
      - { interface: org.apache.dubbo.samples.BridgeService, version: 1.0.0, group: g1, method: Instance, cluster: dubbo }
      - { interface: org.apache.dubbo.samples.BridgeService, cluster: tri }
      - { interface: org.apache.dubbo.samples.GreeterService, version: 1.0.0, group: g1, cluster: tri }
clusters:
  - { name: tri, protocol: tri, endpoints: [ "127.0.0.1:{{.Tri}}" ] }
  - { name: dubbo, protocol: dubbo, endpoints: [ "127.0.0.1:{{.Dubbo}}" ] }
`

// Dubbo2 ingress: a real dubbo-go consumer calls the gateway over the
// dubbo protocol; calls are routed by service and method to a Triple
// provider (arguments rewrapped for non-IDL Triple) or to a Dubbo2
// provider (frames forwarded as they came), and failures come back as
// Dubbo answers the consumer understands.
func TestTriple_DubboConsumerIngress(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ZooKeeper and dubbo-go peers; skipped with -short")
	}
	zkServer := startZooKeeper(t)
	spec := providerSpec{Registry: "zookeeper", RegistryAddr: zkServer.addr, Mode: "interface", Version: "1.0.0", Group: "g1", Bridge: true}
	spec.App = "via-dubbo"
	pd := startProvider(t, spec)
	spec.App = "via-tri"
	pt := startProvider(t, spec)
	g := startGateway(t, render(t, dubboIngressConfig, map[string]string{"Tri": pt.triPort, "Dubbo": pd.dubboPort}))
	url := "dubbo://" + g.addr("dubbo-in")
	call := func(iface, method, arg string) map[string]any {
		return dubboGoCall(t, "-mode", "dubbo", "-url", url, "-iface", iface, "-version", "1.0.0", "-group", "g1", "-method", method, "-arg", arg)
	}
	for _, tc := range []struct {
		iface, method, arg, result, err string
	}{
		// Dubbo2 consumer -> Triple provider.
		{greeter, "SayHello", "dubbo2", "Hello dubbo2 from via-tri", ""},
		// -> Dubbo2 provider, the frame forwarded.
		{"org.apache.dubbo.samples.BridgeService", "Instance", "answered by ", "answered by via-dubbo", ""},
		// The method's error comes back as an exception.
		{"org.apache.dubbo.samples.BridgeService", "Fail", "no", "", "refused: no"},
		// Nothing routes this service: Dubbo's SERVICE_NOT_FOUND answer.
		{"org.apache.dubbo.samples.Missing", "SayHello", "x", "", "no route for org.apache.dubbo.samples.Missing"},
	} {
		t.Run(tc.iface+"."+tc.method, func(t *testing.T) {
			got := call(tc.iface, tc.method, tc.arg)
			if tc.err == "" && got["result"] != tc.result {
				t.Errorf("got %v, want the result %q", got, tc.result)
			}
			if tc.err != "" && !strings.Contains(fmt.Sprint(got["error"]), tc.err) {
				t.Errorf("got %v, want an error saying %q", got, tc.err)
			}
		})
	}
}

const javaTripleConfig = `
# On every address: Java Dubbo replaces a 127.x host in a URL with the
# machine's address before it connects.
listeners:
  - name: main
    address: 0.0.0.0:0
    virtual_hosts:
      - routes:
          # Triple's gRPC form: passed through to a dubbo-go or a Java provider by the group asked for.
          - match: { prefix: /org.apache.dubbo.samples.GreeterService/, grpc: true, headers: [ { name: tri-service-group, exact: java } ] }
            cluster: java-tri
          - match: { prefix: /org.apache.dubbo.samples.GreeterService/, grpc: true }
            cluster: go-tri
dubbo_listeners:
  - name: dubbo-in
    address: {{.Dubbo}}
    routes:
      - { interface: org.apache.dubbo.samples.GreeterService, cluster: go-tri }
clusters:
  - { name: go-tri, protocol: tri, endpoints: [ "127.0.0.1:{{.GoTri}}" ] }
  - { name: java-tri, protocol: tri, endpoints: [ "127.0.0.1:{{.JavaTri}}" ] }
`

// Java Dubbo 3.3 through the gateway, both ways: a Java Triple consumer
// reaches a dubbo-go Triple provider and a Java one, a dubbo-go Triple
// consumer reaches the Java provider, and a Java Dubbo2 consumer reaches
// the dubbo-go Triple provider through the dubbo listener.
func TestTriple_JavaBothWays(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ZooKeeper, dubbo-go and Java Dubbo peers; skipped with -short")
	}
	zkServer := startZooKeeper(t)
	jp := launchJavaProvider(t, javaProviderSpec{App: "java-tri", Registry: "zookeeper://" + zkServer.addr, Mode: "interface", Version: "1.0.0", Group: "java"})
	gp := startProvider(t, providerSpec{App: "go-tri", Registry: "zookeeper", RegistryAddr: zkServer.addr, Mode: "interface", Version: "1.0.0", Group: "go"})
	jp.wait()
	// Listeners on port 0 would share one key: the dubbo one gets a port.
	g := startGateway(t, render(t, javaTripleConfig, map[string]string{"GoTri": gp.triPort, "JavaTri": jp.triPort, "Dubbo": "0.0.0.0:" + port(freeAddr(t))}))
	gw := "127.0.0.1:" + port(g.addr("main"))
	for _, tc := range []struct {
		name string
		call func() map[string]any
		want string
	}{
		{"Java Triple consumer -> dubbo-go Triple provider", func() map[string]any {
			return javaConsumerCall(t, "tri://"+gw, "1.0.0", "go", "java")
		}, "Hello java from go-tri"},
		{"Java Triple consumer -> Java Triple provider", func() map[string]any {
			return javaConsumerCall(t, "tri://"+gw, "1.0.0", "java", "java")
		}, "Hello java from java-tri"},
		{"dubbo-go Triple consumer -> Java Triple provider", func() map[string]any {
			return dubboGoCall(t, "-mode", "tri", "-url", "tri://"+gw, "-iface", greeter, "-version", "1.0.0", "-group", "java", "-method", "sayHello", "-arg", "go")
		}, "Hello go from java-tri"},
		{"Java Dubbo2 consumer -> dubbo listener -> dubbo-go Triple provider", func() map[string]any {
			return javaConsumerCall(t, "dubbo://127.0.0.1:"+port(g.addr("dubbo-in")), "1.0.0", "go", "dubbo2")
		}, "Hello dubbo2 from go-tri"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.call(); got["result"] != tc.want {
				t.Errorf("got %v, want the result %q", got, tc.want)
			}
		})
	}
}

const tripleToDubbo2Config = `
listeners:
  - name: main
    address: 0.0.0.0:0
    virtual_hosts:
      - routes:
          # Non-IDL Triple callers served by a Dubbo2 provider: the wrapper's
          # hessian2 arguments become a generic Dubbo2 call.
          - match: { prefix: /org.apache.dubbo.samples., grpc: true }
            cluster: dubbo2
            dubbo: {}
clusters:
  - { name: dubbo2, protocol: dubbo, endpoints: [ "127.0.0.1:{{.}}" ] }
`

// A Triple caller served by a Dubbo2 provider: dubbo-go's and Java's
// non-IDL Triple consumers call the gateway; their calls reach the
// provider's dubbo port and the answers come back in Triple's wrapper.
func TestTriple_TripleCallersToDubbo2Provider(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ZooKeeper, dubbo-go and Java Dubbo peers; skipped with -short")
	}
	zkServer := startZooKeeper(t)
	p := startProvider(t, providerSpec{App: "dubbo2-only", Registry: "zookeeper", RegistryAddr: zkServer.addr, Mode: "interface", Version: "1.0.0", Group: "g1", Bridge: true})
	g := startGateway(t, render(t, tripleToDubbo2Config, p.dubboPort))
	gw := "127.0.0.1:" + port(g.addr("main"))
	got := dubboGoCall(t, "-mode", "tri", "-url", "tri://"+gw, "-iface", greeter, "-version", "1.0.0", "-group", "g1", "-method", "SayHello", "-arg", "tri")
	if got["result"] != "Hello tri from dubbo2-only" {
		t.Errorf("dubbo-go Triple consumer -> Dubbo2 provider: %v", got)
	}
	got = dubboGoCall(t, "-mode", "tri", "-url", "tri://"+gw, "-iface", "org.apache.dubbo.samples.BridgeService", "-version", "1.0.0", "-group", "g1", "-method", "Fail", "-arg", "no")
	if !strings.Contains(fmt.Sprint(got["error"]), "refused: no") {
		t.Errorf("a throwing Dubbo2 method to a Triple consumer: %v", got)
	}
	if got := javaConsumerCall(t, "tri://"+gw, "1.0.0", "g1", "java"); got["result"] != "Hello java from dubbo2-only" {
		t.Errorf("Java Triple consumer -> Dubbo2 provider: %v", got)
	}
}

const serviceIdentityConfig = `
listeners:
  - name: main
    address: 127.0.0.1:0
    virtual_hosts:
      - routes:
          # Routes name the service, not a protocol: service|<interface>|<version>|<group>.
          - match: { prefix: /org.apache.dubbo.samples.GreeterService/, grpc: true }
            cluster: "service|org.apache.dubbo.samples.GreeterService|1.0.0|g1"
          - match: { prefix: /v1/ }
            cluster: "service|org.apache.dubbo.samples.GreeterService|1.0.0|g1"
            dubbo: {}
          - match: { prefix: /v2/ }
            cluster: "service|org.apache.dubbo.samples.GreeterService|2.0.0|g2"
            dubbo: {}
dubbo_listeners:
  - name: dubbo-in
    address: {{.Dubbo}}
    routes:
      - { interface: org.apache.dubbo.samples.GreeterService, version: 1.0.0, group: g1, cluster: "service|org.apache.dubbo.samples.GreeterService|1.0.0|g1" }
registries:
  - name: zk
    zookeeper: { servers: [ "{{.ZK}}" ] }
`

// Routing by service identity: a route names interface, version and group
// and the call reaches the registry's providers of that service over
// Triple when they serve it, else over Dubbo2 — whatever the caller spoke.
func TestTriple_ServiceIdentityRouting(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ZooKeeper and dubbo-go peers; skipped with -short")
	}
	zkServer := startZooKeeper(t)
	startProvider(t, providerSpec{App: "both-protocols", Registry: "zookeeper", RegistryAddr: zkServer.addr, Mode: "interface", Version: "1.0.0", Group: "g1"})
	startProvider(t, providerSpec{App: "dubbo2-only", Registry: "zookeeper", RegistryAddr: zkServer.addr, Mode: "interface", Version: "2.0.0", Group: "g2", DubboOnly: true})
	g := startGateway(t, render(t, serviceIdentityConfig, map[string]string{"ZK": zkServer.addr, "Dubbo": freeAddr(t)}))
	w, err := registry.NewZooKeeper(g.store, registry.ZooKeeperOptions{Metadata: dubbo.CallMetadataService, Name: "zk", Servers: []string{zkServer.addr},
		Mode: registry.ModeInterface, SessionTimeout: 4 * time.Second, Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	runWatcher(t, w)

	c := httpClient(t)
	gw := g.addr("main")
	// JSON to version 1 (both protocols): Triple, to version 2 (Dubbo2 only): Dubbo2.
	for _, tc := range []struct{ path, want string }{
		{"/v1/SayHello", `"Hello json from both-protocols"`},
		{"/v2/SayHello", `"Hello json from dubbo2-only"`},
	} {
		var status int
		var raw []byte
		waitFor(t, "the registry's providers behind "+tc.path, func() bool {
			status, _, raw = post(t, c, "http://"+gw+tc.path, `["json"]`)
			return status == 200
		})
		if strings.TrimSpace(string(raw)) != tc.want {
			t.Errorf("%s: %d %s, want %s", tc.path, status, raw, tc.want)
		}
	}
	if n := clusterNamed(t, g, "tri|org.apache.dubbo.samples.GreeterService|1.0.0|g1").Stats.RqTotal.Load(); n == 0 {
		t.Error("version 1 was not served over Triple")
	}
	// A Triple consumer (passed through to the tri providers) and a Dubbo2
	// consumer (converted to Triple) by the same service name.
	if got := dubboGoCall(t, "-mode", "tri", "-url", "tri://"+gw, "-iface", greeter, "-version", "1.0.0", "-group", "g1", "-method", "SayHello", "-arg", "tri"); got["result"] != "Hello tri from both-protocols" {
		t.Errorf("Triple consumer by service identity: %v", got)
	}
	if got := dubboGoCall(t, "-mode", "dubbo", "-url", "dubbo://"+g.addr("dubbo-in"), "-iface", greeter, "-version", "1.0.0", "-group", "g1", "-method", "SayHello", "-arg", "dubbo"); got["result"] != "Hello dubbo from both-protocols" {
		t.Errorf("Dubbo2 consumer by service identity: %v", got)
	}
}

const dubboFailoverConfig = `
dubbo_listeners:
  - name: failover
    address: "{{.A1}}"
    retries: 1
    timeout: 2s
    routes: [ { interface: org.apache.dubbo.samples.GreeterService, cluster: dubbo } ]
  - name: once
    address: "{{.A2}}"
    routes: [ { interface: org.apache.dubbo.samples.GreeterService, cluster: dubbo } ]
clusters:
  # One provider that is gone, one alive, taken in turn.
  - { name: dubbo, protocol: dubbo, lb_policy: round_robin, endpoints: [ "{{.Dead}}", "127.0.0.1:{{.Dubbo}}" ] }
`

// Dubbo's failover on a Dubbo listener: with retries, a call that meets
// the provider that is gone is tried again on the live one, so every call
// succeeds; without, some fail. The provider is dubbo-go's, over Dubbo2.
func TestDubboListener_Failover(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a dubbo-go peer; skipped with -short")
	}
	p := startProvider(t, providerSpec{App: "failover", Registry: "none", Mode: "interface", Version: "1.0.0", Group: "g1"})
	g := startGateway(t, render(t, dubboFailoverConfig, map[string]string{
		"A1": freeAddr(t), "A2": freeAddr(t), "Dead": freeAddr(t), "Dubbo": p.dubboPort}))
	calls := func(listener string, n int) (ok, failed int, lastErr error) {
		ctx := context.Background()
		conn, err := dubbo.Dial(ctx, g.addr(listener), dubbo.ConnOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for i := 0; i < n; i++ {
			resp, err := conn.Call(ctx, dubbo.Request{
				Service: dubbo.Service{Interface: greeter, Version: "1.0.0", Group: "g1", Method: "SayHello"},
				Args:    []any{"failover"}, Timeout: 3 * time.Second})
			if err == nil && resp.Value == "Hello failover from failover" {
				ok++
			} else {
				failed, lastErr = failed+1, err
			}
		}
		return ok, failed, lastErr
	}
	if ok, failed, err := calls("failover", 8); failed != 0 {
		t.Errorf("with retries: %d ok, %d failed (%v)", ok, failed, err)
	}
	if ok, failed, _ := calls("once", 4); failed == 0 {
		t.Errorf("without retries: %d ok, none failed; the gone provider was never tried", ok)
	}
}
