package router

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	mutationv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshgate/meshgate/governance"
)

// DefaultTimeout is Envoy's route timeout when a route sets none.
const DefaultTimeout = 15 * time.Second

// maxDirectBody bounds a direct response body when the route
// configuration's max_direct_response_body_size_bytes does not (Envoy's
// default).
const maxDirectBody = 4096

// Route is a compiled Envoy Route with exactly one of Forward, Direct or
// Redirect set.
type Route[T any] struct {
	// Name is the route's name, or "<virtual host>/<index>" without one.
	Name        string
	VirtualHost string
	match       routeMatch

	Forward  *Forward[T]
	Direct   *DirectResponse
	Redirect *Redirect

	// PerFilter are the route's typed_per_filter_config over its virtual
	// host's, compiled by WithPerFilter, by key (the filter's name in the
	// chain): a filter reads its own.
	PerFilter map[string]any

	// RequestEdits and ResponseEdits apply the header mutations of the
	// route, its virtual host and its table, in Envoy's order.
	RequestEdits  HeaderEdits
	ResponseEdits HeaderEdits
}

// Forward sends the request to a cluster.
type Forward[T any] struct {
	Clusters    []WeightedTarget[T]
	totalWeight uint64

	prefix        string // the matched prefix or path that PrefixRewrite replaces
	PrefixRewrite string
	hasPrefixRW   bool
	regexRewrite  *regexp.Regexp
	regexSubst    string

	HostRewrite     string
	AutoHostRewrite bool

	// Timeout bounds the whole call; 0 means none.
	Timeout time.Duration
	// hash is the route's hash policy, for ring hash and Maglev.
	hash []hashMethod
	// Retry is the route's (or its virtual host's) retry policy; nil: none.
	Retry *governance.RetryPolicy
	// Priority is the routing priority whose circuit breaker thresholds
	// apply: 0 DEFAULT, 1 HIGH.
	Priority int
	// BufferLimit bounds the request body kept for replay by retries; a
	// longer body is not retried (Envoy's per_request_buffer_limit_bytes).
	BufferLimit uint64
	// IdleTimeout resets a stream with no bytes either way for this long
	// (0: none).
	IdleTimeout time.Duration
	// GRPCTimeoutMax caps a grpc-timeout header; 0 means no cap.
	GRPCTimeoutMax time.Duration
	// WriteGRPCTimeout: the upstream gets the call's deadline as
	// grpc-timeout even when the client sent none (Envoy does so under a
	// non-zero deprecated max_grpc_timeout without max_stream_duration,
	// which istiod sets on every route with a timeout).
	WriteGRPCTimeout bool
}

// WeightedTarget is one cluster of a route and its share.
type WeightedTarget[T any] struct {
	Name   string
	Weight uint32
	Target T
	// Found is false when the cluster did not exist at compile time.
	Found bool
}

// Pick chooses a cluster; r is a uniformly random number.
func (f *Forward[T]) Pick(r uint64) *WeightedTarget[T] {
	if len(f.Clusters) == 1 {
		return &f.Clusters[0]
	}
	n := r % f.totalWeight
	for i := range f.Clusters {
		if n < uint64(f.Clusters[i].Weight) {
			return &f.Clusters[i]
		}
		n -= uint64(f.Clusters[i].Weight)
	}
	return &f.Clusters[len(f.Clusters)-1]
}

// RewritePath returns the path (without query) to send upstream.
func (f *Forward[T]) RewritePath(path string) string {
	switch {
	case f.hasPrefixRW:
		if len(path) >= len(f.prefix) {
			return f.PrefixRewrite + path[len(f.prefix):]
		}
		return path
	case f.regexRewrite != nil:
		return f.regexRewrite.ReplaceAllString(path, f.regexSubst)
	}
	return path
}

// RewritesPath reports whether RewritePath may change a path.
func (f *Forward[T]) RewritesPath() bool { return f.hasPrefixRW || f.regexRewrite != nil }

// DirectResponse answers without an upstream.
type DirectResponse struct {
	Status int
	Body   []byte
}

// Redirect answers with a Location built from the request.
type Redirect struct {
	Scheme        string
	Host          string
	Port          uint32
	Path          string
	prefix        string
	PrefixRewrite string
	hasPrefixRW   bool
	regexRewrite  *regexp.Regexp
	regexSubst    string
	Status        int
	StripQuery    bool
}

// Location returns the redirect target for r.
func (d *Redirect) Location(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if d.Scheme != "" {
		scheme = d.Scheme
	}
	host := r.Host
	if d.Host != "" {
		host = d.Host
	}
	if d.Port != 0 {
		if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
			host = host[:i]
		}
		host = host + ":" + strconv.FormatUint(uint64(d.Port), 10)
	}
	path, query := splitQuery(requestPath(r))
	switch {
	case d.Path != "":
		p, q := splitQuery(d.Path)
		path = p
		if q != "" {
			query = q
		}
	case d.hasPrefixRW && len(path) >= len(d.prefix):
		path = d.PrefixRewrite + path[len(d.prefix):]
	case d.regexRewrite != nil:
		path = d.regexRewrite.ReplaceAllString(path, d.regexSubst)
	}
	loc := scheme + "://" + host + path
	if query != "" && !d.StripQuery {
		loc += "?" + query
	}
	return loc
}

// HeaderEdits is a list of header mutations applied in order.
type HeaderEdits []headerEdit

type headerEdit struct {
	remove []string // canonical keys, applied before the adds of the level
	adds   []headerAdd
}

type headerAdd struct {
	key         string
	value       string
	action      corev3.HeaderValueOption_HeaderAppendAction
	keepIfEmpty bool
}

// Apply edits h in place.
func (e HeaderEdits) Apply(h http.Header) {
	for _, lvl := range e {
		for _, k := range lvl.remove {
			delete(h, k)
		}
		for _, a := range lvl.adds {
			if a.value == "" && !a.keepIfEmpty {
				continue
			}
			_, exists := h[a.key]
			switch a.action {
			case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
				h[a.key] = append(h[a.key], a.value)
			case corev3.HeaderValueOption_ADD_IF_ABSENT:
				if !exists {
					h[a.key] = []string{a.value}
				}
			case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
				h[a.key] = []string{a.value}
			case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
				if exists {
					h[a.key] = []string{a.value}
				}
			}
		}
	}
}

// compileEdits compiles one level (route, virtual host or table) into a
// request and a response edit.
func compileEdits(reqAdd []*corev3.HeaderValueOption, reqRemove []string, respAdd []*corev3.HeaderValueOption, respRemove []string) ([2]headerEdit, error) {
	var out [2]headerEdit
	var err error
	if out[0], err = compileEditLevel(reqAdd, reqRemove); err != nil {
		return out, fmt.Errorf("request headers: %w", err)
	}
	if out[1], err = compileEditLevel(respAdd, respRemove); err != nil {
		return out, fmt.Errorf("response headers: %w", err)
	}
	return out, nil
}

func compileEditLevel(adds []*corev3.HeaderValueOption, removes []string) (headerEdit, error) {
	var out headerEdit
	for _, k := range removes {
		if strings.HasPrefix(k, ":") || strings.EqualFold(k, "host") {
			return out, fmt.Errorf("cannot remove %q", k)
		}
		out.remove = append(out.remove, http.CanonicalHeaderKey(k))
	}
	for i, o := range adds {
		k := o.GetHeader().GetKey()
		if k == "" || strings.HasPrefix(k, ":") || strings.EqualFold(k, "host") {
			return out, fmt.Errorf("headers_to_add[%d]: cannot set %q", i, k)
		}
		v := o.GetHeader().GetValue()
		if raw := o.GetHeader().GetRawValue(); len(raw) > 0 {
			v = string(raw)
		}
		if strings.Contains(strings.ReplaceAll(v, "%%", ""), "%") {
			return out, fmt.Errorf("headers_to_add[%d] (%s): header value formatters (%%...%%) are not supported yet", i, k)
		}
		v = strings.ReplaceAll(v, "%%", "%")
		action := o.GetAppendAction()
		//lint:ignore SA1019 Envoy still reads the deprecated append flag.
		if ap := o.GetAppend(); ap != nil {
			// The deprecated append flag, when set, wins as Envoy reads it.
			action = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
			if ap.GetValue() {
				action = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
			}
		}
		out.adds = append(out.adds, headerAdd{key: http.CanonicalHeaderKey(k), value: v, action: action, keepIfEmpty: o.GetKeepEmptyValue()})
	}
	return out, nil
}

func compileVirtualHost[T any](vhc *routev3.VirtualHost, table [2]headerEdit, specificWins bool, resolve Resolver[T], o options) (*VirtualHost[T], error) {
	switch {
	case len(vhc.GetDomains()) == 0:
		return nil, errors.New("domains: needs at least one")
	case vhc.GetRequireTls() != routev3.VirtualHost_NONE:
		return nil, errors.New("require_tls: not supported")
	case len(vhc.GetVirtualClusters()) > 0:
		return nil, errors.New("virtual_clusters: not supported")
	}
	vhEdits, err := compileEdits(vhc.GetRequestHeadersToAdd(), vhc.GetRequestHeadersToRemove(),
		vhc.GetResponseHeadersToAdd(), vhc.GetResponseHeadersToRemove())
	if err != nil {
		return nil, err
	}
	vh := &VirtualHost[T]{Name: vhc.GetName()}
	// Compiled once for the virtual host: its routes without their own
	// share them (one rate limit bucket for the whole virtual host).
	if vh.PerFilter, err = compilePerFilter(vhc.GetTypedPerFilterConfig(), nil, o.perFilter); err != nil {
		return nil, fmt.Errorf("typed_per_filter_config: %w", err)
	}
	var errs []error
	for i, rc := range vhc.GetRoutes() {
		rt, err := compileRoute(vhc.GetName(), i, rc, vhc, resolve)
		if err != nil {
			errs = append(errs, fmt.Errorf("routes[%d] (%s): %w", i, rc.GetName(), err))
			continue
		}
		rEdits, err := compileEdits(rc.GetRequestHeadersToAdd(), rc.GetRequestHeadersToRemove(),
			rc.GetResponseHeadersToAdd(), rc.GetResponseHeadersToRemove())
		if err != nil {
			errs = append(errs, fmt.Errorf("routes[%d] (%s): %w", i, rc.GetName(), err))
			continue
		}
		// Envoy applies route, then virtual host, then table, so that the
		// outer level wins an overwrite, unless most specific wins.
		levels := [][2]headerEdit{rEdits, vhEdits, table}
		if specificWins {
			levels = [][2]headerEdit{table, vhEdits, rEdits}
		}
		for _, l := range levels {
			if len(l[0].remove)+len(l[0].adds) > 0 {
				rt.RequestEdits = append(rt.RequestEdits, l[0])
			}
			if len(l[1].remove)+len(l[1].adds) > 0 {
				rt.ResponseEdits = append(rt.ResponseEdits, l[1])
			}
		}
		if rt.PerFilter, err = compilePerFilter(rc.GetTypedPerFilterConfig(), vh.PerFilter, o.perFilter); err != nil {
			errs = append(errs, fmt.Errorf("routes[%d] (%s): typed_per_filter_config: %w", i, rc.GetName(), err))
			continue
		}
		vh.index.add(int32(len(vh.routes)), &rt.match)
		vh.routes = append(vh.routes, rt)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return vh, nil
}

// defaultBufferLimit is the request body kept for retries when a route
// sets no limit (Envoy's default connection buffer, 1 MiB).
const defaultBufferLimit = 1 << 20

func compileRoute[T any](vhost string, index int, rc *routev3.Route, vhc *routev3.VirtualHost, resolve Resolver[T]) (*Route[T], error) {
	m, err := compileMatch(rc.GetMatch())
	if err != nil {
		return nil, err
	}
	rt := &Route[T]{Name: rc.GetName(), VirtualHost: vhost, match: m}
	if rt.Name == "" {
		rt.Name = fmt.Sprintf("%s/%d", vhost, index)
	}
	switch a := rc.GetAction().(type) {
	case *routev3.Route_Route:
		rt.Forward, err = compileForward(a.Route, &m, resolve)
		if err == nil {
			err = routeGovernance(rt.Forward, rc, vhc)
		}
	case *routev3.Route_DirectResponse:
		rt.Direct, err = compileDirect(a.DirectResponse)
	case *routev3.Route_Redirect:
		rt.Redirect, err = compileRedirect(a.Redirect, &m)
	default:
		err = fmt.Errorf("action %T is not supported (want route, direct_response or redirect)", a)
	}
	if err != nil {
		return nil, err
	}
	return rt, nil
}

func compileForward[T any](ra *routev3.RouteAction, m *routeMatch, resolve Resolver[T]) (*Forward[T], error) {
	f := &Forward[T]{Timeout: DefaultTimeout}
	switch cs := ra.GetClusterSpecifier().(type) {
	case *routev3.RouteAction_Cluster:
		target, ok := resolve(cs.Cluster)
		f.Clusters = []WeightedTarget[T]{{Name: cs.Cluster, Weight: 1, Target: target, Found: ok}}
	case *routev3.RouteAction_WeightedClusters:
		for i, w := range cs.WeightedClusters.GetClusters() {
			if w.GetName() == "" {
				return nil, fmt.Errorf("weighted_clusters.clusters[%d]: needs a name", i)
			}
			weight := w.GetWeight().GetValue()
			if weight == 0 {
				continue
			}
			target, ok := resolve(w.GetName())
			f.Clusters = append(f.Clusters, WeightedTarget[T]{Name: w.GetName(), Weight: weight, Target: target, Found: ok})
			f.totalWeight += uint64(weight)
		}
		if len(f.Clusters) == 0 {
			return nil, errors.New("weighted_clusters: the weights add up to zero")
		}
	default:
		return nil, fmt.Errorf("route: cluster specifier %T is not supported (want cluster or weighted_clusters)", cs)
	}
	if p := ra.GetPrefixRewrite(); p != "" {
		if m.kind == pathRegex {
			return nil, errors.New("route.prefix_rewrite: needs a prefix or path match; use regex_rewrite with safe_regex")
		}
		f.PrefixRewrite, f.hasPrefixRW, f.prefix = p, true, m.value
	}
	if rr := ra.GetRegexRewrite(); rr != nil {
		re, err := regexp.Compile(rr.GetPattern().GetRegex())
		if err != nil {
			return nil, fmt.Errorf("route.regex_rewrite: %w", err)
		}
		f.regexRewrite, f.regexSubst = re, envoySubstitution(rr.GetSubstitution())
	}
	switch h := ra.GetHostRewriteSpecifier().(type) {
	case *routev3.RouteAction_HostRewriteLiteral:
		f.HostRewrite = h.HostRewriteLiteral
	case *routev3.RouteAction_AutoHostRewrite:
		f.AutoHostRewrite = h.AutoHostRewrite.GetValue()
	case nil:
	default:
		return nil, fmt.Errorf("route: host rewrite %T is not supported", h)
	}
	if t := ra.GetTimeout(); t != nil {
		f.Timeout = t.AsDuration()
	}
	for i, hp := range ra.GetHashPolicy() {
		m, err := compileHashMethod(hp)
		if err != nil {
			return nil, fmt.Errorf("route.hash_policy[%d]: %w", i, err)
		}
		f.hash = append(f.hash, m)
	}
	if msd := ra.GetMaxStreamDuration(); msd != nil {
		if g := msd.GetGrpcTimeoutHeaderMax(); g != nil {
			f.GRPCTimeoutMax = g.AsDuration()
		}
	} else {
		// (0 is Envoy's "no limit": a call without grpc-timeout then has
		// no deadline for Envoy to write.)
		//lint:ignore SA1019 deprecated, still set by istiod on every route.
		f.WriteGRPCTimeout = ra.GetMaxGrpcTimeout().AsDuration() > 0
	}
	return f, nil
}

// envoySubstitution turns Envoy's \1 group references into Go's ${1}.
var envoyGroupRef = regexp.MustCompile(`\\(\d)`)

func envoySubstitution(s string) string {
	s = strings.ReplaceAll(s, "$", "$$")
	return envoyGroupRef.ReplaceAllString(s, `$${$1}`)
}

func compileDirect(d *routev3.DirectResponseAction) (*DirectResponse, error) {
	if d.GetStatus() < 100 || d.GetStatus() > 599 {
		return nil, fmt.Errorf("direct_response.status: %d is not an HTTP status", d.GetStatus())
	}
	out := &DirectResponse{Status: int(d.GetStatus())}
	switch b := d.GetBody().GetSpecifier().(type) {
	case *corev3.DataSource_InlineString:
		out.Body = []byte(b.InlineString)
	case *corev3.DataSource_InlineBytes:
		out.Body = b.InlineBytes
	case *corev3.DataSource_Filename:
		data, err := os.ReadFile(b.Filename)
		if err != nil {
			return nil, fmt.Errorf("direct_response.body: %w", err)
		}
		out.Body = data
	case nil:
	default:
		return nil, fmt.Errorf("direct_response.body: %T is not supported", b)
	}
	return out, nil
}

func compileRedirect(r *routev3.RedirectAction, m *routeMatch) (*Redirect, error) {
	out := &Redirect{Host: r.GetHostRedirect(), Port: r.GetPortRedirect(), StripQuery: r.GetStripQuery()}
	switch s := r.GetSchemeRewriteSpecifier().(type) {
	case *routev3.RedirectAction_HttpsRedirect:
		if s.HttpsRedirect {
			out.Scheme = "https"
		}
	case *routev3.RedirectAction_SchemeRedirect:
		out.Scheme = s.SchemeRedirect
	}
	switch p := r.GetPathRewriteSpecifier().(type) {
	case *routev3.RedirectAction_PathRedirect:
		out.Path = p.PathRedirect
	case *routev3.RedirectAction_PrefixRewrite:
		if m.kind == pathRegex {
			return nil, errors.New("redirect.prefix_rewrite: needs a prefix or path match")
		}
		out.PrefixRewrite, out.hasPrefixRW, out.prefix = p.PrefixRewrite, true, m.value
	case *routev3.RedirectAction_RegexRewrite:
		re, err := regexp.Compile(p.RegexRewrite.GetPattern().GetRegex())
		if err != nil {
			return nil, fmt.Errorf("redirect.regex_rewrite: %w", err)
		}
		out.regexRewrite, out.regexSubst = re, envoySubstitution(p.RegexRewrite.GetSubstitution())
	}
	codes := map[routev3.RedirectAction_RedirectResponseCode]int{
		routev3.RedirectAction_MOVED_PERMANENTLY:  http.StatusMovedPermanently,
		routev3.RedirectAction_FOUND:              http.StatusFound,
		routev3.RedirectAction_SEE_OTHER:          http.StatusSeeOther,
		routev3.RedirectAction_TEMPORARY_REDIRECT: http.StatusTemporaryRedirect,
		routev3.RedirectAction_PERMANENT_REDIRECT: http.StatusPermanentRedirect,
	}
	out.Status = codes[r.GetResponseCode()]
	if out.Status == 0 {
		return nil, fmt.Errorf("redirect.response_code: %v is not supported", r.GetResponseCode())
	}
	return out, nil
}

// routeGovernance reads the retry policy (the route's, else its virtual
// host's), routing priority, buffer limit and idle timeout.
func routeGovernance[T any](f *Forward[T], rc *routev3.Route, vhc *routev3.VirtualHost) error {
	ra := rc.GetRoute()
	rp := ra.GetRetryPolicy()
	if rp == nil {
		rp = vhc.GetRetryPolicy()
	}
	if rp != nil {
		p, err := compileRetryPolicy(rp)
		if err != nil {
			return fmt.Errorf("retry_policy: %w", err)
		}
		f.Retry = p
	}
	if ra.GetRetryPolicyTypedConfig() != nil || vhc.GetRetryPolicyTypedConfig() != nil {
		return errors.New("retry_policy_typed_config: not supported")
	}
	if len(ra.GetRequestMirrorPolicies()) > 0 {
		return errors.New("route.request_mirror_policies: not supported yet")
	}
	if ra.GetHedgePolicy() != nil || vhc.GetHedgePolicy() != nil {
		return errors.New("hedge_policy: not supported")
	}
	f.Priority = int(ra.GetPriority())
	f.BufferLimit = defaultBufferLimit
	//lint:ignore SA1019 Envoy still reads the deprecated per_request_buffer_limit_bytes.
	if v := rc.GetPerRequestBufferLimitBytes(); v != nil {
		f.BufferLimit = uint64(v.GetValue())
		//lint:ignore SA1019 Envoy still reads the deprecated per_request_buffer_limit_bytes.
	} else if v := vhc.GetPerRequestBufferLimitBytes(); v != nil {
		f.BufferLimit = uint64(v.GetValue())
	}
	if v := rc.GetRequestBodyBufferLimit(); v != nil {
		f.BufferLimit = v.GetValue()
	}
	if t := ra.GetIdleTimeout(); t != nil {
		f.IdleTimeout = t.AsDuration()
	}
	return nil
}

// previousHosts is Envoy's retry host predicate that avoids tried hosts.
const previousHosts = "envoy.retry_host_predicates.previous_hosts"

func compileRetryPolicy(rp *routev3.RetryPolicy) (*governance.RetryPolicy, error) {
	on, err := governance.ParseRetryOn(rp.GetRetryOn())
	if err != nil {
		return nil, err
	}
	p := &governance.RetryPolicy{On: on, NumRetries: 1}
	if n := rp.GetNumRetries(); n != nil {
		p.NumRetries = n.GetValue()
	}
	if t := rp.GetPerTryTimeout(); t != nil {
		p.PerTryTimeout = t.AsDuration()
	}
	if b := rp.GetRetryBackOff(); b != nil {
		p.BaseInterval = b.GetBaseInterval().AsDuration()
		if m := b.GetMaxInterval(); m != nil {
			p.MaxInterval = m.AsDuration()
			if p.MaxInterval < p.BaseInterval {
				return nil, errors.New("retry_back_off.max_interval is less than base_interval")
			}
		}
	}
	for _, c := range rp.GetRetriableStatusCodes() {
		p.RetriableStatusCodes = append(p.RetriableStatusCodes, int(c))
	}
	for i, hp := range rp.GetRetryHostPredicate() {
		if hp.GetName() != previousHosts {
			return nil, fmt.Errorf("retry_host_predicate[%d]: %q is not supported (only %s)", i, hp.GetName(), previousHosts)
		}
		p.SkipPreviousHosts = true
	}
	switch {
	case rp.GetRetryPriority() != nil:
		return nil, errors.New("retry_priority: not supported")
	case len(rp.GetRetriableHeaders()) > 0 || len(rp.GetRetriableRequestHeaders()) > 0:
		return nil, errors.New("retriable_headers / retriable_request_headers: not supported")
	case rp.GetRateLimitedRetryBackOff() != nil:
		return nil, errors.New("rate_limited_retry_back_off: not supported")
	case rp.GetPerTryIdleTimeout() != nil:
		return nil, errors.New("per_try_idle_timeout: not supported yet")
	}
	return p, nil
}

// compilePerFilter compiles a typed_per_filter_config with f, over the
// outer level's (the virtual host's for a route): the most specific wins,
// as in Envoy. Without f nothing is read.
func compilePerFilter(cfgs map[string]*anypb.Any, outer map[string]any, f PerFilterFunc) (map[string]any, error) {
	if f == nil || len(cfgs) == 0 {
		return outer, nil
	}
	out := make(map[string]any, len(outer)+len(cfgs))
	for k, v := range outer {
		out[k] = v
	}
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(cfgs)) {
		v, err := f(k, cfgs[k])
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", k, err))
			continue
		}
		if v != nil {
			out[k] = v
		}
	}
	return out, errors.Join(errs...)
}

// CompileMutations compiles an ordered list of header mutations (removes
// and appends, Envoy's config.common.mutation_rules HeaderMutation) into
// edits applied in the same order.
func CompileMutations(ms []*mutationv3.HeaderMutation) (HeaderEdits, error) {
	var out HeaderEdits
	for i, m := range ms {
		var lvl headerEdit
		var err error
		switch a := m.GetAction().(type) {
		case *mutationv3.HeaderMutation_Remove:
			lvl, err = compileEditLevel(nil, []string{a.Remove})
		case *mutationv3.HeaderMutation_Append:
			lvl, err = compileEditLevel([]*corev3.HeaderValueOption{a.Append}, nil)
		default:
			err = fmt.Errorf("%T is not supported (remove and append are)", a)
		}
		if err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		out = append(out, lvl)
	}
	return out, nil
}
