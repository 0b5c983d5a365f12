package config

import (
	"fmt"
	"slices"
	"strings"
)

// SidecarConfig runs meshgate beside one application that has no Dubbo
// SDK, making it a member of a Dubbo cluster: inbound, Dubbo consumers
// (Dubbo2 or Triple, on one port) call the app's HTTP/JSON endpoints as
// Dubbo services, which are registered under the application's name while
// the app's health check passes; outbound, the app calls Dubbo services
// with plain HTTP/JSON on a local port (POST /<interface>/<method>, the
// arguments as a JSON array). It is a shorthand: it becomes a cluster for
// the app, a Dubbo listener with a local_app, an HTTP listener with a
// Dubbo bridge route per outbound service, and registries to find those
// services in.
type SidecarConfig struct {
	// Application is the app's Dubbo application name.
	Application string           `json:"application"`
	App         SidecarAppConfig `json:"app"`
	Inbound     SidecarInbound   `json:"inbound"`
	// Registries the app is registered in, and where outbound services
	// are found (each gives zookeeper or nacos).
	Registries []LocalAppRegistryConfig `json:"registries"`
	Outbound   *SidecarOutbound         `json:"outbound,omitempty"`
}

// SidecarAppConfig is the local application.
type SidecarAppConfig struct {
	// Address is the app's host:port (HTTP/1.1), e.g. 127.0.0.1:8000.
	Address string `json:"address"`
	// Protocol the app speaks: http_json (default) or grpc (see
	// LocalAppConfig.Protocol).
	Protocol string `json:"protocol,omitempty"`
	// Timeout bounds a call when the consumer gives none (default 15s).
	Timeout     *Duration             `json:"timeout,omitempty"`
	HealthCheck *AppHealthCheckConfig `json:"health_check,omitempty"`
}

// SidecarInbound is the port Dubbo consumers call the app on.
type SidecarInbound struct {
	// Address to listen on (default 0.0.0.0:20880).
	Address string `json:"address,omitempty"`
	// AdvertiseHost is the host registered (default: the first
	// non-loopback address when listening on all).
	AdvertiseHost string                  `json:"advertise_host,omitempty"`
	Mode          string                  `json:"mode,omitempty"`
	Services      []LocalAppServiceConfig `json:"services"`
	// ProtoDescriptor: see LocalAppConfig.ProtoDescriptor.
	ProtoDescriptor string `json:"proto_descriptor,omitempty"`
}

// SidecarOutbound is the local port the app calls Dubbo services on.
type SidecarOutbound struct {
	// Address to listen on (default 127.0.0.1:15080).
	Address  string                   `json:"address,omitempty"`
	Services []SidecarOutboundService `json:"services"`
	// Timeout bounds each call (default 15s).
	Timeout *Duration `json:"timeout,omitempty"`
}

// SidecarOutboundService is a Dubbo service the app calls: POST
// /<interface>/<method> with the arguments as a JSON array.
type SidecarOutboundService struct {
	Interface string `json:"interface"`
	Version   string `json:"version,omitempty"`
	Group     string `json:"group,omitempty"`
	// Protocol of the providers to call: dubbo (default) or tri.
	Protocol string `json:"protocol,omitempty"`
}

// Names of what a sidecar section becomes.
const (
	SidecarAppCluster       = "sidecar-app"
	SidecarInboundListener  = "sidecar-inbound"
	SidecarOutboundListener = "sidecar-outbound"
)

// withSidecar is f with its sidecar section expanded into ordinary
// clusters, listeners and registries (f itself is left as it is).
func (t *translator) withSidecar(f *File) *File {
	sc := f.Sidecar
	if sc == nil {
		return f
	}
	out := *f
	out.Clusters = slices.Clone(f.Clusters)
	out.Listeners = slices.Clone(f.Listeners)
	out.DubboListeners = slices.Clone(f.DubboListeners)
	out.Registries = slices.Clone(f.Registries)
	if sc.Application == "" {
		t.errf("sidecar.application", "must not be empty")
	}
	if sc.App.Address == "" {
		t.errf("sidecar.app.address", "must be the app's host:port")
	}
	if len(sc.Registries) == 0 {
		t.errf("sidecar.registries", "needs at least one")
	}
	appCluster := ClusterConfig{Name: SidecarAppCluster, Endpoints: []EndpointConfig{{Address: sc.App.Address}}}
	if sc.App.Protocol == "grpc" {
		appCluster.Protocol = "grpc"
	}
	out.Clusters = append(out.Clusters, appCluster)
	in := sc.Inbound
	if in.Address == "" {
		in.Address = "0.0.0.0:20880"
	}
	out.DubboListeners = append(out.DubboListeners, DubboListenerConfig{Name: SidecarInboundListener, Address: in.Address,
		LocalApp: &LocalAppConfig{Cluster: SidecarAppCluster, Services: in.Services, Timeout: sc.App.Timeout, Protocol: sc.App.Protocol, ProtoDescriptor: in.ProtoDescriptor,
			Register: &LocalAppRegisterConfig{Application: sc.Application, Registries: sc.Registries, Mode: in.Mode,
				AdvertiseHost: in.AdvertiseHost, HealthCheck: sc.App.HealthCheck}}})
	if ob := sc.Outbound; ob != nil {
		addr := ob.Address
		if addr == "" {
			addr = "127.0.0.1:15080"
		}
		if len(ob.Services) == 0 {
			t.errf("sidecar.outbound.services", "needs at least one")
		}
		var routes []RouteConfig
		var wanted []DubboServiceConfig
		for i, s := range ob.Services {
			p := fmt.Sprintf("sidecar.outbound.services[%d]", i)
			if s.Interface == "" {
				t.errf(p+".interface", "must not be empty")
			}
			proto := s.Protocol
			switch proto {
			case "":
				proto = "dubbo"
			case "dubbo", "tri":
			default:
				t.errf(p+".protocol", "want dubbo or tri, got %q", s.Protocol)
			}
			timeout := ob.Timeout
			if timeout == nil {
				timeout = &Duration{Duration: 15e9}
			}
			routes = append(routes, RouteConfig{Match: MatchConfig{Prefix: "/" + s.Interface + "/"},
				Cluster: strings.Join([]string{proto, s.Interface, s.Version, s.Group}, "|"), Timeout: timeout, Dubbo: &DubboRouteConfig{}})
			wanted = append(wanted, DubboServiceConfig{Interface: s.Interface, Version: s.Version, Group: s.Group})
		}
		out.Listeners = append(out.Listeners, ListenerConfig{Name: SidecarOutboundListener, Address: addr,
			VirtualHosts: []VirtualHostConfig{{Name: "dubbo", Routes: routes}}})
		// The outbound services are found in the sidecar's registries, and
		// only they are watched there.
		for i, r := range sc.Registries {
			out.Registries = append(out.Registries, RegistryConfig{Name: fmt.Sprintf("sidecar-%d", i), ZooKeeper: r.ZooKeeper, Nacos: r.Nacos, Services: wanted})
		}
	}
	return &out
}
