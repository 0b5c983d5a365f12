package rules

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func providers() []*Provider {
	mk := func(host string, port uint32, params string) *Provider {
		p := &Provider{Host: host, Port: port, Protocol: "dubbo", Params: map[string]string{}}
		for _, kv := range strings.Fields(params) {
			k, v, _ := strings.Cut(kv, "=")
			p.Params[k] = v
		}
		return p
	}
	return []*Provider{
		mk("10.20.153.11", 20880, "region=Hangzhou"),
		mk("10.20.153.12", 20880, "region=Beijing"),
		mk("172.22.3.94", 20881, "region=Hangzhou env=gray"),
		mk("172.22.3.97", 20880, ""),
	}
}

func hosts(ps []*Provider) string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Address())
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// The rules of Dubbo's documentation, each with the providers a call keeps.
func TestConditionRule_Route(t *testing.T) {
	call := func(method string, args ...string) *Call {
		return &Call{Method: method, Arguments: args, Attachments: map[string]string{"user": "alice"},
			Consumer: map[string]string{"application": "meshgate", "host": "10.20.153.10"}}
	}
	all := hosts(providers())
	for _, tc := range []struct {
		rule string // conditions, one per line; "force" / "disabled" lines set those
		call *Call
		want string
	}{
		{"host = 10.20.153.10 => host = 10.20.153.11", call("find"), "10.20.153.11:20880"},
		{"host = 10.20.153.99 => host = 10.20.153.11", call("find"), all},
		{"=> host != 10.20.153.11", call("find"), "10.20.153.12:20880 172.22.3.94:20881 172.22.3.97:20880"},
		{"host = 10.20.153.10,10.20.153.11 =>", call("find"), ""},
		{"method = find*,list*,get*,is* => host = 172.22.3.94,172.22.3.95,172.22.3.96", call("findUser"), "172.22.3.94:20881"},
		{"method = find*,list*,get*,is* => host = 172.22.3.94,172.22.3.95,172.22.3.96", call("saveUser"), all},
		{"method != find*,list*,get*,is* => host = 172.22.3.97,172.22.3.98", call("saveUser"), "172.22.3.97:20880"},
		{"application != kylin => host != 172.22.3.94,172.22.3.97", call("x"), "10.20.153.11:20880 10.20.153.12:20880"},
		{"application = kylin => host = 172.22.3.94", call("x"), all},
		{"method=getComment => region=Hangzhou", call("getComment"), "10.20.153.11:20880 172.22.3.94:20881"},
		{"arguments[0] = vip* => address = *:20881", call("get", "vip-7"), "172.22.3.94:20881"},
		{"arguments[0] = vip* => address = *:20881", call("get", "plain"), all},
		{"arguments[1] = x => host = 172.22.3.94", call("get", "only-one"), all},
		{"attachments[user] = alice => env = gray", call("x"), "172.22.3.94:20881"},
		{"=> host = $host", &Call{Consumer: map[string]string{"host": "10.20.153.12"}}, "10.20.153.12:20880"},
		{"=> region = Hangzhou & port != 20881", call("x"), "10.20.153.11:20880"},
		{"=> region = Shanghai", call("x"), all},                                   // empty: ignored without force
		{"force\n=> region = Shanghai", call("x"), ""},                             // forced: no provider
		{"disabled\n=> region = Hangzhou", call("x"), all},                         // not in force
		{"=> region = Hangzhou\n=> port = 20880", call("x"), "10.20.153.11:20880"}, // conditions narrow in turn
		{"true => false", call("x"), ""},
		{"=> env != gray", call("x"), "10.20.153.11:20880 10.20.153.12:20880 172.22.3.97:20880"}, // a missing value is not "gray"
		{"=> env = gray,blue & env != gray", call("x"), all},                                     // mismatches first: none left, ignored
	} {
		t.Run(strings.ReplaceAll(tc.rule, "\n", "; "), func(t *testing.T) {
			yamlText := "configVersion: v3.0\nscope: service\nkey: org.x.S\n"
			var conds []string
			for _, line := range strings.Split(tc.rule, "\n") {
				switch line {
				case "force":
					yamlText += "force: true\n"
				case "disabled":
					yamlText += "enabled: false\n"
				default:
					conds = append(conds, line)
				}
			}
			yamlText += "conditions:\n"
			for _, c := range conds {
				yamlText += fmt.Sprintf("  - %q\n", c)
			}
			r, err := ParseConditionRule([]byte(yamlText))
			if err != nil {
				t.Fatalf("parse:\n%s\n%v", yamlText, err)
			}
			if got := hosts(r.Route(tc.call, providers())); got != tc.want {
				t.Errorf("kept %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseConditionRule_Errors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"scope: service\nconditions: [ \"=> host = a\" ]", "key is required"},
		{"key: k\nconditions: [ \"=> host = a\" ]", "scope is required"},
		{"key: k\nscope: global\nconditions: [ \"=> host = a\" ]", `scope "global"`},
		{"key: k\nscope: service", "no conditions"},
		{"key: k\nscope: service\nconditions: [ \"=> = a\" ]", "= a has no key"},
		{"key: k\nscope: service\nconditions: [ \"host => x = 1\" ]", `key "host" has no value`},
		{"key: k\nscope: service\nconditions: [ \"=> host = a b\" ]", `"b" follows a key without a separator`},
		{"key: k\nscope: service\nunknown: 1\nconditions: [ \"=> host = a\" ]", "unknown"},
		{"key: k\nscope: service\nconditions: \"not a list\"", "condition rule"},
	} {
		if _, err := ParseConditionRule([]byte(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to say %q", tc.yaml, err, tc.want)
		}
	}
}

func FuzzParseCondition(f *testing.F) {
	for _, s := range []string{"host = 10.20.153.10 => host = 10.20.153.11", "method != find*,list* => region=a & port != 1", "=>", "a=>=b", "&,!="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := ParseCondition(raw)
		if err != nil {
			return
		}
		_ = c.matchWhen(&Call{Method: "m", Arguments: []string{"a"}})
		_ = c.filter(&Call{}, providers())
	})
}
