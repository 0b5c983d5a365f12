package registry

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/meshgate/meshgate/dubbo/rules"
)

// Rule kinds, the suffixes of their keys in the config center.
const (
	ConditionRouter = "condition-router"
	TagRouter       = "tag-router"
	Configurators   = "configurators"
)

// Rule is one traffic rule read from the config center, checked: its key
// (<interface>:<version>:<group> or an application), its kind and text.
type Rule struct {
	Key, Kind, Text string
	// configurator is a configurators rule, parsed (nil for other kinds).
	configurator *rules.ConfiguratorRule
}

// ColonKey is how Dubbo keys a service's rules in the config center:
// <interface>:<version>:<group>, empty parts left empty.
func (k ServiceKey) ColonKey() string { return k.Interface + ":" + k.Version + ":" + k.Group }

// ParseRuleName splits a config-center key "<key>.<kind>"; ok is false for
// a key that is not a traffic rule.
func ParseRuleName(name string) (key, kind string, ok bool) {
	for _, k := range []string{ConditionRouter, TagRouter, Configurators} {
		if strings.HasSuffix(name, "."+k) && len(name) > len(k)+1 {
			return strings.TrimSuffix(name, "."+k), k, true
		}
	}
	return "", "", false
}

// checkRule parses a rule's text as its kind says, so that a malformed rule
// is refused where it is read (and the one before it stays); a
// configurators rule comes back parsed, for the catalog to apply.
func checkRule(kind string, text []byte) (*rules.ConfiguratorRule, error) {
	var err error
	switch kind {
	case ConditionRouter:
		_, err = rules.ParseConditionRule(text)
	case TagRouter:
		_, err = rules.ParseTagRule(text)
	case Configurators:
		return rules.ParseConfiguratorRule(text)
	default:
		err = fmt.Errorf("unknown rule kind %q", kind)
	}
	return nil, err
}

// setRule records the text of the rule named name (nil: it was deleted).
// A malformed text is logged once, naming the key, and the rule before it
// stays in force.
func (v *view) setRule(name string, text []byte) {
	key, kind, ok := ParseRuleName(name)
	if !ok {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if text == nil {
		delete(v.rules, name)
		delete(v.badRules, name)
		return
	}
	cfg, err := checkRule(kind, text)
	if err != nil {
		if v.badRules[name] != string(text) {
			v.badRules[name] = string(text)
			v.log.Error("refusing a traffic rule; the one before it stays", "key", name, "error", err.Error())
			v.noteError("rule", fmt.Errorf("%s: %w", name, err))
		}
		return
	}
	delete(v.badRules, name)
	v.rules[name] = Rule{Key: key, Kind: kind, Text: string(text), configurator: cfg}
}

// keepRules drops the rules whose names are not in keep.
func (v *view) keepRules(keep map[string]bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for name := range v.rules {
		if !keep[name] {
			delete(v.rules, name)
		}
	}
}

// rulesForLocked are the rules of a service whose providers are of apps:
// condition routers by its colon key or of the consumer (meshgate's
// application), tag routers of its providers' applications,
// configurators by its colon key or its providers' applications; sorted
// by name; v.mu is held.
func (v *view) rulesForLocked(k ServiceKey, apps map[string]bool) []Rule {
	var out []Rule
	for _, r := range v.rules {
		var ok bool
		switch r.Kind {
		case ConditionRouter:
			ok = r.Key == k.ColonKey() || r.Key == rules.ConsumerApplication
		case TagRouter:
			ok = apps[r.Key]
		case Configurators:
			ok = r.Key == k.ColonKey() || apps[r.Key] || r.Key == rules.ConsumerApplication
		}
		if ok {
			out = append(out, r)
		}
	}
	for _, r := range v.urlRouters[k.Interface] {
		if r.Key == k.ColonKey() {
			out = append(out, r)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Key+"."+out[i].Kind < out[j].Key+"."+out[j].Kind })
	return out
}

// ruleNames are the config-center names of the rules that could apply to
// what the view holds: each service's condition router and configurators
// (by its colon key), each application's tag router and configurators.
func (v *view) ruleNames() []string {
	v.mu.Lock()
	provs := v.providersLocked()
	v.mu.Unlock()
	seen := map[string]bool{rules.ConsumerApplication + "." + ConditionRouter: true, rules.ConsumerApplication + "." + Configurators: true}
	for _, p := range provs {
		k := p.Service.ColonKey()
		seen[k+"."+ConditionRouter], seen[k+"."+Configurators] = true, true
		if a := p.Params["application"]; a != "" {
			seen[a+"."+TagRouter], seen[a+"."+Configurators] = true, true
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// urlRouter turns an older, URL-style router (route://0.0.0.0/<interface>?
// category=routers&rule=<condition>&force=..&priority=..&enabled=..) into
// the condition rule it stands for, keyed by its service; ok is false for
// a URL that is not a condition router.
func urlRouter(raw string) (Rule, bool, error) {
	u, err := ParseURL(raw)
	if err != nil {
		return Rule{}, false, err
	}
	if u.Protocol != "route" && u.Protocol != "condition" {
		return Rule{}, false, nil
	}
	if r := u.Params["router"]; r != "" && r != "condition" {
		return Rule{}, false, nil // script and other routers are not read
	}
	cond := u.Params["rule"]
	if cond == "" {
		return Rule{}, false, fmt.Errorf("router %s has no rule", raw)
	}
	key := ServiceKey{Interface: u.Service.Interface, Version: u.Params["version"], Group: u.Params["group"]}.ColonKey()
	priority, _ := strconv.Atoi(u.Params["priority"])
	doc := map[string]any{
		"configVersion": "v2.7", "scope": "service", "key": key, "force": u.Params["force"] == "true",
		"enabled": u.Params["enabled"] != "false", "priority": priority, "conditions": []string{cond},
	}
	text, err := yaml.Marshal(doc)
	if err != nil {
		return Rule{}, false, err
	}
	if _, err := rules.ParseConditionRule(text); err != nil {
		return Rule{}, false, fmt.Errorf("router %s: %w", raw, err)
	}
	return Rule{Key: key, Kind: ConditionRouter, Text: string(text)}, true, nil
}

// setURLRouters records the URL-style routers of an interface (nil: none);
// one that cannot be read is logged once and left out.
func (v *view) setURLRouters(iface string, nodes []string) {
	var out []Rule
	for _, n := range nodes {
		r, ok, err := urlRouter(n)
		if err != nil {
			v.mu.Lock()
			logged := v.badRules["routers:"+n] != ""
			v.badRules["routers:"+n] = n
			v.mu.Unlock()
			if !logged {
				v.log.Error("refusing a router", "interface", iface, "error", err.Error())
			}
			continue
		}
		if ok {
			out = append(out, r)
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(out) == 0 {
		delete(v.urlRouters, iface)
		return
	}
	v.urlRouters[iface] = out
}
