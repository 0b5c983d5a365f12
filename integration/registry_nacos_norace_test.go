//go:build !race

package integration

// The tests that drive nacos-sdk-go run without the race detector (make
// test runs them in a second, race-free pass): nacos-sdk-go v2.2.5 races
// inside its own gRPC client (rpc_client.go: reconnect vs
// notifyConnectionEvent, and Start), which a server restart or a refused
// login sets off. The races are the SDK's; v2.3.2 has them too.

import (
	"testing"
	"time"

	"github.com/meshgate/meshgate/registry"
)

// Nacos restarts under the gateway (rnacos keeps instances in memory, so
// the providers must register again): discovery resumes, both the
// providers that re-register and one that starts afterwards appear.
func TestRegistryNacos_ServerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a Nacos server and dubbo-go providers; skipped with -short")
	}
	n := startNacos(t)
	g := startNacosWatcher(t, n, registry.NacosOptions{})
	spec := providerSpec{App: "restart-app", Registry: "nacos", RegistryAddr: n.addr, Mode: "all", Version: "1.0.0"}
	a := startProvider(t, spec)
	tri := registry.ClusterName("tri", registry.ServiceKey{Interface: greeter, Version: "1.0.0"})
	g.waitPorts(t, tri, a.triPort)

	start := time.Now()
	n.restart()
	b := startProvider(t, spec)
	g.waitPorts(t, tri, a.triPort, b.triPort)
	t.Logf("after the Nacos restart the re-registered and the new provider were both endpoints %v after the restart began", time.Since(start).Round(time.Millisecond))
}

func TestRegistryNacos_DubboGoProviders(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a Nacos server and dubbo-go providers; skipped with -short")
	}
	n := startNacos(t)
	testDiscovery(t, registrySetup{
		name: "nacos",
		watch: func(t *testing.T, mode registry.Mode) *registryGateway {
			return startNacosWatcher(t, n, registry.NacosOptions{Mode: mode})
		},
		spec:    providerSpec{Registry: "nacos", RegistryAddr: n.addr},
		removal: "Nacos dropped the instance when its gRPC connection closed",
	})
}

// A Nacos with auth on, providers in a namespace, and a watcher that names
// its services: it sees only its namespace, finds the service by
// subscribing (no listing), and a watcher with a wrong password sees
// nothing.
func TestRegistryNacos_NamespaceAuthServices(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a Nacos server and dubbo-go providers; skipped with -short")
	}
	const user, pass = "gateway", "s3cret-pw"
	n := startNacosAuth(t, user, pass)
	k := registry.ServiceKey{Interface: greeter, Version: "1.0.0", Group: "g1"}
	for _, mode := range []registry.Mode{registry.ModeInterface, registry.ModeApplication} {
		t.Run(string(mode), func(t *testing.T) {
			ns := "ns-" + string(mode)
			g := startNacosWatcher(t, n, registry.NacosOptions{Mode: mode, Namespace: ns, Username: user, Password: pass,
				Services: []registry.ServiceKey{k}, Resync: time.Hour})
			wrong := startNacosWatcher(t, n, registry.NacosOptions{Mode: mode, Namespace: ns, Username: user, Password: "wrong",
				Services: []registry.ServiceKey{k}, Resync: time.Hour})
			regMode := map[registry.Mode]string{registry.ModeInterface: "interface", registry.ModeApplication: "service"}[mode]
			spec := providerSpec{App: "auth-" + string(mode), Registry: "nacos", RegistryAddr: n.addr, Mode: regMode,
				Version: "1.0.0", Group: "g1", Username: user, Password: pass}
			other := spec
			other.App = "public-" + string(mode)
			startProvider(t, other) // public namespace: not ours
			spec.Namespace = ns
			a := startProvider(t, spec)
			tri := registry.ClusterName("tri", k)
			d := g.waitPorts(t, tri, a.triPort)
			t.Logf("%s: a service the watcher subscribed to appeared %v after its provider said SERVING (resync is an hour away)", mode, d.Round(time.Millisecond))
			if got := wrong.endpoints(tri); len(got) != 0 {
				t.Errorf("a watcher with a wrong password found %v", got)
			}
		})
	}
}

func TestRegistryNacos_JavaProviders(t *testing.T) {
	testJavaProviders(t, javaSetup{"nacos", func(t *testing.T) (*registryGateway, string) {
		n := startNacos(t)
		return startNacosWatcher(t, n, registry.NacosOptions{}), "nacos://" + n.addr
	}})
}
