package announce

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	hessian "github.com/apache/dubbo-go-hessian2"

	"github.com/meshgate/meshgate/registry"
)

func testProvider() *Provider {
	return &Provider{App: "py-app", Host: "10.0.0.7", Port: 20880, Started: time.UnixMilli(1795677328221),
		Services: []Service{
			{Interface: "org.example.Greeter", Version: "1.0.0", Group: "g1", Methods: []Method{
				{Name: "sayHello", ParamTypes: []string{"java.lang.String"}, ReturnType: "java.lang.String"},
				{Name: "add", ParamTypes: []string{"int", "int"}, ReturnType: "int"},
			}},
			{Interface: "org.example.Clock", Methods: []Method{{Name: "now", ReturnType: "long"}}},
		}}
}

// What is announced reads back, with the registry package's parsers (the
// ones that read real Java Dubbo and dubbo-go registrations), as the
// provider it describes.
func TestProvider_ReadsBack(t *testing.T) {
	p := testProvider()
	t.Run("interface-level URL", func(t *testing.T) {
		for _, tc := range []struct {
			svc     *Service
			key     registry.ServiceKey
			methods []string
		}{
			{&p.Services[0], registry.ServiceKey{Interface: "org.example.Greeter", Version: "1.0.0", Group: "g1"}, []string{"add", "sayHello"}},
			{&p.Services[1], registry.ServiceKey{Interface: "org.example.Clock"}, []string{"now"}},
		} {
			raw := p.URL(tc.svc, Dubbo)
			// ZooKeeper holds it URL-escaped as a node name; read it back so.
			un, err := url.QueryUnescape(url.QueryEscape(raw))
			if err != nil {
				t.Fatal(err)
			}
			got, err := registry.ParseURL(un)
			if err != nil {
				t.Fatalf("%s: %v", raw, err)
			}
			if got.Service != tc.key || got.Protocol != "dubbo" || got.Address() != "10.0.0.7:20880" {
				t.Errorf("%s read back as %+v at %s", raw, got.Service, got.Address())
			}
			if m := got.Methods(); len(m) != len(tc.methods) || m[0] != tc.methods[0] {
				t.Errorf("methods %v, want %v", m, tc.methods)
			}
			if got.Params["side"] != "provider" || got.Params["application"] != "py-app" || got.Params["serialization"] != "hessian2" {
				t.Errorf("params %v", got.Params)
			}
		}
	})
	t.Run("instance and MetadataInfo over hessian2", func(t *testing.T) {
		m := p.Metadata()
		data, err := p.InstanceJSON(m.Revision)
		if err != nil {
			t.Fatal(err)
		}
		inst, err := registry.ParseZKInstance(data)
		if err != nil {
			t.Fatal(err)
		}
		if inst.App != "py-app" || inst.Host != "10.0.0.7" || inst.Port != 20880 || inst.Revision() != m.Revision {
			t.Errorf("instance %+v", inst)
		}
		if proto, port, ok := inst.MetadataService(); !ok || proto != "dubbo" || port != 20880 {
			t.Errorf("MetadataService at %s %d (%v), want dubbo 20880", proto, port, ok)
		}
		if eps := inst.Endpoints(); eps["dubbo"] != 20880 {
			t.Errorf("endpoints %v", eps)
		}
		// The MetadataInfo as a consumer decodes it from the answer.
		enc := hessian.NewEncoder()
		if err := enc.Encode(m); err != nil {
			t.Fatal(err)
		}
		v, err := hessian.NewDecoder(enc.Buffer()).Decode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := registry.MetadataFromHessian(v)
		if err != nil {
			t.Fatal(err)
		}
		if got.App != "py-app" || got.Revision != m.Revision || len(got.Services) != 2 {
			t.Fatalf("metadata read back as %+v", got)
		}
		provs := got.Providers(inst)
		keys := map[registry.ServiceKey]string{}
		for _, pr := range provs {
			keys[pr.Service] = pr.Address() + " " + pr.Protocol + " " + pr.Params["methods"]
		}
		want := map[registry.ServiceKey]string{
			{Interface: "org.example.Greeter", Version: "1.0.0", Group: "g1"}: "10.0.0.7:20880 dubbo add,sayHello",
			{Interface: "org.example.Clock"}:                                  "10.0.0.7:20880 dubbo now",
		}
		if len(keys) != len(want) {
			t.Errorf("providers %v, want %v", keys, want)
		}
		for k, w := range want {
			if keys[k] != w {
				t.Errorf("%v: %q, want %q", k, keys[k], w)
			}
		}
	})
	t.Run("definition", func(t *testing.T) {
		data, err := p.Definition(&p.Services[0])
		if err != nil {
			t.Fatal(err)
		}
		def, err := registry.ParseServiceDefinition(data)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := json.Marshal(def.Methods)
		want := `[{"Name":"add","ParameterTypes":["int","int"],"ReturnType":"int"},{"Name":"sayHello","ParameterTypes":["java.lang.String"],"ReturnType":"java.lang.String"}]`
		if def.CanonicalName != "org.example.Greeter" || string(got) != want {
			t.Errorf("definition %s %s, want %s", def.CanonicalName, got, want)
		}
	})
}

// The revision changes when what consumers read changes, and only then.
func TestProvider_Revision(t *testing.T) {
	base := testProvider().Metadata().Revision
	again := testProvider()
	again.Started = again.Started.Add(time.Hour) // a restart
	if r := again.Metadata().Revision; r != base {
		t.Errorf("a restart changed the revision: %s -> %s", base, r)
	}
	for name, change := range map[string]func(*Provider){
		"port": func(p *Provider) { p.Port++ },
		"method": func(p *Provider) {
			p.Services[1].Methods = append(p.Services[1].Methods, Method{Name: "zone", ReturnType: "java.lang.String"})
		},
		"return type": func(p *Provider) { p.Services[0].Methods[1].ReturnType = "long" },
		"group":       func(p *Provider) { p.Services[0].Group = "g2" },
	} {
		p := testProvider()
		change(p)
		if r := p.Metadata().Revision; r == base {
			t.Errorf("changing the %s kept revision %s", name, r)
		}
	}
}

// The hessian encoder is the one the listener answers with: a MetadataInfo
// is written as a typed object (class definition), not as a map.
func TestMetadataInfo_TypedObject(t *testing.T) {
	enc := hessian.NewEncoder()
	if err := enc.Encode(testProvider().Metadata()); err != nil {
		t.Fatal(err)
	}
	b := enc.Buffer()
	if b[0] != 'C' || !bytes.Contains(b, []byte("org.apache.dubbo.metadata.MetadataInfo$ServiceInfo")) {
		t.Errorf("encoded as %q...", b[:min(len(b), 48)])
	}
}

// A port serving Dubbo2 and Triple is announced with both: an endpoint, a
// service and a URL per protocol, at the same port.
func TestProvider_BothProtocols(t *testing.T) {
	p := testProvider()
	p.Protocols = []string{Dubbo, Triple}
	m := p.Metadata()
	data, err := p.InstanceJSON(m.Revision)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := registry.ParseZKInstance(data)
	if err != nil {
		t.Fatal(err)
	}
	if eps := inst.Endpoints(); eps["dubbo"] != 20880 || eps["tri"] != 20880 {
		t.Errorf("endpoints %v, want dubbo and tri at 20880", eps)
	}
	got := map[string]bool{}
	for _, pr := range (&registry.MetadataInfo{App: m.App, Revision: m.Revision, Services: toRegistry(m)}).Providers(inst) {
		got[pr.Protocol+" "+pr.Service.String()+" "+pr.Address()] = true
	}
	for _, want := range []string{"dubbo g1/org.example.Greeter:1.0.0 10.0.0.7:20880", "tri g1/org.example.Greeter:1.0.0 10.0.0.7:20880",
		"dubbo org.example.Clock 10.0.0.7:20880", "tri org.example.Clock 10.0.0.7:20880"} {
		if !got[want] {
			t.Errorf("providers %v lack %q", got, want)
		}
	}
	if u := p.URL(&p.Services[0], Triple); !strings.HasPrefix(u, "tri://10.0.0.7:20880/org.example.Greeter?") {
		t.Errorf("tri URL %s", u)
	}
	if testProvider().Metadata().Revision == m.Revision {
		t.Error("adding a protocol kept the revision")
	}
}

// toRegistry reads a MetadataInfo's services as the registry package's.
func toRegistry(m *MetadataInfo) map[string]*registry.ServiceInfo {
	out := map[string]*registry.ServiceInfo{}
	for k, s := range m.Services {
		out[k] = &registry.ServiceInfo{Name: s.Name, Group: s.Group, Version: s.Version, Protocol: s.Protocol, Port: int(s.Port), Path: s.Path, Params: s.Params}
	}
	return out
}

// The instance node's content is the same at each health tick (the
// ZooKeeper registrar rewrites it only when it differs: a change would
// wake every consumer's watch every interval).
func TestProvider_InstanceJSONStable(t *testing.T) {
	p := testProvider()
	m := p.Metadata()
	a, err := p.InstanceJSON(m.Revision)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond)
	b, err := p.InstanceJSON(m.Revision)
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Errorf("the instance JSON changed between two ticks:\n%s\n%s", a, b)
	}
}
