package rules

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// ConfiguratorRule is a dynamic configuration (configVersion v3.0): its
// configs override parameters of providers (side provider: weight,
// disabled, timeout, ...) or of consumers (side consumer: timeout,
// retries, loadbalance, ...), each for the addresses and applications it
// names.
type ConfiguratorRule struct {
	Key     string   `json:"key"`
	Scope   string   `json:"scope"`
	Enabled *bool    `json:"enabled"`
	Version string   `json:"configVersion"`
	Configs []Config `json:"configs"`
}

// Config is one override of a rule.
type Config struct {
	Side string `json:"side"`
	// Addresses are the providers' (side provider) or consumers' (side
	// consumer) addresses it applies to; none or "0.0.0.0": all.
	Addresses []string `json:"addresses"`
	// ProviderAddresses narrow a consumer-side config to calls of these
	// providers.
	ProviderAddresses []string `json:"providerAddresses"`
	// Applications it applies to (the side's application); none: all.
	Applications []string `json:"applications"`
	Services     []string `json:"services"`
	// Parameters are the values set (YAML scalars: 6000 as "6000").
	Parameters map[string]string `json:"-"`
	RawParams  map[string]any    `json:"parameters"`
	Enabled    *bool             `json:"enabled"`
}

// ParseConfiguratorRule reads a dynamic configuration (YAML, Dubbo
// Admin's v3.0 form).
func ParseConfiguratorRule(data []byte) (*ConfiguratorRule, error) {
	var r ConfiguratorRule
	if err := yaml.UnmarshalStrict(data, &r); err != nil {
		return nil, fmt.Errorf("configurator: %w", err)
	}
	switch r.Scope {
	case "service", "application":
	case "":
		return nil, errors.New("configurator: scope is required (service or application)")
	default:
		return nil, fmt.Errorf("configurator: scope %q is neither service nor application", r.Scope)
	}
	if r.Key == "" {
		return nil, errors.New("configurator: key is required")
	}
	for i, c := range r.Configs {
		switch c.Side {
		case "provider", "consumer":
		case "":
			return nil, fmt.Errorf("configurator: configs[%d]: side is required (provider or consumer)", i)
		default:
			return nil, fmt.Errorf("configurator: configs[%d]: side %q is neither provider nor consumer", i, c.Side)
		}
		if len(c.RawParams) == 0 {
			return nil, fmt.Errorf("configurator: configs[%d] sets no parameter", i)
		}
		r.Configs[i].Parameters = map[string]string{}
		for k, v := range c.RawParams {
			switch x := v.(type) {
			case string:
				r.Configs[i].Parameters[k] = x
			case float64:
				r.Configs[i].Parameters[k] = strconv.FormatFloat(x, 'f', -1, 64)
			case bool:
				r.Configs[i].Parameters[k] = strconv.FormatBool(x)
			default:
				return nil, fmt.Errorf("configurator: configs[%d].parameters.%s: want a scalar, got %T", i, k, v)
			}
		}
	}
	return &r, nil
}

// On reports whether the rule is in force (enabled is true unless said).
func (r *ConfiguratorRule) On() bool { return r.Enabled == nil || *r.Enabled }

// ProviderParams are p's parameters with the rule's provider-side
// overrides for it applied (later configs win); app is p's application.
func (r *ConfiguratorRule) ProviderParams(p *Provider, app string) map[string]string {
	out := maps.Clone(p.Params)
	if out == nil {
		out = map[string]string{}
	}
	if !r.On() {
		return out
	}
	for i := range r.Configs {
		c := &r.Configs[i]
		if c.Side != "provider" || !c.on() || !c.forApp(app) || !anyAddress(c.Addresses, p) {
			continue
		}
		maps.Copy(out, c.Parameters)
	}
	return out
}

// ClusterParams are the rule's consumer-side overrides for a consumer
// application running on any of hosts that hold for every provider of the
// service: configs naming provider addresses are per provider and left
// out (a cluster-wide setting cannot carry them).
func (r *ConfiguratorRule) ClusterParams(hosts []string, app string) map[string]string {
	out := map[string]string{}
	if !r.On() {
		return out
	}
	for i := range r.Configs {
		c := &r.Configs[i]
		if c.Side != "consumer" || !c.on() || !c.forApp(app) || len(c.ProviderAddresses) > 0 {
			continue
		}
		// (A Provider with no host matches 0.0.0.0 alone: any host.)
		if anyAddress(c.Addresses, &Provider{}) || slices.ContainsFunc(hosts, func(h string) bool { return anyAddress(c.Addresses, &Provider{Host: h}) }) {
			maps.Copy(out, c.Parameters)
		}
	}
	return out
}

func (c *Config) on() bool { return c.Enabled == nil || *c.Enabled }

func (c *Config) forApp(app string) bool {
	return len(c.Applications) == 0 || slices.Contains(c.Applications, app) || slices.Contains(c.Applications, "*")
}

// anyAddress: no addresses means all; else one must match p (a consumer
// is matched by host alone).
func anyAddress(addresses []string, p *Provider) bool {
	if len(addresses) == 0 {
		return true
	}
	for _, a := range addresses {
		if p.Port == 0 {
			if host, _, ok := cutPort(a); ok {
				a = host
			}
		}
		if addressMatch(a, p) {
			return true
		}
	}
	return false
}

// cutPort splits "host:port" (ok false without a port).
func cutPort(a string) (string, string, bool) {
	if i := strings.LastIndexByte(a, ':'); i >= 0 {
		return a[:i], a[i+1:], true
	}
	return a, "", false
}
