package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// XDSSettings say where the control plane is and who the gateway is to it.
type XDSSettings struct {
	// Address is the control plane's host:port.
	Address string
	// TLS, when set, secures the connection (files as in UpstreamTLSConfig).
	TLS *UpstreamTLSConfig
	// TokenFile, when set, holds the bearer token sent on every stream
	// (istiod's secure port); TLS is set then.
	TokenFile string
	Node      *corev3.Node
	// InitialFetchTimeout bounds how long an incomplete update waits.
	InitialFetchTimeout time.Duration
	// Delta uses incremental xDS.
	Delta bool
}

// XDSConfig is the friendly format's xds section.
type XDSConfig struct {
	// Address is the control plane, e.g. istiod.istio-system:15010.
	Address string             `json:"address"`
	TLS     *UpstreamTLSConfig `json:"tls,omitempty"`
	// TokenFile is a service-account token (audience istio-ca) sent as
	// "authorization: Bearer" on every stream, re-read each time, as
	// istiod's secure port (15012) wants; it needs tls.
	TokenFile string `json:"token_file,omitempty"`
	// Node is the gateway's identity; without an id, Istio gives the
	// defaults of a router node (see Istio).
	Node *NodeConfig `json:"node,omitempty"`
	// Istio fills the node as istiod expects an ingress gateway.
	Istio               *IstioNodeConfig `json:"istio,omitempty"`
	InitialFetchTimeout *Duration        `json:"initial_fetch_timeout,omitempty"`
	// Delta uses the incremental protocol (Envoy's DELTA_GRPC) instead of
	// state of the world.
	Delta bool `json:"delta,omitempty"`
}

// NodeConfig is an Envoy node.
type NodeConfig struct {
	ID       string         `json:"id,omitempty"`
	Cluster  string         `json:"cluster,omitempty"`
	Metadata map[string]any `json:"metadata,omitempty"`
	// Locality is "region/zone/sub_zone".
	Locality string `json:"locality,omitempty"`
}

// IstioNodeConfig describes the gateway as an Istio router: the node id
// router~<ip>~<pod>.<namespace>~<namespace>.svc.cluster.local and the
// metadata istiod reads (CLUSTER_ID, NAMESPACE, ISTIO_VERSION, LABELS, NAME).
type IstioNodeConfig struct {
	IP        string            `json:"ip,omitempty"`         // default 127.0.0.1
	Pod       string            `json:"pod,omitempty"`        // default meshgate
	Namespace string            `json:"namespace,omitempty"`  // default istio-system
	ClusterID string            `json:"cluster_id,omitempty"` // default Kubernetes
	Version   string            `json:"version,omitempty"`    // default 1.28.0
	Labels    map[string]string `json:"labels,omitempty"`     // default istio: ingressgateway
}

// IstioNode builds an Istio router node.
func IstioNode(c IstioNodeConfig) (*corev3.Node, error) {
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&c.IP, "127.0.0.1")
	def(&c.Pod, "meshgate")
	def(&c.Namespace, "istio-system")
	def(&c.ClusterID, "Kubernetes")
	def(&c.Version, "1.28.0")
	if c.Labels == nil {
		c.Labels = map[string]string{"istio": "ingressgateway"}
	}
	labels := map[string]any{}
	for k, v := range c.Labels {
		labels[k] = v
	}
	md, err := structpb.NewStruct(map[string]any{
		"CLUSTER_ID": c.ClusterID, "NAMESPACE": c.Namespace, "ISTIO_VERSION": c.Version,
		"LABELS": labels, "NAME": c.Pod, "INSTANCE_IPS": c.IP, "MESH_ID": "cluster.local",
	})
	if err != nil {
		return nil, err
	}
	return &corev3.Node{
		Id:       fmt.Sprintf("router~%s~%s.%s~%s.svc.cluster.local", c.IP, c.Pod, c.Namespace, c.Namespace),
		Cluster:  c.Pod + "." + c.Namespace,
		Metadata: md,
	}, nil
}

func (t *translator) xds(path string, x *XDSConfig) *XDSSettings {
	out := &XDSSettings{Address: x.Address, TLS: x.TLS, Delta: x.Delta}
	if _, _, err := net.SplitHostPort(x.Address); err != nil {
		t.errf(path+".address", "want host:port, got %q", x.Address)
	}
	if x.TLS != nil {
		tc := *x.TLS
		tc.CAFile, tc.CertFile, tc.KeyFile = t.file(tc.CAFile), t.file(tc.CertFile), t.file(tc.KeyFile)
		out.TLS = &tc
	}
	if x.TokenFile != "" {
		if x.TLS == nil {
			t.errf(path+".token_file", "needs tls: the token must not travel in clear (istiod's secure port is 15012)")
		}
		out.TokenFile = t.file(x.TokenFile)
	}
	if x.InitialFetchTimeout != nil {
		out.InitialFetchTimeout = x.InitialFetchTimeout.Duration
	}
	switch {
	case x.Node != nil && x.Istio != nil:
		t.errf(path, "give node or istio, not both")
	case x.Node != nil:
		n := &corev3.Node{Id: x.Node.ID, Cluster: x.Node.Cluster}
		if n.Id == "" {
			t.errf(path+".node.id", "must not be empty")
		}
		if x.Node.Metadata != nil {
			md, err := structpb.NewStruct(x.Node.Metadata)
			if err != nil {
				t.errf(path+".node.metadata", "%v", err)
			}
			n.Metadata = md
		}
		if x.Node.Locality != "" {
			parts := append(strings.SplitN(x.Node.Locality, "/", 3), "", "")
			n.Locality = &corev3.Locality{Region: parts[0], Zone: parts[1], SubZone: parts[2]}
		}
		out.Node = n
	default:
		ic := IstioNodeConfig{}
		if x.Istio != nil {
			ic = *x.Istio
		}
		n, err := IstioNode(ic)
		if err != nil {
			t.errf(path+".istio", "%v", err)
		}
		out.Node = n
	}
	return out
}

// envoyXDS reads an Envoy bootstrap's node and dynamic_resources: an ADS
// config whose gRPC service names one of the static clusters.
func envoyXDS(top map[string]json.RawMessage, resources []proto.Message) (*XDSSettings, error) {
	raw, ok := top["dynamic_resources"]
	if !ok {
		return nil, nil
	}
	var dyn struct {
		ADS *struct {
			APIType      string `json:"api_type"`
			GRPCServices []struct {
				EnvoyGRPC *struct {
					ClusterName string `json:"cluster_name"`
				} `json:"envoy_grpc"`
			} `json:"grpc_services"`
		} `json:"ads_config"`
	}
	if err := json.Unmarshal(raw, &dyn); err != nil {
		return nil, fmt.Errorf("dynamic_resources: %w", err)
	}
	if dyn.ADS == nil || len(dyn.ADS.GRPCServices) == 0 || dyn.ADS.GRPCServices[0].EnvoyGRPC == nil {
		return nil, errors.New("dynamic_resources: meshgate needs ads_config with an envoy_grpc service")
	}
	out := &XDSSettings{}
	switch dyn.ADS.APIType {
	case "", "GRPC":
	case "DELTA_GRPC":
		out.Delta = true
	default:
		return nil, fmt.Errorf("dynamic_resources.ads_config.api_type %q: want GRPC or DELTA_GRPC", dyn.ADS.APIType)
	}
	name := dyn.ADS.GRPCServices[0].EnvoyGRPC.ClusterName
	for _, m := range resources {
		c, ok := m.(*clusterv3.Cluster)
		if !ok || c.GetName() != name {
			continue
		}
		for _, lle := range c.GetLoadAssignment().GetEndpoints() {
			for _, lbe := range lle.GetLbEndpoints() {
				if sa := lbe.GetEndpoint().GetAddress().GetSocketAddress(); sa != nil && out.Address == "" {
					out.Address = net.JoinHostPort(sa.GetAddress(), strconv.FormatUint(uint64(sa.GetPortValue()), 10))
				}
			}
		}
		if c.GetTransportSocket() != nil {
			return nil, fmt.Errorf("dynamic_resources: TLS to the xDS cluster %q is read from the friendly format only", name)
		}
	}
	if out.Address == "" {
		return nil, fmt.Errorf("dynamic_resources.ads_config: static cluster %q with an endpoint not found", name)
	}
	if rawNode, ok := top["node"]; ok {
		n := &corev3.Node{}
		if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(rawNode, n); err != nil {
			return nil, fmt.Errorf("node: %w", err)
		}
		out.Node = n
	} else {
		n, err := IstioNode(IstioNodeConfig{})
		if err != nil {
			return nil, err
		}
		out.Node = n
	}
	return out, nil
}
