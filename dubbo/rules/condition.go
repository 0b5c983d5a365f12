package rules

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// Call is what a condition's "when" side is matched against: the call
// and the consumer (meshgate) that makes it.
type Call struct {
	Method      string
	Arguments   []string // each argument as text (a string as itself, a number in decimal)
	Attachments map[string]string
	// Consumer is the consumer's URL parameters (application, host, ...).
	Consumer map[string]string
}

// Provider is what a condition's "then" side is matched against.
type Provider struct {
	Host     string
	Port     uint32
	Protocol string
	Params   map[string]string
}

// Address is host:port.
func (p *Provider) Address() string { return p.Host + ":" + strconv.FormatUint(uint64(p.Port), 10) }

// ConditionRule is a condition router's rule (configVersion v3.0): its
// conditions filter the providers of a call in order, each narrowing what
// the previous left.
type ConditionRule struct {
	Key        string   `json:"key"`
	Scope      string   `json:"scope"`
	Force      bool     `json:"force"`
	Runtime    bool     `json:"runtime"`
	Enabled    *bool    `json:"enabled"`
	Priority   int      `json:"priority"`
	Version    string   `json:"configVersion"`
	RawConds   []string `json:"conditions"`
	conditions []*Condition
}

// ParseConditionRule reads a condition router rule (YAML, Dubbo Admin's
// v3.0 form): every condition must parse, else the rule is refused whole.
func ParseConditionRule(data []byte) (*ConditionRule, error) {
	var r ConditionRule
	if err := yaml.UnmarshalStrict(data, &r); err != nil {
		return nil, fmt.Errorf("condition rule: %w", err)
	}
	switch r.Scope {
	case "service", "application":
	case "":
		return nil, errors.New("condition rule: scope is required (service or application)")
	default:
		return nil, fmt.Errorf("condition rule: scope %q is neither service nor application", r.Scope)
	}
	if r.Key == "" {
		return nil, errors.New("condition rule: key is required")
	}
	if len(r.RawConds) == 0 {
		return nil, errors.New("condition rule: no conditions")
	}
	for i, raw := range r.RawConds {
		c, err := ParseCondition(raw)
		if err != nil {
			return nil, fmt.Errorf("condition rule: conditions[%d] %q: %w", i, raw, err)
		}
		r.conditions = append(r.conditions, c)
	}
	return &r, nil
}

// On reports whether the rule is in force (enabled is true unless said).
func (r *ConditionRule) On() bool { return r.Enabled == nil || *r.Enabled }

// Route filters providers for call as Java Dubbo's condition router does:
// each condition whose "when" matches the call keeps the providers its
// "then" matches; a condition that would keep none is ignored unless the
// rule is forced (then the call has no provider). A rule not in force
// keeps them all.
func (r *ConditionRule) Route(call *Call, providers []*Provider) []*Provider {
	if !r.On() {
		return providers
	}
	for _, c := range r.conditions {
		if !c.matchWhen(call) {
			continue
		}
		if c.forbid {
			return nil // matching calls are refused, forced or not
		}
		kept := c.filter(call, providers)
		if len(kept) == 0 && !r.Force {
			continue // the condition is ignored: Dubbo logs it and routes as if it were not there
		}
		providers = kept
	}
	return providers
}

// Condition is one "when => then" of a rule.
type Condition struct {
	raw        string
	when, then map[string]*matchPair
	// forbid: an empty "then" side: calls that match get no provider.
	forbid bool
}

// ParseCondition reads "when => then" (either side may be empty; without
// "=>" the whole text is the "then" side).
func ParseCondition(raw string) (*Condition, error) {
	c := &Condition{raw: raw}
	whenText, thenText := "", raw
	if i := strings.Index(raw, "=>"); i >= 0 {
		whenText, thenText = strings.TrimSpace(raw[:i]), strings.TrimSpace(raw[i+2:])
	}
	// "true" as the "when" side matches every call, "false" as the
	// "then" side keeps no provider, as in Dubbo.
	if whenText == "true" {
		whenText = ""
	}
	if thenText == "false" {
		thenText = ""
	}
	var err error
	if c.when, err = parsePairs(whenText); err != nil {
		return nil, fmt.Errorf("when: %w", err)
	}
	if c.then, err = parsePairs(thenText); err != nil {
		return nil, fmt.Errorf("then: %w", err)
	}
	c.forbid = strings.TrimSpace(thenText) == ""
	return c, nil
}

// matchPair is one key's patterns: the values it must match (any of) and
// those it must not (none of).
type matchPair struct {
	matches, mismatches []string
}

// routeToken is Dubbo's tokenizer: a separator (&, =, !=, ",") and a word.
var routeToken = regexp.MustCompile(`([&!=,]*)\s*([^&!=,\s]+)`)

// parsePairs reads "key = v1,v2 & other != v3" into its pairs.
func parsePairs(text string) (map[string]*matchPair, error) {
	out := map[string]*matchPair{}
	text = strings.TrimSpace(text)
	if text == "" {
		return out, nil
	}
	var pair *matchPair
	var values *[]string
	for _, m := range routeToken.FindAllStringSubmatch(text, -1) {
		sep, word := m[1], m[2]
		switch sep {
		case "":
			if pair != nil {
				return nil, fmt.Errorf("%q follows a key without a separator", word)
			}
			pair = &matchPair{}
			out[word] = pair
			values = nil
		case "&":
			if pair == nil {
				return nil, fmt.Errorf("& before any key (%q)", word)
			}
			if _, dup := out[word]; dup {
				pair = out[word]
			} else {
				pair = &matchPair{}
				out[word] = pair
			}
			values = nil
		case "=":
			if pair == nil {
				return nil, fmt.Errorf("= %s has no key", word)
			}
			values = &pair.matches
			*values = append(*values, word)
		case "!=":
			if pair == nil {
				return nil, fmt.Errorf("!= %s has no key", word)
			}
			values = &pair.mismatches
			*values = append(*values, word)
		case ",":
			if values == nil {
				return nil, fmt.Errorf(", %s follows no value", word)
			}
			*values = append(*values, word)
		default:
			return nil, fmt.Errorf("unexpected %q before %q", sep, word)
		}
	}
	for k, p := range out {
		if len(p.matches) == 0 && len(p.mismatches) == 0 {
			return nil, fmt.Errorf("key %q has no value", k)
		}
	}
	return out, nil
}

// isMatch is Dubbo's MatchPair.isMatch: with mismatches, a value that
// matches one of them fails; then it must match one of the matches, if
// there are any.
func (p *matchPair) isMatch(value string, consumer map[string]string) bool {
	for _, m := range p.mismatches {
		if globMatch(m, value, consumer) {
			return false
		}
	}
	if len(p.matches) == 0 {
		return len(p.mismatches) > 0
	}
	for _, m := range p.matches {
		if globMatch(m, value, consumer) {
			return true
		}
	}
	return false
}

// globMatch is Dubbo's UrlUtils.isMatchGlobPattern: "*" matches all, one
// "*" at the start, end or middle matches a suffix, prefix or both;
// "$key" stands for the consumer's parameter key.
func globMatch(pattern, value string, consumer map[string]string) bool {
	if strings.HasPrefix(pattern, "$") {
		pattern = consumer[pattern[1:]]
	}
	switch {
	case pattern == "*":
		return true
	case pattern == "" && value == "":
		return true
	case pattern == "" || value == "":
		return false
	}
	i := strings.LastIndexByte(pattern, '*')
	switch {
	case i < 0:
		return pattern == value
	case i == len(pattern)-1:
		return strings.HasPrefix(value, pattern[:i])
	case i == 0:
		return strings.HasSuffix(value, pattern[1:])
	default:
		return strings.HasPrefix(value, pattern[:i]) && strings.HasSuffix(value, pattern[i+1:])
	}
}

// matchWhen: every key of the "when" side matches the call (an empty side
// matches all calls).
func (c *Condition) matchWhen(call *Call) bool {
	for key, pair := range c.when {
		value, ok := callValue(call, key)
		if !ok {
			if len(pair.matches) > 0 {
				return false // a value that is not there matches no pattern
			}
			continue
		}
		if !pair.isMatch(value, call.Consumer) {
			return false
		}
	}
	return true
}

// filter keeps the providers every key of the "then" side matches (none
// when the side is empty: the calls are forbidden).
func (c *Condition) filter(call *Call, providers []*Provider) []*Provider {
	if c.forbid {
		return nil
	}
	var out []*Provider
	for _, p := range providers {
		ok := true
		for key, pair := range c.then {
			value, found := providerValue(p, key)
			if !found {
				if len(pair.matches) > 0 {
					ok = false
					break
				}
				continue
			}
			if !pair.isMatch(value, call.Consumer) {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, p)
		}
	}
	return out
}

var argumentKey = regexp.MustCompile(`^arguments\[([0-9]+)\]$`)
var attachmentKey = regexp.MustCompile(`^attachments\[([^\]]+)\]$`)

// callValue is the call's value for a "when" key: the method, an
// argument, an attachment, or a consumer parameter.
func callValue(call *Call, key string) (string, bool) {
	switch {
	case key == "method" || key == "methods":
		return call.Method, call.Method != ""
	case argumentKey.MatchString(key):
		i, _ := strconv.Atoi(argumentKey.FindStringSubmatch(key)[1])
		if i < len(call.Arguments) {
			return call.Arguments[i], true
		}
		return "", false
	case attachmentKey.MatchString(key):
		v, ok := call.Attachments[attachmentKey.FindStringSubmatch(key)[1]]
		return v, ok
	}
	v, ok := call.Consumer[key]
	return v, ok && v != ""
}

// providerValue is a provider's value for a "then" key: its host,
// address, port, protocol, or a URL parameter.
func providerValue(p *Provider, key string) (string, bool) {
	switch key {
	case "host":
		return p.Host, true
	case "address":
		return p.Address(), true
	case "port":
		return strconv.FormatUint(uint64(p.Port), 10), true
	case "protocol":
		return p.Protocol, p.Protocol != ""
	}
	v, ok := p.Params[key]
	return v, ok && v != ""
}
