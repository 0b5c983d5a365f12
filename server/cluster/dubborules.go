package cluster

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/meshgate/meshgate/dubbo/rules"
	"github.com/meshgate/meshgate/governance"
)

// dubboRules are a Dubbo cluster's traffic rules, compiled with the
// cluster (from its meshgate.dubbo metadata "rules", which the registry
// fills from the config center): condition routers of the service, in
// priority order, and the tag router of its providers' application.
type dubboRules struct {
	conditions []*rules.ConditionRule
	tag        *rules.TagRule
	// desc says what is in force, one line a rule (the admin page).
	desc []string
}

// DubboRules describes the Dubbo traffic rules in force, one line each
// ("condition-router <key>: <conditions>"); none when there are none.
func (c *Cluster) DubboRules() []string {
	if c.dubboRules == nil {
		return nil
	}
	return c.dubboRules.desc
}

// compileDubboRules reads the "rules" list of a Dubbo cluster's metadata
// (each {key, kind, rule}); nil when there is none and no provider carries
// a static tag ("static_tags"). Configurators are not here: the registry
// applies them to the providers it publishes.
func compileDubboRules(md *structpb.Struct) (*dubboRules, error) {
	list := md.GetFields()["rules"].GetListValue().GetValues()
	staticTags := md.GetFields()["static_tags"].GetBoolValue()
	if len(list) == 0 && !staticTags {
		return nil, nil
	}
	out := &dubboRules{}
	if staticTags && len(list) == 0 {
		out.desc = append(out.desc, "static dubbo.tag routing (providers carry tags; untagged calls skip them)")
	}
	for i, v := range list {
		f := v.GetStructValue().GetFields()
		kind, text := f["kind"].GetStringValue(), []byte(f["rule"].GetStringValue())
		switch kind {
		case "condition-router":
			r, err := rules.ParseConditionRule(text)
			if err != nil {
				return nil, fmt.Errorf("rules[%d] (%s): %w", i, f["key"].GetStringValue(), err)
			}
			out.conditions = append(out.conditions, r)
			state := ""
			if !r.On() {
				state = " (disabled)"
			} else if r.Force {
				state = " (force)"
			}
			out.desc = append(out.desc, fmt.Sprintf("condition-router %s%s: %s", f["key"].GetStringValue(), state, strings.Join(r.RawConds, "; ")))
		case "tag-router":
			r, err := rules.ParseTagRule(text)
			if err != nil {
				return nil, fmt.Errorf("rules[%d] (%s): %w", i, f["key"].GetStringValue(), err)
			}
			if out.tag == nil {
				out.tag = r // one application's rule per service, as Dubbo has
				var tags []string
				for _, tg := range r.Tags {
					tags = append(tags, tg.Name)
				}
				out.desc = append(out.desc, fmt.Sprintf("tag-router %s: tags %s", f["key"].GetStringValue(), strings.Join(tags, ", ")))
			}
		case "configurators":
			out.desc = append(out.desc, "configurators "+f["key"].GetStringValue()+" (applied to the providers)")
		default:
			return nil, fmt.Errorf("rules[%d]: unknown kind %q", i, kind)
		}
	}
	// Dubbo runs routers of higher priority first.
	slices.SortStableFunc(out.conditions, func(a, b *rules.ConditionRule) int { return b.Priority - a.Priority })
	return out, nil
}

// ErrNoProviderAfterRules: the traffic rules left a call no provider (a
// forced rule, or a condition that forbids the call).
var ErrNoProviderAfterRules = errors.New("no provider left by the Dubbo traffic rules")

// providerViews are the hosts of a host set as the rules see them, built
// once per host set.
type providerViews struct {
	once  sync.Once
	views []*rules.Provider
	index map[*rules.Provider]int
}

func (pv *providerViews) get(hosts []*Host, protocol string) ([]*rules.Provider, map[*rules.Provider]int) {
	pv.once.Do(func() {
		pv.views = make([]*rules.Provider, len(hosts))
		pv.index = make(map[*rules.Provider]int, len(hosts))
		for i, h := range hosts {
			host, port, _ := net.SplitHostPort(h.Address)
			n, _ := strconv.ParseUint(port, 10, 32)
			var params map[string]string
			if sp := h.Spec(); sp != nil {
				params = sp.DubboParams
			}
			pv.views[i] = &rules.Provider{Host: host, Port: uint32(n), Protocol: protocol, Params: params}
			pv.index[pv.views[i]] = i
		}
	})
	return pv.views, pv.index
}

// HasDubboRules reports whether calls of this cluster go through Dubbo
// traffic rules (BeginRouted then routes them).
func (c *Cluster) HasDubboRules() bool { return c.dubboRules != nil }

// route is the hosts a call may go to under the cluster's rules (all:
// nil, true).
func (c *Cluster) route(hs *hostSet, call *rules.Call) (allowed []bool, err error) {
	r := c.dubboRules
	views, index := hs.views.get(hs.hosts, c.dubboProtocol())
	kept := views
	for _, cr := range r.conditions {
		kept = cr.Route(call, kept)
	}
	kept = r.tag.Route(call, kept) // without a tag rule: the providers' static tags
	if len(kept) == 0 {
		return nil, ErrNoProviderAfterRules
	}
	if len(kept) == len(views) {
		return nil, nil
	}
	allowed = make([]bool, len(hs.hosts))
	for _, p := range kept {
		allowed[index[p]] = true
	}
	return allowed, nil
}

func (c *Cluster) dubboProtocol() string {
	if c.Triple {
		return "tri"
	}
	return "dubbo"
}

// BeginRouted is Begin for a Dubbo call under the cluster's traffic
// rules: the host is one the rules leave the call.
func (c *Cluster) BeginRouted(info governance.PickInfo, tried []*Host, call *rules.Call) (*Attempt, error) {
	if c.dubboRules == nil || call == nil {
		return c.Begin(info, tried)
	}
	hs := c.hosts.Load()
	allowed, err := c.route(hs, call)
	if err != nil {
		c.Stats.NoHealthyUpstrm.Add(1)
		return nil, fmt.Errorf("cluster %q: %w", c.Name, err)
	}
	if allowed == nil {
		return c.Begin(info, tried)
	}
	return c.beginWith(tried, "every host the rules allow", func(excluded []*Host) (*Host, error) {
		return c.pickAmong(hs, info, excluded, allowed)
	})
}

// pickAmong picks with the cluster's balancer among the allowed hosts,
// avoiding tried ones when it can: the balancer is asked to avoid the
// others, and when it still lands outside (its tries are few), a random
// allowed host is taken.
func (c *Cluster) pickAmong(hs *hostSet, info governance.PickInfo, tried []*Host, allowed []bool) (*Host, error) {
	avoid := func(i int) bool { return !allowed[i] || slices.Contains(tried, hs.hosts[i]) }
	info.Exclude = avoid
	if i, err := hs.picker.Pick(info); err == nil && i >= 0 && i < len(hs.hosts) && !avoid(i) {
		return hs.hosts[i], nil
	}
	// Healthy untried hosts first, then healthy tried ones, then any
	// allowed one (as a balancer in panic mode would).
	var pool []int
	for _, ok := range []func(i int) bool{
		func(i int) bool { return !avoid(i) && hs.hosts[i].Healthy() },
		func(i int) bool { return allowed[i] && hs.hosts[i].Healthy() },
		func(i int) bool { return allowed[i] },
	} {
		for i := range hs.hosts {
			if ok(i) {
				pool = append(pool, i)
			}
		}
		if len(pool) > 0 {
			break
		}
	}
	if len(pool) == 0 {
		c.Stats.NoHealthyUpstrm.Add(1)
		return nil, fmt.Errorf("cluster %q: %w", c.Name, ErrNoHealthyUpstream)
	}
	return hs.hosts[pool[rand.IntN(len(pool))]], nil
}

// DubboConsumer is Dubbo's dynamic configuration for meshgate as a
// consumer of a service: it overrides the route's or listener's own.
type DubboConsumer struct {
	// Timeout bounds each call (0: not set).
	Timeout time.Duration
	// Retries is Dubbo's failover tries after the first, when HasRetries.
	Retries    int
	HasRetries bool
}

// dubboConsumer reads "consumer_params" (Dubbo's parameter names and
// units: timeout in milliseconds).
func dubboConsumer(md *structpb.Struct) DubboConsumer {
	var out DubboConsumer
	f := md.GetFields()["consumer_params"].GetStructValue().GetFields()
	if ms, err := strconv.ParseInt(f["timeout"].GetStringValue(), 10, 64); err == nil && ms > 0 {
		out.Timeout = time.Duration(ms) * time.Millisecond
	}
	if n, err := strconv.Atoi(f["retries"].GetStringValue()); err == nil && n >= 0 {
		out.Retries, out.HasRetries = n, true
	}
	return out
}
