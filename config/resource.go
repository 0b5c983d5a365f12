package config

import (
	"fmt"
	"sort"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Type URLs of the resources the store holds, as xDS names them.
const (
	typePrefix   = "type.googleapis.com/"
	ListenerType = typePrefix + "envoy.config.listener.v3.Listener"
	RouteType    = typePrefix + "envoy.config.route.v3.RouteConfiguration"
	ClusterType  = typePrefix + "envoy.config.cluster.v3.Cluster"
	EndpointType = typePrefix + "envoy.config.endpoint.v3.ClusterLoadAssignment"
	// SecretType is SDS's: certificates and trust anchors that listeners'
	// and clusters' TLS contexts name (tls_certificate_sds_secret_configs,
	// validation_context_sds_secret_config).
	SecretType = typePrefix + "envoy.extensions.transport_sockets.tls.v3.Secret"
)

// ResourceTypes lists the type URLs in dependency order: a resource may only
// refer to resources of types that come after it.
var ResourceTypes = []string{ListenerType, RouteType, ClusterType, EndpointType, SecretType}

// Resource is one Envoy resource with its provenance. A Resource is never
// modified once it is in a Set.
type Resource struct {
	Name        string
	Message     proto.Message
	Version     string
	Source      string
	LastUpdated time.Time
}

// TypeURL returns the xDS type URL of an Envoy resource message.
func TypeURL(m proto.Message) string {
	return typePrefix + string(m.ProtoReflect().Descriptor().FullName())
}

// ResourceName returns the name a resource is stored under: its name, or
// the cluster name of a ClusterLoadAssignment.
func ResourceName(m proto.Message) (string, error) {
	switch r := m.(type) {
	case *listenerv3.Listener:
		return r.GetName(), nil
	case *routev3.RouteConfiguration:
		return r.GetName(), nil
	case *clusterv3.Cluster:
		return r.GetName(), nil
	case *endpointv3.ClusterLoadAssignment:
		return r.GetClusterName(), nil
	case *tlsv3.Secret:
		return r.GetName(), nil
	default:
		return "", fmt.Errorf("unsupported resource type %s", TypeURL(m))
	}
}

// Failure is a rejected update of one resource (an xDS NACK), kept for
// /config_dump.
type Failure struct {
	Version string
	Details string
	Time    time.Time
	// Resource is what was rejected, as it was sent.
	Resource *anypb.Any
}

// Set is an immutable view of every resource in the store.
type Set struct {
	// Version counts the changes the store has committed.
	Version uint64
	byType  map[string]map[string]*Resource
}

// Get returns the named resource of a type, or nil.
func (s *Set) Get(typeURL, name string) *Resource {
	if s == nil {
		return nil
	}
	return s.byType[typeURL][name]
}

// All returns the resources of a type sorted by name.
func (s *Set) All(typeURL string) []*Resource {
	if s == nil {
		return nil
	}
	m := s.byType[typeURL]
	out := make([]*Resource, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Len is the number of resources of a type.
func (s *Set) Len(typeURL string) int {
	if s == nil {
		return 0
	}
	return len(s.byType[typeURL])
}

// Listener returns the named Listener, or nil.
func (s *Set) Listener(name string) *listenerv3.Listener {
	r, _ := msg(s, ListenerType, name).(*listenerv3.Listener)
	return r
}

// Route returns the named RouteConfiguration, or nil.
func (s *Set) Route(name string) *routev3.RouteConfiguration {
	r, _ := msg(s, RouteType, name).(*routev3.RouteConfiguration)
	return r
}

// Cluster returns the named Cluster, or nil.
func (s *Set) Cluster(name string) *clusterv3.Cluster {
	r, _ := msg(s, ClusterType, name).(*clusterv3.Cluster)
	return r
}

// Endpoints returns the ClusterLoadAssignment for a cluster (or EDS service)
// name, or nil.
func (s *Set) Endpoints(name string) *endpointv3.ClusterLoadAssignment {
	r, _ := msg(s, EndpointType, name).(*endpointv3.ClusterLoadAssignment)
	return r
}

// Secret returns the named SDS Secret, or nil.
func (s *Set) Secret(name string) *tlsv3.Secret {
	r, _ := msg(s, SecretType, name).(*tlsv3.Secret)
	return r
}

func msg(s *Set, typeURL, name string) proto.Message {
	if r := s.Get(typeURL, name); r != nil {
		return r.Message
	}
	return nil
}
