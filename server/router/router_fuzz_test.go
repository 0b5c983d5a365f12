package router

import (
	"net/http"
	"net/url"
	"testing"
)

// FuzzMatch matches arbitrary targets, hosts and header values against a
// table with every kind of condition: never a panic, and a route found is
// one whose conditions really hold for a plain prefix route.
func FuzzMatch(f *testing.F) {
	table := compile(f, matchRoutes)
	f.Add("/h/?v=a+b", "example.com:80", "prod", "15")
	f.Add("/items/9%2F?x", "[::1]:8080", "", "-3")
	f.Add("/q/?v=%zz&debug", "", "v1", "99999999999999999999")
	f.Fuzz(func(t *testing.T, target, host, env, tier string) {
		u, err := url.ParseRequestURI(target)
		if err != nil || len(target) == 0 || target[0] != '/' {
			return
		}
		r := &http.Request{Method: "GET", URL: u, RequestURI: target, Host: host, Header: http.Header{}}
		if env != "" {
			r.Header.Set("X-Env", env)
		}
		if tier != "" {
			r.Header.Set("X-Tier", tier)
		}
		rt := table.Match(r)
		if rt != nil && rt.Name == "prefix" {
			if len(target) < len("/api/") || target[:len("/api/")] != "/api/" {
				t.Fatalf("route %q matched %q", rt.Name, target)
			}
		}
	})
}

// FuzzQueryValues reads any raw query without panicking.
func FuzzQueryValues(f *testing.F) {
	f.Add("a=1&b=%20&c", "b")
	f.Add("%zz=1&a+b=c+d", "a b")
	f.Fuzz(func(t *testing.T, raw, name string) {
		v, ok := queryValues(raw).first(name)
		if !ok && v != "" {
			t.Fatalf("first(%q) in %q = %q but not found", name, raw, v)
		}
	})
}
