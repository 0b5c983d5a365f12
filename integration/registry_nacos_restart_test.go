//go:build !race

package integration

// This test runs without the race detector (make test runs it in a second,
// race-free pass): nacos-sdk-go v2.2.5 races inside its own gRPC reconnect
// (rpc_client.go reconnect vs notifyConnectionEvent), which a server
// restart sets off. The race is the SDK's; v2.3.2 has it too.

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
