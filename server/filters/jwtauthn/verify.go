package jwtauthn

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// vctx is one request's verification: what the verifiers share.
type vctx struct {
	f          *filter
	r          *http.Request
	now        time.Time
	extracted  map[string]any // dynamic metadata to set, by key
	clearRoute bool
}

func (c *vctx) put(key string, v any) {
	if c.extracted == nil {
		c.extracted = map[string]any{}
	}
	c.extracted[key] = v
}

// verifier is a compiled JwtRequirement, after Envoy's verifier tree.
type verifier interface {
	verify(c *vctx) status
}

// allowAll is a requirement with no type: nothing is required.
type allowAll struct{}

func (allowAll) verify(*vctx) status { return statusOK }

// providerVerifier is provider_name / provider_and_audiences: the tokens
// at the provider's locations must all be the provider's and valid, and
// there must be one.
type providerVerifier struct {
	p   *provider
	aud *audiences // provider_and_audiences' own audiences
}

func (v *providerVerifier) verify(c *vctx) status {
	return c.authenticate(v.p.ext.extract(c.r), v.p, v.aud, false, false)
}

// allowVerifier is allow_missing (failed false) or allow_missing_or_failed
// standing alone: the tokens at every provider's locations are verified,
// each by the provider of its issuer; none is fine, and with failed any
// outcome is.
type allowVerifier struct {
	ext    *extractor
	failed bool
}

func (v *allowVerifier) verify(c *vctx) status {
	return c.authenticate(v.ext.extract(c.r), nil, nil, v.failed, true)
}

// anyVerifier is requires_any. allow_missing and allow_missing_or_failed
// in it are not requirements of their own but say how its failure is
// judged, as in Envoy: the failure kept is the first one that is neither
// "missing" nor "unknown issuer" (else unknown issuer, else missing); with
// allow_missing a "missing" failure passes, with allow_missing_or_failed
// any does.
type anyVerifier struct {
	children     []verifier
	allowMissing bool
	allowFailed  bool
}

func (v *anyVerifier) verify(c *vctx) status {
	final := jwtMissed
	for _, ch := range v.children {
		st := ch.verify(c)
		if st == statusOK {
			return statusOK
		}
		if st != jwtMissed && st != jwtUnknownIssuer || final == jwtMissed {
			final = st
		}
	}
	switch {
	case v.allowFailed:
		return statusOK
	case v.allowMissing && final == jwtMissed:
		return statusOK
	}
	return final
}

// allVerifier is requires_all: every requirement must pass; the first
// failure is the answer.
type allVerifier struct {
	children []verifier
}

func (v *allVerifier) verify(c *vctx) status {
	for _, ch := range v.children {
		if st := ch.verify(c); st != statusOK {
			return st
		}
	}
	return statusOK
}

// authenticate is Envoy's authenticator: tokens are checked last found
// first; for a provider requirement the first failure ends it (every token
// must be valid: a request with a good and a bad token must not pass), for
// allow_missing* all are checked. prov nil: each token's issuer picks its
// provider.
func (c *vctx) authenticate(tokens []token, prov *provider, aud *audiences, allowFailed, allowMissing bool) status {
	if len(tokens) == 0 {
		c.failedStatus(prov, jwtMissed)
		if allowFailed || allowMissing {
			return statusOK
		}
		return jwtMissed
	}
	st := statusOK
	for i := len(tokens) - 1; i >= 0; i-- {
		st = c.verifyToken(tokens[i], prov, aud)
		if st != statusOK {
			c.failedStatus(prov, st)
			if !allowFailed && !allowMissing {
				return st
			}
		}
	}
	if allowFailed {
		return statusOK
	}
	return st
}

// failedStatus records a failure under the provider's
// failed_status_in_metadata (for an issuer-picked token, the only
// provider's, as Envoy).
func (c *vctx) failedStatus(p *provider, st status) {
	if p == nil && len(c.f.providers) == 1 {
		p = c.f.providers[0]
	}
	if p == nil || p.failedKey == "" {
		return
	}
	c.put(p.failedKey, map[string]any{"code": strconv.Itoa(int(st)), "message": st.String()})
}

// verifyToken checks one token in Envoy's order: its form, its issuer, its
// times, its audiences (and subject and lifetime), then its signature; a
// good one is forwarded as the provider says.
func (c *vctx) verifyToken(tok token, prov *provider, aud *audiences) status {
	t, st := parseJWT(tok.value)
	if st != statusOK {
		return st
	}
	if !tok.loc.issuerAllowed(t.iss) {
		return jwtUnknownIssuer
	}
	p := prov
	if p == nil {
		if p = c.f.byIssuer(t.iss); p == nil {
			return jwtUnknownIssuer
		}
	}
	if st := t.checkTime(c.now.Unix(), p.skew); st != statusOK {
		return st
	}
	allowed := p.aud
	if aud != nil {
		allowed = *aud
	}
	if !allowed.allowed(t.aud) {
		return jwtAudienceNotAllowed
	}
	if p.subjects != nil && !p.subjects.Match(t.sub) {
		return jwtVerificationFail
	}
	if p.checkLifetime {
		if t.exp == 0 {
			return jwtVerificationFail
		}
		if p.maxExp > 0 && time.Unix(int64(t.exp), 0).Sub(c.now) >= p.maxExp {
			return jwtVerificationFail
		}
	}
	ks, st := p.keys(c)
	if st != statusOK {
		return st
	}
	if st := ks.verify(t); st != statusOK {
		return st
	}
	c.good(tok, t, p)
	return statusOK
}

// good forwards a verified token as its provider says: the payload header,
// the claim headers, the token itself removed (forward: false), the header
// and payload for the metadata.
func (c *vctx) good(tok token, t *jwt, p *provider) {
	h := c.r.Header
	if p.payloadHeader != "" {
		v := t.payloadB64
		if p.padPayload {
			v = strings.TrimRight(v, "=")
			v += strings.Repeat("=", (4-len(v)%4)%4)
		}
		h.Add(p.payloadHeader, v)
	}
	added := false
	for _, ch := range p.claims {
		if v, ok := claimString(t.payload, ch.path); ok {
			h.Add(ch.header, v)
			added = true
		}
	}
	if !p.forward {
		tok.remove(c.r)
	}
	if p.headerKey != "" {
		c.put(p.headerKey, t.header)
	}
	if p.payloadKey != "" {
		c.put(p.payloadKey, normalizePayload(t.payload, p.spaceDelimited))
	}
	if p.clearRouteCache && (added || p.payloadKey != "") {
		c.clearRoute = true
	}
}

// claimString is a claim as claim_to_headers copies it: strings as they
// are, numbers and booleans printed, arrays and objects as base64 of their
// JSON; absent, null and empty claims are not copied.
func claimString(payload map[string]any, path []string) (string, bool) {
	var v any = payload
	for _, seg := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return "", false
		}
		if v, ok = m[seg]; !ok {
			return "", false
		}
	}
	switch x := v.(type) {
	case string:
		return x, x != ""
	case float64:
		return formatNumber(x), true
	case bool:
		return strconv.FormatBool(x), true
	case []any, map[string]any:
		b, err := json.Marshal(x)
		if err != nil {
			return "", false
		}
		return base64.StdEncoding.EncodeToString(b), true
	}
	return "", false
}

// formatNumber prints a claim number as Envoy: a whole number in uint64's
// range as an integer, anything else as C's %f.
func formatNumber(f float64) string {
	if f >= 0 && f < 18446744073709551616.0 && f == float64(uint64(f)) {
		return strconv.FormatUint(uint64(f), 10)
	}
	return strconv.FormatFloat(f, 'f', 6, 64)
}

// normalizePayload turns the space-delimited claims ("scope": "a b") into
// lists of strings, as normalize_payload_in_metadata asks.
func normalizePayload(payload map[string]any, claims []string) map[string]any {
	if len(claims) == 0 {
		return payload
	}
	out := make(map[string]any, len(payload))
	for k, v := range payload {
		out[k] = v
	}
	for _, name := range claims {
		s, ok := out[name].(string)
		if !ok {
			continue
		}
		list := []any{}
		for _, part := range strings.Split(s, " ") {
			if part != "" {
				list = append(list, part)
			}
		}
		out[name] = list
	}
	return out
}
