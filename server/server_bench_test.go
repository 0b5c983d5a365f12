package server

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/meshgate/meshgate/config"
)

// BenchmarkEndpointUpdate applies one cluster's new endpoint set (100
// hosts) in a config of 1,000 EDS clusters, through the store as EDS or a
// registry would (budget: under 10 ms, no recompile).
func BenchmarkEndpointUpdate(b *testing.B) {
	srv := New(Options{})
	defer func() { _ = srv.Shutdown(context.Background()) }()
	store := config.NewStore(srv)
	var y strings.Builder
	y.WriteString("listeners: [{name: l, address: \"127.0.0.1:0\", virtual_hosts: [{routes: [{match: {prefix: /}, cluster: c0}]}]}]\nclusters:\n")
	for i := range 1000 {
		fmt.Fprintf(&y, "  - {name: c%d, type: eds}\n", i)
	}
	l, err := config.Load([]byte(y.String()), "")
	if err != nil {
		b.Fatal(err)
	}
	if err := store.Apply(context.Background(), config.Update{Source: "file", Replace: config.ResourceTypes, Resources: l.Resources}); err != nil {
		b.Fatal(err)
	}
	sets := make([][]string, 2)
	for v := range sets {
		for i := range 100 {
			sets[v] = append(sets[v], fmt.Sprintf("10.%d.%d.%d:8080", v, i/250, i%250))
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		u := config.Update{Source: "eds", Resources: []proto.Message{cla("c500", sets[i%2]...)}}
		if err := store.Apply(context.Background(), u); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
