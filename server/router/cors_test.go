package router

import (
	"net/http/httptest"
	"testing"

	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestCORS(t *testing.T) {
	a, _ := anypb.New(&corsv3.CorsPolicy{
		AllowOriginStringMatch: []*matcherv3.StringMatcher{
			{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "https://a.test"}},
			{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "https://b."}},
			{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: `https://[a-z]+\.c\.test`}}},
		},
		MaxAge:           "60",
		AllowCredentials: wrapperspb.Bool(true),
	})
	c, err := CompileCORS(a)
	if err != nil {
		t.Fatal(err)
	}
	for origin, want := range map[string]bool{
		"https://a.test": true, "https://a.test.evil": false, "https://b.anything": true,
		"https://x.c.test": true, "https://x.c.test.evil": false, "http://a.test": false,
	} {
		if got := c.Allowed(origin); got != want {
			t.Errorf("Allowed(%s) = %v, want %v", origin, got, want)
		}
	}
	w := httptest.NewRecorder()
	c.AnswerPreflight(w, "https://a.test")
	h := w.Header()
	if w.Code != 200 || h.Get("Access-Control-Allow-Origin") != "https://a.test" || h.Get("Access-Control-Max-Age") != "60" ||
		h.Get("Access-Control-Allow-Credentials") != "true" || h.Get("Access-Control-Allow-Headers") != defaultCORSAllowHeaders {
		t.Errorf("preflight answer %d %v", w.Code, h)
	}
	w = httptest.NewRecorder()
	c.Decorate(w.Header(), "https://a.test")
	if w.Header().Get("Access-Control-Expose-Headers") != defaultCORSExposeHeaders {
		t.Errorf("decorated %v", w.Header())
	}
	r := httptest.NewRequest("OPTIONS", "/", nil)
	r.Header.Set("Origin", "https://a.test")
	if Preflight(r) {
		t.Error("an OPTIONS without Access-Control-Request-Method is no preflight")
	}
	r.Header.Set("Access-Control-Request-Method", "POST")
	if !Preflight(r) {
		t.Error("a preflight was missed")
	}
	bad, _ := anypb.New(&corsv3.CorsPolicy{MaxAge: "soon"})
	if _, err := CompileCORS(bad); err == nil {
		t.Error(`max_age "soon" compiled`)
	}
}
