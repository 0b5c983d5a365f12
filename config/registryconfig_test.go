package config

import (
	"strings"
	"testing"
	"time"
)

func TestLoad_Registries(t *testing.T) {
	t.Setenv("MESHGATE_TEST_NACOS_PW", "from-env")
	l, err := Load([]byte(`
listeners:
  - name: main
    address: 127.0.0.1:0
    virtual_hosts: [ { routes: [ { match: { prefix: / }, cluster: "tri|org.example.Greeter|1.0.0|g1" } ] } ]
registries:
  - name: zk
    zookeeper: { servers: [ "zk1:2181", "zk2:2181" ], root: /dubbo-prod, session_timeout: 6s }
    mode: interface
    services: [ { interface: org.example.Greeter, version: 1.0.0, group: g1 } ]
    lb_policy: least_request
  - name: nacos
    nacos: { servers: [ "nacos:8848" ], grpc_port: 19848, namespace: dev, group: G, username: gw, password_env: MESHGATE_TEST_NACOS_PW }
    resync: 5s
`), "")
	if err != nil {
		t.Fatalf("Load: %v (a route may name a registry's cluster)", err)
	}
	rs := l.Bootstrap.Registries
	if len(rs) != 2 {
		t.Fatalf("registries %+v", rs)
	}
	zk, nacos := rs[0], rs[1]
	if zk.Kind != "zookeeper" || strings.Join(zk.Servers, ",") != "zk1:2181,zk2:2181" || zk.Root != "/dubbo-prod" ||
		zk.SessionTimeout != 6*time.Second || zk.Mode != "interface" || zk.LBPolicy != "least_request" ||
		len(zk.Services) != 1 || zk.Services[0] != (DubboServiceConfig{Interface: "org.example.Greeter", Version: "1.0.0", Group: "g1"}) {
		t.Errorf("zookeeper settings %+v", zk)
	}
	if nacos.Kind != "nacos" || nacos.GRPCPort != 19848 || nacos.Namespace != "dev" || nacos.Group != "G" ||
		nacos.Username != "gw" || nacos.Password != "from-env" || nacos.Resync != 5*time.Second || nacos.Mode != "" {
		t.Errorf("nacos settings %+v", nacos)
	}
}

func TestLoad_RegistryErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"neither kind", `registries: [ { name: r } ]`, "give exactly one of zookeeper or nacos"},
		{"both kinds", `registries: [ { name: r, zookeeper: { servers: [ "a:1" ] }, nacos: { servers: [ "b:2" ] } } ]`, "give exactly one"},
		{"no name", `registries: [ { zookeeper: { servers: [ "a:1" ] } } ]`, "registries[0].name: must not be empty"},
		{"twice", `registries: [ { name: r, zookeeper: { servers: [ "a:1" ] } }, { name: r, zookeeper: { servers: [ "a:1" ] } } ]`, `registry "r" is defined twice`},
		{"no servers", `registries: [ { name: r, nacos: { servers: [] } } ]`, "registries[0].nacos.servers: give at least one host:port"},
		{"bad server", `registries: [ { name: r, zookeeper: { servers: [ "zk" ] } } ]`, `want host:port, got "zk"`},
		{"bad mode", `registries: [ { name: r, mode: both, zookeeper: { servers: [ "a:1" ] } } ]`, "want interface, application or all"},
		{"bad lb", `registries: [ { name: r, lb_policy: fastest, zookeeper: { servers: [ "a:1" ] } } ]`, `unknown load balancing policy "fastest"`},
		{"service without interface", `registries: [ { name: r, services: [ { version: 1.0.0 } ], zookeeper: { servers: [ "a:1" ] } } ]`, "services[0].interface: must not be empty"},
		{"bad resync", `registries: [ { name: r, resync: 0s, zookeeper: { servers: [ "a:1" ] } } ]`, "resync: must be positive"},
		{"password twice", `registries: [ { name: r, nacos: { servers: [ "a:1" ], password: x, password_env: HOME } } ]`, "give password or password_env, not both"},
		{"password env unset", `registries: [ { name: r, nacos: { servers: [ "a:1" ], password_env: MESHGATE_NO_SUCH_VAR } } ]`, "MESHGATE_NO_SUCH_VAR is not set"},
		{"unknown field", `registries: [ { name: r, zookeeper: { servers: [ "a:1" ], chroot: x } } ]`, "unknown field"},
		{"route to a non-registry cluster", `
listeners: [ { name: l, address: "127.0.0.1:0", virtual_hosts: [ { routes: [ { match: { prefix: / }, cluster: nowhere } ] } ] } ]
registries: [ { name: r, zookeeper: { servers: [ "a:1" ] } } ]`, `cluster "nowhere" is not defined`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load([]byte(tc.yaml), "")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
