package config

import (
	"context"
	"errors"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

func cluster(name string, timeoutSec int64) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		ConnectTimeout:       &durationpb.Duration{Seconds: timeoutSec},
	}
}

func endpoints(name string) *endpointv3.ClusterLoadAssignment {
	return &endpointv3.ClusterLoadAssignment{ClusterName: name}
}

// recorder is a Consumer that keeps what it was given and can refuse.
type recorder struct {
	calls  int
	last   *Set
	change Change
	refuse error
}

func (r *recorder) Apply(_ context.Context, next *Set, change Change) error {
	r.calls++
	if r.refuse != nil {
		return r.refuse
	}
	r.last, r.change = next, change
	return nil
}

func TestStore_Apply(t *testing.T) {
	ctx := context.Background()
	rec := &recorder{}
	s := NewStore(rec)

	if err := s.Apply(ctx, Update{Source: "file", Version: "v1", Replace: ResourceTypes,
		Resources: []proto.Message{cluster("a", 1), cluster("b", 1), endpoints("a")}}); err != nil {
		t.Fatal(err)
	}
	if rec.calls != 1 || s.Current().Len(ClusterType) != 2 || !rec.change.Has(ClusterType) || !rec.change.Has(EndpointType) {
		t.Fatalf("first apply: %d calls, %d clusters, change %v", rec.calls, s.Current().Len(ClusterType), rec.change.types)
	}

	t.Run("identical update calls no one", func(t *testing.T) {
		before := rec.calls
		if err := s.Apply(ctx, Update{Source: "file", Version: "v2", Replace: ResourceTypes,
			Resources: []proto.Message{cluster("a", 1), cluster("b", 1), endpoints("a")}}); err != nil {
			t.Fatal(err)
		}
		if rec.calls != before {
			t.Errorf("an update that changes nothing reached the consumer")
		}
		if v := s.Current().Get(ClusterType, "a").Version; v != "v1" {
			t.Errorf("unchanged resource version = %q, want v1 kept", v)
		}
	})
	t.Run("endpoints only", func(t *testing.T) {
		if err := s.Apply(ctx, Update{Source: "file", Version: "v3", Resources: []proto.Message{
			&endpointv3.ClusterLoadAssignment{ClusterName: "a", Endpoints: []*endpointv3.LocalityLbEndpoints{{}}},
		}}); err != nil {
			t.Fatal(err)
		}
		if !rec.change.OnlyEndpoints() || !rec.change.Changed(EndpointType, "a") || rec.change.Changed(EndpointType, "b") {
			t.Errorf("change %v, want endpoints of a only", rec.change.names)
		}
	})
	t.Run("replace removes what is absent", func(t *testing.T) {
		if err := s.Apply(ctx, Update{Source: "file", Version: "v4", Replace: []string{ClusterType},
			Resources: []proto.Message{cluster("a", 1)}}); err != nil {
			t.Fatal(err)
		}
		if s.Current().Cluster("b") != nil || s.Current().Endpoints("a") == nil {
			t.Errorf("after replacing clusters with [a]: b=%v, endpoints a=%v; want b gone, endpoints kept", s.Current().Cluster("b"), s.Current().Endpoints("a"))
		}
	})
	t.Run("refused update leaves the set", func(t *testing.T) {
		before := s.Current()
		rec.refuse = errors.New("does not compile")
		err := s.Apply(ctx, Update{Source: "file", Version: "v5", Resources: []proto.Message{cluster("a", 9)}})
		rec.refuse = nil
		if err == nil || s.Current() != before {
			t.Errorf("Apply() = %v and set changed: %v; want the error and the old set", err, s.Current() != before)
		}
	})
	t.Run("another source cannot overwrite or remove", func(t *testing.T) {
		err := s.Apply(ctx, Update{Source: "xds", Version: "x1", Resources: []proto.Message{cluster("a", 2)}})
		if err == nil || !strings.Contains(err.Error(), `cluster "a": already defined by source "file"`) {
			t.Errorf("overwrite by another source: %v", err)
		}
		err = s.Apply(ctx, Update{Source: "xds", Remove: map[string][]string{ClusterType: {"a"}}})
		if err == nil || !strings.Contains(err.Error(), `owned by source "file"`) {
			t.Errorf("removal by another source: %v", err)
		}
	})
	t.Run("invalid resource names its field", func(t *testing.T) {
		bad := cluster("c", 1)
		bad.ConnectTimeout = durationpb.New(-1)
		err := s.Apply(ctx, Update{Source: "file", Resources: []proto.Message{bad}})
		if err == nil || !strings.Contains(err.Error(), `cluster "c"`) || !strings.Contains(err.Error(), "ConnectTimeout") {
			t.Errorf("invalid cluster: %v", err)
		}
	})
	t.Run("duplicate in one update", func(t *testing.T) {
		err := s.Apply(ctx, Update{Source: "file", Resources: []proto.Message{cluster("d", 1), cluster("d", 2)}})
		if err == nil || !strings.Contains(err.Error(), `cluster "d": defined twice`) {
			t.Errorf("duplicate: %v", err)
		}
	})
}
