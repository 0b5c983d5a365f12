package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/meshgate/meshgate/registry"
)

// sidecarRegisterConfig listens on all addresses, as a sidecar does:
// Java Dubbo takes a loopback address in a registration for no address at
// all and dials its own host's instead, so the app is announced at the
// machine's first non-loopback address.
const sidecarRegisterConfig = `
dubbo_listeners:
  - name: dubbo-in
    address: 0.0.0.0:0
    routes: []
    local_app:
      cluster: app
      services:
        - interface: org.apache.dubbo.samples.GreeterService
          version: 1.0.0
          group: g1
          methods:
            - { name: sayHello, param_types: [java.lang.String], param_names: [name], return_type: java.lang.String, path: /greet }
      register:
        application: py-greeter
        registries: [ { zookeeper: { servers: [ "{{.ZK}}" ], session_timeout: 4s } } ]
        health_check: { path: /health, interval: 300ms, timeout: 200ms, unhealthy_threshold: 2 }
clusters:
  - name: app
    endpoints: [ "{{.App}}" ]
`

const sidecarIface = "org.apache.dubbo.samples.GreeterService"

// zkState reads what ZooKeeper holds of the sidecar's registration: the
// interface-level provider URLs, the application's instances, the
// interface's mapping.
type zkState struct {
	providers []string // host:port of each provider URL
	instances []string // node names under /services/<app>
	mapping   string
}

func readZK(t *testing.T, conn *zk.Conn, app string) zkState {
	t.Helper()
	var st zkState
	names, _, err := conn.Children("/dubbo/" + sidecarIface + "/providers")
	if err != nil && err != zk.ErrNoNode {
		t.Fatal(err)
	}
	for _, n := range names {
		raw, err := url.QueryUnescape(n)
		if err != nil {
			t.Fatal(err)
		}
		p, err := registry.ParseURL(raw)
		if err != nil {
			t.Fatalf("provider node %s: %v", n, err)
		}
		if p.Params["application"] == app {
			st.providers = append(st.providers, p.Address())
		}
	}
	st.instances, _, err = conn.Children("/services/" + app)
	if err != nil && err != zk.ErrNoNode {
		t.Fatal(err)
	}
	data, _, err := conn.Get("/dubbo/mapping/" + sidecarIface)
	if err != nil && err != zk.ErrNoNode {
		t.Fatal(err)
	}
	st.mapping = string(data)
	return st
}

// waitRegistered waits until ZooKeeper holds app's registration: one
// provider URL per protocol, one instance, the mapping.
func waitRegistered(t *testing.T, conn *zk.Conn, app string, protocols int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := readZK(t, conn, app)
		if len(st.providers) == protocols && len(st.instances) == 1 && strings.Contains(st.mapping, app) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ZooKeeper holds %+v 10s after the start, want %d provider URLs, an instance and the mapping of %s", st, protocols, app)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The sidecar registers a Python HTTP app as a Dubbo provider in
// ZooKeeper, interface- and application-level: a Java Dubbo 3.3 consumer
// that discovers providers by application only (FORCE_APPLICATION: the
// interface's mapping, the instance, its MetadataService answered by the
// sidecar) calls it over Dubbo2, and so does meshgate's own registry
// watcher (application mode). The registration follows the app's health
// check (the app killed: withdrawn), and a drain withdraws it before the
// listener stops accepting.
func TestSidecar_RegisteredInZooKeeper(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ZooKeeper, a Java consumer and a Python app; skipped with -short")
	}
	z := startZooKeeper(t)
	app, proc := startPythonAppProcess(t)
	g := startGateway(t, render(t, sidecarRegisterConfig, map[string]string{"App": app, "ZK": z.addr}))
	listen := g.addr("dubbo-in")
	conn, _, err := zk.Connect([]string{z.addr}, 4*time.Second, zk.WithLogger(zkQuiet{}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	start := time.Now()
	waitRegistered(t, conn, "py-greeter", 2)
	st := readZK(t, conn, "py-greeter")
	t.Logf("registered within %v: providers %v, instances %v, mapping %q", time.Since(start).Round(time.Millisecond), st.providers, st.instances, st.mapping)
	_, port, _ := net.SplitHostPort(listen)
	host, _, _ := net.SplitHostPort(st.instances[0])
	if ip := net.ParseIP(host); ip == nil || ip.IsLoopback() || ip.IsUnspecified() {
		t.Errorf("announced at %s, want the machine's non-loopback address", st.instances[0])
	}
	advertised := net.JoinHostPort(host, port)
	if st.providers[0] != advertised || st.providers[1] != advertised || st.instances[0] != advertised {
		t.Errorf("registered at %v / %v, want the listener's port at one host (%s)", st.providers, st.instances, advertised)
	}

	t.Run("Java Dubbo consumer over Dubbo2, application-level discovery", func(t *testing.T) {
		got := javaConsumer(t, "-registry", "zookeeper://"+z.addr, "-version", "1.0.0", "-group", "g1", "-arg", "java", "-wait-ms", "20000",
			"-protocol", "dubbo")
		if got["result"] != "Hello java from python (trace no)" {
			t.Errorf("Java consumer got %v", got)
		}
		if att, _ := got["attachments"].(map[string]any); att["served-by"] != "python" {
			t.Errorf("the answer's attachments %v, want served-by=python (the app's Dubbo-Attachment-Served-By)", got["attachments"])
		}
	})

	t.Run("meshgate's registry watcher, application mode", func(t *testing.T) {
		w := startZKWatcher(t, z.addr, registry.ModeApplication)
		cluster := registry.ClusterName("dubbo", registry.ServiceKey{Interface: sidecarIface, Version: "1.0.0", Group: "g1"})
		w.waitPorts(t, cluster, port)
		md := w.dubboMetadata(t, cluster)
		if m, _ := md["methods"].([]any); !slices.Contains(m, any("sayHello")) {
			t.Errorf("the discovered cluster's Dubbo metadata %v does not list sayHello", md)
		}
	})

	t.Run("the app killed: withdrawn within the health check", func(t *testing.T) {
		_ = proc.Kill()
		killed := time.Now()
		waitFor(t, "the withdrawal", func() bool {
			st := readZK(t, conn, "py-greeter")
			return len(st.providers) == 0 && len(st.instances) == 0
		})
		d := time.Since(killed)
		t.Logf("withdrawn %v after the app died (interval 300ms, unhealthy threshold 2)", d.Round(time.Millisecond))
		if st := readZK(t, conn, "py-greeter"); !strings.Contains(st.mapping, "py-greeter") {
			t.Errorf("the mapping lost the app: %q (Dubbo keeps it)", st.mapping)
		}
	})
}

// A drain withdraws the registration first: once DrainListeners returns
// (what SIGTERM runs) the nodes are gone while the listener still accepts.
func TestSidecar_DrainWithdrawsFirst(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ZooKeeper and a Python app; skipped with -short")
	}
	z := startZooKeeper(t)
	app := startPythonApp(t)
	g := startGateway(t, render(t, sidecarRegisterConfig, map[string]string{"App": app, "ZK": z.addr}))
	listen := g.addr("dubbo-in")
	conn, _, err := zk.Connect([]string{z.addr}, 4*time.Second, zk.WithLogger(zkQuiet{}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	waitRegistered(t, conn, "py-greeter", 2)
	stopped := g.srv.DrainListeners(2*time.Second, false)
	if st := readZK(t, conn, "py-greeter"); len(st.providers)+len(st.instances) != 0 {
		t.Errorf("still registered when the drain began: %+v", st)
	}
	c, err := net.DialTimeout("tcp", listen, time.Second)
	if err != nil {
		t.Fatalf("the listener refused a connection during the drain period: %v", err)
	}
	c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	select {
	case <-stopped:
	case <-ctx.Done():
		t.Fatal("the drain period did not end")
	}
}

// sidecarBinaryConfig is the sidecar section as a user writes it, run by
// the meshgate binary (which also runs the registries it implies).
const sidecarBinaryConfig = `
admin: { address: "{{.Admin}}" }
drain_period: 2s
sidecar:
  application: py-relay
  app: { address: "{{.App}}", health_check: { path: /health, interval: 1s } }
  inbound:
    address: "0.0.0.0:{{.InPort}}"
    services:
      - interface: org.apache.dubbo.samples.PythonRelay
        version: 1.0.0
        methods:
          - { name: relay, param_types: [java.lang.String], param_names: [name], return_type: java.lang.String, path: /relay }
  registries: [ { zookeeper: { servers: [ "{{.ZK}}" ] } } ]
  outbound:
    address: "{{.Outbound}}"
    services: [ { interface: org.apache.dubbo.samples.GreeterService, version: 1.0.0, group: g1 } ]
`

// Both directions of a sidecar in one call, with the sidecar section run
// by the binary: a dubbo-go consumer finds the Python app in ZooKeeper
// (application-level) and calls it over Triple; the app, with no Dubbo
// SDK, calls a dubbo-go provider back through the sidecar's outbound port
// with plain HTTP/JSON (POST /<interface>/<method>); the provider's answer
// comes back through both. Then SIGTERM: the app is withdrawn from
// ZooKeeper while the inbound port still accepts (the drain period).
func TestSidecar_BothDirections(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ZooKeeper, dubbo-go peers, a Python app and the binary; skipped with -short")
	}
	z := startZooKeeper(t)
	prov := startProvider(t, providerSpec{App: "go-greeter", Registry: "zookeeper", RegistryAddr: z.addr, Mode: "all", Version: "1.0.0", Group: "g1"})
	outbound := freeAddr(t)
	app, _ := startPythonAppProcess(t, "OUTBOUND_URL=http://"+outbound+"/org.apache.dubbo.samples.GreeterService/SayHello")
	admin, inPort := freeAddr(t), port(freeAddr(t))
	p := startProcessWith(t, sidecarBinaryConfig, map[string]string{"Admin": admin, "App": app, "ZK": z.addr, "Outbound": outbound, "InPort": inPort},
		admin, outbound)

	got := dubboGoCall(t, "-mode", "tri", "-registry", "zookeeper", "-registry-addr", z.addr, "-iface", "org.apache.dubbo.samples.PythonRelay",
		"-version", "1.0.0", "-method", "relay", "-arg", "both-ways", "-wait", "20s")
	want := "python relayed: Hello both-ways from " // + the provider's instance name
	if res, _ := got["result"].(string); !strings.HasPrefix(res, want) {
		t.Fatalf("dubbo-go consumer got %v, want a result starting %q (provider logs:\n%s)", got, want, tail(prov.logs.String(), 20))
	}
	t.Logf("answer: %v", got["result"])

	conn, _, err := zk.Connect([]string{z.addr}, 4*time.Second, zk.WithLogger(zkQuiet{}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if ids, _, err := conn.Children("/services/py-relay"); err != nil || len(ids) != 1 {
		t.Fatalf("instances of py-relay before SIGTERM: %v %v, want one", ids, err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	for {
		ids, _, err := conn.Children("/services/py-relay")
		if err == nil && len(ids) == 0 {
			break
		}
		if time.Since(sent) > 5*time.Second {
			t.Fatalf("py-relay still registered (%v %v) 5s after SIGTERM", ids, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	withdrawn := time.Since(sent)
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+inPort, time.Second)
	if err != nil {
		t.Fatalf("withdrawn %v after SIGTERM, but the inbound port refused a connection then: %v", withdrawn, err)
	}
	c.Close()
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the binary did not exit 20s after SIGTERM")
	}
	t.Logf("SIGTERM: withdrawn from ZooKeeper after %v while the inbound port still accepted; exited after %v (%v)",
		withdrawn.Round(time.Millisecond), time.Since(sent).Round(time.Millisecond), p.exit)
}

// javaConsumerStream runs the Java consumer with flags (-calls N) and
// delivers each call's outcome as it prints it; the channel closes when
// the consumer exits.
func javaConsumerStream(t *testing.T, flags ...string) <-chan map[string]any {
	t.Helper()
	cmd := javaConsumerCmd(t, flags...)
	logs := &syncBuffer{}
	cmd.Stderr = logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := make(chan map[string]any, 1024)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var v map[string]any
			if json.Unmarshal(sc.Bytes(), &v) == nil {
				out <- v
			}
		}
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("Java consumer logs (tail):\n%s", tail(logs.String(), 40))
		}
	})
	return out
}

// The local app killed while a Java Dubbo consumer calls: the sidecar is
// withdrawn within the health check (sooner: a call that finds the app
// gone checks it at once), and over Dubbo2 the consumer's failover
// (retries 2) moves each call that met the dead app to the native Java
// provider of the same service: no call fails. Over Triple, Java Dubbo
// 3.3 does not fail over on a provider's error status (the call fails
// after the invoker returned): the calls in that window fail, and the
// test bounds and reports them.
func TestSidecar_AppKilledConsumersFailOver(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ZooKeeper, Java Dubbo peers and a Python app; skipped with -short")
	}
	z := startZooKeeper(t)
	native := launchJavaProvider(t, javaProviderSpec{App: "java-native", Registry: "zookeeper://" + z.addr, Mode: "all", Version: "1.0.0", Group: "g1"})
	native.wait()
	for _, tc := range []struct {
		protocol  string
		maxFailed int
	}{{"dubbo", 0}, {"tri", 10}} {
		t.Run(tc.protocol, func(t *testing.T) {
			app, proc := startPythonAppProcess(t)
			// A check a second: before a call meets the dead app, the checks
			// alone take 1-2s to notice, so that calls do meet it.
			cfg := strings.Replace(sidecarRegisterConfig, "interval: 300ms", "interval: 1s", 1)
			g := startGateway(t, render(t, cfg, map[string]string{"App": app, "ZK": z.addr}))
			calls := javaConsumerStream(t, "-registry", "zookeeper://"+z.addr, "-version", "1.0.0", "-group", "g1", "-arg", "x",
				"-wait-ms", "20000", "-calls", "150", "-interval-ms", "40", "-retries", "2", "-protocol", tc.protocol)
			var python, java, failed int
			var killedAt time.Time
			var lastErr string
			for v := range calls {
				res, _ := v["result"].(string)
				switch {
				case strings.HasSuffix(res, "from python (trace no)"):
					python++
				case strings.HasPrefix(res, "Hello x from "):
					java++
				default:
					failed++
					lastErr = fmt.Sprint(v)
				}
				if killedAt.IsZero() && python >= 5 {
					_ = proc.Kill()
					killedAt = time.Now()
				}
			}
			met := failedAppCalls(t, g)
			t.Logf("%d calls: %d answered by the Python app (via the sidecar), %d by the native Java provider, %d failed; %d met the dead app at the sidecar",
				python+java+failed, python, java, failed, met)
			if killedAt.IsZero() {
				t.Fatalf("the sidecar answered only %d calls: the app was never killed (last error %s)", python, lastErr)
			}
			if python+java+failed != 150 {
				t.Errorf("the consumer made %d calls, want 150", python+java+failed)
			}
			if failed > tc.maxFailed {
				t.Errorf("%d calls failed (last: %s), want at most %d", failed, lastErr, tc.maxFailed)
			}
			if met == 0 {
				t.Error("no call met the dead app: the test saw no failover")
			}
		})
	}
}

// failedAppCalls counts the calls the sidecar's Dubbo listener answered
// with an error status (Dubbo2: not OK 20; Triple: gRPC status not 0).
func failedAppCalls(t *testing.T, g *gateway) int {
	t.Helper()
	mfs, err := g.srv.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		if mf.GetName() != "meshgate_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["listener"] == "dubbo-in" && strings.Contains(labels["route"], "sayHello") && labels["code"] != "20" && labels["code"] != "0" {
				n += int(m.GetCounter().GetValue())
			}
		}
	}
	return n
}

const proxyModeConfig = `
dubbo_listeners:
{{range .}}
  - name: dubbo-{{.Name}}
    address: 0.0.0.0:0
    routes: []
    local_app:
      cluster: app-{{.Name}}
      services:
        - interface: org.apache.dubbo.samples.Greeter{{.Name}}
          methods:
            - { name: sayHello, param_types: [java.lang.String], param_names: [name], return_type: java.lang.String, path: /greet }
      register:
        application: py-{{.Name}}
        registries: [ { zookeeper: { servers: [ "{{.ZK}}" ] } } ]
        health_check: { path: /health, interval: 1s }
{{end}}
clusters:
{{range .}}
  - { name: app-{{.Name}}, endpoints: [ "{{.App}}" ] }
{{end}}
`

// Proxy mode: one meshgate serves two apps, each registered under its own
// application name; a dubbo-go consumer finds each by application-level
// discovery and calls it over Dubbo2.
func TestSidecar_ProxyModeTwoApps(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ZooKeeper, a dubbo-go consumer and two Python apps; skipped with -short")
	}
	z := startZooKeeper(t)
	type appSpec struct{ Name, App, ZK string }
	apps := []appSpec{{Name: "A", App: startPythonApp(t), ZK: z.addr}, {Name: "B", App: startPythonApp(t), ZK: z.addr}}
	startGateway(t, render(t, proxyModeConfig, apps))
	for _, a := range apps {
		got := dubboGoCall(t, "-mode", "dubbo", "-registry", "zookeeper", "-registry-addr", z.addr, "-iface", "org.apache.dubbo.samples.Greeter"+a.Name,
			"-version", "", "-method", "sayHello", "-arg", a.Name, "-wait", "20s")
		if want := "Hello " + a.Name + " from python (trace no)"; got["result"] != want {
			t.Errorf("Greeter%s: %v, want %q", a.Name, got, want)
		}
	}
}

const sidecarGRPCConfig = `
dubbo_listeners:
  - name: dubbo-in
    address: 0.0.0.0:0
    routes: []
    local_app:
      cluster: app
      protocol: grpc
      services:
        - interface: grpc.health.v1.Health
          methods: [ { name: Check } ]
      register:
        application: grpc-app
        registries: [ { zookeeper: { servers: [ "{{.ZK}}" ] } } ]
        health_check: { interval: 300ms }
clusters:
  - { name: app, protocol: grpc, endpoints: [ "{{.App}}" ] }
`

// A gRPC app behind the sidecar: a dubbo-go consumer's IDL Triple call
// (grpc.health.v1.Health/Check) reaches it as it came and its answer comes
// back; it is registered (tri only) while grpc.health.v1 says SERVING and
// withdrawn when it says NOT_SERVING; an undeclared method is UNIMPLEMENTED
// and a Dubbo2 consumer is told to call over Triple.
func TestSidecar_GRPCApp(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ZooKeeper and a dubbo-go consumer; skipped with -short")
	}
	z := startZooKeeper(t)
	app := startBackend(t, "grpc-app")
	g := startGateway(t, render(t, sidecarGRPCConfig, map[string]string{"App": app.GRPCAddr, "ZK": z.addr}))
	_, port, _ := net.SplitHostPort(g.addr("dubbo-in"))
	listen := "127.0.0.1:" + port
	conn, _, err := zk.Connect([]string{z.addr}, 4*time.Second, zk.WithLogger(zkQuiet{}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	got := dubboGoCall(t, "-mode", "tri-health", "-url", "tri://"+listen, "-arg", "")
	if got["result"] != "SERVING" {
		t.Errorf("dubbo-go IDL Triple call through the sidecar: %v, want SERVING", got)
	}
	_, err = healthpb.NewHealthClient(dialGRPC(t, listen)).List(context.Background(), &healthpb.HealthListRequest{})
	if status.Code(err) != codes.Unimplemented || !strings.Contains(err.Error(), "grpc.health.v1.Health.List is not a method the local app serves") {
		t.Errorf("an undeclared method: %v, want UNIMPLEMENTED naming it", err)
	}
	got = dubboGoCall(t, "-mode", "dubbo", "-url", "dubbo://"+listen, "-iface", "grpc.health.v1.Health", "-version", "", "-method", "Check", "-arg", "")
	if msg, _ := got["error"].(string); !strings.Contains(msg, "served by a gRPC app: call it over Triple") {
		t.Errorf("a Dubbo2 call of the gRPC app: %v, want an error telling to call over Triple", got)
	}

	registered := func() (providers, instances []string) {
		providers, _, _ = conn.Children("/dubbo/grpc.health.v1.Health/providers")
		instances, _, _ = conn.Children("/services/grpc-app")
		return providers, instances
	}
	waitFor(t, "the tri registration", func() bool { p, i := registered(); return len(p) == 1 && len(i) == 1 })
	if names, _ := registered(); !strings.HasPrefix(names[0], "tri%3A%2F%2F") {
		t.Errorf("provider URL %s, want a tri:// URL alone (Dubbo2 consumers are refused)", names[0])
	}
	app.Health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	waitFor(t, "the withdrawal once the app is NOT_SERVING", func() bool { p, i := registered(); return len(p) == 0 && len(i) == 0 })
}

const sidecarIDLConfig = `
dubbo_listeners:
  - name: dubbo-in
    address: 127.0.0.1:0
    routes: []
    local_app:
      cluster: app
      proto_descriptor: health.pb
      services:
        - interface: grpc.health.v1.Health
          methods: [ { name: Check, path: /Check } ]
clusters:
  - name: app
    endpoints: [ "{{.App}}" ]
`

// A Triple consumer's IDL call of an HTTP/JSON app: with the service's
// descriptors, a dubbo-go consumer's grpc.health.v1.Health/Check reaches
// the Python app as JSON ({"service": ...}) and its JSON answer comes back
// as the protobuf answer; the app's failure and an answer that is not the
// output message are statuses saying so.
func TestSidecar_IDLTripleConsumer(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a dubbo-go consumer and a Python app; skipped with -short")
	}
	dir := t.TempDir()
	set := &descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{protodesc.ToFileDescriptorProto(healthpb.File_grpc_health_v1_health_proto)}}
	bin, err := proto.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "health.pb"), bin, 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGatewayIn(t, dir, render(t, sidecarIDLConfig, map[string]string{"App": startPythonApp(t)}))
	url := "tri://" + g.addr("dubbo-in")
	// grpc-go sees the app's attachment as a header of the answer.
	var md metadata.MD
	resp, err := healthpb.NewHealthClient(dialGRPC(t, g.addr("dubbo-in"))).Check(context.Background(), &healthpb.HealthCheckRequest{Service: "grpc-go"}, grpc.Header(&md))
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING || strings.Join(md.Get("served-by"), ",") != "python" {
		t.Errorf("grpc-go Check: %v %v, headers %v; want SERVING and served-by: python", resp, err, md)
	}
	for _, tc := range []struct {
		service, result string
		errParts        []string
	}{
		{service: "greeter", result: "SERVING"},
		{service: "down", result: "NOT_SERVING"},
		{service: "boom", errParts: []string{"the local app answered Check with HTTP 500: the health store is down"}},
		{service: "shape", errParts: []string{"the local app's answer to Check is not a grpc.health.v1.HealthCheckResponse"}},
		{service: "", result: "SERVING"},
	} {
		got := dubboGoCall(t, "-mode", "tri-health", "-url", url, "-arg", tc.service)
		if tc.result != "" {
			if got["result"] != tc.result {
				t.Errorf("Check(%q): %v, want %s", tc.service, got, tc.result)
			}
			continue
		}
		msg, _ := got["error"].(string)
		for _, part := range tc.errParts {
			if !strings.Contains(msg, part) {
				t.Errorf("Check(%q): error %q, want it to say %q", tc.service, msg, part)
			}
		}
	}
}
