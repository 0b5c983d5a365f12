//go:build !race

package integration

import (
	"slices"
	"testing"
	"time"

	"github.com/meshgate/meshgate/registry"
)

// TestRegistryZK_ServerRestart runs without the race detector (make test
// runs it in the race-free pass): go-zookeeper/zk v1.0.4 races inside its
// own connection (conn.go: recvLoop writes what sendSetWatches reads while
// a session is re-established), which the server restart sets off. The
// race is the library's.

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
