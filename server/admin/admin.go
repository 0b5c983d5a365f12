// Package admin serves meshgate's admin endpoints, in the shape Envoy's admin
// interface gives them so that Envoy tooling reads them: /ready,
// /config_dump, /clusters and /stats/prometheus.
package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/pprof"
	"sort"
	"strings"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meshgate/meshgate/config"
	adminv1 "github.com/meshgate/meshgate/proto/meshgate/admin/v1"
	"github.com/meshgate/meshgate/server"
	"github.com/meshgate/meshgate/server/cluster"
)

// Source is what the admin endpoints read; the data plane's Server is one.
type Source interface {
	// Ready reports whether the gateway serves a config and is not draining.
	Ready() bool
	// Draining reports whether the gateway is shutting down.
	Draining() bool
	// Listeners lists the listeners being served.
	Listeners() []server.ListenerStatus
	// Config returns the running resources, or nil.
	Config() *config.Set
	// Clusters returns the live clusters.
	Clusters() []*cluster.Cluster
}

// Option adds to the admin endpoints.
type Option func(*admin)

// WithFailures shows rejected updates (xDS NACKs) in /config_dump, as
// Envoy's error_state. failures returns them by type URL and name.
func WithFailures(failures func() map[string]map[string]config.Failure) Option {
	return func(a *admin) { a.failures = failures }
}

// WithRegistries shows the Dubbo registries' state at the end of
// /clusters (registry/<name>::<field>::<value> lines) and as JSON on
// /registries.
func WithRegistries(statuses func() []RegistryStatus) Option {
	return func(a *admin) { a.registries = statuses }
}

// WithDescriptors adds the transcoders' protobuf descriptors to
// /config_dump (a meshgate.admin.v1.DescriptorsConfigDump).
func WithDescriptors(list func() []*adminv1.TranscoderDescriptors) Option {
	return func(a *admin) { a.descriptors = list }
}

// WithUnimplemented adds to /config_dump, per resource, what of its config
// is accepted but not done (a meshgate.admin.v1.UnimplementedConfigDump).
func WithUnimplemented(list func() []*adminv1.UnimplementedResource) Option {
	return func(a *admin) { a.unimplemented = list }
}

// WithDrain serves POST /drain_listeners as Envoy's admin does: drain
// starts draining the listeners (graceful: they keep accepting for the
// drain period while telling clients to go, else they stop accepting at
// once; inboundOnly: only the INBOUND ones). The process keeps running.
func WithDrain(drain func(graceful, inboundOnly bool)) Option {
	return func(a *admin) { a.drain = drain }
}

// RegistryStatus is one Dubbo registry's state, as /clusters and
// /registries show it (the command fills it from package registry).
type RegistryStatus struct {
	Name, Kind string
	Connected  bool
	// Clusters and Endpoints are what the last update wrote, at Updated.
	Clusters, Endpoints int
	Updated             time.Time
	Events, Resyncs     uint64
	Errors              uint64
	LastError           string
	LastErrorAt         time.Time
}

// Handler returns the admin mux. gatherer is exposed on /stats/prometheus.
func Handler(src Source, gatherer prometheus.Gatherer, opts ...Option) http.Handler {
	mux := http.NewServeMux()
	a := &admin{src: src}
	for _, o := range opts {
		o(a)
	}
	mux.HandleFunc("GET /ready", a.ready)
	mux.HandleFunc("GET /config_dump", a.configDump)
	mux.HandleFunc("GET /clusters", a.clusters)
	mux.HandleFunc("GET /registries", a.registryStatus)
	if a.drain != nil {
		mux.HandleFunc("POST /drain_listeners", func(w http.ResponseWriter, r *http.Request) {
			q := r.URL.Query()
			a.drain(q.Has("graceful"), q.Has("inboundonly"))
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprint(w, "OK\n")
		})
	}
	mux.Handle("GET /stats/prometheus", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	// Go's profiler, for performance work (admin binds to loopback by default).
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /{$}", a.page)
	mux.HandleFunc("GET /help", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, "meshgate admin\n  /                  this gateway at a glance (HTML)\n  /ready             200 LIVE when ready for traffic, else 503 and why (JSON); ?verbose: listeners\n  /config_dump       active resources (Envoy admin.v3.ConfigDump JSON)\n  /clusters          hosts and counters (?format=json), registries\n  /registries        Dubbo registries (JSON)\n  /stats/prometheus  metrics\n  /debug/pprof/      Go profiles\n  POST /drain_listeners  drain the listeners (?graceful: keep accepting for the drain period, telling clients to go; ?inboundonly)\n")
	})
	return mux
}

type admin struct {
	src         Source
	xds         XDSState
	failures    func() map[string]map[string]config.Failure
	registries  func() []RegistryStatus
	descriptors func() []*adminv1.TranscoderDescriptors
	// unimplemented lists what of each resource is accepted but not done.
	unimplemented func() []*adminv1.UnimplementedResource
	drain         func(graceful, inboundOnly bool)
	// gates hold readiness back while they name something missing.
	gates []func() string
}

// jsonOpts writes field names as the protos spell them, as Envoy does.
// Types the binary does not know (Istio's own filter configs) print as
// their type URL alone.
var jsonOpts = protojson.MarshalOptions{Multiline: true, Indent: "  ", UseProtoNames: true, Resolver: config.TolerantResolver{}}

// configDump writes the running resources as an envoy.admin.v3.ConfigDump.
// Every resource is listed as dynamic and active, with the version its
// source gave it (for a file, a hash of its content).
func (a *admin) configDump(w http.ResponseWriter, _ *http.Request) {
	set := a.src.Config()
	ts := func(r *config.Resource) *timestamppb.Timestamp { return timestamppb.New(r.LastUpdated) }
	var (
		clusters  adminv3.ClustersConfigDump
		listeners adminv3.ListenersConfigDump
		routes    adminv3.RoutesConfigDump
		endpoints adminv3.EndpointsConfigDump
		secrets   adminv3.SecretsConfigDump
	)
	for _, r := range set.All(config.SecretType) {
		secrets.DynamicActiveSecrets = append(secrets.DynamicActiveSecrets, &adminv3.SecretsConfigDump_DynamicSecret{
			Name: r.Name, VersionInfo: r.Version, LastUpdated: ts(r), Secret: mustAny(redacted(r.Message.(*tlsv3.Secret))),
			ClientStatus: adminv3.ClientResourceStatus_ACKED,
		})
	}
	for _, r := range set.All(config.ClusterType) {
		clusters.DynamicActiveClusters = append(clusters.DynamicActiveClusters, &adminv3.ClustersConfigDump_DynamicCluster{
			VersionInfo: r.Version, Cluster: mustAny(r.Message), LastUpdated: ts(r), ClientStatus: adminv3.ClientResourceStatus_ACKED,
		})
	}
	for _, r := range set.All(config.ListenerType) {
		listeners.DynamicListeners = append(listeners.DynamicListeners, &adminv3.ListenersConfigDump_DynamicListener{
			Name:         r.Name,
			ActiveState:  &adminv3.ListenersConfigDump_DynamicListenerState{VersionInfo: r.Version, Listener: mustAny(r.Message), LastUpdated: ts(r)},
			ClientStatus: adminv3.ClientResourceStatus_ACKED,
		})
	}
	for _, r := range set.All(config.RouteType) {
		routes.DynamicRouteConfigs = append(routes.DynamicRouteConfigs, &adminv3.RoutesConfigDump_DynamicRouteConfig{
			VersionInfo: r.Version, RouteConfig: mustAny(r.Message), LastUpdated: ts(r), ClientStatus: adminv3.ClientResourceStatus_ACKED,
		})
	}
	for _, r := range set.All(config.EndpointType) {
		endpoints.DynamicEndpointConfigs = append(endpoints.DynamicEndpointConfigs, &adminv3.EndpointsConfigDump_DynamicEndpointConfig{
			VersionInfo: r.Version, EndpointConfig: mustAny(r.Message), LastUpdated: ts(r), ClientStatus: adminv3.ClientResourceStatus_ACKED,
		})
	}
	if a.failures != nil {
		failures := a.failures()
		addFailures(failures, &clusters, &listeners, &routes, &endpoints)
		addSecretFailures(failures[config.SecretType], &secrets)
	}
	dump := &adminv3.ConfigDump{Configs: []*anypb.Any{mustAny(&clusters), mustAny(&listeners), mustAny(&routes), mustAny(&endpoints), mustAny(&secrets)}}
	if a.descriptors != nil {
		if list := a.descriptors(); len(list) > 0 {
			dump.Configs = append(dump.Configs, mustAny(&adminv1.DescriptorsConfigDump{Transcoders: list}))
		}
	}
	if a.unimplemented != nil {
		if list := a.unimplemented(); len(list) > 0 {
			dump.Configs = append(dump.Configs, mustAny(&adminv1.UnimplementedConfigDump{Resources: list}))
		}
	}
	b, err := jsonOpts.Marshal(dump)
	if err != nil {
		http.Error(w, "config dump: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
}

func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(fmt.Sprintf("admin: marshal %T: %v", m, err))
	}
	return a
}

// clusters writes hosts and counters in Envoy's text form
// (cluster::host::stat::value), or as envoy.admin.v3.Clusters JSON with
// ?format=json.
func (a *admin) clusters(w http.ResponseWriter, r *http.Request) {
	cls := a.src.Clusters()
	if r.URL.Query().Get("format") == "json" {
		out := &adminv3.Clusters{}
		for _, c := range cls {
			cs := &adminv3.ClusterStatus{Name: c.Name}
			for _, h := range c.Hosts() {
				host, port := splitHostPort(h.Address)
				cs.HostStatuses = append(cs.HostStatuses, &adminv3.HostStatus{
					Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
						Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
					}}},
					Stats: hostStats(h),
					HealthStatus: &adminv3.HostHealthStatus{
						EdsHealthStatus:    h.Spec().EDSHealth,
						FailedOutlierCheck: h.Ejected(),
						PendingActiveHc:    false,
					},
					Priority: h.Spec().Priority,
					Weight:   h.Spec().Weight,
				})
			}
			out.ClusterStatuses = append(out.ClusterStatuses, cs)
		}
		b, err := jsonOpts.Marshal(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(append(b, '\n'))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	var b strings.Builder
	for _, c := range cls {
		s := &c.Stats
		fmt.Fprintf(&b, "%s::protocol::%s\n", c.Name, c.Protocol)
		fmt.Fprintf(&b, "%s::upstream_rq_total::%d\n", c.Name, s.RqTotal.Load())
		fmt.Fprintf(&b, "%s::upstream_rq_active::%d\n", c.Name, s.RqActive.Load())
		fmt.Fprintf(&b, "%s::upstream_rq_timeout::%d\n", c.Name, s.RqTimeout.Load())
		fmt.Fprintf(&b, "%s::upstream_rq_5xx::%d\n", c.Name, s.Rq5xx.Load())
		fmt.Fprintf(&b, "%s::upstream_cx_active::%d\n", c.Name, s.CxActive.Load())
		fmt.Fprintf(&b, "%s::upstream_cx_connect_fail::%d\n", c.Name, s.CxConnectFail.Load())
		fmt.Fprintf(&b, "%s::upstream_rq_overflow::%d\n", c.Name, s.RqOverflow.Load())
		fmt.Fprintf(&b, "%s::upstream_rq_pending_overflow::%d\n", c.Name, s.RqPendingOverflow.Load())
		fmt.Fprintf(&b, "%s::upstream_rq_retry::%d\n", c.Name, s.RqRetry.Load())
		fmt.Fprintf(&b, "%s::upstream_rq_retry_success::%d\n", c.Name, s.RqRetrySuccess.Load())
		fmt.Fprintf(&b, "%s::upstream_rq_retry_overflow::%d\n", c.Name, s.RetryOverflow.Load())
		fmt.Fprintf(&b, "%s::upstream_rq_relayed::%d\n", c.Name, s.RqRelayed.Load())
		if a, ok, f, has := c.HealthCheckStats(); has {
			fmt.Fprintf(&b, "%s::health_check.attempt::%d\n", c.Name, a)
			fmt.Fprintf(&b, "%s::health_check.success::%d\n", c.Name, ok)
			fmt.Fprintf(&b, "%s::health_check.failure::%d\n", c.Name, f)
		}
		if ej, active := c.OutlierStats(); ej != nil {
			for _, kind := range sortedKeys(ej) {
				fmt.Fprintf(&b, "%s::outlier_detection.ejections_enforced_%s::%d\n", c.Name, kind, ej[kind])
			}
			fmt.Fprintf(&b, "%s::outlier_detection.ejections_active::%d\n", c.Name, active)
		}
		for _, h := range c.Hosts() {
			for _, m := range hostStats(h) {
				fmt.Fprintf(&b, "%s::%s::%s::%d\n", c.Name, h.Address, m.GetName(), m.GetValue())
			}
			fmt.Fprintf(&b, "%s::%s::health_flags::%s\n", c.Name, h.Address, h.HealthFlags())
			spec := h.Spec()
			fmt.Fprintf(&b, "%s::%s::weight::%d\n", c.Name, h.Address, spec.Weight)
			fmt.Fprintf(&b, "%s::%s::priority::%d\n", c.Name, h.Address, spec.Priority)
			if spec.Locality != "//" {
				fmt.Fprintf(&b, "%s::%s::locality::%s\n", c.Name, h.Address, spec.Locality)
			}
			if st := h.BreakerState(); st != "" {
				fmt.Fprintf(&b, "%s::%s::breaker_state::%s\n", c.Name, h.Address, st)
				fmt.Fprintf(&b, "%s::%s::breaker_opens::%d\n", c.Name, h.Address, h.BreakerOpens())
			}
		}
	}
	if a.registries != nil {
		for _, st := range a.registries() {
			p := "registry/" + st.Name
			fmt.Fprintf(&b, "%s::kind::%s\n", p, st.Kind)
			fmt.Fprintf(&b, "%s::connected::%t\n", p, st.Connected)
			fmt.Fprintf(&b, "%s::clusters::%d\n", p, st.Clusters)
			fmt.Fprintf(&b, "%s::endpoints::%d\n", p, st.Endpoints)
			if !st.Updated.IsZero() {
				fmt.Fprintf(&b, "%s::updated::%s\n", p, st.Updated.UTC().Format(time.RFC3339Nano))
			}
			fmt.Fprintf(&b, "%s::watch_events::%d\n", p, st.Events)
			fmt.Fprintf(&b, "%s::resyncs::%d\n", p, st.Resyncs)
			fmt.Fprintf(&b, "%s::errors::%d\n", p, st.Errors)
			if st.LastError != "" {
				fmt.Fprintf(&b, "%s::last_error::%s (%s)\n", p, st.LastError, st.LastErrorAt.UTC().Format(time.RFC3339))
			}
		}
	}
	_, _ = w.Write([]byte(b.String()))
}

// registryStatus serves the registries' state as JSON.
func (a *admin) registryStatus(w http.ResponseWriter, _ *http.Request) {
	type entry struct {
		Name        string     `json:"name"`
		Kind        string     `json:"kind"`
		Connected   bool       `json:"connected"`
		Clusters    int        `json:"clusters"`
		Endpoints   int        `json:"endpoints"`
		Updated     *time.Time `json:"updated,omitempty"`
		Events      uint64     `json:"watch_events"`
		Resyncs     uint64     `json:"resyncs"`
		Errors      uint64     `json:"errors"`
		LastError   string     `json:"last_error,omitempty"`
		LastErrorAt *time.Time `json:"last_error_at,omitempty"`
	}
	out := []entry{}
	if a.registries != nil {
		for _, st := range a.registries() {
			e := entry{Name: st.Name, Kind: st.Kind, Connected: st.Connected, Clusters: st.Clusters, Endpoints: st.Endpoints,
				Events: st.Events, Resyncs: st.Resyncs, Errors: st.Errors, LastError: st.LastError}
			if !st.Updated.IsZero() {
				e.Updated = &st.Updated
			}
			if !st.LastErrorAt.IsZero() {
				e.LastErrorAt = &st.LastErrorAt
			}
			out = append(out, e)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"registries": out})
}

func hostStats(h *cluster.Host) []*adminv3.SimpleMetric {
	m := map[string]uint64{
		"cx_active":       uint64(max(h.CxActive.Load(), 0)),
		"cx_total":        h.CxTotal.Load(),
		"cx_connect_fail": h.CxConnectFail.Load(),
		"rq_active":       uint64(max(h.RqActive.Load(), 0)),
		"rq_total":        h.RqTotal.Load(),
		"rq_error":        h.RqError.Load(),
		"rq_success":      h.RqTotal.Load() - min(h.RqError.Load(), h.RqTotal.Load()),
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	out := make([]*adminv3.SimpleMetric, 0, len(m))
	for _, k := range names {
		typ := adminv3.SimpleMetric_COUNTER
		if strings.HasSuffix(k, "_active") {
			typ = adminv3.SimpleMetric_GAUGE
		}
		out = append(out, &adminv3.SimpleMetric{Name: k, Value: m[k], Type: typ})
	}
	return out
}

func sortedKeys(m map[string]uint64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func splitHostPort(addr string) (string, uint32) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return addr, 0
	}
	var port uint32
	fmt.Sscanf(addr[i+1:], "%d", &port)
	return strings.Trim(addr[:i], "[]"), port
}

// addFailures sets error_state on the entries of rejected resources, adding
// entries for resources that were never accepted.
func addFailures(failures map[string]map[string]config.Failure, clusters *adminv3.ClustersConfigDump,
	listeners *adminv3.ListenersConfigDump, routes *adminv3.RoutesConfigDump, endpoints *adminv3.EndpointsConfigDump) {
	state := func(f config.Failure) *adminv3.UpdateFailureState {
		return &adminv3.UpdateFailureState{
			FailedConfiguration: f.Resource, LastUpdateAttempt: timestamppb.New(f.Time), Details: f.Details, VersionInfo: f.Version,
		}
	}
	for _, name := range sortedNames(failures[config.ClusterType]) {
		f := failures[config.ClusterType][name]
		entry := findOrAdd(&clusters.DynamicActiveClusters, func(d *adminv3.ClustersConfigDump_DynamicCluster) bool {
			var c clusterv3.Cluster
			return d.GetCluster().UnmarshalTo(&c) == nil && c.GetName() == name
		}, &adminv3.ClustersConfigDump_DynamicCluster{})
		entry.ErrorState, entry.ClientStatus = state(f), adminv3.ClientResourceStatus_NACKED
	}
	for _, name := range sortedNames(failures[config.ListenerType]) {
		f := failures[config.ListenerType][name]
		entry := findOrAdd(&listeners.DynamicListeners, func(d *adminv3.ListenersConfigDump_DynamicListener) bool {
			return d.GetName() == name
		}, &adminv3.ListenersConfigDump_DynamicListener{Name: name})
		entry.ErrorState, entry.ClientStatus = state(f), adminv3.ClientResourceStatus_NACKED
	}
	for _, name := range sortedNames(failures[config.RouteType]) {
		f := failures[config.RouteType][name]
		entry := findOrAdd(&routes.DynamicRouteConfigs, func(d *adminv3.RoutesConfigDump_DynamicRouteConfig) bool {
			var r routev3.RouteConfiguration
			return d.GetRouteConfig().UnmarshalTo(&r) == nil && r.GetName() == name
		}, &adminv3.RoutesConfigDump_DynamicRouteConfig{})
		entry.ErrorState, entry.ClientStatus = state(f), adminv3.ClientResourceStatus_NACKED
	}
	for _, name := range sortedNames(failures[config.EndpointType]) {
		f := failures[config.EndpointType][name]
		entry := findOrAdd(&endpoints.DynamicEndpointConfigs, func(d *adminv3.EndpointsConfigDump_DynamicEndpointConfig) bool {
			var e endpointv3.ClusterLoadAssignment
			return d.GetEndpointConfig().UnmarshalTo(&e) == nil && e.GetClusterName() == name
		}, &adminv3.EndpointsConfigDump_DynamicEndpointConfig{})
		entry.ErrorState, entry.ClientStatus = state(f), adminv3.ClientResourceStatus_NACKED
	}
}

// addSecretFailures marks the secrets the control plane sent and this
// gateway refused; the refused secret is shown redacted, as active ones.
func addSecretFailures(failures map[string]config.Failure, secrets *adminv3.SecretsConfigDump) {
	for _, name := range sortedNames(failures) {
		f := failures[name]
		entry := findOrAdd(&secrets.DynamicActiveSecrets, func(d *adminv3.SecretsConfigDump_DynamicSecret) bool {
			return d.GetName() == name
		}, &adminv3.SecretsConfigDump_DynamicSecret{Name: name})
		var failed *anypb.Any
		var sec tlsv3.Secret
		if f.Resource != nil && f.Resource.UnmarshalTo(&sec) == nil {
			failed = mustAny(redacted(&sec))
		}
		entry.ErrorState = &adminv3.UpdateFailureState{
			FailedConfiguration: failed, LastUpdateAttempt: timestamppb.New(f.Time), Details: f.Details, VersionInfo: f.Version,
		}
		entry.ClientStatus = adminv3.ClientResourceStatus_NACKED
	}
}

// redacted is a copy of a secret without its private parts (private keys,
// passwords, generic secrets, session ticket keys), which Envoy's
// /config_dump shows as "[redacted]" too.
func redacted(s *tlsv3.Secret) *tlsv3.Secret {
	out := proto.Clone(s).(*tlsv3.Secret)
	hidden := func() *corev3.DataSource {
		return &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "[redacted]"}}
	}
	switch t := out.GetType().(type) {
	case *tlsv3.Secret_TlsCertificate:
		if t.TlsCertificate.GetPrivateKey() != nil {
			t.TlsCertificate.PrivateKey = hidden()
		}
		if t.TlsCertificate.GetPassword() != nil {
			t.TlsCertificate.Password = hidden()
		}
		if t.TlsCertificate.GetPkcs12() != nil {
			t.TlsCertificate.Pkcs12 = hidden()
		}
	case *tlsv3.Secret_GenericSecret:
		t.GenericSecret.Secret = hidden()
	case *tlsv3.Secret_SessionTicketKeys:
		for i := range t.SessionTicketKeys.GetKeys() {
			t.SessionTicketKeys.Keys[i] = hidden()
		}
	}
	return out
}

func findOrAdd[T any](list *[]*T, match func(*T) bool, fresh *T) *T {
	for _, e := range *list {
		if match(e) {
			return e
		}
	}
	*list = append(*list, fresh)
	return fresh
}

func sortedNames(m map[string]config.Failure) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}
