package registry

import (
	"encoding/json"
	"errors"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/nacos-group/nacos-sdk-go/v2/model"
)

// nacosInstances decodes a Nacos instance list fixture (GET
// /nacos/v1/ns/instance/list) into the SDK's instances, as a subscription
// hands them to the watcher.
func nacosInstances(t *testing.T, name string) []model.Instance {
	t.Helper()
	var svc model.Service
	if err := json.Unmarshal(fixture(t, name), &svc); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	sort.Slice(svc.Hosts, func(i, j int) bool { return svc.Hosts[i].Port < svc.Hosts[j].Port })
	return svc.Hosts
}

const nacosGreeterService = "providers:" + greeterIface + ":1.0.0:g1"

// The interface-level instances of the dubbo-go provider go-nacos
// (testdata/dubbogo/nacos-providers.json): one per protocol, Nacos weight
// 1.0, the provider URL's params as metadata, among them weight "0".
func TestNacosProviderFixture(t *testing.T) {
	insts := nacosInstances(t, "dubbogo/nacos-providers.json")
	if len(insts) != 2 {
		t.Fatalf("%d instances in the fixture, want 2", len(insts))
	}
	want := []struct {
		protocol, address string
	}{{"tri", "192.0.2.2:44213"}, {"dubbo", "192.0.2.2:44805"}}
	for i, in := range insts {
		if in.Weight != 1 || in.Metadata["weight"] != "0" || !in.Enable || !in.Healthy {
			t.Fatalf("fixture instance %s:%d: weight %v, weight param %q, enabled %v, healthy %v", in.Ip, in.Port, in.Weight, in.Metadata["weight"], in.Enable, in.Healthy)
		}
		p := nacosProvider(nacosGreeterService, in)
		if p == nil {
			t.Fatalf("nacosProvider(%s:%d) = nil", in.Ip, in.Port)
		}
		if p.Protocol != want[i].protocol || p.Address() != want[i].address {
			t.Errorf("provider %s %s, want %s %s", p.Protocol, p.Address(), want[i].protocol, want[i].address)
		}
		if k := (ServiceKey{Interface: greeterIface, Version: "1.0.0", Group: "g1"}); p.Service != k {
			t.Errorf("service %+v, want %+v", p.Service, k)
		}
		// Nacos's weight 1.0 stands for Dubbo's 100 when the provider's
		// own weight is 0 (unset).
		if p.Params["weight"] != "100" || p.Weight() != 100 || !p.Enabled() {
			t.Errorf("weight param %q, Weight() %d, enabled %v; want \"100\", 100, enabled", p.Params["weight"], p.Weight(), p.Enabled())
		}
		if diff := cmp.Diff([]string{"Add", "GetUser", "SayHello", "add", "getUser", "sayHello"}, p.Methods()); diff != "" {
			t.Errorf("methods (-want +got):\n%s", diff)
		}
		if p.Params["serialization"] != "hessian2" || p.Params["application"] != "go-nacos" || p.Params["path"] != "/"+greeterIface {
			t.Errorf("params %v", p.Params)
		}
		if in.Metadata["weight"] != "0" {
			t.Errorf("nacosProvider changed the instance's metadata: weight %q", in.Metadata["weight"])
		}
	}
}

// nacosProvider on the fixture's dubbo instance, changed one way at a time.
func TestNacosProvider(t *testing.T) {
	base := nacosInstances(t, "dubbogo/nacos-providers.json")[1] // dubbo, port 44805
	for _, c := range []struct {
		name    string
		service string
		edit    func(in *model.Instance)
		nil     bool
		key     ServiceKey
		proto   string
		weight  string // the weight param of the provider
	}{
		{name: "as published", edit: func(*model.Instance) {}, weight: "100"},
		{name: "disabled in Nacos", edit: func(in *model.Instance) { in.Enable = false }, nil: true},
		{name: "unhealthy", edit: func(in *model.Instance) { in.Healthy = false }, nil: true},
		{name: "Nacos weight 0", edit: func(in *model.Instance) { in.Weight = 0 }, nil: true},
		{name: "Nacos weight negative", edit: func(in *model.Instance) { in.Weight = -1 }, nil: true},
		{name: "Nacos weight 0.5 scales the default", edit: func(in *model.Instance) { in.Weight = 0.5 }, weight: "50"},
		{name: "Nacos weight 3", edit: func(in *model.Instance) { in.Weight = 3 }, weight: "300"},
		{name: "a tiny Nacos weight is at least 1", edit: func(in *model.Instance) { in.Weight = 0.001 }, weight: "1"},
		{name: "the provider's own weight wins", edit: func(in *model.Instance) { in.Weight = 0.5; in.Metadata["weight"] = "250" }, weight: "250"},
		{name: "no weight param", edit: func(in *model.Instance) { delete(in.Metadata, "weight") }, weight: "100"},
		{name: "weight param not a number", edit: func(in *model.Instance) { in.Metadata["weight"] = "heavy" }, weight: "100"},
		{name: "no protocol: dubbo", edit: func(in *model.Instance) { delete(in.Metadata, "protocol") }, proto: "dubbo", weight: "100"},
		{name: "metadata names the service", edit: func(in *model.Instance) {
			in.Metadata["version"], in.Metadata["group"] = "9.9.9", "other"
		}, key: ServiceKey{greeterIface, "9.9.9", "other"}, weight: "100"},
		{name: "no interface: from the service name", edit: func(in *model.Instance) {
			delete(in.Metadata, "interface")
			delete(in.Metadata, "version")
			delete(in.Metadata, "group")
		}, weight: "100"},
		{name: "no interface, no version or group in the name", service: "providers:org.Foo", edit: func(in *model.Instance) {
			delete(in.Metadata, "interface")
			delete(in.Metadata, "version")
			delete(in.Metadata, "group")
		}, key: ServiceKey{Interface: "org.Foo"}, weight: "100"},
		{name: "no interface, empty one in the name", service: "providers::1.0.0:g1", edit: func(in *model.Instance) {
			delete(in.Metadata, "interface")
		}, nil: true},
		{name: "no interface, a name without one", service: "go-nacos", edit: func(in *model.Instance) {
			delete(in.Metadata, "interface")
		}, nil: true},
		{name: "nil metadata", service: "providers:org.Foo:1:g", edit: func(in *model.Instance) { in.Metadata = nil },
			key: ServiceKey{"org.Foo", "1", "g"}, proto: "dubbo", weight: "100"},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := base
			in.Metadata = make(map[string]string, len(base.Metadata))
			for k, v := range base.Metadata {
				in.Metadata[k] = v
			}
			c.edit(&in)
			service := c.service
			if service == "" {
				service = nacosGreeterService
			}
			p := nacosProvider(service, in)
			if c.nil {
				if p != nil {
					t.Fatalf("nacosProvider = %+v, want nil (no traffic)", p)
				}
				return
			}
			if p == nil {
				t.Fatal("nacosProvider = nil")
			}
			key, proto := c.key, c.proto
			if key == (ServiceKey{}) {
				key = ServiceKey{greeterIface, "1.0.0", "g1"}
			}
			if proto == "" {
				proto = "dubbo"
			}
			if p.Service != key || p.Protocol != proto || p.Address() != "192.0.2.2:44805" || p.Params["weight"] != c.weight {
				t.Errorf("provider %+v %s %s weight %q, want %+v %s 192.0.2.2:44805 weight %q", p.Service, p.Protocol, p.Address(), p.Params["weight"], key, proto, c.weight)
			}
		})
	}
}

// The application-level instances of go-nacos (testdata/dubbogo/nacos-app.json),
// read as the watcher reads them.
func TestNacosApplicationInstanceFixture(t *testing.T) {
	const rev = "394a36aec53b490b43c344feddf67cdc46e95de847d595f4783a612807d1ba77a7325e72a043dc5d8e7d1160ef8e2d86d213df1c423bb0aec3cc0e2f509c157c"
	insts := nacosInstances(t, "dubbogo/nacos-app.json")
	if len(insts) != 2 || insts[0].Port != 44213 || insts[1].Port != 44805 {
		t.Fatalf("fixture instances %+v, want ports 44213 and 44805", insts)
	}
	for _, in := range insts {
		inst := &Instance{App: "go-nacos", Host: in.Ip, Port: uint32(in.Port), Meta: in.Metadata, Healthy: in.Healthy}
		if diff := cmp.Diff(map[string]uint32{"tri": 44213, "dubbo": 44805}, inst.Endpoints()); diff != "" {
			t.Errorf("%d: endpoints (-want +got):\n%s", in.Port, diff)
		}
		if inst.Revision() != rev {
			t.Errorf("%d: revision %q", in.Port, inst.Revision())
		}
		if proto, port, ok := inst.MetadataService(); proto != "dubbo" || port != 46527 || !ok {
			t.Errorf("%d: MetadataService() = %q %d %v, want dubbo 46527 true", in.Port, proto, port, ok)
		}
		// Not an interface-level instance: no interface in its metadata,
		// and its service name has none either.
		if p := nacosProvider("go-nacos", in); p != nil {
			t.Errorf("%d: nacosProvider on an application instance = %+v, want nil", in.Port, p)
		}
	}
}

func TestConfigMissing(t *testing.T) {
	for _, tc := range []struct {
		err  string
		want bool
	}{
		// Nacos's CONFIG_NOT_FOUND, as GetConfig returns it.
		{"config data not exist", true},
		{"Config data not exist", true},
		// Java Nacos's auth refusal, passed through by the SDK: not a deletion.
		{"user not found!", false},
		{"config not found", false},
		// nacos-sdk-go's own limit and failures (DisableUseSnapShot is set):
		// a read that failed, never a deletion.
		{"get config from remote nacos server fail, and is not allowed to read local file, err:ConfigQueryRequest is limited", false},
		{"ConfigQueryRequest is limited", false},
		{"get config from remote nacos server fail, and is not allowed to read local file, err:client not connected, current status:UNHEALTHY", false},
		{"read config from both server and cache fail, err=open x: no such file", false},
		{"data being modified, dataId=a,group=dubbo,tenant=", false},
	} {
		if got := ConfigMissing(errors.New(tc.err)); got != tc.want {
			t.Errorf("ConfigMissing(%q) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
