package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/go-zookeeper/zk"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/dubbo"
	"github.com/meshgate/meshgate/internal/peers"
	"github.com/meshgate/meshgate/registry"
	"github.com/meshgate/meshgate/server"
	"github.com/meshgate/meshgate/triple"
)

// providerBinary builds the dubbo-go provider once, cached in
// $HOME/.cache/meshgate (a cold build compiles ~1,000 packages).
var providerBinary = sync.OnceValues(func() (string, error) {
	return peers.BuildDubboGo("dubbogo", "provider", ".", "main.go", "go.mod", "go.sum")
})

// provider is a dubbo-go v3.3.2 provider process.
type provider struct {
	t         *testing.T
	cmd       *exec.Cmd
	logs      *syncBuffer
	dubboPort string
	triPort   string
	done      chan struct{}
}

type providerSpec struct {
	App, Registry, RegistryAddr, Mode, Iface, Version, Group, Namespace, Username, Password string
	RemoteMetadata                                                                          bool
	// Bridge exports BridgeService too (the Dubbo2 bridge tests').
	Bridge bool
	// Instance is the name its answers give (default: App).
	Instance string
	// DubboOnly exports the dubbo protocol alone (no tri port).
	DubboOnly bool
	// OTLPEndpoint turns dubbo-go's tracing on, exporting there.
	OTLPEndpoint string
}

func startProvider(t *testing.T, s providerSpec) *provider {
	t.Helper()
	bin, err := providerBinary()
	if err != nil {
		t.Fatal(err)
	}
	if s.Iface == "" {
		s.Iface = "org.apache.dubbo.samples.GreeterService"
	}
	p := &provider{t: t, logs: &syncBuffer{}, dubboPort: port(freeAddr(t)), triPort: port(freeAddr(t)), done: make(chan struct{})}
	args := []string{"-app", s.App, "-registry", s.Registry, "-registry-addr", s.RegistryAddr, "-mode", s.Mode,
		"-iface", s.Iface, "-version", s.Version, "-group", s.Group,
		"-dubbo-port", p.dubboPort, "-tri-port", p.triPort, "-meta-port", port(freeAddr(t))}
	if s.Namespace != "" {
		args = append(args, "-namespace", s.Namespace)
	}
	if s.Username != "" {
		args = append(args, "-username", s.Username, "-password", s.Password)
	}
	if s.RemoteMetadata {
		args = append(args, "-remote-metadata")
	}
	if s.OTLPEndpoint != "" {
		args = append(args, "-otlp-endpoint", s.OTLPEndpoint)
	}
	if s.Bridge {
		args = append(args, "-bridge")
	}
	if s.Instance != "" {
		args = append(args, "-instance", s.Instance)
	}
	if s.DubboOnly {
		args = append(args, "-protocols", "dubbo")
	}
	p.cmd = exec.Command(bin, args...)
	if s.OTLPEndpoint != "" {
		// dubbo-go v3.3.2's otlp-grpc exporter drops its insecure option
		// (it always dials with TLS); the OTel SDK's own variable says
		// cleartext.
		p.cmd.Env = append(os.Environ(), "OTEL_EXPORTER_OTLP_TRACES_INSECURE=true")
	}
	p.cmd.Dir = t.TempDir() // dubbo-go writes logs and caches next to it
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	serving := make(chan struct{})
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.logs.Write([]byte(sc.Text() + "\n"))
			if sc.Text() == "SERVING" {
				close(serving)
			}
		}
		_ = p.cmd.Wait()
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("provider %s logs (tail):\n%s", s.App, tail(p.logs.String(), 20))
		}
	})
	select {
	case <-serving:
	case <-p.done:
		t.Fatalf("the dubbo-go provider exited:\n%s", tail(p.logs.String(), 30))
	case <-time.After(60 * time.Second):
		t.Fatal("the dubbo-go provider did not start within 60s")
	}
	// SERVING comes before dubbo-go's Serve opens its ports and exports
	// its services: wait until a generic call to each service works, or a
	// caller's first attempts are refused or find no exporter.
	ports := []string{p.dubboPort, p.triPort}
	if s.DubboOnly {
		ports = ports[:1]
	}
	for _, port := range ports {
		deadline := time.Now().Add(30 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the dubbo-go provider does not listen on %s: %v", port, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	probes := map[string]string{s.Iface: "SayHello"}
	if s.Bridge {
		probes["org.apache.dubbo.samples.BridgeService"] = "Attachment"
	}
	h2c := &http.Transport{Protocols: new(http.Protocols)}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	defer h2c.CloseIdleConnections()
	for iface, method := range probes {
		req := dubbo.GenericRequest(dubbo.Service{Interface: iface, Version: s.Version, Group: s.Group, Method: method},
			[]string{"java.lang.String"}, []any{"probe"}, nil)
		deadline := time.Now().Add(30 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := dubbo.Call(ctx, "127.0.0.1:"+p.dubboPort, req.Service, req.Args, req.Attachments)
			if err == nil && !s.DubboOnly {
				// The tri port exports its services apart from dubbo's.
				_, err = triple.Call(ctx, h2c, "http", "127.0.0.1:"+p.triPort, triple.Request{
					Service: triple.Service{Interface: iface, Version: s.Version, Group: s.Group, Method: method},
					Args:    []any{"probe"}, Types: []string{"java.lang.String"},
				})
			}
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the dubbo-go provider does not serve %s: %v", iface, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return p
}

// stop shuts the provider down gracefully (it unregisters).
func (p *provider) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.kill()
	}
}

// kill ends the provider at once (its registration stays until the
// registry notices the session is gone).
func (p *provider) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// registryGateway is a data plane fed by one registry watcher.
type registryGateway struct {
	srv    *server.Server
	cancel context.CancelFunc
	done   chan struct{}
}

// watcher is what both registry watchers are to the test.
type watcher interface{ Run(context.Context) error }

// runWatcher runs w until the test ends.
func runWatcher(t *testing.T, w watcher) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func startRegistryGateway(t *testing.T, build func(*config.Store, *slog.Logger) (watcher, error)) *registryGateway {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv := server.New(server.Options{Logger: log})
	w, err := build(config.NewStore(srv), log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &registryGateway{srv: srv, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(g.done)
		if err := w.Run(ctx); err != nil {
			t.Errorf("watcher: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-g.done
		_ = srv.Shutdown(context.Background())
	})
	return g
}

// startZKWatcher watches with a resync far longer than any test, so that
// only ZooKeeper's watches can deliver changes.
func startZKWatcher(t *testing.T, zkAddr string, mode registry.Mode) *registryGateway {
	return startRegistryGateway(t, func(store *config.Store, log *slog.Logger) (watcher, error) {
		return registry.NewZooKeeper(store, registry.ZooKeeperOptions{Metadata: dubbo.CallMetadataService,
			Name: "zk", Servers: []string{zkAddr}, Mode: mode, SessionTimeout: 4 * time.Second, Resync: time.Hour, Logger: log,
		})
	})
}

func startNacosWatcher(t *testing.T, n *nacosServer, opts registry.NacosOptions) *registryGateway {
	opts.Name, opts.Servers, opts.WorkDir = "nacos", []string{n.addr}, t.TempDir()
	opts.Metadata = dubbo.CallMetadataService
	if opts.Resync == 0 {
		opts.Resync = 2 * time.Second
	}
	return startRegistryGateway(t, func(store *config.Store, log *slog.Logger) (watcher, error) {
		opts.Logger = log
		return registry.NewNacos(store, opts)
	})
}

// endpoints lists the ports of a cluster's endpoints in the store.
func (g *registryGateway) endpoints(cluster string) []string {
	cla := g.srv.Config().Endpoints(cluster)
	return claPorts(cla)
}

func claPorts(cla *endpointv3.ClusterLoadAssignment) []string {
	var out []string
	for _, lle := range cla.GetEndpoints() {
		for _, e := range lle.GetLbEndpoints() {
			out = append(out, fmt.Sprint(e.GetEndpoint().GetAddress().GetSocketAddress().GetPortValue()))
		}
	}
	slices.Sort(out)
	return out
}

// waitPorts waits until a cluster's endpoints are exactly ports, and says
// how long it took.
func (g *registryGateway) waitPorts(t *testing.T, cluster string, ports ...string) time.Duration {
	t.Helper()
	slices.Sort(ports)
	start := time.Now()
	deadline := start.Add(30 * time.Second)
	for {
		got := g.endpoints(cluster)
		if slices.Equal(got, ports) {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			var names []string
			for _, r := range g.srv.Config().All(config.ClusterType) {
				names = append(names, r.Name)
			}
			t.Fatalf("cluster %s has endpoints %v, want %v (clusters: %v)", cluster, got, ports, names)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dubboMetadata is a cluster's Dubbo metadata (methods, signatures).
func (g *registryGateway) dubboMetadata(t *testing.T, cluster string) map[string]any {
	t.Helper()
	c := g.srv.Config().Cluster(cluster)
	if c == nil {
		t.Fatalf("no cluster %s", cluster)
	}
	return c.GetMetadata().GetFilterMetadata()[registry.MetadataKey].AsMap()
}

const greeter = "org.apache.dubbo.samples.GreeterService"

// registrySetup is one registry under test: how the gateway watches it
// and how a provider registers in it.
type registrySetup struct {
	name    string
	watch   func(t *testing.T, mode registry.Mode) *registryGateway
	spec    providerSpec // Registry, RegistryAddr, Namespace, credentials
	removal string       // what a killed provider's removal waits for
}

// testDiscovery checks, with real dubbo-go providers registering
// interface-level and application-level over dubbo and tri: providers
// appear as endpoints, two versions/groups stay apart, method names come
// from the provider's metadata, and providers that start, stop or are
// killed are added or removed (timed).
func testDiscovery(t *testing.T, rs registrySetup) {
	for _, mode := range []registry.Mode{registry.ModeInterface, registry.ModeApplication} {
		t.Run(string(mode), func(t *testing.T) {
			g := rs.watch(t, mode)
			spec := rs.spec
			spec.Mode = map[registry.Mode]string{registry.ModeInterface: "interface", registry.ModeApplication: "service"}[mode]
			withApp := func(app, version, group string) providerSpec {
				s := spec
				s.App, s.Version, s.Group = rs.name+"-"+app, version, group
				return s
			}
			a := startProvider(t, withApp(string(mode), "1.0.0", "g1"))
			v2 := startProvider(t, withApp(string(mode)+"-v2", "2.0.0", "g2"))

			k1, k2 := registry.ServiceKey{Interface: greeter, Version: "1.0.0", Group: "g1"}, registry.ServiceKey{Interface: greeter, Version: "2.0.0", Group: "g2"}
			tri1, dub1, tri2 := registry.ClusterName("tri", k1), registry.ClusterName("dubbo", k1), registry.ClusterName("tri", k2)
			d := g.waitPorts(t, tri1, a.triPort)
			g.waitPorts(t, dub1, a.dubboPort)
			g.waitPorts(t, tri2, v2.triPort)
			g.waitPorts(t, registry.ClusterName("dubbo", k2), v2.dubboPort)
			t.Logf("%s %s: the first providers appeared within %v of the watcher starting", rs.name, mode, d.Round(time.Millisecond))

			// Methods from the provider's metadata: the names of its Go
			// methods (dubbo-go publishes no parameter types).
			md := g.dubboMetadata(t, tri1)
			var methods []string
			for _, m := range md["methods"].([]any) {
				methods = append(methods, m.(string))
			}
			for _, want := range []string{"Add", "GetUser", "SayHello"} {
				if !slices.Contains(methods, want) {
					t.Errorf("methods %v lack %s", methods, want)
				}
			}
			wantSource := map[registry.Mode]string{registry.ModeInterface: "provider-url", registry.ModeApplication: "metadata-service"}[mode]
			if md["signatures_source"] != wantSource || md["serialization"] != "hessian2" || md["version"] != "1.0.0" || md["group"] != "g1" {
				t.Errorf("metadata %v, want version 1.0.0, group g1, signatures from %s and hessian2", md, wantSource)
			}

			// A second provider of v1 joins; a graceful stop and a kill leave.
			b := startProvider(t, withApp(string(mode), "1.0.0", "g1"))
			d = g.waitPorts(t, tri1, a.triPort, b.triPort)
			t.Logf("%s %s: a provider that started was added within %v of it saying SERVING", rs.name, mode, d.Round(time.Millisecond))
			start := time.Now()
			b.stop()
			g.waitPorts(t, tri1, a.triPort)
			t.Logf("%s %s: a provider stopped with SIGTERM was removed %v after the signal", rs.name, mode, time.Since(start).Round(time.Millisecond))
			start = time.Now()
			v2.kill()
			g.waitPorts(t, tri2)
			g.waitPorts(t, tri1, a.triPort)
			t.Logf("%s %s: a killed provider was removed %v after the kill (%s)", rs.name, mode, time.Since(start).Round(time.Millisecond), rs.removal)
		})
	}
}

func TestRegistryZK_DubboGoProviders(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ZooKeeper and dubbo-go providers; skipped with -short")
	}
	zkServer := startZooKeeper(t)
	testDiscovery(t, registrySetup{
		name:    "zk",
		watch:   func(t *testing.T, mode registry.Mode) *registryGateway { return startZKWatcher(t, zkServer.addr, mode) },
		spec:    providerSpec{Registry: "zookeeper", RegistryAddr: zkServer.addr},
		removal: "its ZooKeeper session had to expire",
	})
}

// Configurators (override URLs under /dubbo/<interface>/configurators, as
// dubbo-admin writes them) disable and re-weight a provider in place.
func TestRegistryZK_Configurators(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ZooKeeper and dubbo-go providers; skipped with -short")
	}
	zkServer := startZooKeeper(t)
	g := startZKWatcher(t, zkServer.addr, registry.ModeInterface)
	spec := providerSpec{App: "override-app", Registry: "zookeeper", RegistryAddr: zkServer.addr, Mode: "interface", Version: "1.0.0", Group: "g1"}
	a, b := startProvider(t, spec), startProvider(t, spec)
	k := registry.ServiceKey{Interface: greeter, Version: "1.0.0", Group: "g1"}
	tri := registry.ClusterName("tri", k)
	g.waitPorts(t, tri, a.triPort, b.triPort)
	host := g.srv.Config().Endpoints(tri).GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress().GetAddress()

	c, _, err := zk.Connect([]string{zkServer.addr}, 5*time.Second, zk.WithLogger(zkQuiet{}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	override := func(params string) string {
		node := url.QueryEscape(fmt.Sprintf("override://%s:%s/%s?category=configurators&dynamic=false&enabled=true&version=1.0.0&group=g1&%s", host, a.triPort, greeter, params))
		p := "/dubbo/" + greeter + "/configurators/" + node
		if _, err := c.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			t.Fatalf("create %s: %v", p, err)
		}
		return p
	}
	if _, err := c.Create("/dubbo/"+greeter+"/configurators", nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
		t.Fatal(err)
	}

	weightOf := func(port string) uint32 {
		for _, e := range g.srv.Config().Endpoints(tri).GetEndpoints()[0].GetLbEndpoints() {
			if fmt.Sprint(e.GetEndpoint().GetAddress().GetSocketAddress().GetPortValue()) == port {
				return e.GetLoadBalancingWeight().GetValue()
			}
		}
		return 0
	}
	if w := weightOf(a.triPort); w != 100 {
		t.Fatalf("weight before any override %d, want Dubbo's default 100", w)
	}
	p := override("weight=300")
	deadline := time.Now().Add(10 * time.Second)
	for weightOf(a.triPort) != 300 {
		if time.Now().After(deadline) {
			t.Fatalf("weight %d after a weight=300 override, want 300", weightOf(a.triPort))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if w := weightOf(b.triPort); w != 100 {
		t.Errorf("the override for %s:%s re-weighted the other provider too (%d)", host, a.triPort, w)
	}
	if err := c.Delete(p, -1); err != nil {
		t.Fatal(err)
	}
	override("disabled=true")
	d := g.waitPorts(t, tri, b.triPort)
	t.Logf("a disabled=true override took the provider out within %v", d.Round(time.Millisecond))
}

// A new ZooKeeper (its data lost) expires the gateway's session: the
// watcher takes a new session and sets its watches again.
func TestRegistryZK_SessionExpiry(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ZooKeeper and dubbo-go providers; skipped with -short")
	}
	zkServer := startZooKeeper(t)
	g := startZKWatcher(t, zkServer.addr, registry.ModeAll)
	spec := providerSpec{App: "expiry-app", Registry: "zookeeper", RegistryAddr: zkServer.addr, Mode: "all", Version: "1.0.0"}
	a := startProvider(t, spec)
	tri := registry.ClusterName("tri", registry.ServiceKey{Interface: greeter, Version: "1.0.0"})
	g.waitPorts(t, tri, a.triPort)

	zkServer.stop()
	if err := os.RemoveAll(filepath.Join(zkServer.dataDir, "data")); err != nil {
		t.Fatal(err)
	}
	zkServer.start()
	// dubbo-go re-registers after its own session expired only now and
	// then: the checks look at b and c, whatever became of a.
	has := func(p string) bool { return slices.Contains(g.endpoints(tri), p) }
	b := startProvider(t, spec)
	waitFor(t, "the provider that started after the expiry", func() bool { return has(b.triPort) })
	// The watches of the new session (resync is an hour away) see a
	// provider join and leave.
	c := startProvider(t, spec)
	start := time.Now()
	waitFor(t, "a second provider", func() bool { return has(c.triPort) })
	t.Logf("after the session expired, a provider that started was added within %v", time.Since(start).Round(time.Millisecond))
	c.stop()
	waitFor(t, "the stopped provider to leave", func() bool { return !has(c.triPort) && has(b.triPort) })
}

type zkQuiet struct{}

func (zkQuiet) Printf(string, ...any) {}

const registryBinaryConfig = `
admin: { address: "{{.Admin}}" }
listeners:
  - name: main
    address: "{{.Addr}}"
    virtual_hosts:
      - routes:
          - match: { prefix: /grpc.health.v1.Health/ }
            cluster: "tri|org.apache.dubbo.samples.GreeterService|1.0.0|g1"
          - match: { prefix: /dubbo2/ }
            cluster: "dubbo|org.apache.dubbo.samples.GreeterService|1.0.0|g1"
          - match: { prefix: /zk-api/ }
            cluster: "dubbo|org.apache.dubbo.samples.GreeterService|1.0.0|g1"
            dubbo: {}
          - match: { prefix: /nacos-api/ }
            cluster: "dubbo|org.apache.dubbo.samples.GreeterService|1.0.0|g2"
            dubbo: {}
registries:
  - name: zk
    zookeeper: { servers: [ "{{.ZK}}" ], session_timeout: 4s }
  - name: nacos
    nacos: { servers: [ "{{.Nacos}}" ] }
    mode: application
    resync: 1s
`

// The binary with registries in its config: a gRPC call through the
// gateway reaches a dubbo-go provider found in ZooKeeper (its Triple port
// serves grpc.health.v1.Health), HTTP to the Dubbo2 cluster gets a clear
// 503, and /clusters and /registries show both registries.
func TestBinary_Registries(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ZooKeeper, Nacos and dubbo-go providers; skipped with -short")
	}
	zkServer, nacos := startZooKeeper(t), startNacos(t)
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	data := map[string]string{"Admin": freeAddr(t), "Addr": freeAddr(t), "ZK": zkServer.addr, "Nacos": nacos.addr}
	path := filepath.Join(t.TempDir(), "meshgate.yaml")
	if err := os.WriteFile(path, render(t, registryBinaryConfig, data), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &process{logs: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, "run", "-c", path, "-drain-period=0")
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exit = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		<-p.done
		if t.Failed() {
			t.Logf("meshgate logs:\n%s", p.logs.String())
		}
	})
	startProvider(t, providerSpec{App: "bin-zk", Registry: "zookeeper", RegistryAddr: zkServer.addr, Mode: "all", Version: "1.0.0", Group: "g1"})
	startProvider(t, providerSpec{App: "bin-nacos", Registry: "nacos", RegistryAddr: nacos.addr, Mode: "service", Version: "1.0.0", Group: "g2"})

	cc := dialGRPC(t, data["Addr"])
	hc := healthpb.NewHealthClient(cc)
	waitFor(t, "a health check through the gateway to the dubbo-go provider", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		return err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
	})

	// The provider registers its dubbo URL apart from its tri one: wait
	// for the dubbo cluster, then HTTP forwarded to it gets a clear 503.
	var body []byte
	var code int
	waitFor(t, "the dubbo cluster", func() bool {
		resp, err := http.Get("http://" + data["Addr"] + "/dubbo2/x")
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		code = resp.StatusCode
		return !strings.Contains(string(body), "is not configured")
	})
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "Dubbo2 bridge") {
		t.Errorf("HTTP to the dubbo cluster: %d %s, want 503 naming the Dubbo2 bridge", code, body)
	}

	// The Dubbo2 bridge on the registries' dubbo clusters: the service
	// from the cluster's metadata, the method from the path, unknown
	// methods refused from the published method list.
	c := httpClient(t)
	for _, tc := range []struct {
		path, want string
		status     int
	}{
		{"/zk-api/SayHello", `"Hello zk from bin-zk"`, 200},
		{"/nacos-api/SayHello", `"Hello nacos from bin-nacos"`, 200},
		{"/zk-api/Nope", `"status":"UNIMPLEMENTED"`, 404},
	} {
		var status int
		var raw []byte
		arg := strings.TrimSuffix(strings.TrimPrefix(tc.path, "/"), "-api/SayHello")
		waitFor(t, "the bridge answering "+tc.path, func() bool {
			status, _, raw = post(t, c, "http://"+data["Addr"]+tc.path, `["`+arg+`"]`)
			return status == tc.status
		})
		if !strings.Contains(string(raw), tc.want) {
			t.Errorf("POST %s: %d %s, want %s", tc.path, status, raw, tc.want)
		}
	}

	var clusters string
	defer func() {
		if t.Failed() {
			t.Logf("/clusters:\n%s", clusters)
		}
	}()
	waitFor(t, "both registries in /clusters", func() bool {
		resp, err := http.Get("http://" + data["Admin"] + "/clusters")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		s := string(b)
		clusters = s
		return strings.Contains(s, "registry/zk::connected::true") && strings.Contains(s, "registry/nacos::connected::true") &&
			strings.Contains(s, "tri|org.apache.dubbo.samples.GreeterService|1.0.0|g2::") && strings.Contains(s, "registry/zk::endpoints::2")
	})
	resp, err := http.Get("http://" + data["Admin"] + "/registries")
	if err != nil {
		t.Fatal(err)
	}
	var regs struct {
		Registries []struct {
			Name      string `json:"name"`
			Kind      string `json:"kind"`
			Connected bool   `json:"connected"`
			Clusters  int    `json:"clusters"`
		} `json:"registries"`
	}
	err = json.NewDecoder(resp.Body).Decode(&regs)
	resp.Body.Close()
	if err != nil || len(regs.Registries) != 2 || regs.Registries[0].Kind != "zookeeper" || regs.Registries[0].Clusters != 2 ||
		regs.Registries[1].Kind != "nacos" || regs.Registries[1].Clusters != 2 {
		t.Errorf("/registries = %+v (%v), want zk and nacos with 2 clusters each", regs, err)
	}
}

// Paths created while the watcher reads them: a registry node that appears
// between a read that missed it and the watch set for it must still be
// seen (CI once lost every provider that way). Each round races a fresh
// watcher against a writer creating /<root>/<iface>/providers/<url> one
// node at a time, as a provider does on its first registration.
func TestRegistryZK_PathsCreatedWhileWatching(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ZooKeeper; skipped with -short")
	}
	zkServer := startZooKeeper(t)
	c, _, err := zk.Connect([]string{zkServer.addr}, 5*time.Second, zk.WithLogger(zkQuiet{}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const rounds = 30
	k := registry.ServiceKey{Interface: greeter, Version: "1.0.0", Group: "g1"}
	for i := range rounds {
		root := fmt.Sprintf("race%d", i)
		g := startRegistryGateway(t, func(store *config.Store, log *slog.Logger) (watcher, error) {
			return registry.NewZooKeeper(store, registry.ZooKeeperOptions{Metadata: dubbo.CallMetadataService,
				Name: root, Root: root, Servers: []string{zkServer.addr}, Mode: registry.ModeInterface,
				SessionTimeout: 4 * time.Second, Resync: time.Hour, Logger: log,
			})
		})
		// Spread the writer's start over the watcher's first reads.
		time.Sleep(time.Duration(i%6) * time.Millisecond)
		provider := fmt.Sprintf("tri://127.0.0.1:%d/%s?interface=%s&version=1.0.0&group=g1&methods=SayHello&side=provider", 30000+i, greeter, greeter)
		p := ""
		for _, part := range []string{root, greeter, "providers", url.QueryEscape(provider)} {
			p += "/" + part
			if _, err := c.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
				t.Fatalf("create %s: %v", p, err)
			}
		}
		g.waitPorts(t, registry.ClusterName("tri", k), fmt.Sprint(30000+i))
		g.cancel()
		<-g.done
	}
}

const registryReloadConfig = `
admin: { address: "{{.Admin}}" }
listeners:
  - name: main
    address: "{{.Addr}}"
    virtual_hosts:
      - routes:
          - match: { prefix: / }
            cluster: static
clusters:
  - { name: static, endpoints: [ "127.0.0.1:1" ] }
{{if .ZK}}registries:
  - name: zk
    zookeeper: { servers: [ "{{.ZK}}" ] }
{{end}}`

// Registries follow reloads: a registry added to the config file starts
// (its providers' clusters appear), one removed stops (they leave).
func TestBinary_RegistryReload(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ZooKeeper and a dubbo-go provider; skipped with -short")
	}
	zkServer := startZooKeeper(t)
	startProvider(t, providerSpec{App: "reload-zk", Registry: "zookeeper", RegistryAddr: zkServer.addr, Mode: "interface", Version: "1.0.0", Group: "g1"})
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	data := map[string]string{"Admin": freeAddr(t), "Addr": freeAddr(t), "ZK": ""}
	path := filepath.Join(t.TempDir(), "meshgate.yaml")
	write := func() {
		t.Helper()
		if err := os.WriteFile(path, render(t, registryReloadConfig, data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write()
	p := &process{logs: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, "run", "-c", path, "-watch=false", "-drain-period=0")
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exit = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		<-p.done
		if t.Failed() {
			t.Logf("meshgate logs:\n%s", p.logs.String())
		}
	})
	clusters := func() string {
		resp, err := http.Get("http://" + data["Admin"] + "/clusters")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	const triCluster = "tri|org.apache.dubbo.samples.GreeterService|1.0.0|g1::"
	waitFor(t, "the gateway without registries", func() bool {
		s := clusters()
		return s != "" && !strings.Contains(s, triCluster) && !strings.Contains(s, "registry/zk")
	})

	data["ZK"] = zkServer.addr
	write()
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the added registry's clusters", func() bool {
		s := clusters()
		return strings.Contains(s, triCluster) && strings.Contains(s, "registry/zk::connected::true")
	})

	data["ZK"] = ""
	write()
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the removed registry's clusters to leave", func() bool {
		s := clusters()
		return s != "" && !strings.Contains(s, triCluster) && !strings.Contains(s, "registry/zk")
	})
}
