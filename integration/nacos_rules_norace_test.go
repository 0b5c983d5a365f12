//go:build !race

package integration

// The tests that drive nacos-sdk-go's pushes run without the race detector
// (see registry_nacos_norace_test.go): its naming cache sorts, in place,
// the instance slice SelectAllInstances handed out, while the watcher
// reads it.

import (
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/dubbo"
	"github.com/meshgate/meshgate/registry"
)

// The same in Nacos (rnacos): rules are configs <key>.<kind> in group
// dubbo, read for the services and applications the watcher sees and
// watched by Nacos's long poll: a new, changed or deleted rule reaches the
// cluster within a second.
func TestRegistryNacos_TrafficRulesReachTheClusters(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Nacos and a dubbo-go provider; skipped with -short")
	}
	n := startNacos(t)
	p := startProvider(t, providerSpec{App: "rules-app", Registry: "nacos", RegistryAddr: n.addr, Mode: "interface", Version: "1.0.0", Group: "g1"})
	g := startNacosWatcher(t, n, registry.NacosOptions{Mode: registry.ModeInterface, Resync: 2 * time.Second})
	testTrafficRules(t, g, p, time.Second, nacosPut(t, n), nacosDel(t, n))
}

// The same through Nacos (rnacos): rules arrive by Nacos's long poll,
// deletions too.
func TestRules_SteerCallsWhileTrafficFlowsNacos(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Nacos and two dubbo-go providers; skipped with -short")
	}
	n := startNacos(t)
	testSteering(t, steeringSetup{
		spec: providerSpec{Registry: "nacos", RegistryAddr: n.addr},
		watch: func(store *config.Store, log *slog.Logger) (watcher, error) {
			return registry.NewNacos(store, registry.NacosOptions{Metadata: dubbo.CallMetadataService, Name: "nacos", Servers: []string{n.addr},
				Mode: registry.ModeInterface, Resync: 2 * time.Second, WorkDir: t.TempDir(), Logger: log})
		},
		put:    nacosPut(t, n),
		del:    nacosDel(t, n),
		within: time.Second + 300*time.Millisecond, // 30 calls in a row take some time too
	})
}

// nacosPut writes a rule as Dubbo Admin does.
func nacosPut(t *testing.T, n *nacosServer) func(name, text string) {
	writeConfig := nacosConfigWriter(t, n)
	return func(name, text string) {
		writeConfig(http.MethodPost, url.Values{"dataId": {name}, "group": {"dubbo"}, "content": {text}})
	}
}

func nacosDel(t *testing.T, n *nacosServer) func(name string) {
	writeConfig := nacosConfigWriter(t, n)
	return func(name string) { writeConfig(http.MethodDelete, url.Values{"dataId": {name}, "group": {"dubbo"}}) }
}

const sidecarNacosConfig = `
dubbo_listeners:
  - name: dubbo-in
    address: 127.0.0.1:0
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
        application: py-greeter-nacos
        registries: [ { nacos: { servers: [ "{{.Nacos}}" ] } } ]
        health_check: { path: /health, interval: 300ms, timeout: 200ms, unhealthy_threshold: 2 }
clusters:
  - name: app
    endpoints: [ "{{.App}}" ]
`

// The same registration in Nacos (rnacos): a dubbo-go v3.3.2 consumer
// with application-level discovery calls the Python app over Triple, and
// meshgate's own Nacos watcher (the reader real dubbo-go and Java
// registrations were tested with) finds the app at the listener both by
// its interface-level instance and by application (instance, mapping,
// MetadataService), with its signature from the metadata report; the app
// killed, both go.
func TestSidecar_RegisteredInNacos(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Nacos and a Python app; skipped with -short")
	}
	n := startNacos(t)
	app, proc := startPythonAppProcess(t)
	g := startGateway(t, render(t, sidecarNacosConfig, map[string]string{"App": app, "Nacos": n.addr}))
	_, port, _ := net.SplitHostPort(g.addr("dubbo-in"))
	cluster := registry.ClusterName("dubbo", registry.ServiceKey{Interface: sidecarIface, Version: "1.0.0", Group: "g1"})
	watchers := map[string]*registryGateway{
		"interface":   startNacosWatcher(t, n, registry.NacosOptions{Mode: registry.ModeInterface}),
		"application": startNacosWatcher(t, n, registry.NacosOptions{Mode: registry.ModeApplication}),
	}
	for mode, w := range watchers {
		d := w.waitPorts(t, cluster, port)
		md := w.dubboMetadata(t, cluster)
		if m, _ := md["methods"].([]any); !slices.Contains(m, any("sayHello")) {
			t.Errorf("%s: the discovered cluster's Dubbo metadata %v does not list sayHello", mode, md)
		}
		t.Logf("%s-level: found within %v, metadata %v", mode, d.Round(time.Millisecond), md)
	}
	t.Run("dubbo-go consumer over Triple, application-level discovery", func(t *testing.T) {
		got := dubboGoCall(t, "-mode", "tri", "-registry", "nacos", "-registry-addr", n.addr, "-iface", sidecarIface,
			"-version", "1.0.0", "-group", "g1", "-method", "sayHello", "-arg", "dubbo-go", "-wait", "20s")
		if got["result"] != "Hello dubbo-go from python (trace no)" {
			t.Errorf("dubbo-go consumer got %v", got)
		}
	})
	_ = proc.Kill()
	for mode, w := range watchers {
		d := w.waitPorts(t, cluster)
		t.Logf("%s-level: gone %v after the app was killed", mode, d.Round(time.Millisecond))
	}
}
