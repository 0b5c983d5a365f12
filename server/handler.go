package server

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/net/http2"
	"google.golang.org/grpc/codes"

	"github.com/meshgate/meshgate/governance"
	"github.com/meshgate/meshgate/server/cluster"
	"github.com/meshgate/meshgate/server/h2"
	"github.com/meshgate/meshgate/server/httpfilter"
	"github.com/meshgate/meshgate/server/overload"
	"github.com/meshgate/meshgate/server/router"
	"github.com/meshgate/meshgate/server/tracing"
	"github.com/meshgate/meshgate/server/upstream"
	"github.com/meshgate/meshgate/server/wire"
)

// chain is a compiled filter chain: what one listener does with requests
// that arrive on one kind of connection (TLS or cleartext).
type chain struct {
	srv      *Server
	listener string
	routes   *router.Table[*cluster.Cluster]
	// missingRoutes names the RDS route config that has not arrived.
	missingRoutes string
	maxBody       uint64 // non-gRPC request bodies; 0: none
	maxMsg        uint64 // each gRPC message; 0: none
	// maxHeaderBytes is checked here only when it is lower than what the
	// http.Server enforces (a reload lowered it).
	maxHeaderBytes int
	checkHeaders   bool
	// streamIdle resets streams quiet both ways this long (HCM
	// stream_idle_timeout, Envoy's default 5m; 0: off).
	streamIdle time.Duration
	// resolve finds the snapshot's clusters by name (a Dubbo service's
	// clusters, named at request time).
	resolve router.Resolver[*cluster.Cluster]
	// suppressEnvoyHeaders: the router adds no x-envoy-* headers to
	// answers (its suppress_envoy_headers).
	suppressEnvoyHeaders bool
	// filters are the listener's HTTP filters in order, the router not
	// among them (it runs last).
	filters []httpfilter.Filter
	// xfcc is what becomes of a request's x-forwarded-client-cert (HCM
	// forward_client_cert_details).
	xfcc hcmv3.HttpConnectionManager_ForwardClientCertDetails
	// xfccSet is what SANITIZE_SET and APPEND_FORWARD add; localCert
	// reads the listener's certificate (XFCC's By), nil in cleartext.
	xfccSet   xfccDetails
	localCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// relayable: every filter lets plain gRPC by (relayableChain), and
	// routes are known: the HTTP/2 server may relay such calls.
	relayable bool
	// limits are the HCM's per-connection limits.
	limits connLimits
	// requestTimeout is the HCM's request_timeout: a request must arrive
	// whole within it, unless its answer began first (0: none).
	requestTimeout time.Duration
	// genRequestID: requests without an x-request-id get one (HCM
	// generate_request_id); idInResponse: answers carry it too
	// (always_set_request_id_in_response).
	genRequestID, idInResponse bool
	// accessLogs are the HCM's access_log (none: nothing is recorded);
	// logsResponse: one reads response headers, which relayed calls do not
	// keep (such chains do not relay).
	accessLogs   []accessLogger
	logsResponse bool
	// tracing makes the spans of the requests it samples (nil: off).
	tracing *tracing.Tracing
}

// call is the per-request state, one allocation per request.
type call struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
	// s carries the request through the listener's filters.
	s httpfilter.Stream
	// answered, when set, is told that the answer began (request_timeout).
	answered *callContext
	// For the access log and Istio's metrics: the request body's count,
	// the bytes written, the last upstream host tried, Envoy's response
	// flags.
	in         *countingBody
	bytesOut   int64
	host       *cluster.Host
	flags      []string
	attempts   int
	failReason string // why the last attempt failed (connection failures, resets)
	// span is the request's span when it is traced.
	span trace.Span
}

// flag records an Envoy response flag for the access log.
func (c *call) flag(f string) {
	if f != "" && !slices.Contains(c.flags, f) {
		c.flags = append(c.flags, f)
	}
}

func (c *call) WriteHeader(code int) {
	if !c.wroteHeader {
		c.status, c.wroteHeader = code, true
		c.answerBegins()
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *call) Write(p []byte) (int, error) {
	if !c.wroteHeader {
		c.status, c.wroteHeader = http.StatusOK, true
		c.answerBegins()
	}
	n, err := c.ResponseWriter.Write(p)
	c.bytesOut += int64(n)
	return n, err
}

// answerBegins disarms request_timeout, which an answer under way ends.
func (c *call) answerBegins() {
	if c.answered != nil {
		c.answered.requestArrived()
	}
}

func (c *call) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the server's writer.
func (c *call) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// grpcStatus reads the gRPC status the response carries, or -1.
func (c *call) grpcStatus(r *http.Request) int {
	if !router.IsGRPC(r) {
		return -1
	}
	h := c.ResponseWriter.Header()
	v := h.Get("Grpc-Status")
	if v == "" {
		v = h.Get(http.TrailerPrefix + "Grpc-Status")
	}
	n := 0
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return int(codeUnknown)
		}
		n = n*10 + int(v[i]-'0')
	}
	if v == "" {
		return int(codeUnknown)
	}
	return n
}

func (ch *chain) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	c := &call{ResponseWriter: w}
	c.s.Reset(c, &c.ResponseWriter, r, ch.routes)
	if (len(ch.accessLogs) > 0 || ch.srv.istio != nil) && r.Body != nil && r.Body != http.NoBody {
		c.in = &countingBody{ReadCloser: r.Body}
		r.Body = c.in
	}
	defer func() {
		p := recover()
		if p != nil && p != http.ErrAbortHandler { //nolint:errorlint // net/http compares it the same way.
			ch.srv.metrics.Panics.Inc()
			ch.srv.log.Error("panic serving request", "listener", ch.listener, "path", r.URL.Path,
				"panic", p, "stack", string(debug.Stack()))
			if !c.wroteHeader {
				wire.WriteError(c, r, http.StatusInternalServerError, codeInternal, "internal error in the gateway")
				p = nil
			} else {
				p = http.ErrAbortHandler // the response is half written: reset the stream
			}
		}
		status := c.status
		if !c.wroteHeader {
			status = 499 // the client went away before an answer
		}
		route := ""
		if rt := c.s.Matched(); rt != nil {
			route = rt.Name
		}
		ch.srv.metrics.Request(ch.listener, route, c.s.Cluster, status, c.grpcStatus(r), time.Since(start))
		if len(ch.accessLogs) > 0 || ch.srv.istio != nil {
			ch.recordCall(c, r, route, start)
		}
		if c.span != nil {
			tracing.EndRequest(c.span, status, c.grpcStatus(r), c.s.Cluster, strings.Join(c.flags, ","))
		}
		if p != nil {
			panic(p)
		}
	}()
	// Wrappers finish (write what they held back) once the chain is done.
	defer c.s.Finish()

	if ov := ch.srv.overload; ov.Active(overload.StopAcceptingRequests) {
		ov.Shed()
		c.flag("OM")
		wire.WriteError(c, r, http.StatusServiceUnavailable, codeResourceExhausted,
			"the gateway is overloaded (envoy.overload_actions.stop_accepting_requests): retry on another endpoint")
		return
	}
	if r.ProtoMajor == 1 && !ch.limits.admitH1(c, r) {
		return // HTTP/2 connections are held to them by the h2 server
	}
	// Before the id and the trace mark the gateway adds, as the relay
	// checks: only the client's headers count against its limit.
	if ch.checkHeaders && headerBytes(r) > ch.maxHeaderBytes {
		wire.WriteError(c, r, http.StatusRequestHeaderFieldsTooLarge, codeResourceExhausted,
			fmt.Sprintf("request headers are larger than %d bytes", ch.maxHeaderBytes))
		return
	}
	// After the header count: the id made up here is not the client's.
	id := ch.requestID(r)
	if id != "" && ch.idInResponse {
		c.Header().Set("X-Request-Id", id)
	}
	if tr := ch.tracing; tr != nil {
		if d := tr.Decide(r.Header, id); d.Sampled {
			// Named as Envoy names a span without a route decorator.
			ctx, span := tr.StartRequest(r.Context(), d, r.Host+r.URL.Path, r, id)
			r = r.WithContext(ctx)
			c.s.R, c.span = r, span
		} else {
			tracing.MarkUnsampled(r.Header)
		}
	}

	for _, f := range ch.filters {
		if f.Decode(&c.s) == httpfilter.Stop {
			return
		}
	}
	ch.route(c)
}

// route is the router, the chain's last filter: it answers a direct
// response or a redirect, or forwards.
func (ch *chain) route(c *call) {
	r := c.s.R
	if ch.routes == nil {
		c.flag("NR")
		wire.WriteError(c, r, http.StatusServiceUnavailable, codeUnavailable,
			fmt.Sprintf("route config %q is not available yet", ch.missingRoutes))
		return
	}
	rt := c.s.Route()
	if rt == nil {
		c.flag("NR")
		wire.WriteError(c, r, http.StatusNotFound, codeUnimplemented,
			fmt.Sprintf("no route for %s %s on host %q", r.Method, r.URL.Path, r.Host))
		return
	}
	switch {
	case rt.Direct != nil:
		h := c.Header()
		rt.ResponseEdits.Apply(h)
		if len(rt.Direct.Body) > 0 && h.Get("Content-Type") == "" {
			h.Set("Content-Type", "text/plain")
		}
		c.WriteHeader(rt.Direct.Status)
		_, _ = c.Write(rt.Direct.Body)
	case rt.Redirect != nil:
		h := c.Header()
		rt.ResponseEdits.Apply(h)
		h.Set("Location", rt.Redirect.Location(r))
		c.WriteHeader(rt.Redirect.Status)
	default:
		ch.forward(c, r, rt)
	}
}

func headerBytes(r *http.Request) int {
	n := len(r.Method) + len(r.RequestURI) + len(r.Host)
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// forward proxies r to the route's cluster and streams the answer back. A
// gRPC call passes through byte for byte: messages are never decoded.
func (ch *chain) forward(c *call, r *http.Request, rt *router.Route[*cluster.Cluster]) {
	f := rt.Forward
	target := f.Pick(rand.Uint64())
	if name, cl, ok := cluster.ResolveService(ch.resolve, target.Name, false); ok {
		// A Dubbo service by identity: its Triple providers first.
		target = &router.WeightedTarget[*cluster.Cluster]{Name: name, Weight: 1, Target: cl, Found: cl != nil}
	}
	c.s.Cluster = target.Name
	if !target.Found {
		c.flag("NC")
		wire.WriteError(c, r, http.StatusServiceUnavailable, codeUnavailable, fmt.Sprintf("cluster %q is not configured", target.Name))
		return
	}
	cl := target.Target
	if cl.Protocol == cluster.Dubbo {
		wire.WriteError(c, r, http.StatusServiceUnavailable, codeUnavailable, fmt.Sprintf("cluster %q: its providers speak the dubbo protocol (Dubbo2), which needs the Dubbo2 bridge: "+
			"give the route a DubboRoute under meshgate.filters.http.dubbo in typed_per_filter_config with that filter in the listener's http_filters "+
			"(a dubbo: block in the friendly config does both), or route gRPC/Triple to the tri cluster of the service", cl.Name))
		return
	}
	fw, ok := ch.newForwarding(c, r, rt, cl)
	if !ok {
		return
	}
	defer fw.close()
	if r.ProtoMajor == 1 && r.ContentLength != 0 {
		// Let a streaming HTTP/1.1 upload keep flowing after the answer starts.
		_ = http.NewResponseController(c.ResponseWriter).EnableFullDuplex()
	}
	ch.prepareHeaders(r, rt, fw.isGRPC)

	res, a, err := upstream.Run(fw.ctx, fw.call(r), fw.attempt)
	c.host = fw.lastHost
	c.attempts = fw.attempts
	if fw.fail.flag == "UF" || fw.fail.flag == "UR" {
		c.failReason = fw.fail.msg
	}
	switch {
	case errors.Is(err, upstream.ErrOverloaded):
		c.flag("UO")
		ch.markOverloaded(c)
		wire.WriteError(c, r, http.StatusServiceUnavailable, codeUnavailable, err.Error())
	case errors.Is(err, upstream.ErrNoHost):
		c.flag("UH")
		wire.WriteError(c, r, http.StatusServiceUnavailable, codeUnavailable, err.Error())
	case err != nil: // the deadline passed while waiting to retry
		if fail := ch.failure(fw.ctx, r, cl, fw.lastHost, fw.limited, err, false); fail.code != 0 {
			c.flag(fail.flag)
			wire.WriteError(c, r, fail.code, fail.grpc, fail.msg)
		}
	case a != nil: // an answer to pass on (a failed one too, when not retried)
		ch.respond(c, r, rt, cl, a, fw.resp, res.Attempt, fw.isGRPC, fw.limited, fw.ctx, fw.cctx)
	case fw.fail.code != 0:
		c.flag(fw.fail.flag)
		if fw.attempts > 1 && fw.fail.judge {
			c.flag("URX") // the last of its retries failed too
		}
		wire.WriteError(c, r, fw.fail.code, fw.fail.grpc, fw.fail.msg)
	}
}

// markOverloaded says on an answer that a circuit breaker refused the call
// (Envoy's x-envoy-overloaded), unless the router suppresses its headers.
func (ch *chain) markOverloaded(c *call) {
	if !ch.suppressEnvoyHeaders {
		c.Header().Set("X-Envoy-Overloaded", "true")
	}
}

// forwarding is one forwarded request on its way through its attempts.
type forwarding struct {
	ch     *chain
	c      *call
	r      *http.Request
	rt     *router.Route[*cluster.Cluster]
	cl     *cluster.Cluster
	isGRPC bool
	// body is what each attempt sends (replay gives each its copy);
	// limited enforces the listener's size limits on it.
	body    io.ReadCloser
	limited *limitedBody
	replay  *replayBody
	timeout time.Duration
	ctx     context.Context
	// cancels run when the answer is done, last first; cancelRoom holds
	// the usual few without an allocation.
	cancels    []func()
	cancelRoom [3]func()
	cctx       *callContext // nil: no timeout, no idle timeout; stopped last
	// Rooms for what a request usually needs, in the one allocation of
	// the forwarding.
	cctxRoom    callContext
	limitedRoom limitedBody
	touchRoom   touchingBody
	// What the last attempt left: its answer (on success), why it failed,
	// and its host.
	resp     *http.Response
	fail     failure
	lastHost *cluster.Host
	attempts int // made so far (access logs' URX)
	// span is the attempt's span while it runs, when the request is traced.
	span trace.Span
}

// newForwarding sets a request up for its attempts: body limits, the
// deadline (route timeout and grpc-timeout), the idle watch, a replayable
// body for retries. It answers the request itself and reports false when
// the request cannot go on.
func (ch *chain) newForwarding(c *call, r *http.Request, rt *router.Route[*cluster.Cluster], cl *cluster.Cluster) (*forwarding, bool) {
	f := rt.Forward
	fw := &forwarding{ch: ch, c: c, r: r, rt: rt, cl: cl, isGRPC: router.IsGRPC(r), body: r.Body, ctx: r.Context()}
	fw.cancels = fw.cancelRoom[:0]
	switch {
	case fw.isGRPC && ch.maxMsg > 0:
		fw.limitedRoom = limitedBody{ReadCloser: r.Body, maxMsg: ch.maxMsg}
		fw.limited = &fw.limitedRoom
	case !fw.isGRPC && ch.maxBody > 0:
		if r.ContentLength > int64(ch.maxBody) {
			wire.WriteError(c, r, http.StatusRequestEntityTooLarge, codeResourceExhausted,
				fmt.Sprintf("request body of %d bytes is over the limit of %d", r.ContentLength, ch.maxBody))
			return nil, false
		}
		fw.limitedRoom = limitedBody{ReadCloser: r.Body, maxBody: ch.maxBody}
		fw.limited = &fw.limitedRoom
	}
	if fw.limited != nil {
		fw.body = fw.limited
	}
	if r.ContentLength == 0 && !fw.isGRPC {
		fw.body = nil
	}
	timeout, err := callTimeout(r, f, fw.isGRPC)
	if err != nil {
		wire.WriteGRPCStatus(c, codes.InvalidArgument, err.Error())
		return nil, false
	}
	fw.timeout = timeout
	// Without a timeout the request's own context does: it is cancelled
	// when the handler returns, and closing the upstream body resets an
	// unfinished upstream stream.
	idle := cmp.Or(f.IdleTimeout, ch.streamIdle)
	var arrival time.Duration // request_timeout, for a request with a body to come
	if fw.body != nil && r.Body != http.NoBody {
		arrival = ch.requestTimeout
	}
	if timeout > 0 || idle > 0 || arrival > 0 {
		fw.cctx = &fw.cctxRoom
		fw.cctx.init(fw.ctx, timeout, idle, arrival)
		fw.ctx = fw.cctx
		if idle > 0 && fw.body != nil {
			fw.touchRoom = touchingBody{ReadCloser: fw.body, c: fw.cctx}
			fw.body = &fw.touchRoom
		}
		if arrival > 0 {
			fw.body = &arrivalBody{ReadCloser: fw.body, c: fw.cctx}
			c.answered = fw.cctx
		}
	}
	if policy := f.Retry; policy != nil && policy.NumRetries > 0 && fw.body != nil {
		fw.replay = newReplayBody(fw.body, f.BufferLimit)
	}
	return fw, true
}

// callTimeout is the call's deadline: the route's timeout, or a gRPC
// caller's grpc-timeout when sooner (capped by grpc_timeout_header_max).
func callTimeout(r *http.Request, f *router.Forward[*cluster.Cluster], isGRPC bool) (time.Duration, error) {
	timeout := f.Timeout
	if !isGRPC {
		return timeout, nil
	}
	return wire.CallTimeout(timeout, r.Header.Get("Grpc-Timeout"), f.GRPCTimeoutMax)
}

// sendsGRPCTimeout: the upstream gets the call's deadline as grpc-timeout
// (the relay and the handler path alike). It learns the client's, as the
// time left of it; a call without one gets none made from the route
// timeout unless the route says so (Envoy writes grpc-timeout only under
// the deprecated max_grpc_timeout): the gateway ends it at that timeout and
// resets the upstream stream.
func sendsGRPCTimeout(r *http.Request, f *router.Forward[*cluster.Cluster], timeout time.Duration) bool {
	return timeout > 0 && (f.WriteGRPCTimeout || len(r.Header["Grpc-Timeout"]) > 0)
}

// close releases the deadline and idle watch (after the answer streamed).
func (fw *forwarding) close() {
	if fw.span != nil {
		tracing.EndAttempt(fw.span, fw.c.status, fw.c.grpcStatus(fw.r), nil)
		fw.span = nil
	}
	for i := len(fw.cancels) - 1; i >= 0; i-- {
		fw.cancels[i]()
	}
	if fw.cctx != nil {
		fw.cctx.stop()
	}
}

// call is the request's governance for the attempt loop.
func (fw *forwarding) call(r *http.Request) upstream.Call {
	f := fw.rt.Forward
	c := upstream.Call{Cluster: fw.cl, Priority: f.Priority}
	c.Pick.Hash, c.Pick.HasHash = f.Hash(r)
	if p := f.Retry; p != nil {
		c.Retries, c.Backoff, c.SkipTried = int(p.NumRetries), p.Backoff, p.SkipPreviousHosts
		c.Retriable = func(res upstream.Result) bool {
			return p.Retriable(res.Attempt) && (fw.replay == nil || fw.replay.Replayable())
		}
		// Only a route that retries is handed calls by the relay (a route
		// changed since releases its booking when the handler returns).
		if prior := handedOverPrior(r, fw.cl); prior != nil {
			// The frame relay made the first attempt and booked a retry.
			c.Prior = &upstream.Prior{Host: prior.host, ReleaseRetry: prior.releaseRetry}
			fw.lastHost = prior.host
		}
	}
	return c
}

// attempt is one round trip to a's host. Its answer is kept (Keep) for
// respond; a failure is kept in fw.fail for the answer to the client.
func (fw *forwarding) attempt(ctx context.Context, a *cluster.Attempt, n int) upstream.Result {
	fw.lastHost = a.Host
	fw.attempts++
	r, policy := fw.r, fw.rt.Forward.Retry
	body := fw.body
	if fw.replay != nil {
		body = fw.replay.attempt()
	}
	actx, acancel := ctx, context.CancelFunc(func() {})
	var perTry *time.Timer
	perTryFired := &atomic.Bool{} // (escapes only with a per-try timeout)
	if policy != nil && policy.PerTryTimeout > 0 {
		actx, acancel = context.WithCancel(ctx)
		fired := new(atomic.Bool)
		perTryFired = fired
		perTry = time.AfterFunc(policy.PerTryTimeout, func() { fired.Store(true); acancel() })
	}
	if span, ok := tracing.StartAttempt(ctx, fw.cl.Name, a.Host.Address, propagation.HeaderCarrier(r.Header)); ok {
		fw.span = span
	}
	out := fw.ch.upstreamRequest(actx, r, fw.rt, fw.cl, a.Host, body, fw.isGRPC, fw.timeout)
	resp, err := fw.cl.Transport(r.ProtoMajor == 2 || fw.c.s.AsGRPC).RoundTrip(out)
	if perTry != nil && !perTry.Stop() && err == nil {
		// The per-try timeout fired as the headers came: the attempt's
		// context is gone, so the answer cannot be read.
		resp.Body.Close()
		resp, err = nil, context.DeadlineExceeded
	}
	if err != nil {
		acancel()
		return fw.failed(ctx, err, perTryFired.Load())
	}
	att := governance.Attempt{Outcome: governance.Outcome{Status: resp.StatusCode}, GRPCStatus: -1}
	if fw.isGRPC {
		if gs, ok := grpcStatusOf(resp.Header); ok {
			att.GRPCStatus, att.Status = gs, governance.HTTPStatusFromGRPC(gs)
		}
	}
	retriable := policy != nil && n < int(policy.NumRetries)
	if fw.isGRPC && att.GRPCStatus < 0 && retriable && (fw.replay == nil || fw.replay.Done()) {
		// The status may come in trailers right behind the headers. With
		// the whole request sent, wait for the first message or the
		// trailers before answering, so that a failed call can still be
		// retried: nothing has reached the client yet.
		peeked, peekErr := peek(resp.Body)
		switch {
		case peekErr == io.EOF && len(peeked) == 0:
			if gs, ok := grpcStatusOf(resp.Trailer); ok {
				att.GRPCStatus, att.Status = gs, governance.HTTPStatusFromGRPC(gs)
			}
		case peekErr != nil && peekErr != io.EOF && len(peeked) == 0:
			// Cut off after the headers (a backend dying mid-answer):
			// nothing reached the client, so it fails like an attempt
			// that got no headers, and may be retried.
			resp.Body.Close()
			acancel()
			return fw.failed(ctx, peekErr, perTryFired.Load())
		}
		if peeked != nil || peekErr != nil {
			resp.Body = &prefixedBody{ReadCloser: resp.Body, prefix: peeked, err: peekErr}
		}
	}
	fw.resp = resp
	if perTry != nil {
		fw.cancels = append(fw.cancels, acancel)
	}
	res := upstream.Result{Outcome: att.Outcome, Judge: true, Keep: true, Attempt: att}
	if retriable && policy.Retriable(att) {
		// An answer the policy retries: failed, unless no retry comes
		// (then it is passed on as it is).
		fw.endAttemptSpan(att.Status, att.GRPCStatus, nil)
		res.Failed = true
		res.Discard = func() { resp.Body.Close(); acancel() }
	}
	return res
}

// trailerKey is k announced as a trailer (net/http's TrailerPrefix form),
// without a string built per call for gRPC's own trailers.
func trailerKey(k string) string {
	switch k {
	case "Grpc-Status":
		return http.TrailerPrefix + "Grpc-Status"
	case "Grpc-Message":
		return http.TrailerPrefix + "Grpc-Message"
	case "Grpc-Status-Details-Bin":
		return http.TrailerPrefix + "Grpc-Status-Details-Bin"
	}
	return http.TrailerPrefix + k
}

// endAttemptSpan ends the running attempt's span, if any.
func (fw *forwarding) endAttemptSpan(status, grpcStatus int, err error) {
	if fw.span != nil {
		tracing.EndAttempt(fw.span, status, grpcStatus, err)
		fw.span = nil
	}
}

// failed is an attempt that got no answer: why is kept for the client.
func (fw *forwarding) failed(ctx context.Context, err error, perTry bool) upstream.Result {
	fw.endAttemptSpan(0, -1, err)
	fw.fail = fw.ch.failure(ctx, fw.r, fw.cl, fw.lastHost, fw.limited, err, perTry)
	out := governance.Outcome{Local: fw.fail.local}
	return upstream.Result{Outcome: out, Judge: fw.fail.judge, Failed: true,
		Attempt: governance.Attempt{Outcome: out, GRPCStatus: -1, RefusedStream: fw.fail.refused}}
}

// respond streams an upstream answer to the client and reports how the
// attempt ended once the stream is over.
func (ch *chain) respond(c *call, r *http.Request, rt *router.Route[*cluster.Cluster], cl *cluster.Cluster, a *cluster.Attempt,
	resp *http.Response, result governance.Attempt, isGRPC bool, limited *limitedBody, ctx context.Context, idle *callContext) {
	defer resp.Body.Close()
	outcome, judge := result.Outcome, true
	defer func() { a.End(outcome, judge) }()

	h := c.Header()
	for k, vs := range resp.Header {
		if !isHopByHop(k) {
			h[k] = vs
		}
	}
	rt.ResponseEdits.Apply(h)
	c.WriteHeader(resp.StatusCode)

	rerr, clientLeft := pump(c, resp, isGRPC, idle)
	switch {
	case clientLeft:
		judge = false
		return // closing the upstream body resets its stream
	case rerr != nil:
		fail := ch.failure(ctx, r, cl, a.Host, limited, rerr, false)
		outcome, judge = governance.Outcome{Local: fail.local}, fail.judge
		if fail.code == 0 {
			return
		}
		if isGRPC {
			wire.SetGRPCTrailers(c, fail.grpc, fail.msg)
			return
		}
		panic(http.ErrAbortHandler) // the body is cut short: reset the downstream stream
	}
	for k, vs := range resp.Trailer {
		h[trailerKey(k)] = vs
	}
	if isGRPC {
		if gs, ok := grpcStatusOf(resp.Trailer); ok {
			outcome.Status = governance.HTTPStatusFromGRPC(gs)
		}
	}
}

// pump copies an upstream answer's body to the client. It returns the
// upstream's read error (nil at its end), or clientLeft when writing to the
// client failed.
func pump(c *call, resp *http.Response, isGRPC bool, idle *callContext) (readErr error, clientLeft bool) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	// A gRPC server may send headers and wait for the client, which may
	// wait for the headers: so streamed responses are flushed whenever the
	// upstream pauses, headers included. A body that tells what it holds
	// (the HTTP/2 transport's) is flushed just before a read that would
	// wait; another one by a coalescer when a read has waited flushDelay.
	streamed := isGRPC || resp.ContentLength < 0
	bb, tells := tellsBuffered(resp.Body)
	pending := streamed // the headers
	var co *coalescer
	if streamed && !tells {
		co = newCoalescer(c)
		co.markPending()
		defer co.stop()
	}
	for {
		if co != nil {
			co.beforeWait()
		} else if pending && tells {
			if n, complete := bb.Buffered(); n == 0 && !complete {
				c.Flush()
				pending = false
			}
		}
		n, rerr := resp.Body.Read(buf)
		if co != nil {
			co.afterWait()
		}
		if n > 0 {
			if idle != nil {
				idle.touch()
			}
			var werr error
			if co != nil {
				werr = co.write(buf[:n])
			} else {
				_, werr = c.Write(buf[:n])
			}
			if werr != nil {
				return nil, true
			}
			pending = streamed
		}
		if rerr == io.EOF {
			return nil, false
		}
		if rerr != nil {
			return rerr, false
		}
	}
}

// tellsBuffered is body as a BufferedBody when it knows what it holds (a
// prefixedBody knows only what the body behind it tells).
func tellsBuffered(body io.Reader) (h2.BufferedBody, bool) {
	bb, ok := body.(h2.BufferedBody)
	if p, prefixed := body.(*prefixedBody); prefixed {
		_, ok = p.ReadCloser.(h2.BufferedBody)
	}
	return bb, ok
}

// peek reads the first bytes of a body (or its end).
func peek(body io.Reader) ([]byte, error) {
	buf := make([]byte, 4096)
	n, err := body.Read(buf)
	return buf[:n], err
}

// prefixedBody gives back what peek read, then the rest of the body.
type prefixedBody struct {
	io.ReadCloser
	prefix []byte
	err    error // what the peek's read returned with the prefix
}

// Buffered is the prefix and what the body holds behind it; after a peek
// that ended the body a read returns at once.
func (b *prefixedBody) Buffered() (int, bool) {
	if b.err != nil && len(b.prefix) == 0 {
		return 0, true
	}
	n, complete := bufferedOf(b.ReadCloser)
	return len(b.prefix) + n, complete
}

func (b *prefixedBody) Read(p []byte) (int, error) {
	if len(b.prefix) > 0 {
		n := copy(p, b.prefix)
		b.prefix = b.prefix[n:]
		return n, nil
	}
	if b.err != nil {
		return 0, b.err
	}
	return b.ReadCloser.Read(p)
}

// grpcStatusOf reads grpc-status from headers or trailers.
func grpcStatusOf(h http.Header) (int, bool) {
	v := h.Get("Grpc-Status")
	if v == "" {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return int(codeUnknown), true
	}
	return n, true
}

// prepareHeaders edits r's headers for the upstream, once for all
// attempts: the handler owns them and they are not read again.
func (ch *chain) prepareHeaders(r *http.Request, rt *router.Route[*cluster.Cluster], isGRPC bool) {
	hdr := r.Header
	removeHopByHop(hdr)
	ch.applyXFCC(r)
	vals := make([]string, 3) // one backing array for the three values
	if clientIP, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if prior := hdr["X-Forwarded-For"]; len(prior) > 0 {
			vals[0] = strings.Join(prior, ", ") + ", " + clientIP
		} else {
			vals[0] = clientIP
		}
		hdr["X-Forwarded-For"] = vals[0:1:1]
	}
	vals[1] = "http"
	if r.TLS != nil {
		vals[1] = "https"
	}
	hdr["X-Forwarded-Proto"] = vals[1:2:2]
	if isGRPC {
		vals[2] = "trailers"
		hdr["Te"] = vals[2:3:3]
	}
	rt.RequestEdits.Apply(hdr)
}

// upstreamRequest builds one attempt's request to host.
func (ch *chain) upstreamRequest(ctx context.Context, r *http.Request, rt *router.Route[*cluster.Cluster], cl *cluster.Cluster,
	host *cluster.Host, body io.ReadCloser, isGRPC bool, timeout time.Duration) *http.Request {
	f := rt.Forward
	path, query := upstreamPath(r, f)
	u := &url.URL{Scheme: cl.Scheme(), Host: host.Address, RawQuery: query}
	if strings.HasPrefix(path, "//") {
		u.Path, _ = url.PathUnescape(path)
		u.RawPath = path
	} else {
		u.Opaque = path // sent as is, keeping the client's escaping
	}
	if isGRPC && sendsGRPCTimeout(r, f, timeout) {
		left := timeout
		if dl, ok := ctx.Deadline(); ok {
			left = time.Until(dl)
		}
		r.Header["Grpc-Timeout"] = []string{wire.FormatGRPCTimeout(left)}
	}
	out := &http.Request{
		Method:        r.Method,
		URL:           u,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        r.Header,
		Body:          body,
		ContentLength: r.ContentLength,
		Host:          upstreamHost(r, f, host),
		Trailer:       r.Trailer,
	}
	if body == nil {
		out.ContentLength = 0
	}
	return out.WithContext(ctx)
}

// upstreamPath is the request's path as the upstream gets it (rewritten
// by the route, else with the client's escaping kept) and its raw query.
func upstreamPath(r *http.Request, f *router.Forward[*cluster.Cluster]) (path, query string) {
	full := r.RequestURI
	if full == "" || full[0] != '/' {
		full = r.URL.RequestURI()
	}
	path, query, _ = strings.Cut(full, "?")
	if f.RewritesPath() {
		path = f.RewritePath(path)
	}
	return path, query
}

// upstreamHost is the Host (:authority) the upstream gets.
func upstreamHost(r *http.Request, f *router.Forward[*cluster.Cluster], host *cluster.Host) string {
	switch {
	case f.HostRewrite != "":
		return f.HostRewrite
	case f.AutoHostRewrite:
		return host.Address
	}
	return r.Host
}

// failure describes an attempt that got no (complete) answer: how the
// client is answered, and how the host is judged.
type failure struct {
	code    int // HTTP status for the client; 0: the client left, no answer
	grpc    codes.Code
	flag    string // Envoy's response flag for the access log ("": none)
	msg     string
	local   governance.LocalFailure
	refused bool // REFUSED_STREAM: the upstream did not process it
	judge   bool // false: not the host's doing (client left, request too large)
}

// failure classifies an upstream error.
func (ch *chain) failure(ctx context.Context, r *http.Request, cl *cluster.Cluster, host *cluster.Host,
	limited *limitedBody, err error, perTryTimeout bool) failure {
	addr := "-" // no attempt was made (the deadline passed before the first): Envoy's "-"
	if host != nil {
		addr = host.Address
	}
	if limited != nil {
		switch limited.Tripped() {
		case errBodyTooLarge:
			return failure{code: http.StatusRequestEntityTooLarge, grpc: codeResourceExhausted,
				msg: fmt.Sprintf("request body is over the limit of %d bytes", ch.maxBody)}
		case errMessageTooLarge:
			return failure{code: http.StatusRequestEntityTooLarge, grpc: codeResourceExhausted,
				msg: fmt.Sprintf("a gRPC message is over the limit of %d bytes", ch.maxMsg)}
		}
	}
	// The upstream got the deadline in grpc-timeout and may give up a hair
	// before the gateway's own timer fires: a failure that close to the
	// deadline is the deadline's.
	dl, hasDeadline := ctx.Deadline()
	nearDeadline := hasDeadline && time.Until(dl) < h2.DeadlineSlack
	switch {
	case r.Context().Err() != nil:
		return failure{code: 0, grpc: codeCancelled, flag: "DC"}
	case errors.Is(context.Cause(ctx), errRequestTimeout):
		// The client did not send its whole request in time: not the host's fault.
		return failure{code: http.StatusRequestTimeout, grpc: codeDeadlineExceeded, local: governance.Timeout,
			msg: fmt.Sprintf("request timeout: the request did not arrive whole within %v (request_timeout)", ch.requestTimeout)}
	case errors.Is(context.Cause(ctx), errStreamIdle):
		// The stream went quiet: not the host's failure to answer.
		return failure{code: http.StatusRequestTimeout, grpc: codeDeadlineExceeded, local: governance.Timeout, flag: "SI",
			msg: fmt.Sprintf("stream idle timeout (cluster %q, host %s)", cl.Name, addr)}
	case perTryTimeout:
		cl.Stats.RqTimeout.Add(1)
		return failure{code: http.StatusGatewayTimeout, grpc: codeDeadlineExceeded, local: governance.Timeout, judge: true, flag: "UT",
			msg: fmt.Sprintf("upstream per-try timeout (cluster %q, host %s)", cl.Name, addr)}
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || nearDeadline:
		cl.Stats.RqTimeout.Add(1)
		return failure{code: http.StatusGatewayTimeout, grpc: codeDeadlineExceeded, local: governance.Timeout, judge: true, flag: "UT",
			msg: fmt.Sprintf("upstream request timeout (cluster %q, host %s)", cl.Name, addr)}
	}
	var se http2.StreamError
	if errors.As(err, &se) {
		gc, _ := resetCode(err)
		return failure{code: http.StatusServiceUnavailable, grpc: gc, local: governance.Reset, judge: true, flag: "UR",
			refused: se.Code == http2.ErrCodeRefusedStream,
			msg:     fmt.Sprintf("upstream reset (cluster %q, host %s): %v", cl.Name, addr, err)}
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return failure{code: http.StatusServiceUnavailable, grpc: codeUnavailable, local: governance.ConnectFailure, judge: true, flag: "UF",
			msg: fmt.Sprintf("upstream connect error (cluster %q, host %s): %v", cl.Name, addr, op.Err)}
	}
	return failure{code: http.StatusServiceUnavailable, grpc: codeUnavailable, local: governance.Reset, judge: true, flag: "UR",
		msg: fmt.Sprintf("upstream failed (cluster %q, host %s): %v", cl.Name, addr, err)}
}

// isHopByHop: k (canonical) describes one connection, not the message
// (RFC 9110 section 7.6.1), and is not forwarded. A switch, not a map:
// every relayed request asks it about each of its fields.
func isHopByHop(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

func removeHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				delete(h, http.CanonicalHeaderKey(name))
			}
		}
	}
	// The request's few fields are looked at, rather than a delete for each
	// hop-by-hop name (a hash each, most of them absent).
	for k := range h {
		if isHopByHop(k) {
			delete(h, k)
		}
	}
}
