package registry

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/dubbo/rules"
)

// MetadataKey is the filter metadata namespace of Dubbo facts on clusters
// and endpoints.
const MetadataKey = config.DubboMetadata

// ClusterName names the cluster of one service over one protocol:
// <protocol>|<interface>|<version>|<group>.
func ClusterName(protocol string, k ServiceKey) string {
	return protocol + "|" + k.Interface + "|" + k.Version + "|" + k.Group
}

// Method is one method of a service, with its signature when known.
type Method struct {
	Name           string
	ParameterTypes []string
	ReturnType     string
}

// Signatures are what is known of a service's methods and where from.
type Signatures struct {
	Methods []Method
	// Source is "metadata-report" (full signatures), "provider-url" or
	// "metadata-service" (names only: dubbo-go publishes no types).
	Source   string
	Revision string
}

// catalog gathers what a watcher found and writes it into the store as
// one source: clusters (with the Dubbo metadata) and their endpoints.
type catalog struct {
	store  *config.Store
	source string
	log    *slog.Logger
	filter map[ServiceKey]bool // nil: every service
	lb     clusterv3.Cluster_LbPolicy
	m      *metrics
	hosts  []string // this machine's addresses (localHosts)

	mu        sync.Mutex
	last      string // fingerprint of what was written last
	applied   time.Time
	services  int // clusters written
	endpoints int
}

func newCatalog(store *config.Store, source string, log *slog.Logger, services []ServiceKey, lb string, m *metrics) (*catalog, error) {
	c := &catalog{store: store, source: source, log: log, m: m, lb: clusterv3.Cluster_ROUND_ROBIN, hosts: localHosts()}
	if len(services) > 0 {
		c.filter = map[ServiceKey]bool{}
		for _, s := range services {
			c.filter[s] = true
		}
	}
	if lb != "" {
		v, ok := clusterv3.Cluster_LbPolicy_value[strings.ToUpper(lb)]
		if !ok {
			return nil, fmt.Errorf("registry %s: unknown lb_policy %q", source, lb)
		}
		c.lb = clusterv3.Cluster_LbPolicy(v)
	}
	return c, nil
}

// publish writes the providers (and what is known of their methods) as
// the source's whole set of resources. Unchanged resources are left as
// they are, so a provider coming or going touches endpoints only.
func (c *catalog) publish(ctx context.Context, providers []*Provider, sigs map[ServiceKey]*Signatures, rulesOf map[ServiceKey][]Rule) error {
	type group struct {
		proto    string
		key      ServiceKey
		provs    []*Provider
		warmup   time.Duration
		serial   string
		methods  map[string]bool
		disabled int
		tagged   bool // some provider has a static dubbo.tag
	}
	groups := map[string]*group{}
	for _, p := range providers {
		if c.filter != nil && !c.filter[p.Service] {
			continue
		}
		p = configured(p, rulesOf[p.Service])
		name := ClusterName(p.Protocol, p.Service)
		g := groups[name]
		if g == nil {
			g = &group{proto: p.Protocol, key: p.Service, methods: map[string]bool{}}
			groups[name] = g
		}
		if !p.Enabled() {
			g.disabled++
			continue
		}
		g.provs = append(g.provs, p)
		g.tagged = g.tagged || p.Params["dubbo.tag"] != ""
		for _, m := range p.Methods() {
			g.methods[m] = true
		}
		if s := p.Params["serialization"]; s != "" {
			g.serial = s
		}
		if w := warmup(p.Params["warmup"]); w > g.warmup {
			g.warmup = w
		}
	}
	names := make([]string, 0, len(groups))
	for n := range groups {
		names = append(names, n)
	}
	sort.Strings(names)
	var res []proto.Message
	var fp strings.Builder
	endpoints := 0
	for _, name := range names {
		g := groups[name]
		cl := c.cluster(name, g.proto, g.key, g.serial, g.methods, sigs[g.key], g.warmup, rulesOf[g.key], g.tagged)
		cla := &endpointv3.ClusterLoadAssignment{ClusterName: name}
		lle := &endpointv3.LocalityLbEndpoints{}
		sort.Slice(g.provs, func(i, j int) bool { return g.provs[i].Address() < g.provs[j].Address() })
		seen := map[string]bool{}
		for _, p := range g.provs {
			if seen[p.Address()] {
				continue
			}
			seen[p.Address()] = true
			lle.LbEndpoints = append(lle.LbEndpoints, endpoint(p))
		}
		if len(lle.LbEndpoints) > 0 {
			cla.Endpoints = []*endpointv3.LocalityLbEndpoints{lle}
		}
		res = append(res, cl, cla)
		endpoints += len(lle.LbEndpoints)
		fmt.Fprintf(&fp, "%s=%d;", name, len(lle.LbEndpoints))
	}
	err := c.store.Apply(ctx, config.Update{
		Source: c.source, Version: time.Now().UTC().Format(time.RFC3339Nano),
		Replace: []string{config.ClusterType, config.EndpointType}, Resources: res,
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("registry %s: %w", c.source, err)
	}
	c.services = len(groups)
	c.endpoints = endpoints
	c.applied = time.Now()
	if fp.String() != c.last {
		c.last = fp.String()
		c.log.Info("registry view", "source", c.source, "clusters", fp.String())
	}
	return nil
}

// warmup reads Dubbo's warmup parameter: milliseconds (Java), or a Go
// duration (dubbo-go's WithWarmup).
func warmup(v string) time.Duration {
	if v == "" {
		return 0
	}
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Duration(ms) * time.Millisecond
	}
	d, _ := time.ParseDuration(v)
	return d
}

// consumerOverrides are the consumer-side parameters the service's
// dynamic configurations set for meshgate (application meshgate, on any
// consumer address or one of hosts, this machine's), cluster-wide ones
// only (rules.ClusterParams).
func consumerOverrides(rs []Rule, hosts []string) map[string]string {
	out := map[string]string{}
	for _, r := range rs {
		cr := r.configurator
		if cr == nil || cr.Scope == "application" && r.Key != rules.ConsumerApplication {
			continue // none, or another consumer application's configuration
		}
		maps.Copy(out, cr.ClusterParams(hosts, rules.ConsumerApplication))
	}
	return out
}

// localHosts are this machine's IP addresses, which consumer-side rules
// name (looked up once, as Dubbo does).
func localHosts() []string {
	addrs, _ := net.InterfaceAddrs()
	var out []string
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			out = append(out, n.IP.String())
		}
	}
	return out
}

// configured is p with the provider-side overrides of its service's
// dynamic configurations applied (weight, disabled, ...), p itself when
// none applies; p is not changed.
func configured(p *Provider, rs []Rule) *Provider {
	var out *Provider
	for _, r := range rs {
		cr := r.configurator
		if cr == nil {
			continue
		}
		if cr.Scope == "application" && r.Key != p.Params["application"] {
			continue
		}
		cur := p
		if out != nil {
			cur = out
		}
		params := cr.ProviderParams(&rules.Provider{Host: cur.Host, Port: cur.Port, Protocol: cur.Protocol, Params: cur.Params}, cur.Params["application"])
		if maps.Equal(params, cur.Params) {
			continue
		}
		cp := *cur
		cp.Params = params
		out = &cp
	}
	if out == nil {
		return p
	}
	return out
}

func (c *catalog) cluster(name, protocol string, k ServiceKey, serial string, methods map[string]bool, sig *Signatures, warm time.Duration, rules []Rule, tagged bool) *clusterv3.Cluster {
	methodNames := make([]any, 0, len(methods))
	for _, m := range sortedKeys(methods) {
		methodNames = append(methodNames, m)
	}
	md := map[string]any{
		"interface": k.Interface, "version": k.Version, "group": k.Group,
		"protocol": protocol, "serialization": serial, "methods": methodNames,
		"signatures_source": "none",
	}
	if sig != nil {
		md["signatures_source"] = sig.Source
		md["revision"] = sig.Revision
		var ms []any
		for _, m := range sig.Methods {
			types := make([]any, len(m.ParameterTypes))
			for i, t := range m.ParameterTypes {
				types[i] = t
			}
			ms = append(ms, map[string]any{"name": m.Name, "parameter_types": types, "return_type": m.ReturnType})
		}
		md["signatures"] = ms
	}
	if cp := consumerOverrides(rules, c.hosts); len(cp) > 0 {
		// Dynamic configuration for meshgate as the consumer (timeout,
		// retries): the data plane's calls of the service take them.
		params := map[string]any{}
		for k, v := range cp {
			params[k] = v
		}
		md["consumer_params"] = params
	}
	if tagged {
		// Some provider carries a static dubbo.tag: untagged calls must
		// skip it, as Dubbo's tag router does even without a rule.
		md["static_tags"] = true
	}
	if len(rules) > 0 {
		// The traffic rules in force for the service, as the config
		// center holds them (checked when read), for the data plane to
		// compile and /config_dump to show.
		var rs []any
		for _, r := range rules {
			rs = append(rs, map[string]any{"key": r.Key, "kind": r.Kind, "rule": r.Text})
		}
		md["rules"] = rs
	}
	st, err := structpb.NewStruct(md)
	if err != nil {
		c.log.Error("registry metadata", "cluster", name, "error", err)
	}
	cl := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{
			EdsConfig: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Self{Self: &corev3.SelfConfigSource{}}},
		},
		ConnectTimeout: durationpb.New(3 * time.Second),
		LbPolicy:       c.lb,
		Metadata:       &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{MetadataKey: st}},
	}
	if protocol == "tri" || protocol == "grpc" {
		opts, _ := anypb.New(&httpv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
			},
		}})
		cl.TypedExtensionProtocolOptions = map[string]*anypb.Any{config.HTTPProtocolOptions: opts}
	}
	if warm > 0 && (c.lb == clusterv3.Cluster_ROUND_ROBIN) {
		cl.LbConfig = &clusterv3.Cluster_RoundRobinLbConfig_{RoundRobinLbConfig: &clusterv3.Cluster_RoundRobinLbConfig{
			SlowStartConfig: &clusterv3.Cluster_SlowStartConfig{SlowStartWindow: durationpb.New(warm)},
		}}
	}
	return cl
}

func endpoint(p *Provider) *endpointv3.LbEndpoint {
	md := map[string]any{"application": p.Params["application"], "serialization": p.Params["serialization"]}
	if t := p.Params["dubbo.tag"]; t != "" {
		md["tag"] = t
	}
	// The provider's URL parameters, which traffic rules match on
	// ("region = a", dubbo.tag, ...): all but those that only describe
	// the process or change at each restart.
	params := map[string]any{}
	for k, v := range p.Params {
		switch k {
		case "methods", "timestamp", "pid", "REGISTRY_CLUSTER", "anyhost", "dynamic", "deprecated", "generic", "side", "release", "revision":
			continue
		}
		params[k] = v
	}
	md["params"] = params
	st, _ := structpb.NewStruct(md)
	return &endpointv3.LbEndpoint{
		HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: p.Host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: p.Port},
			}}},
		}},
		LoadBalancingWeight: wrapperspb.UInt32(p.Weight()),
		Metadata:            &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{MetadataKey: st}},
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// counts reports what the last successful publish wrote, and when.
func (c *catalog) counts() (clusters, endpoints int, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.services, c.endpoints, c.applied
}
