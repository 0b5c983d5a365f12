package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// CORSFilter is the typed_per_filter_config key of a CORS policy.
const CORSFilter = "envoy.filters.http.cors"

// CORSConfig is a CORS policy on a virtual host or a route, as Envoy's
// CorsPolicy. Origins: "https://app.example.com" (exact),
// "prefix:https://" or "regex:https://.*\\.example\\.com"; "*" allows any.
// Empty headers lists mean gRPC-Web's and Connect's.
type CORSConfig struct {
	AllowOrigins     []string  `json:"allow_origins"`
	AllowMethods     []string  `json:"allow_methods,omitempty"`
	AllowHeaders     []string  `json:"allow_headers,omitempty"`
	ExposeHeaders    []string  `json:"expose_headers,omitempty"`
	MaxAge           *Duration `json:"max_age,omitempty"`
	AllowCredentials bool      `json:"allow_credentials,omitempty"`
}

func (t *translator) cors(path string, c *CORSConfig) *corsv3.CorsPolicy {
	out := &corsv3.CorsPolicy{
		AllowMethods:  strings.Join(c.AllowMethods, ","),
		AllowHeaders:  strings.Join(c.AllowHeaders, ","),
		ExposeHeaders: strings.Join(c.ExposeHeaders, ","),
	}
	if c.AllowCredentials {
		out.AllowCredentials = wrapperspb.Bool(true)
	}
	if c.MaxAge != nil {
		out.MaxAge = strconv.FormatInt(int64(c.MaxAge.Duration.Seconds()), 10)
	}
	if len(c.AllowOrigins) == 0 {
		t.errf(path+".allow_origins", "needs at least one origin (\"*\" for any)")
	}
	for i, o := range c.AllowOrigins {
		var m *matcherv3.StringMatcher
		switch {
		case o == "*":
			m = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: ".*"}}}
		case strings.HasPrefix(o, "prefix:"):
			m = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: strings.TrimPrefix(o, "prefix:")}}
		case strings.HasPrefix(o, "regex:"):
			re := strings.TrimPrefix(o, "regex:")
			if _, err := regexp.Compile(re); err != nil {
				t.errf(fmt.Sprintf("%s.allow_origins[%d]", path, i), "%v", err)
			}
			m = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: re}}}
		default:
			m = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: o}}
		}
		out.AllowOriginStringMatch = append(out.AllowOriginStringMatch, m)
	}
	return out
}
