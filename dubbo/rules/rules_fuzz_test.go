package rules

import "testing"

// Rules come from the config center (ZooKeeper, Nacos): whatever bytes a
// rule holds, parsing it and, when it parses, routing and configuring with
// it give an answer or an error, and no panic.
func FuzzParseRules(f *testing.F) {
	for _, s := range []string{
		"configVersion: v3.0\nscope: service\nkey: org.x.S:1.0.0:g1\nconditions:\n  - method = find* => host = 10.20.153.11\n",
		"configVersion: v3.0\nforce: true\nkey: app\ntags:\n  - name: gray\n    addresses: [ \"10.20.153.11:20880\" ]\n  - name: blue\n    match: [ { key: env, value: { prefix: bl } } ]\n",
		"configVersion: v3.0\nscope: application\nkey: app\nconfigs:\n  - side: provider\n    addresses: [ \"0.0.0.0:20880\" ]\n    parameters: { disabled: true, weight: 50 }\n  - side: consumer\n    applications: [ meshgate ]\n    parameters: { timeout: 1 }\n",
		"conditions: [ \"=>\" ]", "tags: [ { name: \"\" } ]", "configs: [ {} ]", "{", "- a", "",
	} {
		f.Add([]byte(s))
	}
	calls := []*Call{
		{Method: "find", Arguments: []string{"gray-user"}, Attachments: map[string]string{"dubbo.tag": "gray"}},
		{Method: "list"},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if r, err := ParseConditionRule(data); err == nil {
			for _, c := range calls {
				_ = r.Route(c, providers())
			}
		}
		if r, err := ParseTagRule(data); err == nil {
			for _, c := range calls {
				_ = r.Route(c, providers())
			}
		}
		if r, err := ParseConfiguratorRule(data); err == nil {
			for _, p := range providers() {
				_ = r.ProviderParams(p, "app")
				_ = r.ClusterParams([]string{p.Host}, "meshgate")
			}
		}
	})
}
