// Package rbac is Envoy's envoy.filters.http.rbac filter: role based access
// control by policies of permissions (what is asked: headers, path, ports,
// the server name, dynamic metadata) and principals (who asks: the TLS peer's
// certificate, the peer address, headers, dynamic metadata such as the JWT
// payload jwt_authn records), what an Istio AuthorizationPolicy becomes.
//
// The enforced rules ALLOW (a request passes iff a policy matches), DENY (it
// is refused iff one does) or LOG (it always passes; the access_log_hint is
// recorded); shadow rules are evaluated and recorded, never enforced. A
// route's RBACPerRoute replaces the listener's config for the route, and
// turns the filter off when it carries no rbac.
//
// Everything is compiled when the filter is built: a request costs the
// matching alone. What meshgate does not implement (CEL conditions, the
// matcher API, URI templates, custom extensions, ...) refuses the config
// rather than leaving a policy out: an access control filter never fails
// open.
package rbac

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshgate/meshgate/server/httpfilter"
	"github.com/meshgate/meshgate/server/router"
	"github.com/meshgate/meshgate/server/wire"
)

// Name is the filter's name, as Envoy spells it. It is also the namespace
// of the dynamic metadata the filter records (the shadow rules' result), as
// in Envoy, whatever the filter is called in the chain.
const Name = "envoy.filters.http.rbac"

// The dynamic metadata the filter records, as Envoy names it. The shadow
// keys take the filter's shadow_rules_stat_prefix before them (Istio's
// "istio_dry_run_allow_shadow_engine_result").
const (
	// ShadowEffectivePolicyID is the name of the shadow policy that matched
	// (absent when none did).
	ShadowEffectivePolicyID = "shadow_effective_policy_id"
	// ShadowEngineResult is the shadow rules' decision: ShadowAllowed or
	// ShadowDenied.
	ShadowEngineResult = "shadow_engine_result"
	ShadowAllowed      = "allowed"
	ShadowDenied       = "denied"

	// CommonNamespace and AccessLogHint are where LOG rules record whether
	// the request should be logged (a bool): Envoy's shared namespace, not
	// the filter's, so that any access log can read it.
	CommonNamespace = "envoy.common"
	AccessLogHint   = "access_log_hint"
)

// deniedBody is Envoy's local reply to a denied request.
const deniedBody = "RBAC: access denied"

func init() {
	httpfilter.Register(&httpfilter.Factory{
		Name:         Name,
		Config:       &rbacfilterv3.RBAC{},
		PerRouteType: httpfilter.TypeURL(&rbacfilterv3.RBACPerRoute{}),
		PerRoute:     compilePerRoute,
		Build:        build,
	})
}

func build(cfg proto.Message, b httpfilter.Build) (httpfilter.Filter, []string, error) {
	var c *rbacfilterv3.RBAC
	switch v := cfg.(type) {
	case nil:
		// No typed_config: Envoy's RBAC with neither rules nor matcher,
		// which enforces nothing.
		c = &rbacfilterv3.RBAC{}
	case *rbacfilterv3.RBAC:
		c = v
	default:
		return nil, nil, fmt.Errorf("typed_config: %T is not an envoy.extensions.filters.http.rbac.v3.RBAC", cfg)
	}
	if err := c.ValidateAll(); err != nil {
		return nil, nil, err
	}
	own, err := compileConfig(c)
	if err != nil {
		return nil, nil, err
	}
	log := b.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	prefix := c.GetShadowRulesStatPrefix()
	f := &filter{
		name:         b.Name,
		own:          own,
		shadowPolicy: prefix + ShadowEffectivePolicyID,
		shadowResult: prefix + ShadowEngineResult,
		log:          log,
	}
	return f, notes(c), nil
}

// notes says what of a config is accepted but not done: the fields that
// only name or split stats (meshgate keeps no RBAC stats), and audit
// logging. None changes a decision.
func notes(c *rbacfilterv3.RBAC) []string {
	var out []string
	if c.GetRulesStatPrefix() != "" || c.GetTrackPerRuleStats() {
		out = append(out, "rules_stat_prefix, track_per_rule_stats: RBAC stats are not kept")
	}
	if c.GetRules().GetAuditLoggingOptions() != nil || c.GetShadowRules().GetAuditLoggingOptions() != nil {
		out = append(out, "audit_logging_options: RBAC audit logs are not written")
	}
	return out
}

// config is one compiled RBAC (the listener's, or a route's): either engine
// may be nil, for no enforcement or no shadow rules.
type config struct {
	rules  *engine
	shadow *engine
}

// compileConfig compiles an RBAC filter config, refusing what is not
// implemented. Accepted without effect: rules_stat_prefix and
// track_per_rule_stats (stats meshgate does not keep), audit_logging_options
// (no audit log is written; decisions are unchanged), and
// shadow_rules_stat_prefix, which prefixes the shadow metadata keys (the
// listener's does, for its routes too, as in Envoy).
func compileConfig(c *rbacfilterv3.RBAC) (config, error) {
	var out config
	if c.GetMatcher() != nil {
		return out, fmt.Errorf("matcher: the RBAC matcher API is not supported; use rules")
	}
	if c.GetShadowMatcher() != nil {
		return out, fmt.Errorf("shadow_matcher: the RBAC matcher API is not supported; use shadow_rules")
	}
	var err error
	if c.GetRules() != nil {
		if out.rules, err = compileEngine(c.GetRules(), "rules"); err != nil {
			return out, err
		}
	}
	if c.GetShadowRules() != nil {
		if out.shadow, err = compileEngine(c.GetShadowRules(), "shadow_rules"); err != nil {
			return out, err
		}
	}
	return out, nil
}

// perRoute is a route's RBACPerRoute: its config replaces the listener's;
// one with no rbac (or an empty one) enforces and records nothing.
type perRoute struct {
	cfg config
}

func compilePerRoute(a *anypb.Any) (any, error) {
	var pr rbacfilterv3.RBACPerRoute
	if err := a.UnmarshalTo(&pr); err != nil {
		return nil, err
	}
	if err := pr.ValidateAll(); err != nil {
		return nil, err
	}
	if pr.GetRbac() == nil {
		// Envoy: "If absent, RBAC policy will be disabled for this route."
		return &perRoute{}, nil
	}
	cfg, err := compileConfig(pr.GetRbac())
	if err != nil {
		return nil, fmt.Errorf("rbac: %w", err)
	}
	return &perRoute{cfg: cfg}, nil
}

type filter struct {
	name string // its name in the chain: the key of its per-route configs
	own  config
	// shadowPolicy and shadowResult are the shadow metadata keys, with the
	// listener's shadow_rules_stat_prefix.
	shadowPolicy, shadowResult string
	log                        *slog.Logger
}

var (
	_ httpfilter.Filter          = (*filter)(nil)
	_ httpfilter.GRPCPassThrough = (*filter)(nil)
)

// PassesGRPCThrough evaluates the policy on a plain gRPC request as Decode
// would, and says yes only when Decode would let it by and record nothing:
// the policy allows it and there are no shadow rules and no LOG action
// (both set metadata). A request the policy denies is not let by: it takes
// the filter chain, where Decode denies it. What the policy reads is what
// Decode reads: the same request (headers, path, TLS state, remote and
// local addresses), the route's per-route config, and no dynamic metadata
// (the filters of a chain whose calls are relayed set none).
func (f *filter) PassesGRPCThrough(r *http.Request, rt *httpfilter.Route) bool {
	cfg := &f.own
	if rt != nil {
		if pr, ok := rt.PerFilter[f.name].(*perRoute); ok {
			cfg = &pr.cfg
		}
	}
	if cfg.shadow != nil {
		return false
	}
	e := cfg.rules
	if e == nil {
		return true
	}
	if e.log {
		return false
	}
	_, matched := e.match(&request{s: &httpfilter.Stream{R: r}})
	return e.allows(matched)
}

func (f *filter) Decode(s *httpfilter.Stream) httpfilter.Status {
	cfg := &f.own
	if pr, ok := s.PerFilter(f.name).(*perRoute); ok {
		cfg = &pr.cfg
	}
	if cfg.rules == nil && cfg.shadow == nil {
		return httpfilter.Continue
	}
	q := request{s: s}
	if e := cfg.shadow; e != nil {
		id, matched := e.match(&q)
		result := ShadowAllowed
		if !e.allows(matched) {
			result = ShadowDenied
		}
		if matched {
			s.SetMetadata(Name, f.shadowPolicy, id)
		}
		s.SetMetadata(Name, f.shadowResult, result)
		if f.log.Enabled(s.R.Context(), slog.LevelDebug) {
			f.log.DebugContext(s.R.Context(), "rbac: shadow rules", "result", result, "policy", id, "path", s.R.URL.Path)
		}
	}
	e := cfg.rules
	if e == nil {
		return httpfilter.Continue
	}
	id, matched := e.match(&q)
	if e.log {
		// Envoy's LOG action: never denies; the hint is set either way.
		s.SetMetadata(CommonNamespace, AccessLogHint, matched)
		return httpfilter.Continue
	}
	if e.allows(matched) {
		return httpfilter.Continue
	}
	f.debug(s.R.Context(), "rbac: denied", id, s.R)
	deny(s)
	return httpfilter.Stop
}

func (f *filter) debug(ctx context.Context, msg, policy string, r *http.Request) {
	if f.log.Enabled(ctx, slog.LevelDebug) {
		f.log.DebugContext(ctx, msg, "policy", policy, "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
	}
}

// deny answers as Envoy does: 403 with a plain text body, or to a gRPC
// caller PERMISSION_DENIED, both saying "RBAC: access denied".
func deny(s *httpfilter.Stream) {
	if router.IsGRPC(s.R) {
		wire.WriteGRPCStatus(s.W, codes.PermissionDenied, deniedBody)
		return
	}
	h := s.W.Header()
	h.Set("Content-Type", "text/plain")
	h.Set("Content-Length", strconv.Itoa(len(deniedBody)))
	s.W.WriteHeader(http.StatusForbidden)
	_, _ = io.WriteString(s.W, deniedBody)
}
