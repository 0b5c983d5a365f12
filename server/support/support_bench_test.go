package support

import (
	"fmt"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// The walk runs on every changed resource of every compile: a route
// configuration of 10,000 routes.
func BenchmarkCheck_10000Routes(b *testing.B) {
	vh := &routev3.VirtualHost{Name: "all", Domains: []string{"*"}}
	for i := range 10000 {
		vh.Routes = append(vh.Routes, &routev3.Route{
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: fmt.Sprintf("/r%d/", i)}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: fmt.Sprintf("c%d", i%100)}}},
		})
	}
	rc := &routev3.RouteConfiguration{Name: "big", VirtualHosts: []*routev3.VirtualHost{vh}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Check(rc); err != nil {
			b.Fatal(err)
		}
	}
}
