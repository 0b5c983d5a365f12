package cluster

import (
	"fmt"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/dubbo/rules"
	"github.com/meshgate/meshgate/governance"
)

// rulesCluster is a Dubbo cluster whose metadata carries rules (as the
// registry writes them) and whose providers carry parameters.
func rulesCluster(t *testing.T, rs ...map[string]any) *Cluster {
	t.Helper()
	var list []any
	for _, r := range rs {
		list = append(list, r)
	}
	fields := map[string]any{"protocol": "tri", "interface": "org.x.S", "static_tags": true}
	if len(list) > 0 {
		fields["rules"] = list
	}
	md, err := structpb.NewStruct(fields)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(&clusterv3.Cluster{Name: "tri|org.x.S||", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		Metadata: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{config.DubboMetadata: md}}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	var eps []*endpointv3.LbEndpoint
	for i, params := range []map[string]any{{"region": "a"}, {"region": "b"}, {"region": "b", "dubbo.tag": "gray"}} {
		e := ep(fmt.Sprintf("10.0.0.%d", i+1), 20880, 0, 0)
		pm, _ := structpb.NewStruct(map[string]any{"params": params})
		e.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{config.DubboMetadata: pm}}
		eps = append(eps, e)
	}
	c.SetEndpoints(&endpointv3.ClusterLoadAssignment{Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: eps}}})
	return c
}

// hostsFor are the hosts n routed attempts of call reach.
func hostsFor(t *testing.T, c *Cluster, call *rules.Call, n int) (map[string]int, error) {
	out := map[string]int{}
	for range n {
		a, err := c.BeginRouted(governance.PickInfo{}, nil, call)
		if err != nil {
			return nil, err
		}
		out[a.Host.Address]++
		a.End(governance.Outcome{Status: 200}, true)
	}
	return out, nil
}

// Calls go only to the providers the cluster's rules leave them: a
// condition by method and a tag rule (static tags for untagged calls);
// a forced rule that leaves none fails the call with ErrNoProviderAfterRules.
func TestBeginRouted(t *testing.T) {
	cond := map[string]any{"key": "org.x.S::", "kind": "condition-router",
		"rule": "configVersion: v3.0\nscope: service\nkey: \"org.x.S::\"\nconditions: [ \"method = find* => region = a\" ]\n"}
	forced := map[string]any{"key": "org.x.S::", "kind": "condition-router",
		"rule": "configVersion: v3.0\nscope: service\nkey: \"org.x.S::\"\nforce: true\nconditions: [ \"method = none => region = z\" ]\n"}
	c := rulesCluster(t, cond)
	if got := strings.Join(c.DubboRules(), "|"); got != "condition-router org.x.S::: method = find* => region = a" {
		t.Errorf("rules in force described as %q", got)
	}
	call := func(method, tag string) *rules.Call {
		return &rules.Call{Method: method, Attachments: map[string]string{rules.TagKey: tag}}
	}
	for _, tc := range []struct {
		call *rules.Call
		want []string
	}{
		{call("findUser", ""), []string{"10.0.0.1:20880"}},
		{call("save", ""), []string{"10.0.0.1:20880", "10.0.0.2:20880"}}, // untagged calls skip the gray provider
		{call("save", "gray"), []string{"10.0.0.3:20880"}},
		{call("findUser", "gray"), []string{"10.0.0.1:20880"}}, // gray left no provider: untagged fallback
	} {
		got, err := hostsFor(t, c, tc.call, 60)
		if err != nil {
			t.Fatalf("%+v: %v", tc.call, err)
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s (tag %q) reached %v, want %v", tc.call.Method, tc.call.Attachments[rules.TagKey], got, tc.want)
		}
		for _, w := range tc.want {
			if got[w] == 0 {
				t.Errorf("%s (tag %q) reached %v, want %v", tc.call.Method, tc.call.Attachments[rules.TagKey], got, tc.want)
			}
		}
	}
	// Without the call (not a Dubbo call) nothing is filtered.
	if a, err := c.BeginRouted(governance.PickInfo{}, nil, nil); err != nil {
		t.Fatal(err)
	} else {
		a.End(governance.Outcome{Status: 200}, true)
	}
	f := rulesCluster(t, forced)
	if _, err := hostsFor(t, f, call("none", ""), 1); err == nil {
		t.Error("a forced rule that leaves no provider let the call through")
	}
	if _, err := New(&clusterv3.Cluster{Name: "bad", Metadata: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		config.DubboMetadata: mustStruct(t, map[string]any{"rules": []any{map[string]any{"kind": "condition-router", "rule": "scope: x"}}})}}}, Options{}); err == nil {
		t.Error("a cluster with a malformed rule compiled")
	}
}

func mustStruct(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Without any rule, providers' static tags still route, as Dubbo's tag
// router does: untagged calls skip the tagged provider.
func TestBeginRouted_StaticTags(t *testing.T) {
	c := rulesCluster(t)
	if !c.HasDubboRules() {
		t.Fatal("a cluster with tagged providers routes no call")
	}
	for _, tc := range []struct {
		tag  string
		want []string
	}{
		{"", []string{"10.0.0.1:20880", "10.0.0.2:20880"}},
		{"gray", []string{"10.0.0.3:20880"}},
		{"red", []string{"10.0.0.1:20880", "10.0.0.2:20880"}},
	} {
		got, err := hostsFor(t, c, &rules.Call{Attachments: map[string]string{rules.TagKey: tc.tag}}, 60)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(tc.want) {
			t.Errorf("tag %q reached %v, want %v", tc.tag, got, tc.want)
		}
		for _, w := range tc.want {
			if got[w] == 0 {
				t.Errorf("tag %q reached %v, want %v", tc.tag, got, tc.want)
			}
		}
	}
}
