package config

import (
	"fmt"
	"os"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	dubbov3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/dubbo_proxy/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	failoverv1 "github.com/meshgate/meshgate/proto/meshgate/extensions/filters/dubbo/failover/v1"
	localappv1 "github.com/meshgate/meshgate/proto/meshgate/extensions/filters/dubbo/local_app/v1"
)

// DubboProxyFilter is Envoy's Dubbo2 network filter: a listener whose
// filter chain has it takes Dubbo2 consumers' TCP connections.
const DubboProxyFilter = "envoy.filters.network.dubbo_proxy"

// DubboFailoverFilter carries a Dubbo listener's failover (meshgate's own
// dubbo filter; Envoy's dubbo_proxy routes have no retry policy).
const DubboFailoverFilter = "meshgate.filters.dubbo.failover"

// DubboLocalAppFilter carries the services a Dubbo listener serves from a
// local HTTP/JSON app (the sidecar's inbound side; a LocalApp config).
const DubboLocalAppFilter = "meshgate.filters.dubbo.local_app"

// DubboListenerConfig is a port Dubbo2 consumers call (hessian2 over TCP),
// routed by service and method to Dubbo2 or Triple providers.
type DubboListenerConfig struct {
	Name    string            `json:"name"`
	Address string            `json:"address"`
	Routes  []DubboRouteMatch `json:"routes"`
	// Retries: tries on another provider after a failed one (Dubbo's
	// failover: connection failures, provider error statuses, timeouts;
	// never the method's own exception, never a one-way call).
	Retries uint32 `json:"retries,omitempty"`
	// Timeout bounds each try when the consumer sends no "timeout"
	// attachment (default 15s).
	Timeout *Duration `json:"timeout,omitempty"`
	// LocalApp serves the calls of its services from a local HTTP/JSON
	// application (the sidecar's inbound side); other calls are routed.
	LocalApp *LocalAppConfig `json:"local_app,omitempty"`
}

// LocalAppConfig is a local HTTP/JSON application and the Dubbo services
// it serves.
type LocalAppConfig struct {
	// Cluster is the app's cluster (in clusters:, e.g. endpoints
	// ["127.0.0.1:8000"]).
	Cluster  string                  `json:"cluster"`
	Services []LocalAppServiceConfig `json:"services"`
	// Timeout bounds a call to the app when the consumer sends no
	// "timeout" attachment (default 15s).
	Timeout *Duration `json:"timeout,omitempty"`
	// Register announces the app as a Dubbo provider at this listener's
	// address (none: served, not registered).
	Register *LocalAppRegisterConfig `json:"register,omitempty"`
	// Protocol the app speaks: http_json (default: each method an
	// HTTP/JSON request) or grpc (Triple consumers' calls are passed to
	// it as they came; its cluster must speak grpc).
	Protocol string `json:"protocol,omitempty"`
	// ProtoDescriptor is a FileDescriptorSet file (protoc
	// --descriptor_set_out --include_imports): the services it defines
	// are served to Triple consumers in the IDL form, the request message
	// as the app's JSON body, the app's JSON answer as the answer message.
	ProtoDescriptor string `json:"proto_descriptor,omitempty"`
}

// LocalAppRegisterConfig registers a local app in Dubbo registries while
// its health check passes; it is withdrawn first when meshgate drains.
type LocalAppRegisterConfig struct {
	// Application is the Dubbo application name.
	Application string `json:"application"`
	// Registries to register in (each gives zookeeper).
	Registries []LocalAppRegistryConfig `json:"registries"`
	// Mode: all (default: interface- and application-level), interface
	// or instance.
	Mode string `json:"mode,omitempty"`
	// AdvertiseHost is the host consumers connect to (default: the
	// listener's IP, or the first non-loopback address when it listens
	// on all).
	AdvertiseHost string                `json:"advertise_host,omitempty"`
	HealthCheck   *AppHealthCheckConfig `json:"health_check,omitempty"`
}

// LocalAppRegistryConfig is one registry a local app is registered in.
type LocalAppRegistryConfig struct {
	ZooKeeper *ZooKeeperConfig `json:"zookeeper,omitempty"`
	Nacos     *NacosConfig     `json:"nacos,omitempty"`
}

// AppHealthCheckConfig checks a local app with GET path (2xx: healthy),
// or a gRPC app with grpc.health.v1 (GRPCService: the service asked about).
type AppHealthCheckConfig struct {
	Path               string    `json:"path,omitempty"`
	GRPCService        string    `json:"grpc_service,omitempty"`
	Interval           *Duration `json:"interval,omitempty"`
	Timeout            *Duration `json:"timeout,omitempty"`
	UnhealthyThreshold uint32    `json:"unhealthy_threshold,omitempty"`
	HealthyThreshold   uint32    `json:"healthy_threshold,omitempty"`
}

// LocalAppServiceConfig is one Dubbo service the app serves.
type LocalAppServiceConfig struct {
	Interface string                 `json:"interface"`
	Version   string                 `json:"version,omitempty"`
	Group     string                 `json:"group,omitempty"`
	Methods   []LocalAppMethodConfig `json:"methods"`
}

// LocalAppMethodConfig maps one method to the app: POST /<name> (or
// http_method and path) with the arguments as JSON (an object of
// param_names, else an array), the JSON answer read as return_type.
type LocalAppMethodConfig struct {
	Name       string   `json:"name"`
	ParamTypes []string `json:"param_types,omitempty"`
	ParamNames []string `json:"param_names,omitempty"`
	ReturnType string   `json:"return_type,omitempty"`
	HTTPMethod string   `json:"http_method,omitempty"`
	Path       string   `json:"path,omitempty"`
}

// DubboRouteMatch sends the calls of one service (or of all, with an empty
// interface), and optionally one method, to a cluster.
type DubboRouteMatch struct {
	Interface string `json:"interface,omitempty"`
	Version   string `json:"version,omitempty"`
	Group     string `json:"group,omitempty"`
	Method    string `json:"method,omitempty"`
	Cluster   string `json:"cluster"`
}

// dubboListener translates a Dubbo2 listener into an Envoy Listener whose
// one filter is dubbo_proxy, its route_config one entry per service in the
// order first seen.
func (t *translator) dubboListener(path string, l *DubboListenerConfig) *listenerv3.Listener {
	if l.Name == "" {
		t.errf(path+".name", "must not be empty")
	}
	if len(l.Routes) == 0 && l.LocalApp == nil {
		t.errf(path+".routes", "needs at least one (or a local_app)")
	}
	routes := &dubbov3.MultipleRouteConfiguration{Name: l.Name}
	proxy := &dubbov3.DubboProxy{StatPrefix: l.Name, ProtocolType: dubbov3.ProtocolType_Dubbo, SerializationType: dubbov3.SerializationType_Hessian2,
		RouteSpecifier: &dubbov3.DubboProxy_MultipleRouteConfig{MultipleRouteConfig: routes}}
	byService := map[[3]string]*dubbov3.RouteConfiguration{}
	for i, r := range l.Routes {
		p := fmt.Sprintf("%s.routes[%d]", path, i)
		if r.Cluster == "" {
			t.errf(p+".cluster", "must not be empty")
		}
		key := [3]string{r.Interface, r.Version, r.Group}
		rc := byService[key]
		if rc == nil {
			rc = &dubbov3.RouteConfiguration{Name: fmt.Sprintf("%s/%d", l.Name, len(byService)), Interface: r.Interface, Version: r.Version, Group: r.Group}
			byService[key] = rc
			routes.RouteConfig = append(routes.RouteConfig, rc)
		}
		route := &dubbov3.Route{Match: &dubbov3.RouteMatch{}, Route: &dubbov3.RouteAction{ClusterSpecifier: &dubbov3.RouteAction_Cluster{Cluster: r.Cluster}}}
		if r.Method != "" {
			route.Match.Method = &dubbov3.MethodMatch{Name: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: r.Method}}}
		}
		rc.Routes = append(rc.Routes, route)
	}
	if l.Retries > 0 || l.Timeout != nil {
		fo := &failoverv1.Failover{Retries: l.Retries}
		if l.Timeout != nil {
			fo.Timeout = durationpb.New(l.Timeout.Duration)
		}
		proxy.DubboFilters = append(proxy.DubboFilters, &dubbov3.DubboFilter{Name: DubboFailoverFilter, Config: mustAny(fo)})
	}
	if a := l.LocalApp; a != nil {
		proxy.DubboFilters = append(proxy.DubboFilters, &dubbov3.DubboFilter{Name: DubboLocalAppFilter, Config: mustAny(t.localApp(path+".local_app", a))})
	}
	if len(proxy.DubboFilters) > 0 {
		proxy.DubboFilters = append(proxy.DubboFilters, &dubbov3.DubboFilter{Name: "envoy.filters.dubbo.router"})
	}
	return &listenerv3.Listener{
		Name:    l.Name,
		Address: t.socketAddress(path+".address", l.Address),
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{Name: DubboProxyFilter, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(proxy)}}},
		}},
	}
}

// localApp translates a Dubbo listener's local_app.
func (t *translator) localApp(path string, a *LocalAppConfig) *localappv1.LocalApp {
	if a.Cluster == "" {
		t.errf(path+".cluster", "must name the app's cluster")
	}
	if len(a.Services) == 0 {
		t.errf(path+".services", "needs at least one")
	}
	out := &localappv1.LocalApp{Cluster: a.Cluster}
	switch a.Protocol {
	case "":
	case "http_json":
		out.Protocol = localappv1.LocalApp_APP_PROTOCOL_HTTP_JSON
	case "grpc":
		out.Protocol = localappv1.LocalApp_APP_PROTOCOL_GRPC
	default:
		t.errf(path+".protocol", "want http_json or grpc, got %q", a.Protocol)
	}
	if a.Timeout != nil {
		out.Timeout = durationpb.New(a.Timeout.Duration)
	}
	if a.ProtoDescriptor != "" {
		b, err := os.ReadFile(t.file(a.ProtoDescriptor))
		if err != nil {
			t.errf(path+".proto_descriptor", "%v", err)
		}
		out.ProtoDescriptorBin = b
	}
	for i, s := range a.Services {
		p := fmt.Sprintf("%s.services[%d]", path, i)
		if s.Interface == "" {
			t.errf(p+".interface", "must not be empty")
		}
		if len(s.Methods) == 0 {
			t.errf(p+".methods", "needs at least one")
		}
		svc := &localappv1.Service{Interface: s.Interface, Version: s.Version, Group: s.Group}
		for j, m := range s.Methods {
			if m.Name == "" {
				t.errf(fmt.Sprintf("%s.methods[%d].name", p, j), "must not be empty")
			}
			if len(m.ParamNames) > 0 && len(m.ParamNames) != len(m.ParamTypes) {
				t.errf(fmt.Sprintf("%s.methods[%d].param_names", p, j), "one per param_types entry")
			}
			svc.Methods = append(svc.Methods, &localappv1.Method{Name: m.Name, ParamTypes: m.ParamTypes, ParamNames: m.ParamNames,
				ReturnType: m.ReturnType, HttpMethod: m.HTTPMethod, Path: m.Path})
		}
		out.Services = append(out.Services, svc)
	}
	if a.Register != nil {
		out.Registration = t.appRegistration(path+".register", a.Register, a.Protocol == "grpc")
	}
	return out
}

// appRegistration translates a local app's register section.
func (t *translator) appRegistration(path string, r *LocalAppRegisterConfig, grpcApp bool) *localappv1.Registration {
	if r.Application == "" {
		t.errf(path+".application", "must not be empty")
	}
	if len(r.Registries) == 0 {
		t.errf(path+".registries", "needs at least one")
	}
	out := &localappv1.Registration{Application: r.Application, AdvertiseHost: r.AdvertiseHost}
	switch r.Mode {
	case "":
	case "all":
		out.Mode = localappv1.Registration_MODE_ALL
	case "interface":
		out.Mode = localappv1.Registration_MODE_INTERFACE
	case "instance":
		out.Mode = localappv1.Registration_MODE_INSTANCE
	default:
		t.errf(path+".mode", "want all, interface or instance, got %q", r.Mode)
	}
	for i, reg := range r.Registries {
		p := fmt.Sprintf("%s.registries[%d]", path, i)
		if !t.registryKind(p, reg.ZooKeeper, reg.Nacos) {
			continue
		}
		if n := reg.Nacos; n != nil {
			nc := &localappv1.Nacos{Servers: n.Servers, GrpcPort: uint32(n.GRPCPort), Namespace: n.Namespace, Group: n.Group,
				Username: n.Username, Password: n.Password, PasswordEnv: n.PasswordEnv}
			out.Registries = append(out.Registries, &localappv1.Registry{Kind: &localappv1.Registry_Nacos{Nacos: nc}})
			continue
		}
		zk := &localappv1.ZooKeeper{Servers: reg.ZooKeeper.Servers, Root: reg.ZooKeeper.Root}
		if reg.ZooKeeper.SessionTimeout != nil {
			zk.SessionTimeout = durationpb.New(reg.ZooKeeper.SessionTimeout.Duration)
		}
		out.Registries = append(out.Registries, &localappv1.Registry{Kind: &localappv1.Registry_Zookeeper{Zookeeper: zk}})
	}
	if h := r.HealthCheck; h != nil {
		switch {
		case grpcApp && h.Path != "":
			t.errf(path+".health_check.path", "a gRPC app is checked with grpc.health.v1: give grpc_service (or nothing), not a path")
		case !grpcApp && (h.Path == "" || h.Path[0] != '/'):
			t.errf(path+".health_check.path", "want a path starting with /, got %q", h.Path)
		case !grpcApp && h.GRPCService != "":
			t.errf(path+".health_check.grpc_service", "is for a gRPC app (protocol: grpc)")
		}
		hc := &localappv1.HealthCheck{Path: h.Path, GrpcService: h.GRPCService, UnhealthyThreshold: h.UnhealthyThreshold, HealthyThreshold: h.HealthyThreshold}
		if h.Interval != nil {
			hc.Interval = durationpb.New(h.Interval.Duration)
		}
		if h.Timeout != nil {
			hc.Timeout = durationpb.New(h.Timeout.Duration)
		}
		out.HealthCheck = hc
	}
	return out
}

// DubboProxy decodes a filter chain's dubbo_proxy filter; ok is false for a
// chain that is not one dubbo_proxy filter.
func DubboProxy(fc *listenerv3.FilterChain) (*dubbov3.DubboProxy, bool) {
	fs := fc.GetFilters()
	if len(fs) != 1 || fs[0].GetName() != DubboProxyFilter {
		return nil, false
	}
	var p dubbov3.DubboProxy
	if err := fs[0].GetTypedConfig().UnmarshalTo(&p); err != nil {
		return nil, false
	}
	return &p, true
}

// DubboRouteConfigs are a dubbo_proxy's route configurations: the
// multiple_route_config, or the deprecated route_config older configs use.
func DubboRouteConfigs(p *dubbov3.DubboProxy) []*dubbov3.RouteConfiguration {
	if m := p.GetMultipleRouteConfig(); m != nil {
		return m.GetRouteConfig()
	}
	//lint:ignore SA1019 Envoy configs written for older versions still use it.
	return p.GetRouteConfig()
}
