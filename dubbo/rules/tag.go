package rules

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// TagKey is the attachment (or consumer parameter) naming a call's tag,
// and the provider parameter naming a provider's static tag.
const TagKey = "dubbo.tag"

// ForceTagKey is the attachment that forbids falling back to untagged
// providers when none carries the call's tag.
const ForceTagKey = "dubbo.force.tag"

// TagRule is a tag router's rule (configVersion v3.0), keyed by the
// providers' application: each tag names the providers that carry it, by
// address or by matching their parameters.
type TagRule struct {
	Key     string `json:"key"`
	Force   bool   `json:"force"`
	Runtime bool   `json:"runtime"`
	Enabled *bool  `json:"enabled"`
	Version string `json:"configVersion"`
	Tags    []Tag  `json:"tags"`
}

// Tag is one tag of a rule.
type Tag struct {
	Name      string       `json:"name"`
	Addresses []string     `json:"addresses"`
	Match     []ParamMatch `json:"match"`
}

// ParamMatch is one condition on a provider parameter.
type ParamMatch struct {
	Key   string      `json:"key"`
	Value StringMatch `json:"value"`
}

// StringMatch is Dubbo's string matcher: one of its fields.
type StringMatch struct {
	Exact    string `json:"exact,omitempty"`
	Prefix   string `json:"prefix,omitempty"`
	Regex    string `json:"regex,omitempty"`
	NoEmpty  string `json:"noempty,omitempty"`
	Empty    string `json:"empty,omitempty"`
	Wildcard string `json:"wildcard,omitempty"`
	re       *regexp.Regexp
}

// ParseTagRule reads a tag router rule (YAML, Dubbo Admin's v3.0 form).
func ParseTagRule(data []byte) (*TagRule, error) {
	var r TagRule
	if err := yaml.UnmarshalStrict(data, &r); err != nil {
		return nil, fmt.Errorf("tag rule: %w", err)
	}
	if r.Key == "" {
		return nil, errors.New("tag rule: key (the providers' application) is required")
	}
	names := map[string]bool{}
	for i := range r.Tags {
		tg := &r.Tags[i]
		if tg.Name == "" {
			return nil, fmt.Errorf("tag rule: tags[%d] has no name", i)
		}
		if names[tg.Name] {
			return nil, fmt.Errorf("tag rule: tag %q is defined twice", tg.Name)
		}
		names[tg.Name] = true
		for j := range tg.Match {
			m := &tg.Match[j]
			if m.Key == "" {
				return nil, fmt.Errorf("tag rule: tags[%d].match[%d] has no key", i, j)
			}
			if m.Value.Regex != "" {
				re, err := regexp.Compile("^(?:" + m.Value.Regex + ")$")
				if err != nil {
					return nil, fmt.Errorf("tag rule: tags[%d].match[%d].value.regex: %w", i, j, err)
				}
				m.Value.re = re
			}
		}
	}
	return &r, nil
}

// On reports whether the rule is in force (enabled is true unless said).
func (r *TagRule) On() bool { return r.Enabled == nil || *r.Enabled }

// Route filters providers for call as Java Dubbo's tag router does. A call
// with a tag (attachment dubbo.tag) goes to the providers the rule tags so
// (or, when the rule does not name the tag, those whose dubbo.tag
// parameter says it); when there are none it falls back to the untagged
// providers, unless the rule or the call forces the tag. A call without a
// tag goes to the providers no tag of the rule names and without a static
// tag the rule knows. A nil or disabled rule leaves the static tags only.
func (r *TagRule) Route(call *Call, providers []*Provider) []*Provider {
	tag := call.Attachments[TagKey]
	if tag == "" {
		tag = call.Consumer[TagKey]
	}
	forceCall := call.Attachments[ForceTagKey] == "true"
	if r == nil || !r.On() {
		return staticTags(tag, forceCall, providers)
	}
	if tag != "" {
		var result []*Provider
		if tg := r.tag(tag); tg != nil {
			result = filterProviders(providers, tg.has)
			if len(result) > 0 || r.Force {
				return result
			}
		} else {
			result = filterProviders(providers, func(p *Provider) bool { return p.Params[TagKey] == tag })
		}
		if len(result) > 0 || forceCall {
			return result
		}
		// Fall back to the providers no tag names.
		return filterProviders(providers, func(p *Provider) bool { return !r.tagged(p) && p.Params[TagKey] == "" })
	}
	return filterProviders(providers, func(p *Provider) bool {
		if r.tagged(p) {
			return false
		}
		local := p.Params[TagKey]
		return local == "" || r.tag(local) == nil
	})
}

// staticTags routes by the providers' own dubbo.tag parameters alone.
func staticTags(tag string, force bool, providers []*Provider) []*Provider {
	if tag == "" {
		return filterProviders(providers, func(p *Provider) bool { return p.Params[TagKey] == "" })
	}
	result := filterProviders(providers, func(p *Provider) bool { return p.Params[TagKey] == tag })
	if len(result) > 0 || force {
		return result
	}
	return filterProviders(providers, func(p *Provider) bool { return p.Params[TagKey] == "" })
}

func (r *TagRule) tag(name string) *Tag {
	for i := range r.Tags {
		if r.Tags[i].Name == name {
			return &r.Tags[i]
		}
	}
	return nil
}

// tagged reports whether some tag of the rule names p.
func (r *TagRule) tagged(p *Provider) bool {
	for i := range r.Tags {
		if r.Tags[i].has(p) {
			return true
		}
	}
	return false
}

// has reports whether the tag names p: by one of its addresses, or by
// all of its parameter matches (when it has some).
func (t *Tag) has(p *Provider) bool {
	for _, a := range t.Addresses {
		if addressMatch(a, p) {
			return true
		}
	}
	if len(t.Match) == 0 {
		return false
	}
	for i := range t.Match {
		m := &t.Match[i]
		if !m.Value.match(p.Params[m.Key]) {
			return false
		}
	}
	return true
}

// match is Dubbo's StringMatch.isMatch.
func (m *StringMatch) match(v string) bool {
	switch {
	case m.Exact != "":
		return v == m.Exact
	case m.Prefix != "":
		return strings.HasPrefix(v, m.Prefix)
	case m.re != nil:
		return m.re.MatchString(v)
	case m.Wildcard != "":
		return m.Wildcard == "*" || globMatch(m.Wildcard, v, nil)
	case m.Empty != "":
		return v == ""
	case m.NoEmpty != "":
		return v != ""
	}
	return false
}

// addressMatch is an address of a rule against a provider, as Java
// Dubbo's NetUtils.matchIpExpression and its 0.0.0.0 rule read it:
// "ip:port", "ip" (any port), "0.0.0.0[:port]" (any host), and IPv4
// patterns with "*" for a whole part ("10.0.*.1"). A bare "*" host is not
// a pattern there, and matches nothing here either.
func addressMatch(pattern string, p *Provider) bool {
	host, port := pattern, ""
	if h, pt, err := net.SplitHostPort(pattern); err == nil {
		host, port = h, pt
	}
	if port != "" && port != "*" && port != strconv.FormatUint(uint64(p.Port), 10) {
		return false
	}
	switch {
	case host == "0.0.0.0":
		return true
	case host == p.Host:
		return true
	}
	return ipPartsMatch(host, p.Host)
}

// ipPartsMatch matches "10.0.*.1" part by part.
func ipPartsMatch(pattern, ip string) bool {
	pp, ips := strings.Split(pattern, "."), strings.Split(ip, ".")
	if len(pp) != 4 || len(ips) != 4 {
		return false
	}
	for i := range pp {
		if pp[i] != "*" && pp[i] != ips[i] {
			return false
		}
	}
	return true
}

func filterProviders(ps []*Provider, keep func(*Provider) bool) []*Provider {
	var out []*Provider
	for _, p := range ps {
		if keep(p) {
			out = append(out, p)
		}
	}
	return out
}
