package router

import (
	"net/http"
	"net/url"
	"strings"
)

// requestPath returns the request's :path as the client sent it (with the
// query), which is what Envoy's prefix matches see.
func requestPath(r *http.Request) string {
	if r.RequestURI != "" && r.RequestURI[0] == '/' {
		return r.RequestURI
	}
	return r.URL.RequestURI()
}

// splitQuery splits a :path into path and raw query.
func splitQuery(p string) (path, query string) {
	if i := strings.IndexByte(p, '?'); i >= 0 {
		return p[:i], p[i+1:]
	}
	return p, ""
}

// queryValues reads parameters straight from the raw query, decoding only
// what it compares, so routes without query matchers cost nothing.
type queryValues string

func (q queryValues) first(name string) (string, bool) {
	s := string(q)
	for s != "" {
		var pair string
		pair, s, _ = strings.Cut(s, "&")
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		if strings.ContainsAny(k, "%+") {
			dk, err := url.QueryUnescape(k)
			if err != nil {
				continue
			}
			k = dk
		}
		if k != name {
			continue
		}
		if strings.ContainsAny(v, "%+") {
			dv, err := url.QueryUnescape(v)
			if err != nil {
				return "", false
			}
			v = dv
		}
		return v, true
	}
	return "", false
}
