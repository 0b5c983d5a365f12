package integration

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/meshgate/meshgate/registry"
)

// replicasIstioConfig: per replica a Gateway selecting it alone (label
// replica: <name>) on its own port, since the replicas share one host;
// ServiceEntries for two HTTP backends; and ONE VirtualService, bound to
// all three Gateways, sending /echo to Target.
const replicasIstioConfig = `
{{range .Replicas}}apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw-{{.Name}}, namespace: istio-system }
spec:
  selector: { istio: ingressgateway, replica: {{.Name}} }
  servers:
  - port: { number: {{.IstioPort}}, name: http, protocol: HTTP }
    hosts: ["*"]
---
{{end}}apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: echo-v1, namespace: default }
spec:
  hosts: [v1.example.com]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [ { number: 80, name: http, protocol: HTTP } ]
  endpoints: [ { address: 127.0.0.1, ports: { http: {{.V1HTTP}} } } ]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: echo-v2, namespace: default }
spec:
  hosts: [v2.example.com]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [ { number: 80, name: http, protocol: HTTP } ]
  endpoints: [ { address: 127.0.0.1, ports: { http: {{.V2HTTP}} } } ]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: echo, namespace: default }
spec:
  hosts: ["*"]
  gateways: [{{range $i, $r := .Replicas}}{{if $i}}, {{end}}istio-system/gw-{{$r.Name}}{{end}}]
  http:
  - match: [ { uri: { prefix: /echo } } ]
    route: [ { destination: { host: {{.Target}}, port: { number: 80 } } } ]
`

// replicaConfig is every replica's meshgate config; only its own
// addresses and its name (the Istio pod and the label its Gateway
// selects) differ. Routes come from istiod; the Dubbo route's cluster
// from the ZooKeeper registry.
const replicaConfig = `
admin: { address: "{{.Admin}}" }
drain_period: 0s
xds:
  address: "{{.XDS}}"
  istio: { pod: "meshgate-{{.Name}}", labels: { istio: ingressgateway, replica: "{{.Name}}" } }
listeners:
  - name: dubbo
    address: "{{.Addr}}"
    virtual_hosts:
      - routes:
          - match: { prefix: /greeter/ }
            cluster: "tri|org.apache.dubbo.samples.GreeterService|1.0.0|g1"
            timeout: 2s
            dubbo: {}
registries:
  - name: zk
    zookeeper: { servers: [ "{{.ZK}}" ] }
    mode: interface
`

// replica is one meshgate process: its name, admin and Dubbo listener
// addresses, the shared istiod and ZooKeeper, and its Gateway's port.
type replica struct {
	Name, Admin, Addr, XDS, ZK, IstioPort string
}

// Three meshgate processes that share nothing but istiod and ZooKeeper
// converge on the same routing: a VirtualService change reaches all three
// within a second of the change, and so do a provider joining and one
// leaving in ZooKeeper; before and after each, they answer alike.
func TestReplicas_ConvergeOnIstiodAndZooKeeper(t *testing.T) {
	if testing.Short() {
		t.Skip("runs istiod, ZooKeeper, dubbo-go providers and three meshgate processes; skipped with -short")
	}
	const within = time.Second
	zkServer := startZooKeeper(t)
	v1, v2 := startBackend(t, "v1"), startBackend(t, "v2")
	replicas := make([]*replica, 3)
	for i := range replicas {
		replicas[i] = &replica{Name: fmt.Sprintf("r%d", i), Admin: freeAddr(t), Addr: freeAddr(t), ZK: zkServer.addr, IstioPort: port(freeAddr(t))}
	}
	istio := struct {
		Replicas       []*replica
		V1HTTP, V2HTTP string
		Target         string
	}{replicas, port(v1.HTTPAddr), port(v2.HTTPAddr), "v1.example.com"}
	ist := startIstiod(t, string(render(t, replicasIstioConfig, istio)))
	spec := providerSpec{App: "replicas-app", Registry: "zookeeper", RegistryAddr: zkServer.addr, Mode: "interface", Version: "1.0.0", Group: "g1"}
	specA, specB := spec, spec
	specA.Instance, specB.Instance = "a", "b"
	a := startProvider(t, specA)
	start := time.Now()
	for _, r := range replicas {
		r.XDS = ist.xds
		startProcessWith(t, replicaConfig, r, r.Admin, r.Addr)
	}
	hc := httpClient(t)

	// echo is a replica's answer on the Istio path: the backend's name and
	// the path it saw.
	echo := func(r *replica) (string, error) {
		e, err := getEcho(hc, "http://127.0.0.1:"+r.IstioPort+"/echo")
		if err != nil {
			return "", err
		}
		return e.Server + " " + e.Path, nil
	}
	// greet is a replica's answer on the Dubbo path: the provider's name.
	greet := func(r *replica) string {
		status, v, raw := post(t, hc, "http://"+r.Addr+"/greeter/SayHello", `["x"]`)
		if status != http.StatusOK {
			return fmt.Sprintf("HTTP %d: %s", status, raw)
		}
		s, _ := v.(string)
		return strings.TrimPrefix(s, "Hello x from ")
	}
	// alike checks that 20 calls to each replica on each path get the
	// answers wanted (counts per answer), the same for every replica.
	alike := func(when string, istio string, dubbo map[string]int) {
		t.Helper()
		for _, r := range replicas {
			gotIstio, gotDubbo := map[string]int{}, map[string]int{}
			for range 20 {
				e, err := echo(r)
				if err != nil {
					e = err.Error()
				}
				gotIstio[e]++
				gotDubbo[greet(r)]++
			}
			if !maps.Equal(gotIstio, map[string]int{istio: 20}) {
				t.Errorf("%s: replica %s answered %v on the Istio path, want %q each time", when, r.Name, gotIstio, istio)
			}
			if !maps.Equal(gotDubbo, dubbo) {
				t.Errorf("%s: replica %s answered %v on the Dubbo path, want %v", when, r.Name, gotDubbo, dubbo)
			}
		}
	}

	// 1. All three serve both paths, alike.
	for _, r := range replicas {
		waitFor(t, "replica "+r.Name+" serving both paths", func() bool {
			e, err := echo(r)
			return err == nil && e == "v1 /echo" && greet(r) == "a"
		})
	}
	t.Logf("three replicas serving both paths %v after the first started", time.Since(start).Round(time.Millisecond))
	// Each has its own Gateway's listener only, and the file's.
	for _, r := range replicas {
		want := []string{"0.0.0.0_" + r.IstioPort + " SERVING", "dubbo SERVING"}
		if got := readyListeners(t, hc, r.Admin); !slices.Equal(got, want) {
			t.Errorf("replica %s: listeners %v, want %v", r.Name, got, want)
		}
	}
	alike("at start", "v1 /echo", map[string]int{"a": 20})

	// 2. The VirtualService sends /echo to v2 instead: each replica is
	// polled every 10ms from the moment of the change.
	istio.Target = "v2.example.com"
	changed := time.Now()
	wait := converge(replicas, func(r *replica) bool {
		e, err := echo(r)
		return err == nil && e == "v2 /echo"
	})
	ist.apply(string(render(t, replicasIstioConfig, istio)))
	report(t, "the VirtualService change", wait(), changed, within)
	alike("after the VirtualService change", "v2 /echo", map[string]int{"a": 20})

	// 3. A provider joins, then leaves, in ZooKeeper: each replica's view
	// of the cluster (admin /clusters) is polled every 10ms, timed from
	// when ZooKeeper's own watch tells the test of the change.
	zc, _, err := zk.Connect([]string{zkServer.addr}, 5*time.Second, zk.WithLogger(zkQuiet{}))
	if err != nil {
		t.Fatal(err)
	}
	defer zc.Close()
	tri := registry.ClusterName("tri", registry.ServiceKey{Interface: greeter, Version: "1.0.0", Group: "g1"})
	hosts := func(r *replica) []string {
		got, _ := clusterPorts(hc, r.Admin, tri)
		return got
	}
	for _, r := range replicas {
		waitFor(t, "replica "+r.Name+" listing provider a alone", func() bool { return slices.Equal(hosts(r), []string{a.triPort}) })
	}

	zkChanged := watchTriProviders(t, zc, "/dubbo/"+greeter+"/providers")
	// b's port is known only once startProvider returns: the pollers
	// want a second host besides a.
	wait = converge(replicas, func(r *replica) bool {
		h := hosts(r)
		return len(h) == 2 && slices.Contains(h, a.triPort)
	})
	b := startProvider(t, specB)
	report(t, "provider b joining", wait(), zkChanged(), within)
	want := []string{a.triPort, b.triPort}
	slices.Sort(want)
	for _, r := range replicas {
		if h := hosts(r); !slices.Equal(h, want) {
			t.Errorf("replica %s lists the providers on ports %v, want a and b on %v", r.Name, h, want)
		}
	}
	// Round robin over the same two providers: 20 calls are 10 each.
	alike("with provider b", "v2 /echo", map[string]int{"a": 10, "b": 10})

	zkChanged = watchTriProviders(t, zc, "/dubbo/"+greeter+"/providers")
	wait = converge(replicas, func(r *replica) bool { return slices.Equal(hosts(r), []string{a.triPort}) })
	b.stop()
	report(t, "provider b leaving", wait(), zkChanged(), within)
	alike("after provider b left", "v2 /echo", map[string]int{"a": 20})
}

// converge polls each replica every 10ms, for at most 10s, until ok(r);
// the function it returns waits for the pollers and gives, per replica,
// when it was first ok (absent if never).
func converge(replicas []*replica, ok func(r *replica) bool) func() map[string]time.Time {
	var mu sync.Mutex
	seen := map[string]time.Time{}
	var wg sync.WaitGroup
	for _, r := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				if ok(r) {
					mu.Lock()
					seen[r.Name] = time.Now()
					mu.Unlock()
					return
				}
			}
		}()
	}
	return func() map[string]time.Time {
		wg.Wait()
		return seen
	}
}

// report logs each replica's convergence time after since and fails the
// test if one took longer than within, or never converged.
func report(t *testing.T, what string, seen map[string]time.Time, since time.Time, within time.Duration) {
	t.Helper()
	names := slices.Sorted(maps.Keys(seen))
	var first, last time.Time
	for _, name := range names {
		at := seen[name]
		if first.IsZero() || at.Before(first) {
			first = at
		}
		if at.After(last) {
			last = at
		}
		d := at.Sub(since)
		t.Logf("%s: replica %s converged %v after the change", what, name, d.Round(100*time.Microsecond))
		if d > within {
			t.Errorf("%s: replica %s took %v, want within %v", what, name, d, within)
		}
	}
	if len(seen) != 3 {
		t.Fatalf("%s: only %v converged within 10s", what, names)
	}
	t.Logf("%s: the replicas converged within %v of each other", what, last.Sub(first).Round(100*time.Microsecond))
}

// watchTriProviders watches a ZooKeeper providers node; the function it
// returns waits (at most 60s) for the set of tri:// provider URLs under it
// to change and gives when ZooKeeper's watch reported that change.
func watchTriProviders(t *testing.T, c *zk.Conn, path string) func() time.Time {
	t.Helper()
	triSet := func(children []string) []string {
		var out []string
		for _, ch := range children {
			if u, err := url.QueryUnescape(ch); err == nil && strings.HasPrefix(u, "tri://") {
				out = append(out, u)
			}
		}
		slices.Sort(out)
		return out
	}
	children, _, ev, err := c.ChildrenW(path)
	if err != nil {
		t.Fatalf("watch %s: %v", path, err)
	}
	before := triSet(children)
	changed := make(chan time.Time, 1)
	go func() {
		defer close(changed)
		for {
			e, ok := <-ev
			at := time.Now()
			if !ok || e.Err != nil {
				return
			}
			var now []string
			var err error
			if now, _, ev, err = c.ChildrenW(path); err != nil {
				return
			}
			if !slices.Equal(triSet(now), before) {
				changed <- at
				return
			}
		}
	}()
	return func() time.Time {
		t.Helper()
		select {
		case at, ok := <-changed:
			if !ok {
				t.Fatalf("the watch on %s ended before its tri:// providers changed", path)
			}
			return at
		case <-time.After(60 * time.Second):
			t.Fatalf("the tri:// providers under %s did not change within 60s", path)
		}
		return time.Time{}
	}
}

// clusterPorts lists the ports of a cluster's hosts as a meshgate process
// reports them on its admin /clusters?format=json.
func clusterPorts(hc *http.Client, admin, cluster string) ([]string, error) {
	resp, err := hc.Get("http://" + admin + "/clusters?format=json")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		ClusterStatuses []struct {
			Name         string `json:"name"`
			HostStatuses []struct {
				Address struct {
					SocketAddress struct {
						PortValue uint32 `json:"port_value"`
					} `json:"socket_address"`
				} `json:"address"`
			} `json:"host_statuses"`
		} `json:"cluster_statuses"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, err
	}
	var ports []string
	for _, cs := range out.ClusterStatuses {
		if cs.Name != cluster {
			continue
		}
		for _, h := range cs.HostStatuses {
			ports = append(ports, fmt.Sprint(h.Address.SocketAddress.PortValue))
		}
	}
	slices.Sort(ports)
	return ports, nil
}

// readyListeners lists a meshgate process's listeners and their states
// ("name STATE", sorted) from its admin /ready?verbose.
func readyListeners(t *testing.T, hc *http.Client, admin string) []string {
	t.Helper()
	resp, err := hc.Get("http://" + admin + "/ready?verbose")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Listeners []struct{ Name, State string } `json:"listeners"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("%s/ready?verbose: %v", admin, err)
	}
	var out []string
	for _, l := range st.Listeners {
		out = append(out, l.Name+" "+l.State)
	}
	slices.Sort(out)
	return out
}
