package registry

import (
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// urlFacts is what a provider URL fixture says, read by hand.
type urlFacts struct {
	protocol, host string
	port           uint32
	service        ServiceKey
	methods        []string
	weight         uint32
	params         map[string]string // a few parameters, checked one by one
}

var javaMethods = []string{"add", "findUsers", "getUser", "greet", "ping", "sayHello", "updateUser"}

// dubbo-go publishes each Go method under its Go name and its Java-style
// name; Methods sorts them (upper case first).
var dubboGoMethods = []string{"Add", "GetUser", "SayHello", "add", "getUser", "sayHello"}

var urlFixtures = []struct {
	file string
	want urlFacts
}{
	{"java/provider-tri.url", urlFacts{
		protocol: "tri", host: "192.0.2.2", port: 33157,
		service: ServiceKey{Interface: greeterIface, Version: "1.0.0", Group: "g1"},
		methods: javaMethods, weight: 100,
		params: map[string]string{"serialization": "hessian2", "prefer.serialization": "hessian2", "application": "java-all",
			"side": "provider", "release": "3.3.6", "timestamp": "1795677329366", "interface": greeterIface},
	}},
	{"java/provider-dubbo.url", urlFacts{
		protocol: "dubbo", host: "192.0.2.2", port: 40937,
		service: ServiceKey{Interface: greeterIface, Version: "1.0.0", Group: "g1"},
		methods: javaMethods, weight: 100,
		params: map[string]string{"serialization": "hessian2", "application": "java-all", "dubbo": "2.0.2", "timestamp": "1795677328221"},
	}},
	{"dubbogo/provider-dubbo.url", urlFacts{
		protocol: "dubbo", host: "192.0.2.2", port: 44255,
		service: ServiceKey{Interface: greeterIface, Version: "1.0.0", Group: "g1"},
		// weight=0 in the URL: unset, Dubbo's default.
		methods: dubboGoMethods, weight: 100,
		params: map[string]string{"serialization": "hessian2", "application": "go-all", "weight": "0", "release": "dubbo-golang-3.3.2",
			"pid": "29040", "timestamp": "1795677756", "anyhost": "true", "side": "provider"},
	}},
	{"dubbogo/provider-tri.url", urlFacts{
		protocol: "tri", host: "192.0.2.2", port: 45681,
		service: ServiceKey{Interface: greeterIface, Version: "1.0.0", Group: "g1"},
		methods: dubboGoMethods, weight: 100,
		params: map[string]string{"serialization": "hessian2", "application": "go-all", "weight": "0", "IDL-mode": "non-IDL"},
	}},
}

func TestParseURLFixtures(t *testing.T) {
	for _, c := range urlFixtures {
		node := fixtureText(t, c.file)
		decoded, err := url.QueryUnescape(node)
		if err != nil {
			t.Fatal(err)
		}
		// As ZooKeeper names the node (URL-encoded), and decoded.
		for form, raw := range map[string]string{"encoded": node, "decoded": decoded} {
			t.Run(c.file+"/"+form, func(t *testing.T) {
				p, err := ParseURL(raw)
				if err != nil {
					t.Fatalf("ParseURL: %v", err)
				}
				w := c.want
				if p.Protocol != w.protocol || p.Host != w.host || p.Port != w.port {
					t.Errorf("protocol/host/port = %s %s %d, want %s %s %d", p.Protocol, p.Host, p.Port, w.protocol, w.host, w.port)
				}
				if p.Service != w.service {
					t.Errorf("service %+v, want %+v", p.Service, w.service)
				}
				if diff := cmp.Diff(w.methods, p.Methods()); diff != "" {
					t.Errorf("methods (-want +got):\n%s", diff)
				}
				if p.Weight() != w.weight || !p.Enabled() {
					t.Errorf("weight %d enabled %v, want %d and enabled", p.Weight(), p.Enabled(), w.weight)
				}
				for k, v := range w.params {
					if p.Params[k] != v {
						t.Errorf("param %s = %q, want %q", k, p.Params[k], v)
					}
				}
			})
		}
	}
}

func TestServiceKeyString(t *testing.T) {
	for _, c := range []struct {
		k    ServiceKey
		want string
	}{
		{ServiceKey{Interface: greeterIface, Version: "1.0.0", Group: "g1"}, "g1/" + greeterIface + ":1.0.0"},
		{ServiceKey{Interface: greeterIface, Version: "3.0.0"}, greeterIface + ":3.0.0"},
		{ServiceKey{Interface: greeterIface, Group: "g1"}, "g1/" + greeterIface},
		{ServiceKey{Interface: greeterIface}, greeterIface},
	} {
		if got := c.k.String(); got != c.want {
			t.Errorf("%+v.String() = %q, want %q", c.k, got, c.want)
		}
	}
}

func TestProviderParams(t *testing.T) {
	for _, c := range []struct {
		name    string
		raw     string
		weight  uint32
		enabled bool
		methods []string
		address string
	}{
		{"defaults", "dubbo://10.0.0.1:20880/org.Foo", 100, true, nil, "10.0.0.1:20880"},
		{"weight", "dubbo://10.0.0.1:20880/org.Foo?weight=250", 250, true, nil, "10.0.0.1:20880"},
		{"weight 0 is unset", "dubbo://10.0.0.1:20880/org.Foo?weight=0", 100, true, nil, "10.0.0.1:20880"},
		{"negative weight", "dubbo://10.0.0.1:20880/org.Foo?weight=-3", 100, true, nil, "10.0.0.1:20880"},
		{"weight not a number", "dubbo://10.0.0.1:20880/org.Foo?weight=heavy", 100, true, nil, "10.0.0.1:20880"},
		{"weight over 32 bits", "dubbo://10.0.0.1:20880/org.Foo?weight=4294967296", 100, true, nil, "10.0.0.1:20880"},
		{"disabled", "dubbo://10.0.0.1:20880/org.Foo?disabled=true", 100, false, nil, "10.0.0.1:20880"},
		{"disabled=false", "dubbo://10.0.0.1:20880/org.Foo?disabled=false", 100, true, nil, "10.0.0.1:20880"},
		{"enabled=false", "dubbo://10.0.0.1:20880/org.Foo?enabled=false", 100, false, nil, "10.0.0.1:20880"},
		{"methods unsorted", "dubbo://10.0.0.1:20880/org.Foo?methods=b,c,a", 100, true, []string{"a", "b", "c"}, "10.0.0.1:20880"},
		{"the last of a repeated param", "dubbo://10.0.0.1:20880/org.Foo?weight=5&weight=7", 7, true, nil, "10.0.0.1:20880"},
		{"IPv6", "tri://[2001:db8::1]:50051/org.Foo", 100, true, nil, "[2001:db8::1]:50051"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := ParseURL(c.raw)
			if err != nil {
				t.Fatal(err)
			}
			if p.Weight() != c.weight || p.Enabled() != c.enabled || p.Address() != c.address {
				t.Errorf("weight %d enabled %v address %s, want %d %v %s", p.Weight(), p.Enabled(), p.Address(), c.weight, c.enabled, c.address)
			}
			if diff := cmp.Diff(c.methods, p.Methods()); diff != "" {
				t.Errorf("methods (-want +got):\n%s", diff)
			}
		})
	}
}

// The interface param wins over the path (Dubbo's URL path may be a
// service's path, not its interface).
func TestParseURLInterfaceParam(t *testing.T) {
	p, err := ParseURL("tri://10.0.0.1:50051/greeter-path?interface=org.Foo&version=2&group=g")
	if err != nil {
		t.Fatal(err)
	}
	if want := (ServiceKey{Interface: "org.Foo", Version: "2", Group: "g"}); p.Service != want {
		t.Errorf("service %+v, want %+v", p.Service, want)
	}
}

func TestParseURLBad(t *testing.T) {
	tri := fixtureText(t, "java/provider-tri.url")
	for _, c := range []struct {
		name, raw, errWant string
	}{
		{"empty", "", "want protocol://host:port/interface"},
		{"no scheme", "10.0.0.1:20880/org.Foo", ""},
		{"plain words", "not a url", "want protocol://host:port/interface"},
		{"no host", "dubbo:///org.Foo", "want protocol://host:port/interface"},
		{"scheme only", "dubbo://", "want protocol://host:port/interface"},
		{"empty scheme", "://10.0.0.1:20880/org.Foo", "missing protocol scheme"},
		{"no port", "dubbo://10.0.0.1/org.Foo", "missing port"},
		{"port not a number", "dubbo://10.0.0.1:http/org.Foo", "invalid port"},
		{"negative port", "dubbo://10.0.0.1:-1/org.Foo", "invalid port"},
		{"port over 16 bits", "dubbo://10.0.0.1:65536/org.Foo", "bad port"},
		{"port far over", "dubbo://10.0.0.1:99999999999999999999/org.Foo", "bad port"},
		{"empty port", "dubbo://10.0.0.1:/org.Foo", "bad port"},
		{"no interface", "dubbo://10.0.0.1:20880", "no interface"},
		{"root path", "dubbo://10.0.0.1:20880/", "no interface"},
		{"empty interface param", "dubbo://10.0.0.1:20880/?interface=", "no interface"},
		{"unclosed IPv6", "dubbo://[2001:db8::1:20880/org.Foo", "missing ']'"},
		{"bad escape in the encoded form", "dubbo%3A%2F%2F10.0.0.1%3A20880%2Forg.Foo%ZZ", "invalid URL escape"},
		{"a lone percent", "%", "invalid URL escape"},
		{"the encoded fixture cut after the scheme", tri[:len("tri%3A%2F%2F")], "want protocol://host:port/interface"},
		{"the encoded fixture cut in an escape", tri[:len("tri%3A%2F%2F192.0.2.2%3")], "invalid URL escape"},
		{"control character", "dubbo://10.0.0.1:20880/org.Foo\x7f", "invalid control character"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := ParseURL(c.raw)
			if err == nil {
				t.Fatalf("ParseURL(%q) = %+v, want an error", c.raw, p)
			}
			if p != nil {
				t.Errorf("ParseURL(%q) returned %+v with its error", c.raw, p)
			}
			if !strings.Contains(err.Error(), c.errWant) {
				t.Errorf("ParseURL(%q) error %q, want it to say %q", c.raw, err, c.errWant)
			}
		})
	}
}
