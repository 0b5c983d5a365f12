package jwtauthn

import (
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// Where a token may be, after Envoy's extractor.
type locKind uint8

const (
	locHeader locKind = iota
	locParam
	locCookie
)

// location is one place tokens are read from, with the issuers of the
// providers that named it: a token found there must come from one of them
// (or from anyone, when a provider without an issuer named it).
type location struct {
	kind     locKind
	name     string // canonical header key, query parameter or cookie name
	prefix   string // headers: the value prefix ("Bearer ")
	issuers  map[string]bool
	allowAll bool
}

func (l *location) issuerAllowed(iss string) bool { return l.allowAll || l.issuers[iss] }

func (l *location) addIssuer(iss string) {
	if iss == "" {
		l.allowAll = true
		return
	}
	l.issuers[iss] = true
}

// extractor finds the tokens of a set of providers: each location once,
// in Envoy's order (headers by name and prefix, then query parameters, then
// cookies, each by name).
type extractor struct {
	locs []*location
}

// token is a token found, and where.
type token struct {
	value string
	loc   *location
}

// Envoy's default locations, used by a provider that names none.
const (
	bearerPrefix     = "Bearer "
	accessTokenParam = "access_token"
)

func newExtractor(provs []*provider) *extractor {
	byKey := map[string]*location{}
	add := func(kind locKind, name, prefix, issuer string) {
		key := string(rune('0'+kind)) + "\x00" + name + "\x00" + prefix
		l := byKey[key]
		if l == nil {
			l = &location{kind: kind, name: name, prefix: prefix, issuers: map[string]bool{}}
			byKey[key] = l
		}
		l.addIssuer(issuer)
	}
	for _, p := range provs {
		for _, h := range p.fromHeaders {
			add(locHeader, http.CanonicalHeaderKey(h.name), h.prefix, p.issuer)
		}
		for _, q := range p.fromParams {
			add(locParam, q, "", p.issuer)
		}
		for _, c := range p.fromCookies {
			add(locCookie, c, "", p.issuer)
		}
		if len(p.fromHeaders) == 0 && len(p.fromParams) == 0 && len(p.fromCookies) == 0 {
			add(locHeader, "Authorization", bearerPrefix, p.issuer)
			add(locParam, accessTokenParam, "", p.issuer)
		}
	}
	e := &extractor{}
	for _, l := range byKey {
		e.locs = append(e.locs, l)
	}
	sort.Slice(e.locs, func(i, j int) bool {
		a, b := e.locs[i], e.locs[j]
		if a.kind != b.kind {
			return a.kind < b.kind
		}
		if a.kind == locHeader {
			return strings.ToLower(a.name)+a.prefix < strings.ToLower(b.name)+b.prefix
		}
		return a.name < b.name
	})
	return e
}

// extract returns the tokens r carries at e's locations.
func (e *extractor) extract(r *http.Request) []token {
	var out []token
	var query []string // the raw query's pairs, split on first need
	queryRead := false
	for _, l := range e.locs {
		switch l.kind {
		case locHeader:
			for _, v := range r.Header[l.name] {
				if l.prefix != "" {
					i := strings.Index(v, l.prefix)
					if i < 0 {
						continue // the prefix is not in this value: not a token
					}
					v = tokenAfter(v, i+len(l.prefix))
				}
				out = append(out, token{value: v, loc: l})
			}
		case locParam:
			if !queryRead {
				queryRead = true
				if q := rawQuery(r); q != "" {
					query = strings.Split(q, "&")
				}
			}
			if v, ok := firstParam(query, l.name); ok {
				out = append(out, token{value: v, loc: l})
			}
		case locCookie:
			if c, err := r.Cookie(l.name); err == nil {
				out = append(out, token{value: c.Value, loc: l})
			}
		}
	}
	return out
}

// isTokenChar tells the characters of a JWT: base64url's and the dot.
func isTokenChar(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.'
}

// tokenAfter is Envoy's extractJWT: past the prefix, skip what cannot be in
// a token, then take the token characters that follow. With none, the value
// is returned whole (and fails to parse).
func tokenAfter(v string, from int) string {
	start := from
	for start < len(v) && !isTokenChar(v[start]) {
		start++
	}
	if start == len(v) {
		return v
	}
	end := start
	for end < len(v) && isTokenChar(v[end]) {
		end++
	}
	return v[start:end]
}

// requestURI is the request's :path with its query, as the router reads it.
func requestURI(r *http.Request) string {
	if r.RequestURI != "" && r.RequestURI[0] == '/' {
		return r.RequestURI
	}
	return r.URL.RequestURI()
}

func rawQuery(r *http.Request) string {
	_, q, _ := strings.Cut(requestURI(r), "?")
	return q
}

// firstParam is the first value of the query parameter name, decoded.
func firstParam(pairs []string, name string) (string, bool) {
	for _, p := range pairs {
		k, v, _ := strings.Cut(p, "=")
		if unescape(k) == name {
			return unescape(v), true
		}
	}
	return "", false
}

func unescape(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

// remove takes a verified token out of the request (forward: false): its
// header, or its query parameter. A cookie stays, as in Envoy.
func (t token) remove(r *http.Request) {
	switch t.loc.kind {
	case locHeader:
		r.Header.Del(t.loc.name)
	case locParam:
		removeParam(r, t.loc.name)
	}
}

// removeParam drops every pair of the query parameter name, keeping the
// others as the client wrote them.
func removeParam(r *http.Request, name string) {
	uri := requestURI(r)
	path, q, ok := strings.Cut(uri, "?")
	if !ok {
		return
	}
	var kept []string
	for _, p := range strings.Split(q, "&") {
		k, _, _ := strings.Cut(p, "=")
		if unescape(k) != name {
			kept = append(kept, p)
		}
	}
	nq := strings.Join(kept, "&")
	r.URL.RawQuery = nq
	if r.RequestURI != "" && r.RequestURI[0] == '/' {
		r.RequestURI = path
		if nq != "" {
			r.RequestURI += "?" + nq
		}
	}
}
