package support

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Check walks whatever a control plane sends (resources decoded from
// arbitrary bytes, Anys inside them included) without panicking.
func FuzzCheck(f *testing.F) {
	hcm, _ := anypb.New(&hcmv3.HttpConnectionManager{StatPrefix: "x", NormalizePath: wrapperspb.Bool(true)})
	seed, _ := proto.Marshal(&listenerv3.Listener{Name: "l", FilterChains: []*listenerv3.FilterChain{{
		Filters: []*listenerv3.Filter{{Name: "hcm", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcm}}}}}})
	f.Add(uint8(0), seed)
	f.Add(uint8(1), []byte{0x0a, 0x01, 'c'})
	f.Add(uint8(2), []byte{})
	f.Add(uint8(3), []byte{0xff, 0x01})
	f.Fuzz(func(t *testing.T, kind uint8, data []byte) {
		var m proto.Message
		switch kind % 4 {
		case 0:
			m = &listenerv3.Listener{}
		case 1:
			m = &clusterv3.Cluster{}
		case 2:
			m = &routev3.RouteConfiguration{}
		default:
			m = &endpointv3.ClusterLoadAssignment{}
		}
		if proto.Unmarshal(data, m) != nil {
			return
		}
		notes, _ := Check(m)
		for _, n := range notes {
			if n == "" {
				t.Fatal("an empty note")
			}
		}
	})
}
