// Package router compiles Envoy RouteConfigurations into immutable tables
// and matches requests against them: virtual hosts by Host/:authority, then
// the first route, in order, whose conditions all hold.
//
// Matching cost does not grow with the number of routes: exact paths are a
// map lookup, prefixes a lookup per distinct prefix length, and only regex
// routes are tried one by one. A Table is safe for concurrent use.
package router

import (
	"google.golang.org/protobuf/types/known/anypb"

	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// Table is a compiled RouteConfiguration. T is what a cluster name resolves
// to (the data plane's cluster object).
type Table[T any] struct {
	Name     string
	exact    map[string]*VirtualHost[T]
	suffixes []wildcard[T] // "*.example.com", longest first
	prefixes []wildcard[T] // "example.*", longest first
	fallback *VirtualHost[T]
}

type wildcard[T any] struct {
	part string
	vh   *VirtualHost[T]
}

// VirtualHost is a compiled Envoy VirtualHost.
type VirtualHost[T any] struct {
	Name   string
	routes []*Route[T]
	index  pathIndex
	// PerFilter are the virtual host's typed_per_filter_config, compiled
	// by WithPerFilter, by key (the filter's name in the chain).
	PerFilter map[string]any
}

// Resolver maps a cluster name to its target. It reports false for a name
// it does not know; Compile records such routes as pointing at a missing
// cluster rather than failing, as Envoy does.
type Resolver[T any] func(cluster string) (T, bool)

// Option tunes Compile.
type Option func(*options)

type options struct {
	perFilter PerFilterFunc
}

// PerFilterFunc compiles one typed_per_filter_config entry (key: the name
// of the filter it is for); nil, nil leaves it unread (a filter meshgate
// does not have).
type PerFilterFunc func(key string, cfg *anypb.Any) (any, error)

// WithPerFilter compiles the per-filter configs of virtual hosts and routes
// with f (VirtualHost.PerFilter, Route.PerFilter).
func WithPerFilter(f PerFilterFunc) Option { return func(o *options) { o.perFilter = f } }

// Compile builds a Table. Every problem is reported, each naming the virtual
// host and route it is in.
func Compile[T any](rc *routev3.RouteConfiguration, resolve Resolver[T], opts ...Option) (*Table[T], error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	t := &Table[T]{Name: rc.GetName(), exact: map[string]*VirtualHost[T]{}}
	tableEdits, err := compileEdits(rc.GetRequestHeadersToAdd(), rc.GetRequestHeadersToRemove(),
		rc.GetResponseHeadersToAdd(), rc.GetResponseHeadersToRemove())
	if err != nil {
		return nil, fmt.Errorf("route config %q: %w", rc.GetName(), err)
	}
	var errs []error
	seenDomain := map[string]string{}
	for i, vhc := range rc.GetVirtualHosts() {
		where := fmt.Sprintf("route config %q: virtual_hosts[%d] (%s)", rc.GetName(), i, vhc.GetName())
		vh, err := compileVirtualHost(vhc, tableEdits, rc.GetMostSpecificHeaderMutationsWins(), resolve, o)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		limit := maxDirectBody
		if v := rc.GetMaxDirectResponseBodySizeBytes(); v != nil {
			limit = int(v.GetValue())
		}
		for _, rt := range vh.routes {
			if rt.Direct != nil && len(rt.Direct.Body) > limit {
				errs = append(errs, fmt.Errorf("%s: route %q: direct_response.body: %d bytes is over the limit of %d (max_direct_response_body_size_bytes)",
					where, rt.Name, len(rt.Direct.Body), limit))
			}
		}
		for _, d := range vhc.GetDomains() {
			d = strings.ToLower(d)
			if prev, dup := seenDomain[d]; dup {
				errs = append(errs, fmt.Errorf("%s: domain %q is also in virtual host %q", where, d, prev))
				continue
			}
			seenDomain[d] = vhc.GetName()
			switch {
			case d == "*":
				t.fallback = vh
			case strings.HasPrefix(d, "*"):
				t.suffixes = append(t.suffixes, wildcard[T]{part: d[1:], vh: vh})
			case strings.HasSuffix(d, "*"):
				t.prefixes = append(t.prefixes, wildcard[T]{part: d[:len(d)-1], vh: vh})
			case strings.Contains(d, "*"):
				errs = append(errs, fmt.Errorf("%s: domain %q: a wildcard goes only at the start or the end", where, d))
			default:
				t.exact[d] = vh
			}
		}
	}
	longestFirst := func(w []wildcard[T]) {
		sort.SliceStable(w, func(i, j int) bool { return len(w[i].part) > len(w[j].part) })
	}
	longestFirst(t.suffixes)
	longestFirst(t.prefixes)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return t, nil
}

// VirtualHost returns the virtual host for a Host header. Exact domains win
// over "*.suffix" (longest first), then "prefix.*" (longest first), then
// "*". A host with a port is tried as written and then without the port.
func (t *Table[T]) VirtualHost(host string) *VirtualHost[T] {
	host = lowerASCII(host)
	bare := host
	// (Only a host with a colon can have a port: SplitHostPort's error
	// for one without is an allocation per request.)
	if strings.IndexByte(host, ':') >= 0 {
		if h, _, err := net.SplitHostPort(host); err == nil {
			bare = h
		}
	}
	if vh := t.exact[host]; vh != nil {
		return vh
	}
	if vh := t.exact[bare]; vh != nil {
		return vh
	}
	for _, h := range [2]string{host, bare} {
		for _, w := range t.suffixes {
			if len(h) > len(w.part) && strings.HasSuffix(h, w.part) {
				return w.vh
			}
		}
		for _, w := range t.prefixes {
			if len(h) > len(w.part) && strings.HasPrefix(h, w.part) {
				return w.vh
			}
		}
	}
	return t.fallback
}

// Match returns the route for r, or nil when no virtual host or route
// matches.
func (t *Table[T]) Match(r *http.Request) *Route[T] {
	vh := t.VirtualHost(r.Host)
	if vh == nil {
		return nil
	}
	return vh.Match(r)
}

func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// Match returns the first route of the virtual host that matches r.
func (vh *VirtualHost[T]) Match(r *http.Request) *Route[T] {
	full := requestPath(r)
	path, query := splitQuery(full)
	var buf [16]int32
	cands := vh.index.candidates(buf[:0], full, path)
	for _, i := range cands {
		rt := vh.routes[i]
		if rt.match.matches(r, full, path, queryValues(query)) {
			return rt
		}
	}
	return nil
}

// pathIndex finds the routes whose path condition can hold for a path.
type pathIndex struct {
	exact      map[string][]int32
	exactFold  map[string][]int32
	prefix     map[string][]int32
	prefixLens []int
	prefixFold map[string][]int32
	foldLens   []int
	always     []int32 // regex routes: tried on every request
}

func (x *pathIndex) add(i int32, m *routeMatch) {
	addTo := func(mp *map[string][]int32, lens *[]int, key string) {
		if *mp == nil {
			*mp = map[string][]int32{}
		}
		(*mp)[key] = append((*mp)[key], i)
		if lens != nil && !slices.Contains(*lens, len(key)) {
			*lens = append(*lens, len(key))
			slices.Sort(*lens)
		}
	}
	switch m.kind {
	case pathExact:
		if m.foldCase {
			addTo(&x.exactFold, nil, m.value)
		} else {
			addTo(&x.exact, nil, m.value)
		}
	case pathPrefix, pathSeparatedPrefix:
		if m.foldCase {
			addTo(&x.prefixFold, &x.foldLens, m.value)
		} else {
			addTo(&x.prefix, &x.prefixLens, m.value)
		}
	default:
		x.always = append(x.always, i)
	}
}

// candidates appends, in route order, the routes whose path condition may
// hold: full is the :path with query, path without.
func (x *pathIndex) candidates(dst []int32, full, path string) []int32 {
	dst = append(dst, x.exact[path]...)
	for _, n := range x.prefixLens {
		if n > len(full) {
			break
		}
		dst = append(dst, x.prefix[full[:n]]...)
	}
	if x.exactFold != nil || x.prefixFold != nil {
		lf, lp := strings.ToLower(full), strings.ToLower(path)
		dst = append(dst, x.exactFold[lp]...)
		for _, n := range x.foldLens {
			if n > len(lf) {
				break
			}
			dst = append(dst, x.prefixFold[lf[:n]]...)
		}
	}
	dst = append(dst, x.always...)
	slices.Sort(dst)
	return dst
}

type pathKind uint8

const (
	pathPrefix pathKind = iota
	pathExact
	pathRegex
	pathSeparatedPrefix
)

// routeMatch is a compiled Envoy RouteMatch.
type routeMatch struct {
	kind     pathKind
	value    string // lowercased when foldCase
	foldCase bool
	re       *regexp.Regexp
	grpc     bool
	headers  []HeaderMatcher
	query    []queryMatcher
}

func compileMatch(m *routev3.RouteMatch) (routeMatch, error) {
	var out routeMatch
	out.foldCase = m.GetCaseSensitive() != nil && !m.GetCaseSensitive().GetValue()
	switch p := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		out.kind, out.value = pathPrefix, p.Prefix
	case *routev3.RouteMatch_Path:
		out.kind, out.value = pathExact, p.Path
	case *routev3.RouteMatch_PathSeparatedPrefix:
		out.kind, out.value = pathSeparatedPrefix, p.PathSeparatedPrefix
	case *routev3.RouteMatch_SafeRegex:
		re, err := compileFullRegex(p.SafeRegex.GetRegex())
		if err != nil {
			return out, fmt.Errorf("match.safe_regex: %w", err)
		}
		out.kind, out.re = pathRegex, re
		if out.foldCase {
			return out, errors.New("match.case_sensitive: false is not supported with safe_regex; use (?i) in the regex")
		}
	default:
		return out, fmt.Errorf("match: unsupported path specifier %T (want prefix, path, safe_regex or path_separated_prefix)", p)
	}
	if out.foldCase {
		out.value = strings.ToLower(out.value)
	}
	switch {
	case m.GetRuntimeFraction() != nil:
		return out, errors.New("match.runtime_fraction: not supported")
	case m.GetTlsContext() != nil:
		return out, errors.New("match.tls_context: not supported")
	case len(m.GetDynamicMetadata()) > 0:
		return out, errors.New("match.dynamic_metadata: not supported")
	case len(m.GetCookies()) > 0:
		return out, errors.New("match.cookies: not supported")
	case m.GetFilterState() != nil:
		return out, errors.New("match.filter_state: not supported")
	}
	out.grpc = m.GetGrpc() != nil
	for i, h := range m.GetHeaders() {
		hm, err := CompileHeaderMatcher(h)
		if err != nil {
			return out, fmt.Errorf("match.headers[%d]: %w", i, err)
		}
		out.headers = append(out.headers, hm)
	}
	for i, q := range m.GetQueryParameters() {
		qm, err := compileQueryMatcher(q)
		if err != nil {
			return out, fmt.Errorf("match.query_parameters[%d]: %w", i, err)
		}
		out.query = append(out.query, qm)
	}
	return out, nil
}

// matches checks every condition the path index did not already settle.
func (m *routeMatch) matches(r *http.Request, full, path string, query queryValues) bool {
	switch m.kind {
	case pathRegex:
		if !m.re.MatchString(path) {
			return false
		}
	case pathSeparatedPrefix:
		// The index matched the prefix; it must end at a segment boundary.
		if len(path) < len(m.value) || (len(path) > len(m.value) && path[len(m.value)] != '/') {
			return false
		}
	}
	if m.grpc && !IsGRPC(r) {
		return false
	}
	for i := range m.headers {
		if !m.headers[i].Match(r) {
			return false
		}
	}
	for i := range m.query {
		if !m.query[i].match(query) {
			return false
		}
	}
	return true
}

// IsGRPC reports whether r is a gRPC request (not gRPC-Web).
func IsGRPC(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	if !strings.HasPrefix(ct, "application/grpc") {
		return false
	}
	return len(ct) == len("application/grpc") || ct[len("application/grpc")] == '+' || ct[len("application/grpc")] == ';'
}
