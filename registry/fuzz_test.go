package registry

import (
	"encoding/json"
	"net/url"
	"sort"
	"testing"
)

// The fuzz targets are seeded with the real payloads of testdata/java and
// testdata/dubbogo, and check what every caller relies on: no panic, and
// a result that is either an error or usable.
//
//	go test -run '^$' -fuzz FuzzParseURL -fuzztime 20s ./registry

func FuzzParseURL(f *testing.F) {
	for _, name := range []string{"java/provider-tri.url", "java/provider-dubbo.url", "dubbogo/provider-tri.url", "dubbogo/provider-dubbo.url"} {
		node := fixtureText(f, name)
		f.Add(node)
		if raw, err := url.QueryUnescape(node); err == nil {
			f.Add(raw)
		}
	}
	for _, s := range []string{"", "%", "dubbo://10.0.0.1:20880", "override://0.0.0.0/org.Foo?disabled=true",
		"tri://[2001:db8::1]:50051/org.Foo?weight=5&methods=b,a", "dubbo://h:65536/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := ParseURL(raw)
		if err != nil {
			if p != nil {
				t.Fatalf("ParseURL(%q) returned a provider with its error %v", raw, err)
			}
			return
		}
		if p == nil || p.Params == nil || p.Service.Interface == "" || p.Protocol == "" || p.Port > 65535 {
			t.Fatalf("ParseURL(%q) = %+v without an error", raw, p)
		}
		if p.Weight() == 0 {
			t.Fatalf("ParseURL(%q): weight 0", raw)
		}
		_ = p.Enabled()
		_ = p.Address()
		_ = p.Service.String()
		if m := p.Methods(); !sort.StringsAreSorted(m) {
			t.Fatalf("ParseURL(%q): methods %v not sorted", raw, m)
		}
		// An override made of it applies without panicking.
		applyOverrides([]*Provider{p}, []string{raw, url.QueryEscape(raw)})
	})
}

func FuzzParseZKInstance(f *testing.F) {
	for _, name := range []string{"java/instance-all.json", "java/instance-dubbometa.json", "java/instance-remote.json",
		"dubbogo/instance-all-dubbo.json", "dubbogo/instance-all-tri.json", "dubbogo/instance-remote-dubbo.json", "dubbogo/instance-remote-tri.json"} {
		f.Add(fixture(f, name))
	}
	f.Add([]byte(`{"name":"a","address":"h","payload":{"metadata":null}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		inst, err := ParseZKInstance(data)
		if err != nil {
			if inst != nil {
				t.Fatalf("an instance with an error: %+v, %v", inst, err)
			}
			return
		}
		if inst == nil || inst.App == "" || inst.Host == "" {
			t.Fatalf("ParseZKInstance(%q) = %+v without an error", data, inst)
		}
		checkInstanceMetadata(t, inst)
	})
}

// checkInstanceMetadata reads an instance's metadata every way the
// watchers do.
func checkInstanceMetadata(t *testing.T, inst *Instance) {
	t.Helper()
	_ = inst.Revision()
	_ = inst.Endpoints()
	proto, port, ok := inst.MetadataService()
	if ok && (proto == "" || port > 65535) {
		t.Fatalf("MetadataService() = %q %d %v for %v", proto, port, ok, inst.Meta)
	}
	if !ok && (proto != "" || port != 0) {
		t.Fatalf("MetadataService() = %q %d %v for %v", proto, port, ok, inst.Meta)
	}
}

func FuzzParseMetadataJSON(f *testing.F) {
	for _, name := range []string{"java/metadata-info-tri.json", "java/metadata-info-remote.json", "dubbogo/metadata-info-remote.json"} {
		f.Add(fixture(f, name))
	}
	// The hessian2 fixtures are JSON too (with _class keys).
	f.Add(fixture(f, "java/metadata-info-hessian2.json"))
	f.Add(fixture(f, "dubbogo/metadata-info-hessian2.json"))
	// Real payloads carry nulls too (rnacos: "metadata":null, Curator:
	// "sslPort":null): something for the mutator to copy around.
	f.Add([]byte(`{"app":"a","revision":null,"services":{"k":{"protocol":"dubbo","port":1}},"tag":null}`))
	inst, err := ParseZKInstance(fixture(f, "dubbogo/instance-all-tri.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		md, err := ParseMetadataJSON(data)
		if err != nil {
			if md != nil {
				t.Fatalf("metadata with an error: %+v, %v", md, err)
			}
			return
		}
		// What the watchers do with it: providers of an instance.
		for _, p := range md.Providers(inst) {
			if p == nil || p.Params == nil || p.Params["application"] != inst.App {
				t.Fatalf("provider %+v from %q", p, data)
			}
			_ = p.Address()
			_ = p.Methods()
			_ = p.Weight()
		}
		// And the same content as the hessian2 answer would carry it.
		var v any
		if json.Unmarshal(data, &v) == nil {
			if hmd, err := MetadataFromHessian(v); err == nil {
				_ = hmd.Providers(inst)
			}
		}
	})
}

func FuzzParseServiceDefinition(f *testing.F) {
	f.Add(fixture(f, "java/service-definition.json"))
	f.Add([]byte(`{"canonicalName":"org.Foo","methods":[{"name":"b"},{"name":"a","parameterTypes":null}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		def, err := ParseServiceDefinition(data)
		if err != nil {
			if def != nil {
				t.Fatalf("a definition with an error: %+v, %v", def, err)
			}
			return
		}
		if def == nil || def.CanonicalName == "" {
			t.Fatalf("ParseServiceDefinition(%q) = %+v without an error", data, def)
		}
		for i, m := range def.Methods {
			if m.Name == "" || (i > 0 && def.Methods[i-1].Name > m.Name) {
				t.Fatalf("methods %+v: unnamed or unsorted", def.Methods)
			}
		}
	})
}

// FuzzInstanceMetadata feeds arbitrary strings as the metadata values the
// parsers read (a Nacos instance's metadata is any string map).
func FuzzInstanceMetadata(f *testing.F) {
	for _, name := range []string{"java/instance-all.json", "java/instance-dubbometa.json", "java/instance-remote.json",
		"dubbogo/instance-all-dubbo.json", "dubbogo/instance-remote-tri.json"} {
		inst, err := ParseZKInstance(fixture(f, name))
		if err != nil {
			f.Fatal(err)
		}
		m := inst.Meta
		f.Add(m["dubbo.endpoints"], m["dubbo.metadata-service.url-params"], m["dubbo.metadata.storage-type"], m["dubbo.metadata.revision"])
	}
	f.Add(`[{"port":1,"protocol":"tri"},{"port":2,"protocol":"tri"}]`, `{"port":"0"}`, "", "")
	f.Add(`[{}]`, `{"protocol":""}`, "local", "r")
	md, err := ParseMetadataJSON(fixture(f, "dubbogo/metadata-info-remote.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, endpoints, urlParams, storage, revision string) {
		inst := &Instance{App: "a", Host: "192.0.2.9", Port: 1, Meta: map[string]string{
			"dubbo.endpoints": endpoints, "dubbo.metadata-service.url-params": urlParams,
			"dubbo.metadata.storage-type": storage, "dubbo.metadata.revision": revision,
		}}
		checkInstanceMetadata(t, inst)
		if inst.Revision() != revision {
			t.Fatalf("revision %q, want %q", inst.Revision(), revision)
		}
		for _, p := range md.Providers(inst) {
			_ = p.Address()
		}
	})
}

// The older URL-style routers and overrides under /dubbo/<interface>/ in
// ZooKeeper: whatever a node's name holds, reading it gives a rule, "not a
// router", or an error, and no panic.
func FuzzURLRouter(f *testing.F) {
	for _, s := range []string{
		"route%3A%2F%2F0.0.0.0%2Forg.x.S%3Fcategory%3Drouters%26rule%3Dmethod%2B%253D%2Bfind%2B%253D%253E%2Bhost%2B%253D%2B10.0.0.1%26force%3Dtrue",
		"route://0.0.0.0/org.x.S?category=routers&rule=%3D%3E&priority=x",
		"override://0.0.0.0/org.x.S?category=configurators&disabled=true",
		"route://", "%", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		r, ok, err := urlRouter(raw)
		if err != nil || !ok {
			return
		}
		if _, err := checkRule(r.Kind, []byte(r.Text)); err != nil {
			t.Fatalf("urlRouter(%q) gave a rule its own check refuses: %v\n%s", raw, err, r.Text)
		}
	})
}
