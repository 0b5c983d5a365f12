package integration

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/dubbo"
	"github.com/meshgate/meshgate/dubbo/rules"
	"github.com/meshgate/meshgate/registry"
)

// zkPut writes a node's data, creating it and its parents as needed.
func zkPut(t *testing.T, c *zk.Conn, p string, data []byte) {
	t.Helper()
	parts := strings.Split(strings.Trim(p, "/"), "/")
	for i := 1; i < len(parts); i++ {
		dir := "/" + strings.Join(parts[:i], "/")
		if _, err := c.Create(dir, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			t.Fatalf("create %s: %v", dir, err)
		}
	}
	if _, err := c.Create(p, data, 0, zk.WorldACL(zk.PermAll)); errors.Is(err, zk.ErrNodeExists) {
		_, err = c.Set(p, data, -1)
		if err != nil {
			t.Fatalf("set %s: %v", p, err)
		}
	} else if err != nil {
		t.Fatalf("create %s: %v", p, err)
	}
}

const conditionRuleYAML = `configVersion: v3.0
scope: service
key: org.apache.dubbo.samples.GreeterService:1.0.0:g1
force: false
conditions:
  - method = SayHello => region = a
`

const tagRuleYAMLText = `configVersion: v3.0
key: rules-app
tags:
  - name: gray
    addresses: [ "127.0.0.1:1" ]
`

// Traffic rules published in ZooKeeper's config center (Dubbo Admin's
// /dubbo/config/dubbo/<key>.<kind>) reach the Dubbo clusters they are for;
// see testTrafficRules.
func TestRegistryZK_TrafficRulesReachTheClusters(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ZooKeeper and a dubbo-go provider; skipped with -short")
	}
	zkServer := startZooKeeper(t)
	g := startZKWatcher(t, zkServer.addr, registry.ModeInterface)
	p := startProvider(t, providerSpec{App: "rules-app", Registry: "zookeeper", RegistryAddr: zkServer.addr, Mode: "interface", Version: "1.0.0", Group: "g1"})
	c, _, err := zk.Connect([]string{zkServer.addr}, 5*time.Second, zk.WithLogger(zkQuiet{}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	testTrafficRules(t, g, p, time.Second,
		func(name, text string) { zkPut(t, c, "/dubbo/config/dubbo/"+name, []byte(text)) },
		func(name string) {
			if err := c.Delete("/dubbo/config/dubbo/"+name, -1); err != nil {
				t.Fatal(err)
			}
		})

	// An older URL-style router under /dubbo/<interface>/routers reaches
	// the cluster as the condition rule it stands for.
	route := url.QueryEscape("route://0.0.0.0/" + greeter + "?category=routers&dynamic=false&version=1.0.0&group=g1&rule=" +
		url.QueryEscape("method = SayHello => port = "+p.triPort))
	zkPut(t, c, "/dubbo/"+greeter+"/routers/"+route, nil)
	tri := registry.ClusterName("tri", registry.ServiceKey{Interface: greeter, Version: "1.0.0", Group: "g1"})
	waitFor(t, "the URL-style router in the cluster", func() bool {
		rs, _ := g.dubboMetadata(t, tri)["rules"].([]any)
		for _, r := range rs {
			if m, _ := r.(map[string]any); strings.Contains(fmt.Sprint(m["rule"]), "method = SayHello => port = "+p.triPort) {
				return true
			}
		}
		return false
	})
}

// testTrafficRules: a service's condition router (by its
// <interface>:<version>:<group> key) and a tag router of the providers'
// application reach the service's cluster, checked, within a second; a
// malformed rule is refused and the one before it stays; another
// application's rule stays out; a deleted rule goes. within bounds how
// long a rule may take to arrive.
func testTrafficRules(t *testing.T, g *registryGateway, p *provider, within time.Duration, put func(name, text string), del func(name string)) {
	tri := registry.ClusterName("tri", registry.ServiceKey{Interface: greeter, Version: "1.0.0", Group: "g1"})
	g.waitPorts(t, tri, p.triPort)
	rulesOf := func() map[string]string {
		out := map[string]string{}
		rs, _ := g.dubboMetadata(t, tri)["rules"].([]any)
		for _, r := range rs {
			m, _ := r.(map[string]any)
			out[m["key"].(string)+"."+m["kind"].(string)] = m["rule"].(string)
		}
		return out
	}
	waitRules := func(what string, ok func(map[string]string) bool) time.Duration {
		t.Helper()
		start := time.Now()
		for !ok(rulesOf()) {
			if time.Since(start) > 5*time.Second {
				t.Fatalf("%s: the cluster's rules are %v after 5s", what, rulesOf())
			}
			time.Sleep(10 * time.Millisecond)
		}
		return time.Since(start)
	}
	const condKey = "org.apache.dubbo.samples.GreeterService:1.0.0:g1.condition-router"
	put(condKey, conditionRuleYAML)
	d := waitRules("a condition rule", func(r map[string]string) bool { return r[condKey] == conditionRuleYAML })
	t.Logf("a condition rule reached the cluster in %v", d.Round(time.Millisecond))
	if d > within {
		t.Errorf("a condition rule took %v to reach the cluster, want within %v", d, within)
	}
	put("rules-app.tag-router", tagRuleYAMLText)
	waitRules("a tag rule of the providers' application", func(r map[string]string) bool { return r["rules-app.tag-router"] == tagRuleYAMLText })

	put(condKey, "configVersion: v3.0\nscope: service\nkey: x\nconditions: [ \"=> = broken\" ]\n")
	time.Sleep(500 * time.Millisecond)
	if r := rulesOf(); r[condKey] != conditionRuleYAML {
		t.Errorf("a malformed rule replaced the one before it: %q", r[condKey])
	}
	put("other-app.tag-router", tagRuleYAMLText)
	time.Sleep(300 * time.Millisecond)
	if _, ok := rulesOf()["other-app.tag-router"]; ok {
		t.Error("another application's tag rule reached this cluster")
	}
	del(condKey)
	d = waitRules("the deleted rule to go", func(r map[string]string) bool { _, ok := r[condKey]; return !ok && r["rules-app.tag-router"] != "" })
	t.Logf("the deleted condition rule left the cluster in %v", d.Round(time.Millisecond))
	if d > within {
		t.Errorf("a deleted rule took %v to leave the cluster, want within %v", d, within)
	}
}

const rulesGatewayConfig = `
listeners:
  - name: main
    address: 127.0.0.1:0
    virtual_hosts:
      - routes:
          - match: { prefix: /rules/ }
            cluster: "tri|org.apache.dubbo.samples.GreeterService|1.0.0|g1"
            timeout: 2s
            dubbo: {}
registries:
  - name: zk
    zookeeper: { servers: [ "{{.}}" ] }
`

// Rules published in ZooKeeper steer the gateway's calls while traffic
// flows, with no failed call: a condition rule by method sends SayHello to
// one provider within a second; deleting it restores both; a tag rule
// sends calls tagged gray (header x-dubbo-dubbo.tag, the dubbo.tag
// attachment) to the tagged provider and the others to the rest; a
// configurator that disables a provider drains it, and its deletion
// brings it back; a consumer-side configuration for meshgate sets the
// calls' timeout.
func TestRules_SteerCallsWhileTrafficFlows(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ZooKeeper and two dubbo-go providers; skipped with -short")
	}
	zkServer := startZooKeeper(t)
	zc, _, err := zk.Connect([]string{zkServer.addr}, 5*time.Second, zk.WithLogger(zkQuiet{}))
	if err != nil {
		t.Fatal(err)
	}
	defer zc.Close()
	testSteering(t, steeringSetup{
		spec: providerSpec{Registry: "zookeeper", RegistryAddr: zkServer.addr},
		watch: func(store *config.Store, log *slog.Logger) (watcher, error) {
			return registry.NewZooKeeper(store, registry.ZooKeeperOptions{Metadata: dubbo.CallMetadataService, Name: "zk", Servers: []string{zkServer.addr},
				Mode: registry.ModeInterface, SessionTimeout: 4 * time.Second, Resync: time.Hour, Logger: log})
		},
		put:    func(name, text string) { zkPut(t, zc, "/dubbo/config/dubbo/"+name, []byte(text)) },
		del:    func(name string) { _ = zc.Delete("/dubbo/config/dubbo/"+name, -1) },
		within: time.Second + 300*time.Millisecond, // 30 calls in a row take some time too
	})
}

// steeringSetup is a registry testSteering runs against.
type steeringSetup struct {
	spec   providerSpec // Registry and RegistryAddr
	watch  func(*config.Store, *slog.Logger) (watcher, error)
	put    func(name, text string)
	del    func(name string)
	within time.Duration // how soon a rule must steer the calls
}

func testSteering(t *testing.T, rs steeringSetup) {
	spec := rs.spec
	spec.App, spec.Mode, spec.Version, spec.Group = "rules-app", "interface", "1.0.0", "g1"
	specA, specB := spec, spec
	specA.Instance, specB.Instance = "a", "b"
	a, b := startProvider(t, specA), startProvider(t, specB)
	g := startGateway(t, render(t, rulesGatewayConfig, "unused:1"))
	w, err := rs.watch(g.store, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	runWatcher(t, w)

	c := httpClient(t)
	url := "http://" + g.addr("main") + "/rules/SayHello"
	answerWith := func(arg string, hdr ...string) string {
		status, v, raw := post(t, c, url, `["`+arg+`"]`, hdr...)
		if status == http.StatusGatewayTimeout {
			return "HTTP 504" // the call's timeout
		}
		if status != 200 {
			return fmt.Sprintf("HTTP %d: %s", status, raw)
		}
		s, _ := v.(string)
		return strings.TrimPrefix(s, "Hello "+arg+" from ")
	}
	answer := func(hdr ...string) string { return answerWith("x", hdr...) }
	waitFor(t, "both providers in the cluster", func() bool {
		got := map[string]bool{}
		for range 10 {
			got[answer()] = true
		}
		return got["a"] && got["b"] && len(got) == 2
	})
	// Background traffic: untagged calls, none may fail.
	var calls, failed atomic.Int64
	var lastFailure atomic.Value
	stop := make(chan struct{})
	bg := make(chan struct{})
	go func() {
		defer close(bg)
		for {
			select {
			case <-stop:
				return
			default:
			}
			calls.Add(1)
			if got := answer(); got != "a" && got != "b" {
				failed.Add(1)
				lastFailure.Store(got)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	t.Cleanup(func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-bg
	})
	// seen waits until n calls in a row are answered only by the wanted
	// instances, and says how long it took.
	seenArg := func(what, arg string, n int, want map[string]bool, hdr ...string) time.Duration {
		t.Helper()
		t.Logf("phase %q: %d background failures so far", what, failed.Load())
		start := time.Now()
		inRow := 0
		for inRow < n {
			if time.Since(start) > 10*time.Second {
				t.Fatalf("%s: still not only %v after 10s", what, want)
			}
			if want[answerWith(arg, hdr...)] {
				inRow++
			} else {
				inRow = 0
			}
		}
		return time.Since(start)
	}
	seen := func(what string, n int, want map[string]bool, hdr ...string) time.Duration {
		t.Helper()
		return seenArg(what, "x", n, want, hdr...)
	}
	both := func(hdr ...string) {
		t.Helper()
		got := map[string]int{}
		for range 40 {
			got[answer(hdr...)]++
		}
		if got["a"] == 0 || got["b"] == 0 || got["a"]+got["b"] != 40 {
			t.Fatalf("40 calls were answered %v, want by a and b", got)
		}
	}
	both()

	const condName = "org.apache.dubbo.samples.GreeterService:1.0.0:g1.condition-router"
	rs.put(condName, fmt.Sprintf("configVersion: v3.0\nscope: service\nkey: \"org.apache.dubbo.samples.GreeterService:1.0.0:g1\"\nconditions:\n  - method = SayHello => port = %s\n", a.triPort))
	d := seen("the condition rule", 30, map[string]bool{"a": true})
	t.Logf("a condition rule (method = SayHello => port = a's) steered the calls within %v", d.Round(time.Millisecond))
	if d > rs.within {
		t.Errorf("the condition rule took %v to steer the calls, want %v at most", d, rs.within)
	}
	rs.del(condName)
	d = seen("the deleted rule", 1, map[string]bool{"b": true})
	t.Logf("the deleted condition rule let b answer again within %v", d.Round(time.Millisecond))
	if d > rs.within {
		t.Errorf("the condition rule's deletion took %v to restore the calls, want %v at most", d, rs.within)
	}
	both()

	// By argument: calls whose first argument starts with "gray" go to b;
	// the others (the background's "x") stay on both.
	rs.put(condName, fmt.Sprintf("configVersion: v3.0\nscope: service\nkey: \"org.apache.dubbo.samples.GreeterService:1.0.0:g1\"\nconditions:\n  - arguments[0] = gray* => port = %s\n", b.triPort))
	d = seenArg("the condition rule by argument", "gray-user", 30, map[string]bool{"b": true})
	t.Logf("a condition rule (arguments[0] = gray* => port = b's) steered the calls within %v", d.Round(time.Millisecond))
	if d > rs.within {
		t.Errorf("the condition rule by argument took %v to steer the calls, want %v at most", d, rs.within)
	}
	both()
	rs.del(condName)
	d = seenArg("the deleted rule by argument", "gray-user", 1, map[string]bool{"a": true})
	t.Logf("the deleted rule by argument let a answer gray calls again within %v", d.Round(time.Millisecond))

	rs.put("rules-app.tag-router", fmt.Sprintf(
		"configVersion: v3.0\nkey: rules-app\ntags:\n  - name: gray\n    addresses: [ \"0.0.0.0:%s\" ]\n", b.triPort))
	seen("tagged calls", 20, map[string]bool{"b": true}, "X-Dubbo-Dubbo.tag", "gray")
	seen("untagged calls", 20, map[string]bool{"a": true})
	for range 20 {
		if got := answer("X-Dubbo-Dubbo.tag", "gray"); got != "b" {
			t.Fatalf("a gray call was answered by %q, want b", got)
		}
	}

	rs.del("rules-app.tag-router")
	d = seen("the deleted tag rule", 1, map[string]bool{"b": true})
	t.Logf("the deleted tag rule let b answer untagged calls again within %v", d.Round(time.Millisecond))

	// A dynamic configuration disables provider a: it drains from the
	// cluster; deleting it brings a back.
	rs.put("rules-app.configurators", fmt.Sprintf(
		"configVersion: v3.0\nscope: application\nkey: rules-app\nconfigs:\n  - side: provider\n    addresses: [ \"0.0.0.0:%s\" ]\n    parameters: { disabled: true }\n", a.triPort))
	d = seen("the disabling configurator", 30, map[string]bool{"b": true})
	t.Logf("a configurator disabling a drained it within %v", d.Round(time.Millisecond))
	rs.del("rules-app.configurators")
	d = seen("the deleted configurator", 1, map[string]bool{"a": true})
	t.Logf("the deleted configurator brought a back within %v", d.Round(time.Millisecond))
	both()

	close(stop)
	<-bg
	t.Logf("background traffic: %d calls, %d failed", calls.Load(), failed.Load())
	if failed.Load() > 0 {
		t.Errorf("%d background calls failed while rules changed (last: %v), want none", failed.Load(), lastFailure.Load())
	}

	// A consumer-side configuration for meshgate (its application): a
	// 1 ms timeout makes the calls time out; deleting it restores them.
	rs.put(rules.ConsumerApplication+".configurators",
		"configVersion: v3.0\nscope: application\nkey: meshgate\nconfigs:\n  - side: consumer\n    parameters: { timeout: 1 }\n")
	// (A call on loopback can answer within 1 ms: the first timeout
	// shows the configuration is in force.)
	d = seen("the consumer timeout", 1, map[string]bool{`HTTP 504`: true})
	t.Logf("a consumer-side timeout of 1 ms took effect within %v", d.Round(time.Millisecond))
	rs.del(rules.ConsumerApplication + ".configurators")
	seen("the deleted consumer configuration", 50, map[string]bool{"a": true, "b": true})
}

const javaRulesGatewayConfig = `
listeners:
  - name: main
    address: 127.0.0.1:0
    virtual_hosts:
      - routes:
          - match: { prefix: /rules/ }
            cluster: "dubbo|org.apache.dubbo.samples.GreeterService|1.0.0|g1"
            timeout: 2s
            dubbo: {}
registries:
  - name: zk
    zookeeper: { servers: [ "{{.}}" ] }
`

// The same rules give the same provider choice in meshgate as in a Java
// Dubbo 3.3 consumer: two Java providers, each condition rule and then a
// tag rule published to ZooKeeper's config center, and both consumers'
// calls (Dubbo2; tagged by the dubbo.tag attachment) counted by the
// provider that answered.
func TestRules_SameChoiceAsJavaDubbo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ZooKeeper, Java Dubbo providers and a consumer; skipped with -short")
	}
	z := startZooKeeper(t)
	spec := javaProviderSpec{App: "java-rules", Registry: "zookeeper://" + z.addr, Mode: "all", Version: "1.0.0", Group: "g1"}
	specA, specB := spec, spec
	specA.Instance, specB.Instance = "a", "b"
	a, b := launchJavaProvider(t, specA), launchJavaProvider(t, specB)
	g := startGateway(t, render(t, javaRulesGatewayConfig, z.addr))
	w, err := registry.NewZooKeeper(g.store, registry.ZooKeeperOptions{Metadata: dubbo.CallMetadataService, Name: "zk", Servers: []string{z.addr},
		Mode: registry.ModeInterface, SessionTimeout: 4 * time.Second, Resync: time.Hour, Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	runWatcher(t, w)
	a.wait()
	b.wait()
	zc, _, err := zk.Connect([]string{z.addr}, 5*time.Second, zk.WithLogger(zkQuiet{}))
	if err != nil {
		t.Fatal(err)
	}
	defer zc.Close()

	c := httpClient(t)
	url := "http://" + g.addr("main") + "/rules/sayHello"
	const n = 30
	meshgate := func(arg, tag string) map[string]int {
		out := map[string]int{}
		var hdr []string
		if tag != "" {
			hdr = []string{"X-Dubbo-Dubbo.tag", tag} // the dubbo.tag attachment
		}
		for range n {
			status, v, _ := post(t, c, url, fmt.Sprintf("[%q]", arg), hdr...)
			s, _ := v.(string)
			if status != 200 {
				s = "error"
			}
			out[strings.TrimPrefix(s, "Hello "+arg+" from ")]++
		}
		return out
	}
	java := func(arg string, wait time.Duration, tag string) map[string]int {
		out := map[string]int{}
		for v := range javaConsumerStream(t, "-registry", "zookeeper://"+z.addr, "-protocol", "dubbo", "-version", "1.0.0", "-group", "g1",
			"-arg", arg, "-calls", fmt.Sprint(n), "-interval-ms", "5", "-wait-ms", fmt.Sprint(wait.Milliseconds()), "-tag", tag) {
			s, _ := v["result"].(string)
			if s == "" {
				s = "error"
			}
			out[strings.TrimPrefix(s, "Hello "+arg+" from ")]++
		}
		return out
	}
	same := func(m, j map[string]int) bool {
		for k := range m {
			if j[k] == 0 {
				return false
			}
		}
		for k := range j {
			if m[k] == 0 {
				return false
			}
		}
		return true
	}
	waitFor(t, "both providers behind meshgate", func() bool { got := meshgate("x", ""); return got["a"] > 0 && got["b"] > 0 })
	const rulePath = "/dubbo/config/dubbo/org.apache.dubbo.samples.GreeterService:1.0.0:g1.condition-router"
	for _, tc := range []struct {
		name, conditions string
		force            bool
		arg              string
	}{
		{"by method", "method = sayHello => port = " + a.dubboPort, false, "x"},
		{"not a port", "=> port != " + a.dubboPort, false, "x"},
		{"by argument, matching", "arguments[0] = vip* => port = " + b.dubboPort, false, "vip1"},
		{"by argument, not matching", "arguments[0] = vip* => port = " + b.dubboPort, false, "plain"},
		{"no provider left, not forced", "=> port = 1", false, "x"},
		{"no provider left, forced", "=> port = 1", true, "x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			zkPut(t, zc, rulePath, []byte(fmt.Sprintf("configVersion: v3.0\nscope: service\nkey: \"org.apache.dubbo.samples.GreeterService:1.0.0:g1\"\nforce: %v\nconditions:\n  - %s\n",
				tc.force, tc.conditions)))
			time.Sleep(time.Second) // both consumers read it (meshgate in ms; the Java consumer reads it at its start)
			// The Java consumer retries its first call while it discovers
			// the providers; a forced rule fails every call, so it waits less.
			wait := 15 * time.Second
			if tc.force {
				wait = 5 * time.Second
			}
			m, j := meshgate(tc.arg, ""), java(tc.arg, wait, "")
			t.Logf("%q (arg %q): meshgate %v, Java Dubbo %v", tc.conditions, tc.arg, m, j)
			if !same(m, j) {
				t.Errorf("meshgate chose %v, Java Dubbo %v", m, j)
			}
		})
	}
	if err := zc.Delete(rulePath, -1); err != nil {
		t.Fatal(err)
	}
	// Tag rules of the providers' application: tagged calls, untagged
	// ones, and a tag no provider has (fallback to the untagged).
	const tagPath = "/dubbo/config/dubbo/java-rules.tag-router"
	zkPut(t, zc, tagPath, []byte(fmt.Sprintf("configVersion: v3.0\nkey: java-rules\ntags:\n  - name: gray\n    addresses: [ \"0.0.0.0:%s\" ]\n", b.dubboPort)))
	time.Sleep(time.Second)
	for _, tag := range []string{"gray", "", "red"} {
		t.Run("tag "+tag, func(t *testing.T) {
			m, j := meshgate("x", tag), java("x", 15*time.Second, tag)
			t.Logf("tag rule gray = b, call tag %q: meshgate %v, Java Dubbo %v", tag, m, j)
			if !same(m, j) {
				t.Errorf("meshgate chose %v, Java Dubbo %v", m, j)
			}
		})
	}
}

// nacosConfigWriter writes (POST) or deletes (DELETE) Nacos configs
// through its HTTP API, as Dubbo Admin does.
func nacosConfigWriter(t *testing.T, n *nacosServer) func(method string, v url.Values) {
	return func(method string, v url.Values) {
		req, err := http.NewRequest(method, "http://"+n.addr+"/nacos/v1/cs/configs?"+v.Encode(), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s config: %s %s", method, resp.Status, body)
		}
	}
}
