package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The sidecar section's outbound services are watched in the sidecar's
// registries (only they), next to the registries the file names itself.
func TestLoad_SidecarRegistries(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "in", "sidecar.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := Load(data, "")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	rs := l.Bootstrap.Registries
	if len(rs) != 2 {
		t.Fatalf("registries %+v, want the sidecar's two", rs)
	}
	want := []DubboServiceConfig{{Interface: "org.apache.dubbo.samples.DemoService", Version: "1.0.0", Group: "g1"}, {Interface: "org.apache.dubbo.samples.ClockService"}}
	for i, kind := range []string{"zookeeper", "nacos"} {
		r := rs[i]
		if r.Kind != kind || r.Name != "sidecar-"+string(rune('0'+i)) || len(r.Services) != 2 || r.Services[0] != want[0] || r.Services[1] != want[1] {
			t.Errorf("registry %d: %+v, want %s watching %v", i, r, kind, want)
		}
	}
	if rs[1].Namespace != "dev" {
		t.Errorf("the Nacos registry lost its namespace: %+v", rs[1])
	}
}

func TestLoad_SidecarErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"nothing given", `sidecar: { inbound: { services: [] } }`, []string{
			"sidecar.application: must not be empty", "sidecar.app.address: must be the app's host:port", "sidecar.registries: needs at least one"}},
		{"outbound without services, a bad protocol", `
sidecar:
  application: a
  app: { address: "127.0.0.1:8000" }
  inbound: { services: [ { interface: org.x.S, methods: [ { name: m } ] } ] }
  registries: [ { zookeeper: { servers: [ "zk:2181" ] } } ]
  outbound: { services: [ { interface: org.x.T, protocol: grpc }, { version: 1.0.0 } ] }`, []string{
			`sidecar.outbound.services[0].protocol: want dubbo or tri, got "grpc"`, "sidecar.outbound.services[1].interface: must not be empty"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load([]byte(tc.yaml), "")
			if err == nil {
				t.Fatal("loaded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q, want it to say %q", err, w)
				}
			}
		})
	}
}
