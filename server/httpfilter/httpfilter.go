// Package httpfilter is meshgate's HTTP filter chain, after Envoy's HTTP
// connection manager: a listener runs an ordered list of filters on each
// request, each a small unit that sees the request (Decode), may wrap the
// response writer to see or change the answer, may answer itself and stop
// the chain; the router comes last and forwards what is left.
//
// Filters are built from the listener's http_filters by factories that
// register themselves by name and config type (Register, from an init
// function, as grpc-go's balancers and Caddy's modules do), so that a
// package outside meshgate can add one to a custom build.
package httpfilter

import (
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"

	udpatypev1 "github.com/cncf/xds/go/udpa/type/v1"
	xdstypev3 "github.com/cncf/xds/go/xds/type/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/meshgate/meshgate/server/cluster"
	"github.com/meshgate/meshgate/server/router"
)

// Status says whether the chain goes on after a filter.
type Status uint8

const (
	// Continue passes the request to the next filter (the router last).
	Continue Status = iota
	// Stop ends the chain: the filter has answered (or the client left).
	Stop
)

// Filter is one configured HTTP filter of a listener's chain. Decode is
// called once per request, on the request's goroutine, in chain order. A
// filter that is off for a request should return Continue at once and
// allocate nothing: every request of the listener passes through it.
type Filter interface {
	Decode(s *Stream) Status
}

// GRPCPassThrough is a Filter that can tell, from a plain gRPC request's
// headers (content type application/grpc, over HTTP/2) and its route,
// without side effects, that it would leave the request and its answer
// alone. When every filter of a chain says so, the HTTP/2 server relays the
// call frame by frame without running the chain.
type GRPCPassThrough interface {
	PassesGRPCThrough(r *http.Request, rt *Route) bool
}

// FilterFunc adapts a function to Filter.
type FilterFunc func(s *Stream) Status

// Decode calls f.
func (f FilterFunc) Decode(s *Stream) Status { return f(s) }

// Route is a compiled route of the data plane.
type Route = router.Route[*cluster.Cluster]

// Table is a compiled route table of the data plane.
type Table = router.Table[*cluster.Cluster]

// Stream is one request on its way through a chain. The chain owns it;
// filters must not keep it after the request ends.
type Stream struct {
	// W is where an answer goes: the chain's writer (it records the status
	// for the listener's stats). A filter that answers writes here.
	W http.ResponseWriter
	// R is the request; filters may change it (headers, path, body)
	// before the router forwards it. A filter that changes what the route
	// match reads calls ClearRouteCache.
	R *http.Request
	// AsGRPC says the request is forwarded as gRPC over HTTP/2 although it
	// did not arrive so (a filter translated it: gRPC-Web, Connect, JSON).
	AsGRPC bool
	// Cluster is the upstream cluster the request went to, for the
	// listener's stats: the router sets it, as does a filter that calls
	// upstream itself.
	Cluster string

	// below is what W writes to: the connection's writer, or the outermost
	// wrapper a filter put on it (Wrap). own holds it when W writes
	// straight to the connection.
	below *http.ResponseWriter
	own   http.ResponseWriter
	free  bool

	table   *Table
	route   *Route
	matched bool
	// metadata is Envoy's dynamic metadata: what a filter learned about
	// the request for later ones (jwt_authn's payload for RBAC), by
	// namespace (the filter's name) and key. Allocated on first use.
	metadata map[string]map[string]any
	// finish are the wrappers' completions, run in reverse order when the
	// chain is done; inline room for the common case.
	finish     []func()
	finishRoom [4]func()
}

// Reset prepares s for a request. w is the chain's writer; below points at
// the writer w writes to, which wrappers replace (nil when w is the
// connection's writer itself: wrappers then replace W). table routes the
// request (nil when the listener's route configuration has not arrived).
func (s *Stream) Reset(w http.ResponseWriter, below *http.ResponseWriter, r *http.Request, table *Table) {
	*s = Stream{W: w, R: r, table: table, below: below}
	if below == nil {
		s.own, s.below, s.free = w, &s.own, true
	}
	s.finish = s.finishRoom[:0]
}

// Below is the writer a wrapper should write to: the outermost one so far.
func (s *Stream) Below() http.ResponseWriter { return *s.below }

// Wrap puts w, which writes to Below, over the answer: the rest of the
// chain (and the router) answer through it. finish, if not nil, runs once
// the chain is done, innermost wrapper first: where a wrapper writes what
// it held back.
func (s *Stream) Wrap(w http.ResponseWriter, finish func()) {
	*s.below = w
	if s.free {
		s.W = w
	}
	if finish != nil {
		s.finish = append(s.finish, finish)
	}
}

// Finish runs the completions of the wrappers, the last wrapped first. The
// chain calls it once, after the last filter or the router is done.
func (s *Stream) Finish() {
	for i := len(s.finish) - 1; i >= 0; i-- {
		s.finish[i]()
	}
	s.finish = s.finish[:0]
}

// Table is the listener's route table, or nil when its route
// configuration has not arrived.
func (s *Stream) Table() *Table { return s.table }

// Route is the route the request matches, or nil. It is matched on the
// first ask and remembered until ClearRouteCache (Envoy's route cache).
func (s *Stream) Route() *Route {
	if !s.matched {
		s.matched = true
		if s.table != nil {
			s.route = s.table.Match(s.R)
		}
	}
	return s.route
}

// Matched is the route matched so far (by Route), without matching: nil
// when no filter or router asked, or none matched.
func (s *Stream) Matched() *Route { return s.route }

// PerFilter is the per-route config of the filter named name in the chain:
// the matched route's, else its virtual host's (nil when none, or when no
// route matched).
func (s *Stream) PerFilter(name string) any {
	if rt := s.Route(); rt != nil {
		return rt.PerFilter[name]
	}
	return nil
}

// SetMetadata records v under namespace ns and key in the request's dynamic
// metadata (Envoy's: a filter's findings for the filters after it).
func (s *Stream) SetMetadata(ns, key string, v any) {
	if s.metadata == nil {
		s.metadata = map[string]map[string]any{}
	}
	m := s.metadata[ns]
	if m == nil {
		m = map[string]any{}
		s.metadata[ns] = m
	}
	m[key] = v
}

// Metadata is the dynamic metadata of namespace ns (nil when none).
// Values are what filters set: strings, bools, float64s, []any and
// map[string]any, as a JSON payload decodes.
func (s *Stream) Metadata(ns string) map[string]any { return s.metadata[ns] }

// ClearRouteCache makes the next Route match again: a filter that changed
// the path, the host or headers routes match on calls it.
func (s *Stream) ClearRouteCache() { s.matched, s.route = false, nil }

// Factory builds one kind of filter from its config.
type Factory struct {
	// Name is the filter's well-known name, as Envoy spells it
	// ("envoy.filters.http.grpc_web").
	Name string
	// Config is the filter's typed_config message (an empty one of its
	// type); nil for a filter that takes none.
	Config proto.Message
	// StructType, for a filter whose config has no compiled proto type (one
	// written outside meshgate, most often), is the type URL its config
	// goes by inside a TypedStruct (xds.type.v3.TypedStruct or
	// udpa.type.v1.TypedStruct, as Envoy carries such configs); the config
	// then reaches Build as a *structpb.Struct.
	StructType string
	// PerRoute, when set, compiles the filter's per-route config
	// (typed_per_filter_config of a route or virtual host) of type
	// PerRouteType; the filter reads it back with Stream.PerFilter under
	// its name in the chain.
	PerRouteType string
	PerRoute     func(cfg *anypb.Any) (any, error)
	// Build makes the filter of a listener from its config (nil when the
	// listener gave none), with notes on what of the config it does not do.
	// A filter that only configures another (read through Build.Chain) may
	// return a nil Filter: nothing runs for it.
	Build func(cfg proto.Message, b Build) (Filter, []string, error)
}

// Build is what a factory gets besides its config.
type Build struct {
	// Listener is the name of the listener the chain belongs to.
	Listener string
	// Name is the name this filter has in the chain (its key for per-route
	// configs).
	Name string
	// Chain is the listener's whole filter list, and Index this filter's
	// place in it: a filter configured by a companion reads it (the JSON
	// transcoder, its reflection and OpenAPI filters).
	Chain []*hcmv3.HttpFilter
	Index int
	// Log is the data plane's logger.
	Log *slog.Logger
	// Cluster finds a cluster of the config being built, by name.
	Cluster func(name string) (*cluster.Cluster, bool)
	// Keep returns the value kept under key by the running config's filter
	// of the same listener, or fresh()'s for a new key, and keeps it for
	// the next config: state a filter learns at run time (descriptors
	// fetched by reflection) that a recompile must not lose. Nil in tests
	// that do not need it.
	Keep func(key string, fresh func() any) any
	// Go runs f in the background; shutting the gateway down waits for it.
	Go func(f func())
	// MaxBody is the listener's limit on request bodies (the limits or
	// buffer filter), 0 for none.
	MaxBody uint64
	// SuppressEnvoyHeaders is the router's suppress_envoy_headers: a
	// filter that answers for upstream sets no x-envoy-* headers.
	SuppressEnvoyHeaders bool
}

// Describer is a filter that reports what it loaded, for /config_dump.
type Describer interface {
	Describe(listener string) proto.Message
}

// registry holds the factories, by name and by config type URL. It is
// written by Register from init functions and read when configs compile;
// a mutex keeps a late registration safe.
var registry = struct {
	sync.RWMutex
	byName   map[string]*Factory
	byType   map[string]*Factory
	byStruct map[string]*Factory
	byRoute  map[string]*Factory
}{byName: map[string]*Factory{}, byType: map[string]*Factory{}, byStruct: map[string]*Factory{}, byRoute: map[string]*Factory{}}

// The type URLs of Envoy's TypedStruct, which carries the config of a type
// the receiver may not have compiled in.
const (
	typedStructURL     = "type.googleapis.com/xds.type.v3.TypedStruct"
	udpaTypedStructURL = "type.googleapis.com/udpa.type.v1.TypedStruct"
)

// typedStruct unpacks a TypedStruct: the type its value goes by, and the
// value; ok is false when cfg is not one.
func typedStruct(cfg *anypb.Any) (typeURL string, value *structpb.Struct, ok bool) {
	switch cfg.GetTypeUrl() {
	case typedStructURL:
		var ts xdstypev3.TypedStruct
		if cfg.UnmarshalTo(&ts) != nil {
			return "", nil, false
		}
		return ts.GetTypeUrl(), ts.GetValue(), true
	case udpaTypedStructURL:
		var ts udpatypev1.TypedStruct
		if cfg.UnmarshalTo(&ts) != nil {
			return "", nil, false
		}
		return ts.GetTypeUrl(), ts.GetValue(), true
	}
	return "", nil, false
}

// Register adds a factory. It is meant for init functions; registering a
// name or config type twice panics, as a programming error.
func Register(f *Factory) {
	registry.Lock()
	defer registry.Unlock()
	if f.Name == "" || f.Build == nil {
		panic("httpfilter: Register needs a name and a Build function")
	}
	if _, dup := registry.byName[f.Name]; dup {
		panic(fmt.Sprintf("httpfilter: filter %q registered twice", f.Name))
	}
	registry.byName[f.Name] = f
	if f.PerRoute != nil {
		if _, dup := registry.byRoute[f.PerRouteType]; dup {
			panic(fmt.Sprintf("httpfilter: per-route config type %s registered twice", f.PerRouteType))
		}
		registry.byRoute[f.PerRouteType] = f
	}
	if f.StructType != "" {
		if _, dup := registry.byStruct[f.StructType]; dup {
			panic(fmt.Sprintf("httpfilter: struct config type %s registered twice", f.StructType))
		}
		registry.byStruct[f.StructType] = f
	}
	if f.Config != nil {
		url := TypeURL(f.Config)
		if _, dup := registry.byType[url]; dup {
			panic(fmt.Sprintf("httpfilter: config type %s registered twice", url))
		}
		registry.byType[url] = f
	}
}

// TypeURL is the type URL of a config message.
func TypeURL(m proto.Message) string {
	return "type.googleapis.com/" + string(m.ProtoReflect().Descriptor().FullName())
}

// Lookup finds the factory of a filter of the chain: by its typed_config's
// type when it has one (as Envoy does: a filter's name is free), else by
// name.
func Lookup(name string, cfg *anypb.Any) *Factory {
	registry.RLock()
	defer registry.RUnlock()
	if inner, _, ok := typedStruct(cfg); ok {
		return registry.byStruct[inner]
	}
	if cfg != nil {
		return registry.byType[cfg.GetTypeUrl()]
	}
	return registry.byName[name]
}

// CompilePerFilter compiles one typed_per_filter_config entry by the
// registered filter whose per-route type it is; nil, nil for a type no
// filter takes (left unread). It is the route tables' router.WithPerFilter.
func CompilePerFilter(_ string, cfg *anypb.Any) (any, error) {
	registry.RLock()
	f := registry.byRoute[cfg.GetTypeUrl()]
	registry.RUnlock()
	if f == nil {
		return nil, nil
	}
	return f.PerRoute(cfg)
}

// Names lists the registered filters, sorted.
func Names() []string {
	registry.RLock()
	defer registry.RUnlock()
	out := make([]string, 0, len(registry.byName))
	for n := range registry.byName {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// New builds a filter of a chain from its factory: cfg is unpacked into
// the factory's config type.
func New(f *Factory, cfg *anypb.Any, b Build) (Filter, []string, error) {
	var msg proto.Message
	if _, value, ok := typedStruct(cfg); ok {
		if value == nil {
			value = &structpb.Struct{}
		}
		return f.Build(value, b)
	}
	if cfg != nil && f.Config != nil {
		msg = f.Config.ProtoReflect().New().Interface()
		if err := cfg.UnmarshalTo(msg); err != nil {
			return nil, nil, fmt.Errorf("typed_config: %w", err)
		}
	}
	return f.Build(msg, b)
}
