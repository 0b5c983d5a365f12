package rules

import (
	"maps"
	"slices"
	"strings"
	"testing"
)

const configuratorYAML = `
configVersion: v3.0
scope: service
key: org.apache.dubbo.samples.DemoService
configs:
  - side: provider
    addresses: [ "10.0.0.2:20880" ]
    parameters: { weight: 200 }
  - side: provider
    addresses: [ "10.0.0.3" ]
    parameters: { disabled: true }
  - side: provider
    applications: [ shop ]
    parameters: { timeout: "3000" }
  - side: provider
    enabled: false
    parameters: { weight: "1" }
  - side: consumer
    addresses: [ "0.0.0.0" ]
    parameters: { retries: "3" }
  - side: consumer
    addresses: [ "192.168.0.9" ]
    providerAddresses: [ "10.0.0.2:20880" ]
    parameters: { timeout: "500" }
`

func TestConfiguratorRule(t *testing.T) {
	r, err := ParseConfiguratorRule([]byte(configuratorYAML))
	if err != nil {
		t.Fatal(err)
	}
	p1 := &Provider{Host: "10.0.0.1", Port: 20880, Params: map[string]string{"weight": "100"}}
	p2 := &Provider{Host: "10.0.0.2", Port: 20880, Params: map[string]string{"weight": "100"}}
	p3 := &Provider{Host: "10.0.0.3", Port: 20881}
	for _, tc := range []struct {
		name string
		got  map[string]string
		want string
	}{
		{"untouched but by app", r.ProviderParams(p1, "other"), "weight=100"},
		{"weight by address", r.ProviderParams(p2, "other"), "weight=200"},
		{"disabled by host, and the app's timeout", r.ProviderParams(p3, "shop"), "disabled=true timeout=3000"},
		{"consumer, any host", r.ClusterParams([]string{"10.9.9.9"}, "meshgate"), "retries=3"},
		{"consumer host, but a per-provider config: not cluster-wide", r.ClusterParams([]string{"192.168.0.9"}, "meshgate"), "retries=3"},
	} {
		if got := kv(tc.got); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
	if p1.Params["weight"] != "100" || len(p1.Params) != 1 {
		t.Errorf("the provider's own params changed: %v", p1.Params)
	}
	off, err := ParseConfiguratorRule([]byte(configuratorYAML + "enabled: false\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := kv(off.ProviderParams(p2, "x")); got != "weight=100" {
		t.Errorf("a disabled rule changed %s", got)
	}
}

func kv(m map[string]string) string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

func TestParseConfiguratorRule_Errors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"key: k\nconfigs: []", "scope is required"},
		{"scope: service\nconfigs: []", "key is required"},
		{"scope: service\nkey: k\nconfigs: [ { parameters: { a: b } } ]", "side is required"},
		{"scope: service\nkey: k\nconfigs: [ { side: both, parameters: { a: b } } ]", `side "both"`},
		{"scope: service\nkey: k\nconfigs: [ { side: provider } ]", "sets no parameter"},
		{"scope: service\nkey: k\nconfigs: [ { side: provider, parameters: { a: b }, bogus: 1 } ]", "unknown"},
		{"scope: service\nkey: k\nconfigs: [ { side: provider, parameters: { a: [ 1 ] } } ]", "want a scalar"},
	} {
		if _, err := ParseConfiguratorRule([]byte(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to say %q", tc.yaml, err, tc.want)
		}
	}
}

// The cluster-wide consumer overrides: for the consumer app on any of its
// hosts (addresses as patterns too), never the per-provider configs.
func TestConfiguratorRule_ClusterParams(t *testing.T) {
	r, err := ParseConfiguratorRule([]byte(`configVersion: v3.0
scope: service
key: org.x.S
configs:
  - { side: consumer, addresses: [ "10.0.*.1" ], parameters: { timeout: "100" } }
  - { side: consumer, addresses: [ "0.0.0.0" ], parameters: { retries: "2" } }
  - { side: consumer, providerAddresses: [ "10.20.0.1:20880" ], parameters: { loadbalance: random } }
  - { side: consumer, applications: [ other ], parameters: { weight: "1" } }
  - { side: provider, parameters: { disabled: "true" } }
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		hosts []string
		want  map[string]string
	}{
		{"a host the pattern names", []string{"127.0.0.1", "10.0.5.1"}, map[string]string{"timeout": "100", "retries": "2"}},
		{"other hosts", []string{"192.168.1.1"}, map[string]string{"retries": "2"}},
		{"no host known", nil, map[string]string{"retries": "2"}},
	} {
		if got := r.ClusterParams(tc.hosts, "meshgate"); !maps.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
