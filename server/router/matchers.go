package router

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// StringMatcher is a compiled Envoy StringMatcher.
type StringMatcher struct {
	kind       stringKind
	value      string // lowercased when ignoreCase
	re         *regexp.Regexp
	ignoreCase bool
}

type stringKind uint8

const (
	stringExact stringKind = iota
	stringPrefix
	stringSuffix
	stringContains
	stringRegex
)

// CompileStringMatcher compiles sm (exact, prefix, suffix, contains,
// safe_regex, each with ignore_case); a custom matcher is refused.
func CompileStringMatcher(sm *matcherv3.StringMatcher) (StringMatcher, error) {
	out := StringMatcher{ignoreCase: sm.GetIgnoreCase()}
	switch p := sm.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		out.kind, out.value = stringExact, p.Exact
	case *matcherv3.StringMatcher_Prefix:
		out.kind, out.value = stringPrefix, p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		out.kind, out.value = stringSuffix, p.Suffix
	case *matcherv3.StringMatcher_Contains:
		out.kind, out.value = stringContains, p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := compileFullRegex(p.SafeRegex.GetRegex())
		if err != nil {
			return out, err
		}
		out.kind, out.re = stringRegex, re
		return out, nil
	default:
		return out, fmt.Errorf("string matcher: unsupported pattern %T", p)
	}
	if out.ignoreCase {
		out.value = strings.ToLower(out.value)
	}
	return out, nil
}

// compileFullRegex compiles an RE2 expression that must match the whole
// input, as Envoy's safe_regex does.
func compileFullRegex(expr string) (*regexp.Regexp, error) {
	re, err := regexp.Compile(`^(?:` + expr + `)$`)
	if err != nil {
		return nil, fmt.Errorf("regex %q: %w", expr, err)
	}
	return re, nil
}

// Match reports whether v matches.
func (m *StringMatcher) Match(v string) bool {
	if m.kind == stringRegex {
		return m.re.MatchString(v)
	}
	if m.ignoreCase {
		switch m.kind {
		case stringExact:
			return strings.EqualFold(v, m.value)
		case stringPrefix:
			return len(v) >= len(m.value) && strings.EqualFold(v[:len(m.value)], m.value)
		case stringSuffix:
			return len(v) >= len(m.value) && strings.EqualFold(v[len(v)-len(m.value):], m.value)
		}
		v = strings.ToLower(v)
	}
	switch m.kind {
	case stringExact:
		return v == m.value
	case stringPrefix:
		return strings.HasPrefix(v, m.value)
	case stringSuffix:
		return strings.HasSuffix(v, m.value)
	default:
		return strings.Contains(v, m.value)
	}
}

// HeaderMatcher is a compiled Envoy HeaderMatcher.
type HeaderMatcher struct {
	key       string // canonical MIME key, or a pseudo-header name
	pseudo    bool
	kind      headerKind
	str       StringMatcher
	present   bool
	lo, hi    int64
	invert    bool
	missingOK bool // treat_missing_header_as_empty
}

type headerKind uint8

const (
	headerString headerKind = iota
	headerPresent
	headerRange
)

// CompileHeaderMatcher compiles h as Envoy means it (pseudo-headers
// :method, :authority, :path, :scheme; several values joined by commas).
func CompileHeaderMatcher(h *routev3.HeaderMatcher) (HeaderMatcher, error) {
	name := strings.ToLower(h.GetName())
	out := HeaderMatcher{invert: h.GetInvertMatch(), missingOK: h.GetTreatMissingHeaderAsEmpty()}
	if name == "host" {
		// Go keeps Host out of the header map (HTTP/1.1 Host and HTTP/2
		// :authority alike land in Request.Host): match it as :authority.
		name = ":authority"
	}
	if strings.HasPrefix(name, ":") {
		switch name {
		case ":method", ":authority", ":path", ":scheme":
			out.key, out.pseudo = name, true
		default:
			return out, fmt.Errorf("header %q: unknown pseudo-header", name)
		}
	} else {
		out.key = http.CanonicalHeaderKey(name)
	}
	var err error
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_StringMatch:
		out.str, err = CompileStringMatcher(s.StringMatch)
	case *routev3.HeaderMatcher_ExactMatch:
		//lint:ignore SA1019 Envoy still accepts the deprecated matchers.
		out.str = StringMatcher{kind: stringExact, value: s.ExactMatch}
	case *routev3.HeaderMatcher_PrefixMatch:
		//lint:ignore SA1019 Envoy still accepts the deprecated matchers.
		out.str = StringMatcher{kind: stringPrefix, value: s.PrefixMatch}
	case *routev3.HeaderMatcher_SuffixMatch:
		//lint:ignore SA1019 Envoy still accepts the deprecated matchers.
		out.str = StringMatcher{kind: stringSuffix, value: s.SuffixMatch}
	case *routev3.HeaderMatcher_ContainsMatch:
		//lint:ignore SA1019 Envoy still accepts the deprecated matchers.
		out.str = StringMatcher{kind: stringContains, value: s.ContainsMatch}
	case *routev3.HeaderMatcher_SafeRegexMatch:
		out.str.kind = stringRegex
		//lint:ignore SA1019 Envoy still accepts the deprecated matchers.
		out.str.re, err = compileFullRegex(s.SafeRegexMatch.GetRegex())
	case *routev3.HeaderMatcher_PresentMatch:
		out.kind, out.present = headerPresent, s.PresentMatch
	case *routev3.HeaderMatcher_RangeMatch:
		out.kind, out.lo, out.hi = headerRange, s.RangeMatch.GetStart(), s.RangeMatch.GetEnd()
	case nil:
		// Envoy: no specifier means the header must be present.
		out.kind, out.present = headerPresent, true
	default:
		return out, fmt.Errorf("header %q: unsupported match %T", name, s)
	}
	if err != nil {
		return out, fmt.Errorf("header %q: %w", name, err)
	}
	return out, nil
}

// match follows Envoy's HeaderDataBaseImpl::matchesHeaders: several values
// are joined with ","; a missing header matches only a present_match on its
// absence (or, inverted, on its presence).
func (m *HeaderMatcher) Match(r *http.Request) bool {
	v, ok := m.value(r)
	if !ok && !m.missingOK {
		if m.invert {
			return m.kind == headerPresent && m.present
		}
		return m.kind == headerPresent && !m.present
	}
	var got bool
	switch m.kind {
	case headerPresent:
		got = m.present
	case headerRange:
		n, err := strconv.ParseInt(v, 10, 64)
		got = err == nil && n >= m.lo && n < m.hi
	default:
		got = m.str.Match(v)
	}
	return got != m.invert
}

func (m *HeaderMatcher) value(r *http.Request) (string, bool) {
	if m.pseudo {
		switch m.key {
		case ":method":
			return r.Method, true
		case ":authority":
			return r.Host, true
		case ":path":
			return requestPath(r), true
		default:
			if r.TLS != nil {
				return "https", true
			}
			return "http", true
		}
	}
	vs := r.Header[m.key]
	switch len(vs) {
	case 0:
		return "", false
	case 1:
		return vs[0], true
	default:
		return strings.Join(vs, ","), true
	}
}

// queryMatcher is a compiled Envoy QueryParameterMatcher.
type queryMatcher struct {
	name    string
	present bool
	str     StringMatcher
}

func compileQueryMatcher(q *routev3.QueryParameterMatcher) (queryMatcher, error) {
	out := queryMatcher{name: q.GetName()}
	switch s := q.GetQueryParameterMatchSpecifier().(type) {
	case *routev3.QueryParameterMatcher_StringMatch:
		sm, err := CompileStringMatcher(s.StringMatch)
		if err != nil {
			return out, fmt.Errorf("query parameter %q: %w", out.name, err)
		}
		out.str = sm
	case *routev3.QueryParameterMatcher_PresentMatch, nil:
		out.present = true
	}
	return out, nil
}

func (m *queryMatcher) match(q queryValues) bool {
	v, ok := q.first(m.name)
	if !ok {
		return false
	}
	return m.present || m.str.Match(v)
}
