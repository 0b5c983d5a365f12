// Package jwtauthn is Envoy's envoy.filters.http.jwt_authn filter: it
// verifies the JSON Web Tokens of requests against providers (issuer,
// audiences, keys from a local JWKS or fetched from a cluster) as rules
// by route match, or a route's PerRouteConfig, require; it rejects a
// request whose tokens fail (401, 403 for an audience not allowed) with
// Envoy's messages, and forwards what a verified token says: its payload in
// the dynamic metadata (namespace envoy.filters.http.jwt_authn, what RBAC
// reads) and in headers.
//
// It is what an Istio RequestAuthentication becomes: a rule on "/"
// requiring any of the providers or allow_missing, so that a request
// without a token passes (for the authorization policy to judge) while one
// with a bad token does not.
//
// What of the config is not done is refused when it could let a request
// through that Envoy would stop; the rest (stats, the cache of verified
// tokens) is accepted with a note.
package jwtauthn

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshgate/meshgate/server/httpfilter"
	"github.com/meshgate/meshgate/server/router"
	"github.com/meshgate/meshgate/server/wire"
)

// Name is the filter's name, as Envoy spells it.
const Name = "envoy.filters.http.jwt_authn"

// MetadataNamespace is the dynamic metadata namespace of verified payloads
// (Envoy's: the filter's canonical name, whatever its name in the chain).
const MetadataNamespace = "envoy.filters.http.jwt_authn"

// clock is the filter's time source, read when a filter is built (tests
// replace it).
var clock = time.Now

func init() {
	httpfilter.Register(&httpfilter.Factory{
		Name:         Name,
		Config:       &jwtv3.JwtAuthentication{},
		PerRouteType: httpfilter.TypeURL(&jwtv3.PerRouteConfig{}),
		PerRoute:     compilePerRoute,
		Build:        build,
	})
}

// perRoute is a route's PerRouteConfig: off, or a requirement by name.
type perRoute struct {
	disabled bool
	name     string
}

func compilePerRoute(a *anypb.Any) (any, error) {
	var pr jwtv3.PerRouteConfig
	if err := a.UnmarshalTo(&pr); err != nil {
		return nil, err
	}
	if err := pr.ValidateAll(); err != nil {
		return nil, err
	}
	switch s := pr.GetRequirementSpecifier().(type) {
	case *jwtv3.PerRouteConfig_Disabled:
		return &perRoute{disabled: s.Disabled}, nil
	case *jwtv3.PerRouteConfig_RequirementName:
		return &perRoute{name: s.RequirementName}, nil
	}
	return nil, errors.New("needs disabled or requirement_name")
}

// filter is a compiled JwtAuthentication.
type filter struct {
	name       string // its name in the chain: the key of its per-route configs
	providers  []*provider
	issuers    map[string]*provider // the first provider of each issuer
	rules      []rule
	byName     map[string]verifier // requirement_map
	allNames   string
	bypassCORS bool
	strip      bool
	sanitize   []string // headers only a verified token may set
	now        func() time.Time
}

func build(cfg proto.Message, b httpfilter.Build) (httpfilter.Filter, []string, error) {
	ja, _ := cfg.(*jwtv3.JwtAuthentication)
	if ja == nil {
		ja = &jwtv3.JwtAuthentication{}
	}
	if err := ja.ValidateAll(); err != nil {
		return nil, nil, err
	}
	if ja.GetFilterStateRules() != nil {
		return nil, nil, errors.New("filter_state_rules: not supported (no filter state)")
	}
	f := &filter{name: b.Name, issuers: map[string]*provider{}, byName: map[string]verifier{},
		bypassCORS: ja.GetBypassCorsPreflight(), strip: ja.GetStripFailureResponse(), now: clock}
	var notes []string
	if ja.GetStatPrefix() != "" {
		notes = append(notes, "stat_prefix: the filter keeps no stats")
	}
	provs := map[string]*provider{}
	var remotes []*remoteJWKS
	for name, pc := range ja.GetProviders() {
		p, more, err := compileProvider(name, pc)
		if err != nil {
			return nil, nil, fmt.Errorf("providers[%s].%w", name, err)
		}
		notes = append(notes, more...)
		if rj := pc.GetRemoteJwks(); rj != nil {
			if p.remote, more, err = compileRemote(name, rj, b, f.now); err != nil {
				return nil, nil, err
			}
			notes = append(notes, more...)
			if p.remote.async {
				remotes = append(remotes, p.remote)
			}
		}
		p.ext = newExtractor([]*provider{p})
		provs[name] = p
	}
	f.providers = sortedProviders(provs)
	seen := map[string]bool{}
	for _, p := range f.providers {
		if _, ok := f.issuers[p.issuer]; !ok {
			f.issuers[p.issuer] = p
		}
		for _, h := range append([]string{p.payloadHeader}, claimHeaders(p)...) {
			if h != "" && !seen[h] {
				seen[h] = true
				f.sanitize = append(f.sanitize, h)
			}
		}
	}
	sort.Strings(f.sanitize)
	sort.Strings(notes)
	c := &compiler{providers: provs, allExt: newExtractor(f.providers)}
	var names []string
	for name, req := range ja.GetRequirementMap() {
		v, err := c.requirement(req)
		if err != nil {
			return nil, nil, fmt.Errorf("requirement_map[%s].%w", name, err)
		}
		if v == nil {
			v = allowAll{}
		}
		f.byName[name] = v
		names = append(names, name)
	}
	sort.Strings(names)
	f.allNames = strings.Join(names, ",")
	for i, rc := range ja.GetRules() {
		m, err := compileMatch(rc.GetMatch())
		if err != nil {
			return nil, nil, fmt.Errorf("rules[%d].%w", i, err)
		}
		r := rule{match: m}
		switch rt := rc.GetRequirementType().(type) {
		case *jwtv3.RequirementRule_Requires:
			if r.v, err = c.requirement(rt.Requires); err != nil {
				return nil, nil, fmt.Errorf("rules[%d].requires.%w", i, err)
			}
		case *jwtv3.RequirementRule_RequirementName:
			v, ok := f.byName[rt.RequirementName]
			if !ok {
				return nil, nil, fmt.Errorf("rules[%d]: wrong requirement_name: %s. It should be one of [%s]", i, rt.RequirementName, f.allNames)
			}
			r.v = v
		}
		f.rules = append(f.rules, r)
	}
	for _, rj := range remotes {
		rj.prefetch()
	}
	return f, notes, nil
}

func claimHeaders(p *provider) []string {
	out := make([]string, 0, len(p.claims))
	for _, c := range p.claims {
		out = append(out, c.header)
	}
	return out
}

// byIssuer is Envoy's findByIssuer: the provider of the issuer, else (for a
// token with an issuer) the first provider without one.
func (f *filter) byIssuer(iss string) *provider {
	if p := f.issuers[iss]; p != nil {
		return p
	}
	if iss != "" {
		return f.issuers[""]
	}
	return nil
}

func (f *filter) Decode(s *httpfilter.Stream) httpfilter.Status {
	r := s.R
	// The headers a verified token sets are the filter's alone: a client's
	// are dropped, whatever the route requires.
	removed := false
	for _, h := range f.sanitize {
		if _, ok := r.Header[h]; ok {
			delete(r.Header, h)
			removed = true
		}
	}
	if removed {
		s.ClearRouteCache()
	}
	if f.bypassCORS && isCORSPreflight(r) {
		return httpfilter.Continue
	}
	var v verifier
	if pr, ok := s.PerFilter(f.name).(*perRoute); ok {
		if pr.disabled {
			return httpfilter.Continue
		}
		if v = f.byName[pr.name]; v == nil {
			msg := "Wrong requirement_name: " + pr.name + ". It should be one of [" + f.allNames + "]"
			f.reject(s, http.StatusForbidden, "Failed JWT authentication: "+msg, "")
			return httpfilter.Stop
		}
	} else {
		for i := range f.rules {
			if f.rules[i].match.matches(r) {
				v = f.rules[i].v
				break
			}
		}
	}
	if v == nil {
		return httpfilter.Continue
	}
	realm := realmURI(r) // before a token leaves the query
	c := &vctx{f: f, r: r, now: f.now()}
	st := v.verify(c)
	for k, val := range c.extracted {
		s.SetMetadata(MetadataNamespace, k, val)
	}
	if st == statusOK {
		if c.clearRoute {
			s.ClearRouteCache()
		}
		return httpfilter.Continue
	}
	code := http.StatusUnauthorized
	if st == jwtAudienceNotAllowed {
		code = http.StatusForbidden
	}
	challenge := `Bearer realm="` + realm + `"`
	if st != jwtMissed {
		challenge += `, error="invalid_token"`
	}
	f.reject(s, code, st.String(), challenge)
	return httpfilter.Stop
}

// isCORSPreflight is Envoy's: OPTIONS with Origin and
// Access-Control-Request-Method.
func isCORSPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" &&
		r.Header.Get("Access-Control-Request-Method") != ""
}

// maxRealmPath is how much of the path Envoy puts in the challenge's realm.
const maxRealmPath = 256

// realmURI is the request's URI as Envoy's buildOriginalUri writes it:
// the scheme, the host and the path (with its query), the path cut
// at 256 bytes.
func realmURI(r *http.Request) string {
	scheme := "http" // X-Forwarded-Proto as meshgate sets it: from the connection
	if r.TLS != nil {
		scheme = "https"
	}
	path := requestURI(r)
	if len(path) > maxRealmPath {
		path = path[:maxRealmPath]
	}
	return scheme + "://" + r.Host + path
}

// reject answers as Envoy's local reply: the status with the message as a
// text body and the Bearer challenge, or for a gRPC caller the status's
// gRPC code (401 UNAUTHENTICATED, 403 PERMISSION_DENIED) with the message.
// strip_failure_response leaves only the status.
func (f *filter) reject(s *httpfilter.Stream, code int, msg, challenge string) {
	if f.strip {
		msg, challenge = "", ""
	}
	w := s.W
	if challenge != "" {
		w.Header().Set("Www-Authenticate", challenge)
	}
	if s.AsGRPC || router.IsGRPC(s.R) {
		c := codes.Unauthenticated
		if code == http.StatusForbidden {
			c = codes.PermissionDenied
		}
		wire.WriteGRPCStatus(w, c, msg)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain")
	h.Set("Content-Length", strconv.Itoa(len(msg)))
	w.WriteHeader(code)
	if msg != "" {
		_, _ = w.Write([]byte(msg))
	}
}
