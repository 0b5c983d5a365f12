package server

import (
	"cmp"
	"errors"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/meshgate/meshgate/governance"
	"github.com/meshgate/meshgate/server/accesslog"
	"github.com/meshgate/meshgate/server/cluster"
	"github.com/meshgate/meshgate/server/h2"
	"github.com/meshgate/meshgate/server/httpfilter"
	"github.com/meshgate/meshgate/server/overload"
	"github.com/meshgate/meshgate/server/router"
	"github.com/meshgate/meshgate/server/tracing"
	"github.com/meshgate/meshgate/server/wire"
)

// relay decides, in the HTTP/2 server's read loop, whether a request is
// relayed frame by frame (h2.RelayFunc) instead of going through a handler:
// a plain gRPC call whose chain passes it through untouched, routed to an
// HTTP/2 cluster and admitted by the cluster's circuit breakers. The route's
// timeouts, response header edits and retry policy (a failed attempt is
// handed to the handler path for its retries) and the listener's message
// limit go with it. Anything else, and anything the relay cannot start (no
// ready upstream connection), takes the handler path, which does all of it.
func (l *listener) relay(r *http.Request) (*h2.RelayTarget, bool) {
	ch := l.chainFor(r)
	if ch == nil || !ch.relayable || !router.IsGRPC(r) || r.Method != http.MethodPost || ch.requestTimeout > 0 || ch.logsResponse ||
		ch.srv.overload.Active(overload.StopAcceptingRequests) { // the handler path answers it
		return nil, false
	}
	if ch.checkHeaders && headerBytes(r) > ch.maxHeaderBytes {
		return nil, false
	}
	rt := ch.routes.Match(r)
	if rt == nil || rt.Direct != nil || rt.Redirect != nil {
		return nil, false
	}
	// The request id and the tracing decision first, as the handler path
	// makes them before its filters: a filter that reads the request (RBAC
	// on headers) sees what it would see there. (A call that still takes
	// the handler path keeps both.)
	id := ch.requestID(r) // before orig: a retry keeps the id
	if tr := ch.tracing; tr != nil {
		// A traced call takes the handler path, which makes its spans;
		// with no request id to decide by, it decides there once.
		if id == "" || tr.Decide(r.Header, id).Sampled {
			return nil, false
		}
		tracing.MarkUnsampled(r.Header)
	}
	if !passesThrough(ch.filters, r, rt) {
		return nil, false
	}
	f := rt.Forward
	if f == nil {
		return nil, false
	}
	policy := f.Retry
	if policy != nil && policy.NumRetries == 0 {
		policy = nil
	}
	target := f.Pick(rand.Uint64())
	if !target.Found {
		return nil, false
	}
	if _, _, ok := cluster.ResolveService(ch.resolve, target.Name, false); ok {
		return nil, false
	}
	cl := target.Target
	tr, ok := cl.Transport(true).(*h2.Transport)
	if !ok || cl.Protocol == cluster.Dubbo {
		return nil, false
	}
	timeout, err := callTimeout(r, f, true)
	if err != nil {
		return nil, false // the handler path answers INVALID_ARGUMENT
	}
	if !cl.Admits(f.Priority) {
		return nil, false // the handler path answers the overflow
	}
	var pick governance.PickInfo
	pick.Hash, pick.HasHash = f.Hash(r)
	h, err := cl.Pick(pick, nil)
	if err != nil {
		return nil, false
	}
	routeName := rt.Name
	// orig keeps the request's header as it came, for a retry (only a
	// route that retries pays for it: a variable the closures assigned
	// would be moved to the heap for every call).
	var orig *http.Header
	if policy != nil {
		orig = new(http.Header)
	}
	tgt := &h2.RelayTarget{
		Transport:  tr,
		Addr:       h.Address,
		Timeout:    timeout,
		Idle:       cmp.Or(f.IdleTimeout, ch.streamIdle),
		MaxMessage: ch.maxMsg,
		Start: func() (h2.RequestHead, func(h2.RelayEnd), bool) {
			a, ok := cl.BeginOn(h)
			if !ok {
				return h2.RequestHead{}, nil, false
			}
			cl.Stats.RqRelayed.Add(1)
			start := time.Now()
			if orig != nil {
				*orig = r.Header.Clone()
			}
			ch.prepareHeaders(r, rt, true)
			if sendsGRPCTimeout(r, f, timeout) {
				r.Header["Grpc-Timeout"] = []string{wire.FormatGRPCTimeout(timeout)}
			}
			path, query := upstreamPath(r, f)
			if query != "" {
				path += "?" + query
			}
			out := h2.RequestHead{Method: r.Method, Scheme: cl.Scheme(), Authority: upstreamHost(r, f, h),
				Path: path, Header: r.Header}
			return out, func(e h2.RelayEnd) {
				out, judge := relayOutcome(e)
				if out.Local == governance.Timeout {
					cl.Stats.RqTimeout.Add(1)
				}
				a.End(out, judge)
				if e.HandedOver {
					return // the handler that retries it counts the request
				}
				status := e.Status
				if e.ClientGone && status == 0 {
					status = 499
				}
				gs := relayGRPCStatus(e)
				ch.srv.metrics.Request(ch.listener, routeName, target.Name, status, gs, time.Since(start))
				if len(ch.accessLogs) == 0 && ch.srv.istio == nil {
					return
				}
				flags := relayFlags(e)
				if ist := ch.srv.istio; ist != nil {
					ist.Record(target.Name, h, true, e.Status, gs, flags, time.Since(start), e.BytesIn, e.BytesOut)
				}
				if len(ch.accessLogs) > 0 {
					var en accesslog.Entry
					accessEntry(&en, r, start)
					en.Status, en.GRPCStatus, en.Flags = e.Status, gs, flags
					en.UpstreamCluster, en.RouteName, en.UpstreamHost = target.Name, routeName, h.Address
					en.BytesReceived, en.BytesSent = e.BytesIn, e.BytesOut
					en.Attempts = 1
					en.Details = codeDetails(en.Flags, en.Status, en.UpstreamHost)
					ch.logAccess(&en)
				}
			}, true
		},
	}
	switch edits := rt.ResponseEdits; {
	case ch.idInResponse && id != "":
		tgt.EditResponse = func(h http.Header) {
			edits.Apply(h)
			h.Set("X-Request-Id", id)
		}
	case len(edits) > 0:
		tgt.EditResponse = edits.Apply
	}
	if policy != nil {
		tgt.RetryBuffer = int(min(f.BufferLimit, math.MaxInt32))
		tgt.PerTry = policy.PerTryTimeout
		tgt.Retry = func(e h2.RelayEnd) (*http.Request, any, bool) {
			out, judge := relayOutcome(e)
			att := governance.Attempt{Outcome: out, GRPCStatus: -1, RefusedStream: e.Refused}
			if !e.Local {
				att.GRPCStatus = relayGRPCStatus(e)
			}
			if !judge || !policy.Retriable(att) {
				return nil, nil, false
			}
			release, ok := cl.AcquireRetry(f.Priority)
			if !ok {
				return nil, nil, false
			}
			r.Header, r.Body = *orig, nil
			return r, &relayPrior{cluster: cl, host: h, releaseRetry: sync.OnceFunc(release)}, true
		}
	}
	return tgt, true
}

// relayPrior is a relayed call's first attempt, failed in a way its route
// retries: the handler path it is handed to goes on from the first retry.
type relayPrior struct {
	cluster      *cluster.Cluster
	host         *cluster.Host
	releaseRetry func() // once; Run releases it, or Done when no Run did
}

// Done is called when the handler returned: the booked retry is released
// even if the call never reached Run (the route changed, a filter answered).
func (p *relayPrior) Done() { p.releaseRetry() }

// handedOverPrior is the relay's first attempt of a call handed to the
// handler path on cl, nil when there was none (or it was on another
// cluster: the config changed in between; its booked retry is released).
func handedOverPrior(r *http.Request, cl *cluster.Cluster) *relayPrior {
	p, ok := h2.HandedOver(r.Context()).(*relayPrior)
	if !ok {
		return nil
	}
	if p.cluster != cl {
		p.releaseRetry()
		return nil
	}
	return p
}

// relayOutcome is what the host's breaker and outlier detection learn of
// a relayed call.
func relayOutcome(e h2.RelayEnd) (governance.Outcome, bool) {
	switch {
	case e.ClientGone:
		return governance.Outcome{}, false
	case e.Err != nil && e.Local:
		local := governance.Reset
		if errors.Is(e.Err, h2.ErrRelayTimeout) || errors.Is(e.Err, h2.ErrRelayPerTryTimeout) {
			local = governance.Timeout
		}
		if errors.Is(e.Err, h2.ErrRelayIdle) || errors.Is(e.Err, h2.ErrRelayMessageTooLarge) {
			return governance.Outcome{}, false // not the host's doing
		}
		return governance.Outcome{Local: local}, true
	}
	if gs := relayGRPCStatus(e); gs >= 0 {
		return governance.Outcome{Status: governance.HTTPStatusFromGRPC(gs)}, true
	}
	return governance.Outcome{Status: e.Status}, true
}

// relayGRPCStatus is a relayed call's grpc-status, -1 when it had none.
func relayGRPCStatus(e h2.RelayEnd) int {
	if v, err := strconv.Atoi(e.GRPCStatus); err == nil {
		return v
	}
	return -1
}

// relayableChain: every filter of the chain can tell a gRPC request it
// lets by.
func relayableChain(filters []httpfilter.Filter) bool {
	for _, f := range filters {
		if _, ok := f.(httpfilter.GRPCPassThrough); !ok {
			return false
		}
	}
	return true
}

// passesThrough: every filter lets r by untouched.
func passesThrough(filters []httpfilter.Filter, r *http.Request, rt *httpfilter.Route) bool {
	for _, f := range filters {
		if !f.(httpfilter.GRPCPassThrough).PassesGRPCThrough(r, rt) {
			return false
		}
	}
	return true
}
