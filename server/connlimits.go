package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/meshgate/meshgate/server/h2"
	"github.com/meshgate/meshgate/server/wire"
)

// Defaults of the connection limits, Envoy's where Envoy has one.
const (
	// defaultMaxHeaders is Envoy's max_headers_count default.
	defaultMaxHeaders = 100
	// defaultHeadersTimeout bounds how long HTTP/1.x request headers may
	// take to arrive. Envoy's request_headers_timeout is off by default;
	// meshgate keeps a bound against slow-header (slowloris) clients.
	defaultHeadersTimeout = 30 * time.Second
)

// connLimits are a filter chain's per-connection limits, from its
// HttpConnectionManager under Envoy's names.
type connLimits struct {
	// h2 are the HTTP/2 server's per-connection settings:
	// http2_protocol_options (max_concurrent_streams, initial stream and
	// connection windows) and common_http_protocol_options
	// (max_requests_per_connection, max_connection_duration,
	// max_headers_count). HTTP/1.x connections keep the last three too.
	h2 h2.ConnSettings
	// headersTimeout is request_headers_timeout (HTTP/1.x).
	headersTimeout time.Duration
}

// compileConnLimits reads the connection limits of an HCM.
func compileConnLimits(hcm *hcmv3.HttpConnectionManager) (connLimits, error) {
	l := connLimits{headersTimeout: defaultHeadersTimeout}
	l.h2.MaxHeaders = defaultMaxHeaders
	if t := hcm.GetRequestHeadersTimeout(); t != nil && t.AsDuration() > 0 {
		l.headersTimeout = t.AsDuration()
	}
	common := hcm.GetCommonHttpProtocolOptions()
	if v := common.GetMaxHeadersCount(); v != nil {
		if v.GetValue() == 0 {
			return l, errors.New("common_http_protocol_options.max_headers_count: must be at least 1")
		}
		l.h2.MaxHeaders = int(v.GetValue())
	}
	if v := common.GetMaxRequestsPerConnection(); v != nil {
		l.h2.MaxRequests = v.GetValue() // 0: no limit, as Envoy
	}
	if d := common.GetMaxConnectionDuration(); d != nil {
		l.h2.MaxDuration = d.AsDuration()
	}
	h2opts := hcm.GetHttp2ProtocolOptions()
	if v := h2opts.GetMaxConcurrentStreams(); v != nil {
		if v.GetValue() == 0 {
			return l, errors.New("http2_protocol_options.max_concurrent_streams: must be at least 1")
		}
		l.h2.MaxConcurrentStreams = v.GetValue()
	}
	for _, w := range []struct {
		name string
		v    interface{ GetValue() uint32 }
		to   *int32
		set  bool
	}{
		{"initial_stream_window_size", h2opts.GetInitialStreamWindowSize(), &l.h2.StreamWindow, h2opts.GetInitialStreamWindowSize() != nil},
		{"initial_connection_window_size", h2opts.GetInitialConnectionWindowSize(), &l.h2.ConnWindow, h2opts.GetInitialConnectionWindowSize() != nil},
	} {
		if !w.set {
			continue
		}
		if v := w.v.GetValue(); v < 65535 || v > 1<<31-1 {
			return l, fmt.Errorf("http2_protocol_options.%s: %d is outside 65535..2147483647", w.name, v)
		}
		*w.to = int32(w.v.GetValue())
	}
	return l, nil
}

// capBuffers applies the listener's per_connection_buffer_limit_bytes: an
// HTTP/2 connection buffers at most that much of what its client sent and
// the gateway has not passed on yet — its receive windows (the connection's
// and each stream's) are capped to it, never below HTTP/2's 65,535.
func (l *connLimits) capBuffers(limit uint32) {
	w := int32(min(max(limit, 65535), 1<<31-1))
	l.h2.ConnWindow = min(cmp.Or(l.h2.ConnWindow, h2.DefaultConnWindow), w)
	l.h2.StreamWindow = min(cmp.Or(l.h2.StreamWindow, h2.DefaultStreamWindow), w)
}

// h1Conn is an HTTP/1.x connection's count toward its chain's limits
// (net/http keeps no per-connection state a handler can reach).
type h1Conn struct {
	opened   time.Time
	requests atomic.Uint32
}

type h1ConnKey struct{}

// withH1Conn is the http.Server's ConnContext: each connection gets its
// h1Conn.
func withH1Conn(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, h1ConnKey{}, &h1Conn{opened: time.Now()})
}

// admitH1 applies a chain's limits to an HTTP/1.x request: too many
// header fields are answered 431 (false: answered); the request that
// reaches max_requests_per_connection, or comes after
// max_connection_duration, is answered with Connection: close, as Envoy
// does on HTTP/1.x.
func (l *connLimits) admitH1(w http.ResponseWriter, r *http.Request) bool {
	if n := headerFields(r.Header); l.h2.MaxHeaders > 0 && n > l.h2.MaxHeaders {
		wire.WriteError(w, r, http.StatusRequestHeaderFieldsTooLarge, codeResourceExhausted,
			fmt.Sprintf("%d request header fields, over the limit of %d (max_headers_count)", n, l.h2.MaxHeaders))
		return false
	}
	c, _ := r.Context().Value(h1ConnKey{}).(*h1Conn)
	if c == nil {
		return true
	}
	n := c.requests.Add(1)
	if (l.h2.MaxRequests > 0 && n >= l.h2.MaxRequests) || (l.h2.MaxDuration > 0 && time.Since(c.opened) >= l.h2.MaxDuration) {
		w.Header().Set("Connection", "close")
	}
	return true
}

// headerFields counts a request's header fields (each value of a repeated
// header once; Host is not in the map, as :authority is not counted on
// HTTP/2).
func headerFields(h http.Header) int {
	n := 0
	for _, vs := range h {
		n += len(vs)
	}
	return n
}
