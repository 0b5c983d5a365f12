package xds

import (
	"context"
	"io"
	"log/slog"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshgate/meshgate/config"
)

// A control plane's responses, whatever their bytes, get an ACK or a NACK
// naming what failed: never a panic, and the client keeps answering.
func FuzzHandle(f *testing.F) {
	good, _ := anypb.New(&clusterv3.Cluster{Name: "a", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}})
	f.Add(uint8(0), good.GetValue(), false)
	f.Add(uint8(1), []byte{0x0a, 0x01, 'l'}, true)
	f.Add(uint8(2), []byte{0xff}, false)
	f.Add(uint8(3), []byte{0x0a, 0x00}, true)
	types := []string{config.ClusterType, config.ListenerType, config.RouteType, config.EndpointType}
	f.Fuzz(func(t *testing.T, kind uint8, value []byte, delta bool) {
		store := config.NewStore(nil)
		c := New(store, Options{Address: "fuzz", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		defer c.stopWarmTimer()
		typ := types[int(kind)%len(types)]
		res := &anypb.Any{TypeUrl: typ, Value: value}
		ctx := context.Background()
		if delta {
			out := c.handleDelta(ctx, &discoveryv3.DeltaDiscoveryResponse{TypeUrl: typ, Nonce: "n",
				Resources: []*discoveryv3.Resource{{Name: "x", Version: "1", Resource: res}}})
			if len(out) == 0 || out[0].GetResponseNonce() != "n" {
				t.Fatalf("no answer to the response: %v", out)
			}
			return
		}
		out := c.handle(ctx, &discoveryv3.DiscoveryResponse{TypeUrl: typ, VersionInfo: "1", Nonce: "n", Resources: []*anypb.Any{res, res}})
		if len(out) == 0 || out[0].GetResponseNonce() != "n" {
			t.Fatalf("no answer to the response: %v", out)
		}
	})
}
