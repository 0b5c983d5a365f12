package jwtauthn

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"

	"github.com/meshgate/meshgate/server/router"
)

// provider is a compiled JwtProvider.
type provider struct {
	name            string
	issuer          string
	aud             audiences
	subjects        *router.StringMatcher
	maxExp          time.Duration // with checkLifetime: the longest remaining lifetime (0: any, exp required)
	checkLifetime   bool
	forward         bool
	payloadHeader   string // canonical; "" for none
	padPayload      bool
	payloadKey      string // payload_in_metadata
	headerKey       string // header_in_metadata
	failedKey       string // failed_status_in_metadata
	spaceDelimited  []string
	skew            uint64
	claims          []claimHeader
	clearRouteCache bool
	fromHeaders     []headerLoc
	fromParams      []string
	fromCookies     []string

	local  *keySet     // local_jwks (nil with remote_jwks)
	remote *remoteJWKS // remote_jwks

	ext *extractor // this provider's locations
}

type headerLoc struct{ name, prefix string }

// claimHeader is one claim_to_headers entry: the claim's path in the payload
// and the header it is copied to.
type claimHeader struct {
	header string // canonical
	path   []string
}

// keys are the provider's verification keys, fetched when remote; a
// failure is the status to answer with.
func (p *provider) keys(c *vctx) (*keySet, status) {
	if p.remote != nil {
		return p.remote.get(c.r.Context())
	}
	if p.local == nil {
		return nil, jwksNoValidKeys
	}
	if p.local.status != statusOK {
		// Envoy drops an invalid local JWKS (with a warning): no keys.
		return nil, jwksNoValidKeys
	}
	return p.local, statusOK
}

// compileProvider compiles one provider; remote JWKS are set up by the
// caller (they need the build's clusters).
func compileProvider(name string, p *jwtv3.JwtProvider) (*provider, []string, error) {
	var notes []string
	out := &provider{
		name:            name,
		issuer:          p.GetIssuer(),
		aud:             newAudiences(p.GetAudiences()),
		forward:         p.GetForward(),
		padPayload:      p.GetPadForwardPayloadHeader(),
		payloadKey:      p.GetPayloadInMetadata(),
		headerKey:       p.GetHeaderInMetadata(),
		failedKey:       p.GetFailedStatusInMetadata(),
		spaceDelimited:  p.GetNormalizePayloadInMetadata().GetSpaceDelimitedClaims(),
		skew:            uint64(p.GetClockSkewSeconds()),
		clearRouteCache: p.GetClearRouteCache(),
		fromParams:      p.GetFromParams(),
		fromCookies:     p.GetFromCookies(),
	}
	if out.skew == 0 {
		out.skew = 60 // Envoy's default
	}
	if h := p.GetForwardPayloadHeader(); h != "" {
		if !validHeaderName(h) {
			return nil, nil, fmt.Errorf("forward_payload_header: %q is not a header name", h)
		}
		out.payloadHeader = http.CanonicalHeaderKey(h)
	}
	for i, h := range p.GetFromHeaders() {
		if !validHeaderName(h.GetName()) {
			return nil, nil, fmt.Errorf("from_headers[%d].name: %q is not a header name", i, h.GetName())
		}
		out.fromHeaders = append(out.fromHeaders, headerLoc{name: h.GetName(), prefix: h.GetValuePrefix()})
	}
	if s := p.GetSubjects(); s != nil {
		m, err := router.CompileStringMatcher(s)
		if err != nil {
			return nil, nil, fmt.Errorf("subjects: %w", err)
		}
		out.subjects = &m
	}
	if p.GetRequireExpiration() {
		out.checkLifetime = true
	}
	if ml := p.GetMaxLifetime(); ml != nil {
		if err := ml.CheckValid(); err != nil {
			return nil, nil, fmt.Errorf("max_lifetime: %w", err)
		}
		out.checkLifetime, out.maxExp = true, ml.AsDuration()
		if out.maxExp <= 0 {
			return nil, nil, errors.New("max_lifetime: must be above 0")
		}
	}
	for i, ch := range p.GetClaimToHeaders() {
		c := claimHeader{header: http.CanonicalHeaderKey(ch.GetHeaderName())}
		if !validHeaderName(ch.GetHeaderName()) {
			return nil, nil, fmt.Errorf("claim_to_headers[%d].header_name: %q is not a header name", i, ch.GetHeaderName())
		}
		switch {
		case ch.GetClaimName() != "" && len(ch.GetClaimPath()) > 0:
			return nil, nil, fmt.Errorf("claim_to_headers[%d]: claim_name and claim_path are both set; set one", i)
		case ch.GetClaimName() != "":
			c.path = strings.Split(ch.GetClaimName(), ".")
		case len(ch.GetClaimPath()) > 0:
			for _, seg := range ch.GetClaimPath() {
				c.path = append(c.path, seg.GetKey())
			}
		default:
			return nil, nil, fmt.Errorf("claim_to_headers[%d]: needs claim_name or claim_path", i)
		}
		out.claims = append(out.claims, c)
	}
	if p.GetJwtCacheConfig() != nil {
		notes = append(notes, fmt.Sprintf("providers[%s].jwt_cache_config: no cache of verified tokens; every token is verified", name))
	}
	switch src := p.GetJwksSourceSpecifier().(type) {
	case *jwtv3.JwtProvider_LocalJwks:
		data, err := readDataSource(src.LocalJwks)
		if err != nil {
			return nil, nil, fmt.Errorf("local_jwks: %w", err)
		}
		out.local = parseJWKS(data)
		if out.local.status != statusOK {
			// As Envoy: the config loads, every token of the provider fails.
			notes = append(notes, fmt.Sprintf("providers[%s].local_jwks: %s: its tokens all fail", name, out.local.status))
		}
	case *jwtv3.JwtProvider_RemoteJwks:
		// Set up by the caller.
	default:
		notes = append(notes, fmt.Sprintf("providers[%s]: no local_jwks or remote_jwks: its tokens all fail", name))
	}
	return out, notes, nil
}

// readDataSource reads local_jwks: inline_string, inline_bytes, filename
// (read once, as Envoy) or environment_variable.
func readDataSource(ds *corev3.DataSource) ([]byte, error) {
	if ds.GetWatchedDirectory() != nil {
		return nil, errors.New("watched_directory: not supported (the file is read once)")
	}
	switch s := ds.GetSpecifier().(type) {
	case *corev3.DataSource_InlineString:
		return []byte(s.InlineString), nil
	case *corev3.DataSource_InlineBytes:
		return s.InlineBytes, nil
	case *corev3.DataSource_Filename:
		return os.ReadFile(s.Filename)
	case *corev3.DataSource_EnvironmentVariable:
		v, ok := os.LookupEnv(s.EnvironmentVariable)
		if !ok {
			return nil, fmt.Errorf("environment variable %q is not set", s.EnvironmentVariable)
		}
		return []byte(v), nil
	case nil:
		return nil, nil
	default:
		return nil, fmt.Errorf("unsupported data source %T", s)
	}
}

// validHeaderName reports whether s is an HTTP header field name (a token).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// compiler turns requirements into verifiers.
type compiler struct {
	providers map[string]*provider
	allExt    *extractor // every provider's locations (allow_missing*)
}

func (c *compiler) requirement(req *jwtv3.JwtRequirement) (verifier, error) {
	if req == nil {
		return nil, nil
	}
	switch rt := req.GetRequiresType().(type) {
	case nil:
		return allowAll{}, nil
	case *jwtv3.JwtRequirement_ProviderName:
		p, ok := c.providers[rt.ProviderName]
		if !ok {
			return nil, fmt.Errorf("provider_name: required provider ['%s'] is not configured", rt.ProviderName)
		}
		return &providerVerifier{p: p}, nil
	case *jwtv3.JwtRequirement_ProviderAndAudiences:
		name := rt.ProviderAndAudiences.GetProviderName()
		p, ok := c.providers[name]
		if !ok {
			return nil, fmt.Errorf("provider_and_audiences: required provider ['%s'] is not configured", name)
		}
		v := &providerVerifier{p: p}
		if auds := rt.ProviderAndAudiences.GetAudiences(); len(auds) > 0 {
			a := newAudiences(auds)
			v.aud = &a
		}
		return v, nil
	case *jwtv3.JwtRequirement_RequiresAny:
		or := &anyVerifier{}
		for i, r := range rt.RequiresAny.GetRequirements() {
			switch r.GetRequiresType().(type) {
			case *jwtv3.JwtRequirement_AllowMissing:
				or.allowMissing = true
			case *jwtv3.JwtRequirement_AllowMissingOrFailed:
				or.allowFailed = true
			default:
				v, err := c.requirement(r)
				if err != nil {
					return nil, fmt.Errorf("requires_any[%d].%w", i, err)
				}
				or.children = append(or.children, v)
			}
		}
		if len(or.children) == 0 && (or.allowMissing || or.allowFailed) {
			or.children = append(or.children, &allowVerifier{ext: c.allExt, failed: or.allowFailed})
		}
		return or, nil
	case *jwtv3.JwtRequirement_RequiresAll:
		all := &allVerifier{}
		for i, r := range rt.RequiresAll.GetRequirements() {
			v, err := c.requirement(r)
			if err != nil {
				return nil, fmt.Errorf("requires_all[%d].%w", i, err)
			}
			all.children = append(all.children, v)
		}
		return all, nil
	case *jwtv3.JwtRequirement_AllowMissing:
		return &allowVerifier{ext: c.allExt}, nil
	case *jwtv3.JwtRequirement_AllowMissingOrFailed:
		return &allowVerifier{ext: c.allExt, failed: true}, nil
	case *jwtv3.JwtRequirement_ExtractOnlyWithoutValidation:
		return nil, errors.New("extract_only_without_validation: not supported (it forwards claims of unverified tokens)")
	default:
		return nil, fmt.Errorf("unsupported requirement %T", rt)
	}
}

// rule is a compiled RequirementRule: its match, and what it requires
// (nil: nothing).
type rule struct {
	match ruleMatch
	v     verifier
}

type matchKind uint8

const (
	matchPrefix matchKind = iota
	matchPath
	matchRegex
	matchSeparatedPrefix
)

// ruleMatch is a compiled RouteMatch, as Envoy's jwt_authn matcher reads
// it: prefix against the :path with its query, path and safe_regex against
// the path without it; headers, query parameters and grpc as routes.
type ruleMatch struct {
	kind    matchKind
	value   string
	fold    bool
	re      *regexp.Regexp
	grpc    bool
	headers []router.HeaderMatcher
	query   []queryMatch
}

type queryMatch struct {
	name    string
	present bool
	str     router.StringMatcher
}

func compileMatch(m *routev3.RouteMatch) (ruleMatch, error) {
	var out ruleMatch
	if m == nil {
		return out, errors.New("match: required")
	}
	out.fold = m.GetCaseSensitive() != nil && !m.GetCaseSensitive().GetValue()
	switch p := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		out.kind, out.value = matchPrefix, p.Prefix
	case *routev3.RouteMatch_Path:
		out.kind, out.value = matchPath, p.Path
	case *routev3.RouteMatch_PathSeparatedPrefix:
		out.kind, out.value = matchSeparatedPrefix, p.PathSeparatedPrefix
	case *routev3.RouteMatch_SafeRegex:
		re, err := regexp.Compile(`^(?:` + p.SafeRegex.GetRegex() + `)$`)
		if err != nil {
			return out, fmt.Errorf("match.safe_regex: %w", err)
		}
		out.kind, out.re = matchRegex, re
	default:
		return out, fmt.Errorf("match: unsupported path specifier %T (want prefix, path, safe_regex or path_separated_prefix)", p)
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
		hm, err := router.CompileHeaderMatcher(h)
		if err != nil {
			return out, fmt.Errorf("match.headers[%d]: %w", i, err)
		}
		out.headers = append(out.headers, hm)
	}
	for i, q := range m.GetQueryParameters() {
		qm := queryMatch{name: q.GetName()}
		switch s := q.GetQueryParameterMatchSpecifier().(type) {
		case *routev3.QueryParameterMatcher_StringMatch:
			sm, err := router.CompileStringMatcher(s.StringMatch)
			if err != nil {
				return out, fmt.Errorf("match.query_parameters[%d]: %w", i, err)
			}
			qm.str = sm
		default:
			qm.present = true
		}
		out.query = append(out.query, qm)
	}
	return out, nil
}

func (m *ruleMatch) matches(r *http.Request) bool {
	full := requestURI(r)
	path, query, _ := strings.Cut(full, "?")
	switch m.kind {
	case matchPrefix:
		if !hasPrefix(full, m.value, m.fold) {
			return false
		}
	case matchPath:
		if m.fold && !strings.EqualFold(path, m.value) || !m.fold && path != m.value {
			return false
		}
	case matchSeparatedPrefix:
		if !hasPrefix(path, m.value, m.fold) || len(path) > len(m.value) && path[len(m.value)] != '/' {
			return false
		}
	case matchRegex:
		if !m.re.MatchString(path) {
			return false
		}
	}
	if m.grpc && !router.IsGRPC(r) {
		return false
	}
	for i := range m.headers {
		if !m.headers[i].Match(r) {
			return false
		}
	}
	if len(m.query) > 0 {
		var pairs []string
		if query != "" {
			pairs = strings.Split(query, "&")
		}
		for i := range m.query {
			v, ok := firstParam(pairs, m.query[i].name)
			if !ok || !m.query[i].present && !m.query[i].str.Match(v) {
				return false
			}
		}
	}
	return true
}

func hasPrefix(s, prefix string, fold bool) bool {
	if fold {
		return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
	}
	return strings.HasPrefix(s, prefix)
}

// sortedProviders lists the providers by name (Envoy's map order is not
// defined; this one is, for findByIssuer's "first provider").
func sortedProviders(m map[string]*provider) []*provider {
	out := make([]*provider, 0, len(m))
	for _, p := range m {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}
