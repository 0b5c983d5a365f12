package h2

import (
	"net/http"
	"strings"
)

// commonHeaders are header names met on most calls: their lower-case and
// canonical forms are looked up, not built (an allocation each).
var commonHeaders = []string{
	"Accept", "Accept-Encoding", "Accept-Language", "Authorization", "Cache-Control", "Content-Encoding",
	"Content-Length", "Content-Type", "Cookie", "Date", "Etag", "Grpc-Accept-Encoding", "Grpc-Encoding",
	"Grpc-Message", "Grpc-Status", "Grpc-Status-Details-Bin", "Grpc-Timeout", "Last-Modified", "Location",
	"Origin", "Referer", "Server", "Set-Cookie", "Te", "Trailer", "User-Agent", "Vary", "Via",
	"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Client-Cert", "X-Request-Id", "X-Envoy-Attempt-Count",
	"X-Envoy-Expected-Rq-Timeout-Ms", "X-Envoy-Upstream-Service-Time", "Traceparent", "Tracestate",
}

// lowerOf and canonicalOf map the common names both ways; read-only after
// init.
var lowerOf, canonicalOf = func() (map[string]string, map[string]string) {
	lower, canon := make(map[string]string, len(commonHeaders)), make(map[string]string, len(commonHeaders))
	for _, k := range commonHeaders {
		l := strings.ToLower(k)
		lower[k], canon[l] = l, k
	}
	return lower, canon
}()

// lowerHeader is a header name as HTTP/2 sends it.
func lowerHeader(k string) string {
	if l, ok := lowerOf[k]; ok {
		return l
	}
	return strings.ToLower(k)
}

// canonicalHeader is a received (lower-case) name as net/http keys it.
func canonicalHeader(k string) string {
	if c, ok := canonicalOf[k]; ok {
		return c
	}
	return http.CanonicalHeaderKey(k)
}
