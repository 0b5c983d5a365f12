package config

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Translate turns the friendly format into Envoy v3 resources. Relative file
// paths (certificates) are resolved against baseDir. Every problem found is
// reported, each naming its field.
func (f *File) Translate(baseDir string) ([]proto.Message, error) {
	t := &translator{baseDir: baseDir}
	var out []proto.Message
	orig := f
	f = t.withSidecar(f)
	if o := f.Overload; o != nil {
		for name, v := range map[string]float64{"disable_http_keepalive": o.DisableHTTPKeepalive, "stop_accepting_requests": o.StopAcceptingRequests} {
			if v < 0 || v > 1 {
				t.errf("overload."+name, "%v is not a share of the heap limit (0 to 1)", v)
			}
		}
		if o.MaxActiveDownstreamConnections < 0 {
			t.errf("overload.max_active_downstream_connections", "must not be negative")
		}
	}
	clusters := map[string]bool{}
	for i := range f.Clusters {
		c := &f.Clusters[i]
		p := fmt.Sprintf("clusters[%d]", i)
		if clusters[c.Name] {
			t.errf(p+".name", "cluster %q is defined twice", c.Name)
		}
		clusters[c.Name] = true
		out = append(out, t.cluster(p, c))
	}
	routeTables := map[string]bool{}
	for i := range f.RouteConfigs {
		rc := &f.RouteConfigs[i]
		p := fmt.Sprintf("route_configs[%d]", i)
		if rc.Name == "" {
			t.errf(p+".name", "must not be empty")
		}
		if routeTables[rc.Name] {
			t.errf(p+".name", "route config %q is defined twice", rc.Name)
		}
		routeTables[rc.Name] = true
		out = append(out, t.routeConfiguration(p, rc.Name, rc.VirtualHosts, &rc.HeaderEdits))
	}
	// Envoy applies a route's fault only where its filter is in the chain.
	for _, vhs := range allVirtualHosts(f) {
		for _, vh := range vhs {
			t.usesRateLimit = t.usesRateLimit || vh.RateLimit != nil
			for _, r := range vh.Routes {
				t.usesFault = t.usesFault || r.Fault != nil
				t.usesDubbo = t.usesDubbo || r.Dubbo != nil
				t.usesRateLimit = t.usesRateLimit || r.RateLimit != nil
			}
		}
	}
	listeners := map[string]bool{}
	for i := range f.Listeners {
		l := &f.Listeners[i]
		p := fmt.Sprintf("listeners[%d]", i)
		if listeners[l.Name] {
			t.errf(p+".name", "listener %q is defined twice", l.Name)
		}
		listeners[l.Name] = true
		if l.RouteConfig != "" && !routeTables[l.RouteConfig] {
			t.errf(p+".route_config", "route config %q is not defined in route_configs", l.RouteConfig)
		}
		out = append(out, t.listener(p, l))
	}
	for i := range f.DubboListeners {
		l := &f.DubboListeners[i]
		p := fmt.Sprintf("dubbo_listeners[%d]", i)
		if listeners[l.Name] {
			t.errf(p+".name", "listener %q is defined twice", l.Name)
		}
		listeners[l.Name] = true
		out = append(out, t.dubboListener(p, l))
	}
	if f.XDS != nil {
		f.xdsSettings = t.xds("xds", f.XDS)
	}
	f.registrySettings = t.registries("registries", f.Registries)
	if f.Identity != nil {
		f.identitySettings = t.identity("identity", f.Identity, f.XDS)
	}
	orig.xdsSettings, orig.registrySettings, orig.identitySettings = f.xdsSettings, f.registrySettings, f.identitySettings
	if err := errors.Join(t.errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// Bootstrap returns the process settings of the file, with defaults.
// Translate must have run.
func (f *File) Bootstrap() Bootstrap {
	b := DefaultBootstrap()
	if f.Admin != nil {
		b.AdminAddress = f.Admin.Address
		b.ReadinessAddress = f.Admin.ReadinessAddress
	}
	if f.DrainTimeout != nil {
		b.DrainTimeout = f.DrainTimeout.Duration
	}
	if f.DrainPeriod != nil {
		b.DrainPeriod = f.DrainPeriod.Duration
	}
	b.XDS = f.xdsSettings
	b.Registries = f.registrySettings
	b.Identity = f.identitySettings
	b.IstioMetrics = f.IstioMetrics
	if o := f.Overload; o != nil {
		b.Overload = OverloadSettings{MaxHeapBytes: o.MaxHeapBytes, DisableHTTPKeepalive: o.DisableHTTPKeepalive,
			StopAcceptingRequests: o.StopAcceptingRequests, MaxActiveDownstreamConnections: o.MaxActiveDownstreamConnections}
		if o.RefreshInterval != nil {
			b.Overload.RefreshInterval = o.RefreshInterval.Duration
		}
	}
	return b
}

type translator struct {
	baseDir string
	errs    []error
	// usesFault, usesRateLimit, usesDubbo: some route or virtual host
	// injects faults, limits the rate or calls Dubbo methods, so listeners
	// carry that filter (Envoy ignores per-route configs of filters not in
	// the chain).
	usesFault, usesRateLimit, usesDubbo bool
}

// allVirtualHosts are the virtual hosts of the file's route configs and
// of its listeners' inline route tables.
func allVirtualHosts(f *File) [][]VirtualHostConfig {
	var out [][]VirtualHostConfig
	for _, rc := range f.RouteConfigs {
		out = append(out, rc.VirtualHosts)
	}
	for _, l := range f.Listeners {
		out = append(out, l.VirtualHosts)
	}
	return out
}

func (t *translator) errf(path, format string, args ...any) {
	t.errs = append(t.errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

func (t *translator) file(name string) string {
	if name == "" || filepath.IsAbs(name) || t.baseDir == "" {
		return name
	}
	return filepath.Join(t.baseDir, name)
}

func (t *translator) socketAddress(path, addr string) *corev3.Address {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		t.errf(path, "want host:port, got %q", addr)
		return nil
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		t.errf(path, "port %q is not a number from 0 to 65535", portStr)
		return nil
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)},
	}}}
}

func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(fmt.Sprintf("config: marshal %T: %v", m, err)) // only on a broken proto registry
	}
	return a
}
