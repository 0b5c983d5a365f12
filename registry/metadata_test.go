package registry

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

const (
	javaAllRev       = "b43560aa1cd8d66eb28dd4476c298b34"
	javaDubboMetaRev = "a179c6c9fb8c884b6a7a7bb28538d903"
	javaRemoteRev    = "e862b04f916bcf266813b1b3f1d7dcc0"
	goAllRev         = "038c09482db96ee2c85e0cb7aabe22b2fc2dd5d6a4644bdbcb6475952fdeb9b59659a148b7d7e836ecac1a8ed67d809a118e221d87fbb3a308b21ffd15f52706"
	goRemoteRev      = "78415b7ee84ad0a3c0a29f257e3106dce653ab425b25fdfd71f7d63455433523e246d3bb906e87ebb9df4fe97cf4de8c79e822e2f7832d26fd008b1feb642bb6"
)

// instanceFacts is what an instance fixture says, read by hand.
type instanceFacts struct {
	app, host string
	port      uint32
	endpoints map[string]uint32
	revision  string
	// Where the MetadataService is (ok false: the metadata is remote).
	metaProto string
	metaPort  uint32
	metaOK    bool
}

var instanceFixtures = []struct {
	file string
	want instanceFacts
}{
	// Java: one node per application, named after the dubbo port. The
	// MetadataService is on tri by default (url-params protocol tri).
	{"java/instance-all.json", instanceFacts{"java-all", "192.0.2.2", 40937,
		map[string]uint32{"dubbo": 40937, "tri": 33157}, javaAllRev, "tri", 33157, true}},
	{"java/instance-dubbometa.json", instanceFacts{"java-dubbometa", "192.0.2.2", 43753,
		map[string]uint32{"dubbo": 43753, "tri": 32847}, javaDubboMetaRev, "dubbo", 43753, true}},
	{"java/instance-remote.json", instanceFacts{"java-remote", "192.0.2.2", 39299,
		map[string]uint32{"dubbo": 39299, "tri": 35015}, javaRemoteRev, "", 0, false}},
	// dubbo-go: one node per protocol, the same metadata in both; the
	// MetadataService over dubbo on a port of its own (41143).
	{"dubbogo/instance-all-dubbo.json", instanceFacts{"go-all", "192.0.2.2", 44255,
		map[string]uint32{"dubbo": 44255, "tri": 45681}, goAllRev, "dubbo", 41143, true}},
	{"dubbogo/instance-all-tri.json", instanceFacts{"go-all", "192.0.2.2", 45681,
		map[string]uint32{"dubbo": 44255, "tri": 45681}, goAllRev, "dubbo", 41143, true}},
	{"dubbogo/instance-remote-dubbo.json", instanceFacts{"go-remote", "192.0.2.2", 43423,
		map[string]uint32{"dubbo": 43423, "tri": 39725}, goRemoteRev, "", 0, false}},
	{"dubbogo/instance-remote-tri.json", instanceFacts{"go-remote", "192.0.2.2", 39725,
		map[string]uint32{"dubbo": 43423, "tri": 39725}, goRemoteRev, "", 0, false}},
}

func TestParseZKInstanceFixtures(t *testing.T) {
	for _, c := range instanceFixtures {
		t.Run(c.file, func(t *testing.T) {
			inst, err := ParseZKInstance(fixture(t, c.file))
			if err != nil {
				t.Fatal(err)
			}
			w := c.want
			if inst.App != w.app || inst.Host != w.host || inst.Port != w.port || !inst.Healthy {
				t.Errorf("instance %s %s:%d healthy %v, want %s %s:%d healthy", inst.App, inst.Host, inst.Port, inst.Healthy, w.app, w.host, w.port)
			}
			if diff := cmp.Diff(w.endpoints, inst.Endpoints()); diff != "" {
				t.Errorf("endpoints (-want +got):\n%s", diff)
			}
			if inst.Revision() != w.revision {
				t.Errorf("revision %q, want %q", inst.Revision(), w.revision)
			}
			proto, port, ok := inst.MetadataService()
			if proto != w.metaProto || port != w.metaPort || ok != w.metaOK {
				t.Errorf("MetadataService() = %q %d %v, want %q %d %v", proto, port, ok, w.metaProto, w.metaPort, w.metaOK)
			}
		})
	}
}

func TestParseZKInstanceBad(t *testing.T) {
	for _, c := range []struct{ name, data, errWant string }{
		{"empty", "", "unexpected end of JSON input"},
		{"not JSON", "192.0.2.2:20880", "invalid character"},
		{"truncated", `{"name":"go-all","address":"192.0.2.2","port":442`, "unexpected end of JSON input"},
		{"array", `[]`, "cannot unmarshal array"},
		{"null", `null`, "name and address are required"},
		{"no name", `{"address":"192.0.2.2","port":20880}`, "name and address are required"},
		{"no address", `{"name":"go-all","port":20880}`, "name and address are required"},
		{"negative port", `{"name":"go-all","address":"192.0.2.2","port":-1}`, "cannot unmarshal number -1"},
		{"port a string", `{"name":"go-all","address":"192.0.2.2","port":"20880"}`, "cannot unmarshal string"},
		{"metadata not strings", `{"name":"go-all","address":"192.0.2.2","port":1,"payload":{"metadata":{"dubbo.endpoints":[]}}}`, "cannot unmarshal array"},
	} {
		t.Run(c.name, func(t *testing.T) {
			inst, err := ParseZKInstance([]byte(c.data))
			if err == nil || inst != nil {
				t.Fatalf("ParseZKInstance(%s) = %+v, %v; want an error", c.data, inst, err)
			}
			if !strings.Contains(err.Error(), c.errWant) {
				t.Errorf("error %q, want it to say %q", err, c.errWant)
			}
		})
	}
}

// An instance's metadata as a registry may carry it, broken in every way
// the parsers must survive: no endpoints, no MetadataService, no panic.
func TestInstanceMetadataBad(t *testing.T) {
	for _, c := range []struct {
		name      string
		meta      map[string]string
		endpoints map[string]uint32
		metaOK    bool
	}{
		{"nil metadata", nil, map[string]uint32{}, false},
		{"empty", map[string]string{}, map[string]uint32{}, false},
		{"endpoints not JSON", map[string]string{"dubbo.endpoints": "dubbo:20880"}, map[string]uint32{}, false},
		{"endpoints an object", map[string]string{"dubbo.endpoints": `{"port":20880,"protocol":"dubbo"}`}, map[string]uint32{}, false},
		{"endpoint port negative", map[string]string{"dubbo.endpoints": `[{"port":-1,"protocol":"dubbo"}]`}, map[string]uint32{}, false},
		{"endpoint port a string", map[string]string{"dubbo.endpoints": `[{"port":"20880","protocol":"dubbo"}]`}, map[string]uint32{}, false},
		{"url-params not JSON", map[string]string{"dubbo.metadata-service.url-params": "port=20880"}, map[string]uint32{}, false},
		{"url-params port a number", map[string]string{"dubbo.metadata-service.url-params": `{"port":20880,"protocol":"dubbo"}`}, map[string]uint32{}, false},
		{"url-params without a port", map[string]string{"dubbo.metadata-service.url-params": `{"protocol":"dubbo"}`}, map[string]uint32{}, false},
		{"url-params port over 16 bits", map[string]string{"dubbo.metadata-service.url-params": `{"port":"65536","protocol":"dubbo"}`}, map[string]uint32{}, false},
		{"url-params null", map[string]string{"dubbo.metadata-service.url-params": `null`}, map[string]uint32{}, false},
		{"remote storage wins over url-params", map[string]string{"dubbo.metadata.storage-type": "remote",
			"dubbo.metadata-service.url-params": `{"port":"20880","protocol":"dubbo"}`}, map[string]uint32{}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			inst := &Instance{App: "a", Host: "192.0.2.9", Meta: c.meta}
			if diff := cmp.Diff(c.endpoints, inst.Endpoints()); diff != "" {
				t.Errorf("endpoints (-want +got):\n%s", diff)
			}
			if proto, port, ok := inst.MetadataService(); ok != c.metaOK {
				t.Errorf("MetadataService() = %q %d %v, want ok %v", proto, port, ok, c.metaOK)
			}
			if inst.Revision() != "" {
				t.Errorf("revision %q", inst.Revision())
			}
		})
	}
	// Without a protocol, url-params mean dubbo.
	inst := &Instance{Meta: map[string]string{"dubbo.metadata-service.url-params": `{"port":"20881"}`}}
	if proto, port, ok := inst.MetadataService(); proto != "dubbo" || port != 20881 || !ok {
		t.Errorf("MetadataService() without a protocol = %q %d %v, want dubbo 20881 true", proto, port, ok)
	}
}

// serviceFacts is one ServiceInfo of a MetadataInfo fixture, by hand.
type serviceFacts struct {
	name, group, version, protocol, path string
	port                                 int
	params                               map[string]string // a few, checked one by one
}

// providerFacts is one Provider that MetadataInfo.Providers makes.
type providerFacts struct {
	protocol, address string
	service           ServiceKey
}

var metadataFixtures = []struct {
	name     string
	load     func(t *testing.T) (*MetadataInfo, error)
	instance string // the instance fixture the metadata belongs to
	app, rev string
	services map[string]serviceFacts
	provs    []providerFacts
}{
	{
		name: "java over tri (JSON)", instance: "java/instance-all.json",
		load: func(t *testing.T) (*MetadataInfo, error) {
			return ParseMetadataJSON(fixture(t, "java/metadata-info-tri.json"))
		},
		app: "java-all", rev: javaAllRev,
		services: map[string]serviceFacts{
			"g1/" + greeterIface + ":1.0.0:tri": {greeterIface, "g1", "1.0.0", "tri", greeterIface, 33157,
				map[string]string{"serialization": "hessian2", "methods": "add,findUsers,getUser,greet,ping,sayHello,updateUser", "application": "java-all", "group": "g1"}},
			"g1/" + greeterIface + ":1.0.0:dubbo": {greeterIface, "g1", "1.0.0", "dubbo", greeterIface, 40937,
				map[string]string{"serialization": "hessian2", "metadata-type": "local"}},
		},
		provs: []providerFacts{
			{"dubbo", "192.0.2.2:40937", ServiceKey{greeterIface, "1.0.0", "g1"}},
			{"tri", "192.0.2.2:33157", ServiceKey{greeterIface, "1.0.0", "g1"}},
		},
	},
	{
		name: "java remote (JSON)", instance: "java/instance-remote.json",
		load: func(t *testing.T) (*MetadataInfo, error) {
			return ParseMetadataJSON(fixture(t, "java/metadata-info-remote.json"))
		},
		app: "java-remote", rev: javaRemoteRev,
		services: map[string]serviceFacts{
			greeterIface + ":3.0.0:dubbo": {greeterIface, "", "3.0.0", "dubbo", greeterIface, 39299,
				map[string]string{"metadata-type": "remote", "application": "java-remote"}},
			greeterIface + ":3.0.0:tri": {greeterIface, "", "3.0.0", "tri", greeterIface, 35015,
				map[string]string{"serialization": "hessian2"}},
		},
		provs: []providerFacts{
			{"dubbo", "192.0.2.2:39299", ServiceKey{greeterIface, "3.0.0", ""}},
			{"tri", "192.0.2.2:35015", ServiceKey{greeterIface, "3.0.0", ""}},
		},
	},
	{
		name: "java over dubbo (hessian2)", instance: "java/instance-dubbometa.json",
		load: func(t *testing.T) (*MetadataInfo, error) {
			return MetadataFromHessian(hessianFromFixture(t, "java/metadata-info-hessian2.json", "int32"))
		},
		app: "java-dubbometa", rev: javaDubboMetaRev,
		services: map[string]serviceFacts{
			"g2/" + greeterIface + ":2.0.0:dubbo": {greeterIface, "g2", "2.0.0", "dubbo", greeterIface, 43753,
				map[string]string{"metadata-service-protocol": "dubbo", "methods": "add,findUsers,getUser,greet,ping,sayHello,updateUser"}},
			"g2/" + greeterIface + ":2.0.0:tri": {greeterIface, "g2", "2.0.0", "tri", greeterIface, 32847,
				map[string]string{"REGISTRY_CLUSTER": "default"}},
		},
		provs: []providerFacts{
			{"dubbo", "192.0.2.2:43753", ServiceKey{greeterIface, "2.0.0", "g2"}},
			{"tri", "192.0.2.2:32847", ServiceKey{greeterIface, "2.0.0", "g2"}},
		},
	},
	{
		name: "dubbo-go remote (JSON at /dubbo/<app>/<revision>)", instance: "dubbogo/instance-remote-dubbo.json",
		load: func(t *testing.T) (*MetadataInfo, error) {
			return ParseMetadataJSON(fixture(t, "dubbogo/metadata-info-remote.json"))
		},
		app: "go-remote", rev: goRemoteRev,
		services: map[string]serviceFacts{
			greeterIface + ":3.0.0:dubbo": {greeterIface, "", "3.0.0", "dubbo", greeterIface, 43423,
				map[string]string{"methods": "Add,add,GetUser,getUser,SayHello,sayHello", "weight": "0", "timestamp": "1795677756"}},
			greeterIface + ":3.0.0:tri": {greeterIface, "", "3.0.0", "tri", greeterIface, 39725,
				map[string]string{"release": "dubbo-golang-3.3.2", "application": "go-remote"}},
		},
		provs: []providerFacts{
			{"dubbo", "192.0.2.2:43423", ServiceKey{greeterIface, "3.0.0", ""}},
			{"tri", "192.0.2.2:39725", ServiceKey{greeterIface, "3.0.0", ""}},
		},
	},
	{
		name: "dubbo-go over dubbo (hessian2)", instance: "dubbogo/instance-all-tri.json",
		load: func(t *testing.T) (*MetadataInfo, error) {
			return MetadataFromHessian(hessianFromFixture(t, "dubbogo/metadata-info-hessian2.json", "int64"))
		},
		app: "go-all", rev: goAllRev,
		services: map[string]serviceFacts{
			"g1/" + greeterIface + ":1.0.0:dubbo": {greeterIface, "g1", "1.0.0", "dubbo", greeterIface, 44255,
				map[string]string{"methods": "Add,add,GetUser,getUser,SayHello,sayHello", "group": "g1", "serialization": "hessian2"}},
			"g1/" + greeterIface + ":1.0.0:tri": {greeterIface, "g1", "1.0.0", "tri", greeterIface, 45681,
				map[string]string{"cluster": "failover", "loadbalance": "random"}},
		},
		provs: []providerFacts{
			{"dubbo", "192.0.2.2:44255", ServiceKey{greeterIface, "1.0.0", "g1"}},
			{"tri", "192.0.2.2:45681", ServiceKey{greeterIface, "1.0.0", "g1"}},
		},
	},
}

func TestMetadataInfoFixtures(t *testing.T) {
	for _, c := range metadataFixtures {
		t.Run(c.name, func(t *testing.T) {
			md, err := c.load(t)
			if err != nil {
				t.Fatal(err)
			}
			if md.App != c.app || md.Revision != c.rev {
				t.Errorf("app %q revision %q, want %q %q", md.App, md.Revision, c.app, c.rev)
			}
			if len(md.Services) != len(c.services) {
				t.Errorf("%d services, want %d: %v", len(md.Services), len(c.services), md.Services)
			}
			for k, w := range c.services {
				si := md.Services[k]
				if si == nil {
					t.Errorf("no service %s", k)
					continue
				}
				got := serviceFacts{si.Name, si.Group, si.Version, si.Protocol, si.Path, si.Port, nil}
				w2 := w
				w2.params = nil
				if diff := cmp.Diff(w2, got, cmp.AllowUnexported(serviceFacts{})); diff != "" {
					t.Errorf("service %s (-want +got):\n%s", k, diff)
				}
				for pk, pv := range w.params {
					if si.Params[pk] != pv {
						t.Errorf("service %s param %s = %q, want %q", k, pk, si.Params[pk], pv)
					}
				}
			}

			inst, err := ParseZKInstance(fixture(t, c.instance))
			if err != nil {
				t.Fatal(err)
			}
			var got []providerFacts
			for _, p := range md.Providers(inst) {
				got = append(got, providerFacts{p.Protocol, p.Address(), p.Service})
				if p.Params["application"] != c.app || p.Params["serialization"] != "hessian2" || len(p.Methods()) == 0 {
					t.Errorf("provider %s %s: params %v, want application %s, hessian2 and methods", p.Protocol, p.Address(), p.Params, c.app)
				}
			}
			if diff := cmp.Diff(c.provs, got, cmp.AllowUnexported(providerFacts{})); diff != "" {
				t.Errorf("Providers (-want +got):\n%s", diff)
			}
		})
	}
}

// Where Providers finds a service's port, and what it leaves alone.
func TestMetadataInfoProviders(t *testing.T) {
	md := &MetadataInfo{App: "a", Revision: "r", Services: map[string]*ServiceInfo{
		"org.Foo:1:dubbo": {Name: "org.Foo", Version: "1", Protocol: "dubbo", Port: 20880, Params: map[string]string{"methods": "a"}},
		"org.Foo:1:tri":   {Name: "org.Foo", Version: "1", Protocol: "tri", Params: map[string]string{"application": "someone-else"}},
		"org.Bar:1:rest":  {Path: "/org.Bar", Version: "1", Protocol: "rest", Port: 8080},
	}}
	// No endpoints: the MetadataInfo's own ports, services without one skipped.
	inst := &Instance{App: "a", Host: "192.0.2.9"}
	var got []string
	for _, p := range md.Providers(inst) {
		got = append(got, p.Protocol+" "+p.Address()+" "+p.Service.String()+" app="+p.Params["application"])
	}
	want := []string{"rest 192.0.2.9:8080 org.Bar:1 app=a", "dubbo 192.0.2.9:20880 org.Foo:1 app=a"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("without endpoints (-want +got):\n%s", diff)
	}
	// The instance's endpoints win over the MetadataInfo's ports.
	inst.Meta = map[string]string{"dubbo.endpoints": `[{"port":20001,"protocol":"dubbo"},{"port":50051,"protocol":"tri"}]`}
	got = nil
	for _, p := range md.Providers(inst) {
		got = append(got, p.Protocol+" "+p.Address())
		p.Params["mutated"] = "yes"
	}
	want = []string{"rest 192.0.2.9:8080", "dubbo 192.0.2.9:20001", "tri 192.0.2.9:50051"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("with endpoints (-want +got):\n%s", diff)
	}
	for k, si := range md.Services {
		if si.Params["mutated"] != "" {
			t.Errorf("a provider's params share the map of service %s", k)
		}
	}
	if md.Services["org.Foo:1:tri"].Params["application"] != "someone-else" {
		t.Errorf("Providers changed the MetadataInfo's params")
	}
	if got := (&MetadataInfo{}).Providers(inst); len(got) != 0 {
		t.Errorf("an empty MetadataInfo makes providers %v", got)
	}
}

func TestParseMetadataJSONBad(t *testing.T) {
	good := fixture(t, "dubbogo/metadata-info-remote.json")
	for _, c := range []struct{ name, data, errWant string }{
		{"empty", "", "unexpected end of JSON input"},
		{"not JSON", "app=go-remote", "invalid character"},
		{"truncated fixture", string(good[:len(good)/2]), "unexpected end of JSON input"},
		{"an array", `[{"app":"a"}]`, "cannot unmarshal array"},
		{"services an array", `{"app":"a","services":[]}`, "cannot unmarshal array"},
		{"port a string", `{"services":{"k":{"port":"20880"}}}`, "cannot unmarshal string"},
		{"port fractional", `{"services":{"k":{"port":1.5}}}`, "cannot unmarshal number 1.5"},
		{"params not strings", `{"services":{"k":{"params":{"weight":100}}}}`, "cannot unmarshal number"},
	} {
		t.Run(c.name, func(t *testing.T) {
			md, err := ParseMetadataJSON([]byte(c.data))
			if err == nil || md != nil {
				t.Fatalf("ParseMetadataJSON(%s) = %+v, %v; want an error", c.data, md, err)
			}
			if !strings.Contains(err.Error(), c.errWant) {
				t.Errorf("error %q, want it to say %q", err, c.errWant)
			}
		})
	}
}

func TestMetadataFromHessian(t *testing.T) {
	svc := func(port any) map[string]any {
		return map[string]any{"_class": "org.apache.dubbo.metadata.MetadataInfo$ServiceInfo", "name": "org.Foo", "protocol": "dubbo", "port": port,
			"params": map[any]any{"weight": "5", "methods": "a,b"}}
	}
	info := func(services any) map[string]any {
		return map[string]any{"_class": "org.apache.dubbo.metadata.MetadataInfo", "app": "a", "revision": "r", "services": services}
	}
	for _, c := range []struct {
		name    string
		v       any
		errWant string
		ports   map[string]int // service key -> port
	}{
		{"nil", nil, "want an object, got <nil>", nil},
		{"a string", "MetadataInfo", "want an object, got string", nil},
		{"a list", []any{info(nil)}, "want an object, got []interface {}", nil},
		{"a typed map", map[string]string{"app": "a"}, "want an object", nil},
		{"another object", map[string]any{"_class": "java.util.Date", "value": int64(1)}, "neither app nor services", nil},
		{"a struct of another class", struct{ App string }{"a"}, "want an object", nil},
		{"no services", info(nil), "", map[string]int{}},
		{"services not a map", info("x"), "", map[string]int{}},
		{"a service not a map", info(map[any]any{"k": "x", "ok": svc(int32(1))}), "", map[string]int{"ok": 1}},
		{"a nil service", info(map[any]any{"k": nil}), "", map[string]int{}},
		{"port int32 (Java int)", info(map[any]any{"k": svc(int32(20880))}), "", map[string]int{"k": 20880}},
		{"port int64 (Go int)", info(map[any]any{"k": svc(int64(20880))}), "", map[string]int{"k": 20880}},
		{"port int", info(map[any]any{"k": svc(20880)}), "", map[string]int{"k": 20880}},
		{"port a float", info(map[any]any{"k": svc(20880.0)}), "", map[string]int{"k": 0}},
		{"port a string", info(map[any]any{"k": svc("20880")}), "", map[string]int{"k": 0}},
		{"port missing", info(map[any]any{"k": svc(nil)}), "", map[string]int{"k": 0}},
		{"services keyed by non-strings", info(map[any]any{int32(7): svc(int32(1))}), "", map[string]int{"7": 1}},
		{"services a map[string]any", info(map[string]any{"k": svc(int32(2))}), "", map[string]int{"k": 2}},
	} {
		t.Run(c.name, func(t *testing.T) {
			md, err := MetadataFromHessian(c.v)
			if c.errWant != "" {
				if err == nil || !strings.Contains(err.Error(), c.errWant) || md != nil {
					t.Fatalf("MetadataFromHessian = %+v, %v; want an error saying %q", md, err, c.errWant)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if md.App != "a" || md.Revision != "r" {
				t.Errorf("app %q revision %q, want a r", md.App, md.Revision)
			}
			ports := map[string]int{}
			for k, si := range md.Services {
				ports[k] = si.Port
				if si.Params["weight"] != "5" || si.Params["methods"] != "a,b" || si.Name != "org.Foo" {
					t.Errorf("service %s: %+v", k, si)
				}
			}
			if diff := cmp.Diff(c.ports, ports); diff != "" {
				t.Errorf("ports (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseServiceDefinitionFixture(t *testing.T) {
	def, err := ParseServiceDefinition(fixture(t, "java/service-definition.json"))
	if err != nil {
		t.Fatal(err)
	}
	if def.CanonicalName != greeterIface {
		t.Errorf("canonicalName %q", def.CanonicalName)
	}
	// Sorted by name, overloads in the order the file has them.
	want := []Method{
		{"add", []string{"int", "int"}, "int"},
		{"findUsers", []string{"java.lang.String", "java.util.Map<java.lang.String,java.lang.String>"}, "java.util.List<org.apache.dubbo.samples.User>"},
		{"getUser", []string{"long"}, "org.apache.dubbo.samples.User"},
		{"greet", []string{"java.lang.String"}, "java.lang.String"},
		{"greet", []string{"java.lang.String", "int"}, "java.lang.String"},
		{"ping", []string{}, "void"},
		{"sayHello", []string{"java.lang.String"}, "java.lang.String"},
		{"updateUser", []string{"org.apache.dubbo.samples.User"}, "org.apache.dubbo.samples.User"},
	}
	if diff := cmp.Diff(want, def.Methods); diff != "" {
		t.Errorf("methods (-want +got):\n%s", diff)
	}
}

func TestParseServiceDefinition(t *testing.T) {
	for _, c := range []struct {
		name, data, errWant string
		want                *ServiceDefinition
	}{
		{"minimal", `{"canonicalName":"org.Foo"}`, "", &ServiceDefinition{CanonicalName: "org.Foo"}},
		{"null methods", `{"canonicalName":"org.Foo","methods":null}`, "", &ServiceDefinition{CanonicalName: "org.Foo"}},
		{"a method without types", `{"canonicalName":"org.Foo","methods":[{"name":"b"},{"name":"a","returnType":"void"}]}`, "",
			&ServiceDefinition{CanonicalName: "org.Foo", Methods: []Method{{Name: "a", ReturnType: "void"}, {Name: "b"}}}},
		{"empty", "", "unexpected end of JSON input", nil},
		{"not JSON", "org.Foo", "invalid character", nil},
		{"null", "null", "no canonicalName", nil},
		{"no canonicalName", `{"methods":[{"name":"a"}]}`, "no canonicalName", nil},
		{"empty canonicalName", `{"canonicalName":"","methods":[]}`, "no canonicalName", nil},
		{"a method without a name", `{"canonicalName":"org.Foo","methods":[{"name":"a"},{"parameterTypes":["int"]}]}`, "a method without a name", nil},
		{"methods an object", `{"canonicalName":"org.Foo","methods":{"name":"a"}}`, "cannot unmarshal object", nil},
		{"types not strings", `{"canonicalName":"org.Foo","methods":[{"name":"a","parameterTypes":[1]}]}`, "cannot unmarshal number", nil},
		{"truncated fixture", `{"annotations":[],"canonicalName":"org.apache.dubbo.samples.GreeterService","codeSource":"provider.jar","methods":[{"annotations":[],"name":"add"`, "unexpected end of JSON input", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			def, err := ParseServiceDefinition([]byte(c.data))
			if c.errWant != "" {
				if err == nil || def != nil || !strings.Contains(err.Error(), c.errWant) {
					t.Fatalf("ParseServiceDefinition = %+v, %v; want an error saying %q", def, err, c.errWant)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.want, def, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
