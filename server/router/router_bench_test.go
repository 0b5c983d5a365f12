package router

import (
	"fmt"
	"net/http/httptest"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// routeTable builds n routes, half gRPC service prefixes and half exact
// REST paths, each with a cluster of its own.
func routeTable(n int) *routev3.RouteConfiguration {
	vh := &routev3.VirtualHost{Name: "vh", Domains: []string{"*"}}
	for i := range n {
		m := &routev3.RouteMatch{}
		if i%2 == 0 {
			m.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: fmt.Sprintf("/pkg.v1.Service%d/", i)}
		} else {
			m.PathSpecifier = &routev3.RouteMatch_Path{Path: fmt.Sprintf("/api/v1/items%d", i)}
		}
		vh.Routes = append(vh.Routes, &routev3.Route{
			Match:  m,
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: fmt.Sprint("c", i)}}},
		})
	}
	return &routev3.RouteConfiguration{Name: "bench", VirtualHosts: []*routev3.VirtualHost{vh}}
}

// BenchmarkMatch matches the last route of tables of growing size: the
// cost must stay flat, not grow with the route count.
func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{1, 100, 10_000} {
		table, err := Compile(routeTable(n), targets)
		if err != nil {
			b.Fatal(err)
		}
		last := n - 1
		last -= last % 2 // the last gRPC route
		r := httptest.NewRequest("POST", fmt.Sprintf("/pkg.v1.Service%d/Method", last), nil)
		r.Header.Set("Content-Type", "application/grpc")
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if table.Match(r) == nil {
					b.Fatal("no match")
				}
			}
		})
	}
}

// BenchmarkCompile compiles 10,000 routes (budget: under a second).
func BenchmarkCompile(b *testing.B) {
	rc := routeTable(10_000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(rc, targets); err != nil {
			b.Fatal(err)
		}
	}
}
