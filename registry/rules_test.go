package registry

import (
	"log/slog"
	"net/url"
	"testing"

	"github.com/meshgate/meshgate/dubbo/rules"
)

func TestParseRuleName(t *testing.T) {
	for _, tc := range []struct{ name, key, kind string }{
		{"org.x.S:1.0.0:g1.condition-router", "org.x.S:1.0.0:g1", ConditionRouter},
		{"org.x.S::.configurators", "org.x.S::", Configurators},
		{"shop.tag-router", "shop", TagRouter},
		{".tag-router", "", ""},
		{"shop.script-router", "", ""},
		{"dubbo.properties", "", ""},
	} {
		key, kind, ok := ParseRuleName(tc.name)
		if key != tc.key || kind != tc.kind || ok != (tc.kind != "") {
			t.Errorf("%q: %q %q %v, want %q %q", tc.name, key, kind, ok, tc.key, tc.kind)
		}
	}
	if got := (ServiceKey{Interface: "org.x.S"}).ColonKey(); got != "org.x.S::" {
		t.Errorf("ColonKey without version and group: %q, want org.x.S::", got)
	}
}

// A dynamic configuration's provider-side overrides reach the providers
// it names (by address, for its service or application), on copies.
func TestConfigured(t *testing.T) {
	v := newView("t", nil, slog.New(slog.DiscardHandler), newMetrics(nil), nil)
	v.setRule("org.x.S:1.0.0:.configurators", []byte("configVersion: v3.0\nscope: service\nkey: \"org.x.S:1.0.0:\"\nconfigs:\n"+
		"  - { side: provider, addresses: [ \"10.0.0.1:20880\" ], parameters: { disabled: true } }\n"+
		"  - { side: provider, parameters: { weight: 50 } }\n"))
	v.setRule("other.configurators", []byte("configVersion: v3.0\nscope: application\nkey: other\nconfigs: [ { side: provider, parameters: { weight: 7 } } ]\n"))
	k := ServiceKey{Interface: "org.x.S", Version: "1.0.0"}
	a := &Provider{Service: k, Host: "10.0.0.1", Port: 20880, Params: map[string]string{"application": "shop", "weight": "100"}}
	b := &Provider{Service: k, Host: "10.0.0.2", Port: 20880, Params: map[string]string{"application": "shop", "weight": "100"}}
	rs := v.rulesForLocked(k, map[string]bool{"shop": true})
	ca, cb := configured(a, rs), configured(b, rs)
	if ca.Enabled() || ca.Weight() != 50 {
		t.Errorf("a: enabled %v weight %d, want disabled, 50", ca.Enabled(), ca.Weight())
	}
	if !cb.Enabled() || cb.Weight() != 50 {
		t.Errorf("b: enabled %v weight %d, want enabled, 50", cb.Enabled(), cb.Weight())
	}
	if a.Params["weight"] != "100" || a.Params["disabled"] != "" {
		t.Errorf("the view's provider changed: %v", a.Params)
	}
	if len(rs) != 1 {
		t.Errorf("rules for the service %v, want its own configurators only (not another application's)", rs)
	}
}

// The consumer-side parameters for meshgate: its application's rule and a
// service's rule apply, another application's and per-provider configs not.
func TestConsumerOverrides(t *testing.T) {
	v := newView("t", nil, slog.New(slog.DiscardHandler), newMetrics(nil), nil)
	v.setRule("meshgate.configurators", []byte("configVersion: v3.0\nscope: application\nkey: meshgate\nconfigs:\n"+
		"  - { side: consumer, parameters: { timeout: 500 } }\n"))
	v.setRule("org.x.S::.configurators", []byte("configVersion: v3.0\nscope: service\nkey: \"org.x.S::\"\nconfigs:\n"+
		"  - { side: consumer, addresses: [ \"0.0.0.0\" ], parameters: { retries: 3 } }\n"+
		"  - { side: consumer, providerAddresses: [ \"10.0.0.1:1\" ], parameters: { retries: 9 } }\n"+
		"  - { side: consumer, addresses: [ \"203.0.113.77\" ], parameters: { timeout: 9 } }\n"))
	v.setRule("shop.configurators", []byte("configVersion: v3.0\nscope: application\nkey: shop\nconfigs: [ { side: consumer, parameters: { timeout: 7 } } ]\n"))
	got := consumerOverrides(v.rulesForLocked(ServiceKey{Interface: "org.x.S"}, map[string]bool{"shop": true}), localHosts())
	if len(got) != 2 || got["timeout"] != "500" || got["retries"] != "3" {
		t.Errorf("consumer overrides %v, want timeout 500 and retries 3", got)
	}
}

// An older URL-style router (Dubbo 2.6/2.7's route:// under
// /dubbo/<interface>/routers) is read as the condition rule it stands
// for, for the service its version and group name.
func TestURLRouter(t *testing.T) {
	raw := url.QueryEscape("route://0.0.0.0/org.x.S?category=routers&dynamic=false&force=true&priority=2&version=1.0.0&rule=" +
		url.QueryEscape("method = find* => host = 10.0.0.1"))
	v := newView("t", nil, slog.New(slog.DiscardHandler), newMetrics(nil), nil)
	v.setURLRouters("org.x.S", []string{raw, url.QueryEscape("route://0.0.0.0/org.x.S?router=script&rule=x"), "route://broken"})
	rs := v.rulesForLocked(ServiceKey{Interface: "org.x.S", Version: "1.0.0"}, nil)
	if len(rs) != 1 {
		t.Fatalf("rules %v, want the condition router alone (the script router and the broken URL left out)", rs)
	}
	cr, err := rules.ParseConditionRule([]byte(rs[0].Text))
	if err != nil {
		t.Fatal(err)
	}
	if rs[0].Key != "org.x.S:1.0.0:" || !cr.Force || cr.Priority != 2 || len(cr.RawConds) != 1 || cr.RawConds[0] != "method = find* => host = 10.0.0.1" {
		t.Errorf("read as %+v (key %s)", cr, rs[0].Key)
	}
	if other := v.rulesForLocked(ServiceKey{Interface: "org.x.S"}, nil); len(other) != 0 {
		t.Errorf("the router for version 1.0.0 reached the service without a version: %v", other)
	}
}
