package rules

import (
	"strings"
	"testing"
)

func tagProviders() []*Provider {
	return []*Provider{
		{Host: "10.0.0.1", Port: 20880, Params: map[string]string{}},
		{Host: "10.0.0.2", Port: 20880, Params: map[string]string{"env": "gray"}},
		{Host: "10.0.0.3", Port: 20880, Params: map[string]string{TagKey: "blue"}},
		{Host: "10.0.0.4", Port: 20881, Params: map[string]string{}},
	}
}

const tagRuleYAML = `
configVersion: v3.0
key: shop-detail
tags:
  - name: gray
    match:
      - key: env
        value: { exact: gray }
  - name: canary
    addresses: [ "10.0.0.4:20881" ]
`

// Java Dubbo's tag routing: the rule's tags by parameters and addresses,
// providers' static tags, the fallback to untagged providers, and force.
func TestTagRule_Route(t *testing.T) {
	rule, err := ParseTagRule([]byte(tagRuleYAML))
	if err != nil {
		t.Fatal(err)
	}
	forced, err := ParseTagRule([]byte(tagRuleYAML + "force: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	off, err := ParseTagRule([]byte(tagRuleYAML + "enabled: false\n"))
	if err != nil {
		t.Fatal(err)
	}
	call := func(tag string, force bool) *Call {
		c := &Call{Attachments: map[string]string{}, Consumer: map[string]string{}}
		if tag != "" {
			c.Attachments[TagKey] = tag
		}
		if force {
			c.Attachments[ForceTagKey] = "true"
		}
		return c
	}
	for _, tc := range []struct {
		name string
		rule *TagRule
		call *Call
		want string
	}{
		{"a tag by parameters", rule, call("gray", false), "10.0.0.2:20880"},
		{"a tag by address", rule, call("canary", false), "10.0.0.4:20881"},
		{"a static tag the rule does not name", rule, call("blue", false), "10.0.0.3:20880"},
		{"an unknown tag falls back to the untagged", rule, call("red", false), "10.0.0.1:20880"},
		{"an unknown tag, forced by the call", rule, call("red", true), ""},
		{"no tag: not the rule's tagged ones", rule, call("", false), "10.0.0.1:20880 10.0.0.3:20880"},
		{"the tag from the consumer", rule, &Call{Consumer: map[string]string{TagKey: "canary"}}, "10.0.0.4:20881"},
		{"disabled: static tags only", off, call("gray", false), "10.0.0.1:20880 10.0.0.2:20880 10.0.0.4:20881"},
		{"disabled, static tag", off, call("blue", false), "10.0.0.3:20880"},
		{"no rule, no tag", nil, call("", false), "10.0.0.1:20880 10.0.0.2:20880 10.0.0.4:20881"},
		{"forced rule keeps its tag's set", forced, call("gray", false), "10.0.0.2:20880"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := hosts(tc.rule.Route(tc.call, tagProviders())); got != tc.want {
				t.Errorf("kept %q, want %q", got, tc.want)
			}
		})
	}
	// A forced rule whose tag names no live provider leaves the call none.
	empty, err := ParseTagRule([]byte("key: a\nforce: true\ntags: [ { name: gray, addresses: [ \"10.9.9.9:1\" ] } ]"))
	if err != nil {
		t.Fatal(err)
	}
	if got := empty.Route(call("gray", false), tagProviders()); len(got) != 0 {
		t.Errorf("forced, no tagged provider: kept %s, want none", hosts(got))
	}
	soft, err := ParseTagRule([]byte("key: a\ntags: [ { name: gray, addresses: [ \"10.9.9.9:1\" ] } ]"))
	if err != nil {
		t.Fatal(err)
	}
	if got := hosts(soft.Route(call("gray", false), tagProviders())); got != "10.0.0.1:20880 10.0.0.2:20880 10.0.0.4:20881" {
		t.Errorf("not forced, no tagged provider: kept %q, want the untagged", got)
	}
}

func TestAddressMatch(t *testing.T) {
	p := &Provider{Host: "10.1.2.3", Port: 20880}
	for pattern, want := range map[string]bool{
		"10.1.2.3:20880": true, "10.1.2.3": true, "10.1.2.3:*": true, "10.1.*.3:20880": true, "10.1.2.*": true,
		"0.0.0.0": true, "0.0.0.0:20880": true, "0.0.0.0:20881": false, "*": false, "*:20880": false,
		"10.1.2.3:20881": false, "10.1.2.4": false, "10.2.*.3": false,
	} {
		if got := addressMatch(pattern, p); got != want {
			t.Errorf("%s against 10.1.2.3:20880: %v, want %v", pattern, got, want)
		}
	}
}

func TestParseTagRule_Errors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"tags: []", "key (the providers' application) is required"},
		{"key: a\ntags: [ { addresses: [ x ] } ]", "tags[0] has no name"},
		{"key: a\ntags: [ { name: t }, { name: t } ]", `tag "t" is defined twice`},
		{"key: a\ntags: [ { name: t, match: [ { value: { exact: x } } ] } ]", "match[0] has no key"},
		{"key: a\ntags: [ { name: t, match: [ { key: k, value: { regex: \"(\" } } ] } ]", "value.regex"},
		{"key: a\nbogus: 1", "unknown"},
	} {
		if _, err := ParseTagRule([]byte(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to say %q", tc.yaml, err, tc.want)
		}
	}
}
