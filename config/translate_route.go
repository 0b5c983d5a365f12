package config

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshgate/meshgate/dubbo/argsource"
	"github.com/meshgate/meshgate/governance/retryon"
	dubbov1 "github.com/meshgate/meshgate/proto/meshgate/extensions/filters/http/dubbo/v1"
)

func (t *translator) routeConfiguration(path, name string, vhosts []VirtualHostConfig, edits *HeaderEdits) *routev3.RouteConfiguration {
	rc := &routev3.RouteConfiguration{Name: name}
	if edits != nil {
		rc.RequestHeadersToAdd, rc.RequestHeadersToRemove, rc.ResponseHeadersToAdd, rc.ResponseHeadersToRemove = headerEdits(edits)
	}
	names := map[string]bool{}
	for i := range vhosts {
		vh := &vhosts[i]
		p := fmt.Sprintf("%s.virtual_hosts[%d]", path, i)
		vname := vh.Name
		if vname == "" {
			vname = fmt.Sprintf("vhost-%d", i)
		}
		if names[vname] {
			t.errf(p+".name", "virtual host %q is defined twice", vname)
		}
		names[vname] = true
		domains := vh.Domains
		if len(domains) == 0 {
			domains = []string{"*"}
		}
		out := &routev3.VirtualHost{Name: vname, Domains: domains}
		if vh.Retries != nil {
			out.RetryPolicy = t.retryPolicy(p+".retries", vh.Retries)
		}
		if vh.RateLimit != nil || vh.CORS != nil {
			out.TypedPerFilterConfig = map[string]*anypb.Any{}
		}
		if vh.RateLimit != nil {
			out.TypedPerFilterConfig[LocalRateLimitFilter] = mustAny(t.rateLimit(p+".rate_limit", vh.RateLimit))
		}
		if vh.CORS != nil {
			out.TypedPerFilterConfig[CORSFilter] = mustAny(t.cors(p+".cors", vh.CORS))
		}
		out.RequestHeadersToAdd, out.RequestHeadersToRemove, out.ResponseHeadersToAdd, out.ResponseHeadersToRemove = headerEdits(&vh.HeaderEdits)
		if len(vh.Routes) == 0 {
			t.errf(p+".routes", "needs at least one route")
		}
		for j := range vh.Routes {
			out.Routes = append(out.Routes, t.route(fmt.Sprintf("%s.routes[%d]", p, j), &vh.Routes[j]))
		}
		rc.VirtualHosts = append(rc.VirtualHosts, out)
	}
	return rc
}

func headerEdits(e *HeaderEdits) (reqAdd []*corev3.HeaderValueOption, reqRemove []string, respAdd []*corev3.HeaderValueOption, respRemove []string) {
	return headerOptions(e.RequestHeadersToSet, e.RequestHeadersToAdd), e.RequestHeadersToRemove,
		headerOptions(e.ResponseHeadersToSet, e.ResponseHeadersToAdd), e.ResponseHeadersToRemove
}

func headerOptions(set, add map[string]string) []*corev3.HeaderValueOption {
	var out []*corev3.HeaderValueOption
	for _, k := range sortedKeys(set) {
		out = append(out, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: k, Value: set[k]},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	for _, k := range sortedKeys(add) {
		out = append(out, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: k, Value: add[k]},
			AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD,
		})
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (t *translator) route(path string, r *RouteConfig) *routev3.Route {
	out := &routev3.Route{Name: r.Name, Match: t.match(path+".match", &r.Match)}
	out.RequestHeadersToAdd, out.RequestHeadersToRemove, out.ResponseHeadersToAdd, out.ResponseHeadersToRemove = headerEdits(&r.HeaderEdits)

	actions := 0
	for _, set := range []bool{r.Cluster != "", len(r.WeightedClusters) > 0, r.DirectResponse != nil, r.Redirect != nil} {
		if set {
			actions++
		}
	}
	if actions != 1 {
		t.errf(path, "needs exactly one of cluster, weighted_clusters, direct_response, redirect (has %d)", actions)
		return out
	}
	switch {
	case r.DirectResponse != nil:
		d := r.DirectResponse
		if d.Status < 200 || d.Status > 599 {
			t.errf(path+".direct_response.status", "want an HTTP status from 200 to 599, got %d", d.Status)
		}
		dr := &routev3.DirectResponseAction{Status: d.Status}
		if d.Body != "" {
			dr.Body = &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: d.Body}}
		}
		out.Action = &routev3.Route_DirectResponse{DirectResponse: dr}
		return out
	case r.Redirect != nil:
		out.Action = &routev3.Route_Redirect{Redirect: t.redirect(path+".redirect", r.Redirect)}
		return out
	}

	ra := &routev3.RouteAction{}
	if r.Cluster != "" {
		ra.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: r.Cluster}
	} else {
		wc := &routev3.WeightedCluster{}
		for i, w := range r.WeightedClusters {
			if w.Cluster == "" {
				t.errf(fmt.Sprintf("%s.weighted_clusters[%d].cluster", path, i), "must not be empty")
			}
			wc.Clusters = append(wc.Clusters, &routev3.WeightedCluster_ClusterWeight{Name: w.Cluster, Weight: wrapperspb.UInt32(w.Weight)})
		}
		ra.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: wc}
	}
	if r.PrefixRewrite != "" {
		if r.Match.Regex != "" {
			t.errf(path+".prefix_rewrite", "works with a prefix or path match, not regex; use regex_rewrite")
		}
		ra.PrefixRewrite = r.PrefixRewrite
	}
	if r.RegexRewrite != nil {
		if r.PrefixRewrite != "" {
			t.errf(path+".regex_rewrite", "give either prefix_rewrite or regex_rewrite, not both")
		}
		if _, err := regexp.Compile(r.RegexRewrite.Pattern); err != nil {
			t.errf(path+".regex_rewrite.pattern", "%v", err)
		}
		ra.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{
			Pattern:      &matcherv3.RegexMatcher{Regex: r.RegexRewrite.Pattern},
			Substitution: r.RegexRewrite.Substitution,
		}
	}
	switch {
	case r.HostRewrite != "" && r.AutoHostRewrite:
		t.errf(path, "give either host_rewrite or auto_host_rewrite, not both")
	case r.HostRewrite != "":
		ra.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: r.HostRewrite}
	case r.AutoHostRewrite:
		ra.HostRewriteSpecifier = &routev3.RouteAction_AutoHostRewrite{AutoHostRewrite: wrapperspb.Bool(true)}
	}
	if r.Timeout != nil {
		if r.Timeout.Duration < 0 {
			t.errf(path+".timeout", "must not be negative")
		}
		ra.Timeout = durationpb.New(r.Timeout.Duration)
	}
	for i, h := range r.HashPolicy {
		p := fmt.Sprintf("%s.hash_policy[%d]", path, i)
		hp := &routev3.RouteAction_HashPolicy{Terminal: h.Terminal}
		n := 0
		if h.Header != "" {
			n++
			hp.PolicySpecifier = &routev3.RouteAction_HashPolicy_Header_{Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: strings.ToLower(h.Header)}}
		}
		if h.Cookie != "" {
			n++
			hp.PolicySpecifier = &routev3.RouteAction_HashPolicy_Cookie_{Cookie: &routev3.RouteAction_HashPolicy_Cookie{Name: h.Cookie}}
		}
		if h.Query != "" {
			n++
			hp.PolicySpecifier = &routev3.RouteAction_HashPolicy_QueryParameter_{QueryParameter: &routev3.RouteAction_HashPolicy_QueryParameter{Name: h.Query}}
		}
		if h.SourceIP {
			n++
			hp.PolicySpecifier = &routev3.RouteAction_HashPolicy_ConnectionProperties_{ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true}}
		}
		if n != 1 {
			t.errf(p, "give exactly one of header, cookie, query, source_ip")
		}
		ra.HashPolicy = append(ra.HashPolicy, hp)
	}
	if r.Retries != nil {
		ra.RetryPolicy = t.retryPolicy(path+".retries", r.Retries)
	}
	if r.RateLimit != nil || r.Dubbo != nil || r.CORS != nil || r.Fault != nil {
		out.TypedPerFilterConfig = map[string]*anypb.Any{}
	}
	if r.Fault != nil {
		out.TypedPerFilterConfig[FaultFilter] = mustAny(t.fault(path+".fault", r.Fault))
	}
	if r.CORS != nil {
		out.TypedPerFilterConfig[CORSFilter] = mustAny(t.cors(path+".cors", r.CORS))
	}
	if r.RateLimit != nil {
		out.TypedPerFilterConfig[LocalRateLimitFilter] = mustAny(t.rateLimit(path+".rate_limit", r.RateLimit))
	}
	if r.Dubbo != nil {
		out.TypedPerFilterConfig[DubboFilter] = mustAny(t.dubboRoute(path+".dubbo", r.Dubbo))
	}
	switch strings.ToLower(r.Priority) {
	case "", "default":
	case "high":
		ra.Priority = corev3.RoutingPriority_HIGH
	default:
		t.errf(path+".priority", "want default or high, got %q", r.Priority)
	}
	if r.IdleTimeout != nil {
		ra.IdleTimeout = durationpb.New(r.IdleTimeout.Duration)
	}
	if r.GRPCTimeoutMax != nil {
		ra.MaxStreamDuration = &routev3.RouteAction_MaxStreamDuration{GrpcTimeoutHeaderMax: durationpb.New(r.GRPCTimeoutMax.Duration)}
	}
	out.Action = &routev3.Route_Route{Route: ra}
	return out
}

func (t *translator) dubboRoute(path string, d *DubboRouteConfig) *dubbov1.DubboRoute {
	out := &dubbov1.DubboRoute{
		Interface: d.Interface, Version: d.Version, Group: d.Group, Method: d.Method, PathTemplate: d.PathTemplate,
		KeepClass: d.KeepClass, LongsAsStrings: d.LongsAsStr, ExceptionStatus: d.Exceptions, Types: d.Types,
		HashArguments: d.HashArgs,
	}
	if d.ProtoDescriptor != "" {
		b, err := os.ReadFile(t.file(d.ProtoDescriptor))
		if err != nil {
			t.errf(path+".proto_descriptor", "%v", err)
		} else {
			out.ProtoDescriptorBin = b
		}
	}
	if len(d.Types) > 0 && len(d.Params) > 0 {
		t.errf(path+".types", "give the types in params when the route maps them")
	}
	for i, p := range d.Params {
		out.Params = append(out.Params, &dubbov1.Param{From: p.From, Type: p.Type, Optional: p.Optional})
		if _, err := argsource.Parse(p.From); err != nil {
			t.errf(fmt.Sprintf("%s.params[%d].from", path, i), "%v", err)
		}
	}
	for k, s := range d.Exceptions {
		if s < 200 || s > 599 {
			t.errf(path+".exception_status."+k, "want an HTTP status from 200 to 599, got %d", s)
		}
	}
	if a := d.Attachments; a != nil {
		out.Attachments = &dubbov1.Attachments{Headers: a.Headers, HeaderPrefix: a.HeaderPrefix}
	}
	return out
}

func (t *translator) rateLimit(path string, r *RateLimitConfig) *ratelimitv3.LocalRateLimit {
	if r.Requests == 0 {
		t.errf(path+".requests", "must be positive")
	}
	if r.Per.Duration < time.Millisecond {
		t.errf(path+".per", "must be at least 1ms")
	}
	burst := r.Burst
	if burst == 0 {
		burst = r.Requests
	}
	all := &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED}}
	return &ratelimitv3.LocalRateLimit{
		StatPrefix: "local_rate_limit",
		TokenBucket: &typev3.TokenBucket{
			MaxTokens:     burst,
			TokensPerFill: wrapperspb.UInt32(r.Requests),
			FillInterval:  durationpb.New(r.Per.Duration),
		},
		FilterEnabled:  all,
		FilterEnforced: all,
	}
}

func (t *translator) retryPolicy(path string, r *RetryConfig) *routev3.RetryPolicy {
	if _, err := retryon.Parse(r.RetryOn); err != nil || strings.TrimSpace(r.RetryOn) == "" {
		if err == nil {
			err = errors.New("must list at least one condition")
		}
		t.errf(path+".retry_on", "%v", err)
	}
	out := &routev3.RetryPolicy{RetryOn: r.RetryOn, RetriableStatusCodes: r.RetriableStatusCodes}
	if r.NumRetries != nil {
		out.NumRetries = wrapperspb.UInt32(*r.NumRetries)
	}
	if r.PerTryTimeout != nil {
		out.PerTryTimeout = durationpb.New(r.PerTryTimeout.Duration)
	}
	if b := r.Backoff; b != nil {
		if b.Base.Duration <= 0 {
			t.errf(path+".backoff.base", "must be positive")
		}
		out.RetryBackOff = &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(b.Base.Duration)}
		if b.Max != nil {
			out.RetryBackOff.MaxInterval = durationpb.New(b.Max.Duration)
		}
	}
	if r.SkipPreviousHosts {
		out.RetryHostPredicate = []*routev3.RetryPolicy_RetryHostPredicate{{Name: "envoy.retry_host_predicates.previous_hosts"}}
	}
	return out
}

func (t *translator) redirect(path string, r *RedirectConfig) *routev3.RedirectAction {
	out := &routev3.RedirectAction{HostRedirect: r.Host, PortRedirect: r.Port, StripQuery: r.StripQuery}
	if r.Scheme != "" {
		out.SchemeRewriteSpecifier = &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: r.Scheme}
	}
	switch {
	case r.Path != "" && r.PrefixRewrite != "":
		t.errf(path, "give either path or prefix_rewrite, not both")
	case r.Path != "":
		out.PathRewriteSpecifier = &routev3.RedirectAction_PathRedirect{PathRedirect: r.Path}
	case r.PrefixRewrite != "":
		out.PathRewriteSpecifier = &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: r.PrefixRewrite}
	}
	codes := map[uint32]routev3.RedirectAction_RedirectResponseCode{
		0:   routev3.RedirectAction_MOVED_PERMANENTLY,
		301: routev3.RedirectAction_MOVED_PERMANENTLY,
		302: routev3.RedirectAction_FOUND,
		303: routev3.RedirectAction_SEE_OTHER,
		307: routev3.RedirectAction_TEMPORARY_REDIRECT,
		308: routev3.RedirectAction_PERMANENT_REDIRECT,
	}
	code, ok := codes[r.Code]
	if !ok {
		t.errf(path+".code", "want 301, 302, 303, 307 or 308, got %d", r.Code)
	}
	out.ResponseCode = code
	return out
}

func (t *translator) match(path string, m *MatchConfig) *routev3.RouteMatch {
	out := &routev3.RouteMatch{}
	switch {
	case m.Path != "":
		out.PathSpecifier = &routev3.RouteMatch_Path{Path: m.Path}
	case m.Regex != "":
		if _, err := regexp.Compile(m.Regex); err != nil {
			t.errf(path+".regex", "%v", err)
		}
		out.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: m.Regex}}
	case m.Prefix != "":
		out.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: m.Prefix}
	default:
		out.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: "/"}
	}
	if (m.Path != "") && (m.Regex != "" || m.Prefix != "") || (m.Regex != "" && m.Prefix != "") {
		t.errf(path, "give at most one of prefix, path, regex")
	}
	if m.CaseInsensitive {
		out.CaseSensitive = wrapperspb.Bool(false)
	}
	if m.GRPC {
		out.Grpc = &routev3.RouteMatch_GrpcRouteMatchOptions{}
	}
	for i := range m.Headers {
		h := &m.Headers[i]
		p := fmt.Sprintf("%s.headers[%d]", path, i)
		hm := &routev3.HeaderMatcher{Name: strings.ToLower(h.Name), InvertMatch: h.Invert}
		if h.Name == "" {
			t.errf(p+".name", "must not be empty")
		}
		if sm := t.stringMatch(p, h); sm != nil {
			hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: sm}
		} else {
			present := h.Present == nil || *h.Present
			hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: present}
		}
		out.Headers = append(out.Headers, hm)
	}
	for i := range m.Query {
		q := &m.Query[i]
		p := fmt.Sprintf("%s.query[%d]", path, i)
		if q.Name == "" {
			t.errf(p+".name", "must not be empty")
		}
		if q.Invert {
			t.errf(p+".invert", "is not supported on query parameters (Envoy has no such field)")
		}
		qm := &routev3.QueryParameterMatcher{Name: q.Name}
		if sm := t.stringMatch(p, q); sm != nil {
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_StringMatch{StringMatch: sm}
		} else {
			if q.Present != nil && !*q.Present {
				t.errf(p+".present", "query parameters can only be required, not forbidden")
			}
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}
		}
		out.QueryParameters = append(out.QueryParameters, qm)
	}
	return out
}

// stringMatch translates the value condition of h, or returns nil when h
// only asks for presence.
func (t *translator) stringMatch(path string, h *HeaderMatchConfig) *matcherv3.StringMatcher {
	sm := &matcherv3.StringMatcher{IgnoreCase: h.IgnoreCase}
	n := 0
	if h.Exact != nil {
		n++
		sm.MatchPattern = &matcherv3.StringMatcher_Exact{Exact: *h.Exact}
	}
	if h.Prefix != "" {
		n++
		sm.MatchPattern = &matcherv3.StringMatcher_Prefix{Prefix: h.Prefix}
	}
	if h.Suffix != "" {
		n++
		sm.MatchPattern = &matcherv3.StringMatcher_Suffix{Suffix: h.Suffix}
	}
	if h.Contains != "" {
		n++
		sm.MatchPattern = &matcherv3.StringMatcher_Contains{Contains: h.Contains}
	}
	if h.Regex != "" {
		n++
		if _, err := regexp.Compile(h.Regex); err != nil {
			t.errf(path+".regex", "%v", err)
		}
		sm.MatchPattern = &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: h.Regex}}
	}
	if n > 1 || (n == 1 && h.Present != nil) {
		t.errf(path, "give at most one of exact, prefix, suffix, contains, regex, present")
	}
	if n == 0 {
		return nil
	}
	return sm
}
