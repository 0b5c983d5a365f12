// Package filtertest helps test HTTP filters: it compiles route tables
// from Envoy YAML, builds a registered filter from its config, and runs a
// request through it.
package filtertest

import (
	"net/http"
	"net/http/httptest"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	_ "github.com/meshgate/meshgate/config" // registers the Envoy extension types configs carry
	"github.com/meshgate/meshgate/server/cluster"
	"github.com/meshgate/meshgate/server/httpfilter"
	"github.com/meshgate/meshgate/server/router"
)

// Table compiles a RouteConfiguration written as Envoy YAML; every cluster
// name resolves (to no cluster).
func Table(t testing.TB, y string) *httpfilter.Table {
	t.Helper()
	return TableResolving(t, y, func(string) (*cluster.Cluster, bool) { return nil, true })
}

// TableResolving is Table with the routes' clusters found by resolve.
func TableResolving(t testing.TB, y string, resolve func(string) (*cluster.Cluster, bool)) *httpfilter.Table {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	rc := &routev3.RouteConfiguration{}
	if err := protojson.Unmarshal(js, rc); err != nil {
		t.Fatalf("route config: %v", err)
	}
	table, err := router.Compile(rc, resolve, router.WithPerFilter(httpfilter.CompilePerFilter))
	if err != nil {
		t.Fatal(err)
	}
	return table
}

// Filter builds the registered filter name with cfg (nil: none).
func Filter(t testing.TB, name string, cfg proto.Message) httpfilter.Filter {
	t.Helper()
	return FilterBuilt(t, name, cfg, httpfilter.Build{})
}

// FilterBuilt is Filter with what else a factory gets (b's Name is set).
func FilterBuilt(t testing.TB, name string, cfg proto.Message, b httpfilter.Build) httpfilter.Filter {
	t.Helper()
	var a *anypb.Any
	if cfg != nil {
		var err error
		if a, err = anypb.New(cfg); err != nil {
			t.Fatal(err)
		}
	}
	f := httpfilter.Lookup(name, a)
	if f == nil {
		t.Fatalf("filter %q is not registered", name)
	}
	b.Name = name
	flt, _, err := httpfilter.New(f, a, b)
	if err != nil {
		t.Fatal(err)
	}
	return flt
}

// Run passes r through f with table and returns what f said and what was
// answered (empty when f let the request go on).
func Run(f httpfilter.Filter, table *httpfilter.Table, r *http.Request) (httpfilter.Status, *httptest.ResponseRecorder) {
	rec := httptest.NewRecorder()
	var s httpfilter.Stream
	s.Reset(rec, nil, r, table)
	st := f.Decode(&s)
	s.Finish()
	return st, rec
}

// Any packs m.
func Any(t testing.TB, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
