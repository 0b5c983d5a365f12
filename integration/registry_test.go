package integration

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/registry"
	"github.com/meshgate/meshgate/server"
)

// dubboGoVersion is the dubbo-go the provider (integration/dubbogo) pins.
const dubboGoVersion = "v3.3.2"

// providerBinary builds the dubbo-go provider once, cached in
// $HOME/.cache/meshgate (a cold build compiles ~1,000 packages).
var providerBinary = sync.OnceValues(func() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(home, ".cache", "meshgate", "dubbo-go-"+dubboGoVersion, "provider")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	start := time.Now()
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = "dubbogo"
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the dubbo-go provider: %v\n%s", err, out)
	}
	fmt.Fprintf(os.Stderr, "built the dubbo-go provider in %v (cached at %s)\n", time.Since(start).Round(time.Second), bin)
	return bin, nil
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
	App, Registry, RegistryAddr, Mode, Iface, Version, Group, Namespace string
	RemoteMetadata                                                      bool
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
	if s.RemoteMetadata {
		args = append(args, "-remote-metadata")
	}
	p.cmd = exec.Command(bin, args...)
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

func startZKWatcher(t *testing.T, zkAddr string, mode registry.Mode) *registryGateway {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv := server.New(server.Options{Logger: log})
	store := config.NewStore(srv)
	w, err := registry.NewZooKeeper(store, registry.ZooKeeperOptions{
		Name: "zk", Servers: []string{zkAddr}, Mode: mode, SessionTimeout: 4 * time.Second, Resync: 2 * time.Second, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &registryGateway{srv: srv, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(g.done)
		_ = w.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-g.done
		_ = srv.Shutdown(context.Background())
	})
	return g
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

const greeter = "org.apache.dubbo.samples.GreeterService"

func TestRegistryZK_DubboGoProviders(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ZooKeeper and dubbo-go providers; skipped with -short")
	}
	zkServer := startZooKeeper(t)
	for _, mode := range []registry.Mode{registry.ModeInterface, registry.ModeApplication} {
		t.Run(string(mode), func(t *testing.T) {
			regMode := map[registry.Mode]string{registry.ModeInterface: "interface", registry.ModeApplication: "service"}[mode]
			g := startZKWatcher(t, zkServer.addr, mode)
			app := "app-" + string(mode)
			a := startProvider(t, providerSpec{App: app, Registry: "zookeeper", RegistryAddr: zkServer.addr, Mode: regMode, Version: "1.0.0", Group: "g1"})
			v2 := startProvider(t, providerSpec{App: app + "-v2", Registry: "zookeeper", RegistryAddr: zkServer.addr, Mode: regMode, Version: "2.0.0", Group: "g2"})

			tri1, dub1 := registry.ClusterName("tri", registry.ServiceKey{Interface: greeter, Version: "1.0.0", Group: "g1"}),
				registry.ClusterName("dubbo", registry.ServiceKey{Interface: greeter, Version: "1.0.0", Group: "g1"})
			tri2 := registry.ClusterName("tri", registry.ServiceKey{Interface: greeter, Version: "2.0.0", Group: "g2"})
			d := g.waitPorts(t, tri1, a.triPort)
			g.waitPorts(t, dub1, a.dubboPort)
			g.waitPorts(t, tri2, v2.triPort)
			t.Logf("%s: a new provider appeared within %v of the watcher looking", mode, d.Round(time.Millisecond))

			// Methods from the provider's metadata: the names of its Go
			// methods (dubbo-go publishes no parameter types).
			c := g.srv.Config().Cluster(tri1)
			md := c.GetMetadata().GetFilterMetadata()[registry.MetadataKey].AsMap()
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
			if md["signatures_source"] != wantSource || md["serialization"] != "hessian2" {
				t.Errorf("metadata %v, want signatures from %s and hessian2", md, wantSource)
			}

			// A second provider of v1 joins; a graceful stop and a kill leave.
			b := startProvider(t, providerSpec{App: app, Registry: "zookeeper", RegistryAddr: zkServer.addr, Mode: regMode, Version: "1.0.0", Group: "g1"})
			d = g.waitPorts(t, tri1, a.triPort, b.triPort)
			t.Logf("%s: a provider that started was added within %v", mode, d.Round(time.Millisecond))
			start := time.Now()
			b.stop()
			g.waitPorts(t, tri1, a.triPort)
			t.Logf("%s: a provider stopped with SIGTERM was removed %v after the signal", mode, time.Since(start).Round(time.Millisecond))
			start = time.Now()
			v2.kill()
			g.waitPorts(t, tri2)
			t.Logf("%s: a killed provider was removed %v after the kill (its ZooKeeper session had to expire)", mode, time.Since(start).Round(time.Millisecond))
		})
	}
}

// ZooKeeper restarts under the gateway: the last endpoints keep serving
// meanwhile, and discovery resumes (a provider that starts afterwards
// appears).
func TestRegistryZK_ServerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ZooKeeper and dubbo-go providers; skipped with -short")
	}
	zkServer := startZooKeeper(t)
	g := startZKWatcher(t, zkServer.addr, registry.ModeAll)
	a := startProvider(t, providerSpec{App: "restart-app", Registry: "zookeeper", RegistryAddr: zkServer.addr, Mode: "all", Version: "1.0.0"})
	tri := registry.ClusterName("tri", registry.ServiceKey{Interface: greeter, Version: "1.0.0"})
	g.waitPorts(t, tri, a.triPort)

	zkServer.stop()
	time.Sleep(time.Second)
	if got := g.endpoints(tri); !slices.Equal(got, []string{a.triPort}) {
		t.Errorf("while ZooKeeper is down the endpoints are %v, want the last known %v", got, []string{a.triPort})
	}
	zkServer.start()
	b := startProvider(t, providerSpec{App: "restart-app", Registry: "zookeeper", RegistryAddr: zkServer.addr, Mode: "all", Version: "1.0.0"})
	d := g.waitPorts(t, tri, a.triPort, b.triPort)
	t.Logf("after the ZooKeeper restart a new provider appeared within %v", d.Round(time.Millisecond))
}
