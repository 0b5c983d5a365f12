package router

import (
	"fmt"
	"net/http"
	"strconv"

	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// CORSType is the type URL of Envoy's per-route CORS policy.
const CORSType = "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy"

// gRPC-Web's headers, allowed and exposed when a policy names none: what a
// browser's grpc-web or connect-web client sends and reads.
const (
	defaultCORSAllowHeaders  = "content-type,x-grpc-web,x-user-agent,grpc-timeout,authorization,connect-protocol-version,connect-timeout-ms,triple-protocol-version,tri-service-version,tri-service-group"
	defaultCORSExposeHeaders = "grpc-status,grpc-message,grpc-status-details-bin"
	defaultCORSAllowMethods  = "GET,POST,PUT,PATCH,DELETE,OPTIONS"
)

// CORS is a compiled CorsPolicy.
type CORS struct {
	origins          []StringMatcher
	AllowMethods     string
	AllowHeaders     string
	ExposeHeaders    string
	MaxAge           string
	AllowCredentials bool
	// ForwardNotMatching forwards a preflight whose origin is not allowed
	// upstream (Envoy's default) instead of answering it.
	ForwardNotMatching bool
}

// CompileCORS compiles a CorsPolicy (a per-route config of the CORS
// filter).
func CompileCORS(a *anypb.Any) (*CORS, error) {
	var p corsv3.CorsPolicy
	if err := a.UnmarshalTo(&p); err != nil {
		return nil, err
	}
	c := &CORS{
		AllowMethods: p.GetAllowMethods(), AllowHeaders: p.GetAllowHeaders(), ExposeHeaders: p.GetExposeHeaders(),
		MaxAge: p.GetMaxAge(), AllowCredentials: p.GetAllowCredentials().GetValue(), ForwardNotMatching: true,
	}
	if v := p.GetForwardNotMatchingPreflights(); v != nil {
		c.ForwardNotMatching = v.GetValue()
	}
	if c.AllowMethods == "" {
		c.AllowMethods = defaultCORSAllowMethods
	}
	if c.AllowHeaders == "" {
		c.AllowHeaders = defaultCORSAllowHeaders
	}
	if c.ExposeHeaders == "" {
		c.ExposeHeaders = defaultCORSExposeHeaders
	}
	if c.MaxAge != "" {
		if _, err := strconv.ParseUint(c.MaxAge, 10, 32); err != nil {
			return nil, fmt.Errorf("cors.max_age: %q is not seconds", c.MaxAge)
		}
	}
	for i, sm := range p.GetAllowOriginStringMatch() {
		m, err := CompileStringMatcher(sm)
		if err != nil {
			return nil, fmt.Errorf("cors.allow_origin_string_match[%d]: %w", i, err)
		}
		c.origins = append(c.origins, m)
	}
	return c, nil
}

// Allowed reports whether origin may call.
func (c *CORS) Allowed(origin string) bool {
	for i := range c.origins {
		if c.origins[i].Match(origin) {
			return true
		}
	}
	return false
}

// Preflight reports a CORS preflight request.
func Preflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" && r.Header.Get("Access-Control-Request-Method") != ""
}

// AnswerPreflight writes the allowed preflight's answer.
func (c *CORS) AnswerPreflight(w http.ResponseWriter, origin string) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Methods", c.AllowMethods)
	h.Set("Access-Control-Allow-Headers", c.AllowHeaders)
	if c.MaxAge != "" {
		h.Set("Access-Control-Max-Age", c.MaxAge)
	}
	if c.AllowCredentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	h.Add("Vary", "Origin")
	w.WriteHeader(http.StatusOK)
}

// Decorate adds the CORS headers of an allowed origin's actual request.
func (c *CORS) Decorate(h http.Header, origin string) {
	h.Set("Access-Control-Allow-Origin", origin)
	if c.ExposeHeaders != "" {
		h.Set("Access-Control-Expose-Headers", c.ExposeHeaders)
	}
	if c.AllowCredentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	h.Add("Vary", "Origin")
}

// VirtualHostPerFilter is the per-filter config under key of the virtual
// host r is for, or nil: what a filter reads when r matches no route (a
// CORS preflight of a gRPC-only route).
func (t *Table[T]) VirtualHostPerFilter(r *http.Request, key string) any {
	if vh := t.VirtualHost(r.Host); vh != nil {
		return vh.PerFilter[key]
	}
	return nil
}
