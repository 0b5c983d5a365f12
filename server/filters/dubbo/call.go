package dubbo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/grpc/codes"

	"github.com/meshgate/meshgate/dubbo"
	"github.com/meshgate/meshgate/governance"
	"github.com/meshgate/meshgate/server/cluster"
	"github.com/meshgate/meshgate/server/filters/dubbo/bridge"
	"github.com/meshgate/meshgate/server/httpfilter"
	"github.com/meshgate/meshgate/server/router"
	"github.com/meshgate/meshgate/server/tracing"
	"github.com/meshgate/meshgate/server/upstream"
	"github.com/meshgate/meshgate/server/wire"
	"github.com/meshgate/meshgate/triple"
)

// defaultMaxBody bounds a bridged request's body when the listener sets
// no limit: the bridge reads it whole (Dubbo's own payload default).
const defaultMaxBody = 8 << 20

// serve answers a request whose route calls a Dubbo method: the arguments
// from the request, a call on a host of the route's cluster (Dubbo2's
// generic call, or Triple's), the answer in the caller's form.
func (f *filter) serve(s *httpfilter.Stream, rt *httpfilter.Route, b *bridge.Route) {
	c, r := s.W, s.R
	fw := rt.Forward
	target := fw.Pick(rand.Uint64())
	name, cl := target.Name, target.Target
	if !target.Found {
		cl = nil
	}
	if n, c, ok := cluster.ResolveService(f.resolve, name, false); ok {
		// A service named independent of protocol: its Triple providers,
		// else its Dubbo2 ones.
		name, cl = n, c
	}
	s.Cluster = name
	if cl == nil {
		bridgeError(c, r, http.StatusServiceUnavailable, codes.Unavailable, fmt.Sprintf("cluster %q is not configured", name))
		return
	}
	if cl.Dubbo == nil && !cl.Triple {
		bridgeError(c, r, http.StatusServiceUnavailable, codes.Unavailable,
			fmt.Sprintf("the route calls Dubbo services, but cluster %q holds neither Dubbo2 nor Triple providers (protocol dubbo or tri)", cl.Name))
		return
	}
	body, ok := f.readBody(c, r)
	if !ok {
		return
	}
	isGRPC := router.IsGRPC(r)
	ctx := r.Context()
	timeout, ok := bridgeTimeout(c, r, fw, isGRPC, cl.DubboConsumer.Timeout)
	if !ok {
		return
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if cl.Triple && isTripleUnary(r) && mediaType(r) == "application/proto" {
		tripleProto(c, r, fw, cl, b, body, ctx, timeout, nil)
		return
	}
	if md, ok := b.IDLMethod(r.URL.Path); ok && cl.Triple && !isGRPC {
		// JSON to an IDL Triple method: transcoded with the descriptor.
		msg, err := bridge.JSONToProto(body, md)
		if err != nil {
			if br, ok := bridge.IsBadRequest(err); ok {
				bridgeError(c, r, br.Status, br.GRPC, br.Msg)
			} else {
				bridgeError(c, r, http.StatusInternalServerError, codes.Internal, err.Error())
			}
			return
		}
		tripleProto(c, r, fw, cl, b, msg, ctx, timeout, md)
		return
	}
	f.generic(c, r, fw, cl, b, body, ctx)
}

// generic calls a Dubbo2 or non-IDL Triple method by generic
// invocation, through the attempt loop, and answers in the caller's form.
func (f *filter) generic(c http.ResponseWriter, r *http.Request, fw *router.Forward[*cluster.Cluster], cl *cluster.Cluster,
	b *bridge.Route, body []byte, ctx context.Context) {
	isGRPC := router.IsGRPC(r)
	var err error
	svc := cl.DubboService
	bsvc := bridge.Service{Interface: svc.Interface, Version: svc.Version, Group: svc.Group, Methods: svc.Methods, Signatures: svc.Signatures}
	var callSpec *bridge.Call
	var grpcCall *bridge.GRPCCall
	if isGRPC {
		if grpcCall, err = b.GRPCRequest(r, body, bsvc); err == nil {
			callSpec = grpcCall.Call
		}
	} else {
		callSpec, err = b.Request(r, body, bsvc)
	}
	if err != nil {
		if br, ok := bridge.IsBadRequest(err); ok {
			bridgeError(c, r, br.Status, br.GRPC, br.Msg)
			return
		}
		bridgeError(c, r, http.StatusInternalServerError, codes.Internal, err.Error())
		return
	}

	bc := &bridgeCall{cl: cl, callSpec: callSpec, grpc: grpcCall, b: b, policy: fw.Retry, r: r}
	call := upstream.Call{Cluster: cl, Priority: fw.Priority}
	call.Pick.Hash, call.Pick.HasHash = fw.Hash(r)
	if callSpec.HasHash {
		call.Pick.Hash, call.Pick.HasHash = callSpec.Hash, true
	}
	if p := fw.Retry; p != nil {
		call.Retries, call.Backoff, call.SkipTried = int(p.NumRetries), p.Backoff, p.SkipPreviousHosts
		call.Retriable = func(res upstream.Result) bool { return res.Outcome.Failed() && p.Retriable(res.Attempt) }
	}
	if dc := cl.DubboConsumer; dc.HasRetries {
		// Dubbo's dynamic configuration: failover tries on another
		// provider after a failed one, on the route's conditions when it
		// has a retry policy, else on any failure.
		call.Retries, call.SkipTried = dc.Retries, true
		if call.Retriable == nil {
			call.Retriable = func(res upstream.Result) bool { return res.Outcome.Failed() }
		}
	}
	if cl.HasDubboRules() {
		call.Dubbo = dubbo.RulesCall(callSpec.Service.Method, callSpec.Args, callSpec.Attachments)
	}
	if cl.Dubbo != nil {
		// Providers shutting down (their readonly event) take no new calls
		// while others can, as a Dubbo consumer skips them.
		call.Avoid = func() []*cluster.Host {
			if !cl.Dubbo.AnyAway() {
				return nil
			}
			var away []*cluster.Host
			for _, h := range cl.Hosts() {
				if cl.Dubbo.Away(h.Address) {
					away = append(away, h)
				}
			}
			return away
		}
	}
	res, _, err := upstream.Run(ctx, call, bc.attempt)
	switch {
	case errors.Is(err, upstream.ErrOverloaded):
		f.markOverloaded(c)
		bridgeError(c, r, http.StatusServiceUnavailable, codes.Unavailable, err.Error())
	case errors.Is(err, upstream.ErrNoHost):
		bridgeError(c, r, http.StatusServiceUnavailable, codes.Unavailable, err.Error())
	case err != nil: // the deadline passed while waiting to retry
		writeDubboFailure(c, r, b.Classify(ctx, err, cl.Name, bc.lastHost))
	case !res.Failed:
		var werr error
		if grpcCall != nil {
			werr = b.AnswerGRPC(c, grpcCall, bc.resp)
		} else {
			werr = b.Answer(c, bc.resp)
		}
		if werr != nil { // (nothing is written yet)
			bridgeError(c, r, http.StatusBadGateway, codes.Internal, werr.Error())
		}
	case r.Context().Err() == nil: // (the client that left gets no answer)
		writeDubboFailure(c, r, bc.fail)
	}
}

// readBody reads a bridged request's body whole (it becomes the call's
// arguments), within the listener's limit; false: answered already.
func (f *filter) readBody(c http.ResponseWriter, r *http.Request) ([]byte, bool) {
	limit := f.maxBody
	if r.ContentLength > int64(limit) {
		bridgeError(c, r, http.StatusRequestEntityTooLarge, codes.ResourceExhausted,
			fmt.Sprintf("request body of %d bytes is over the limit of %d", r.ContentLength, limit))
		return nil, false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	if err != nil {
		bridgeError(c, r, http.StatusBadRequest, codes.InvalidArgument, "reading the request body: "+err.Error())
		return nil, false
	}
	if uint64(len(body)) > limit {
		bridgeError(c, r, http.StatusRequestEntityTooLarge, codes.ResourceExhausted,
			fmt.Sprintf("request body is over the limit of %d bytes", limit))
		return nil, false
	}
	return body, true
}

// bridgeTimeout is a bridged call's deadline: the route's timeout, or the
// caller's own (Triple-Timeout-Ms, grpc-timeout) when sooner; false: the
// caller's was malformed and was answered.
func bridgeTimeout(c http.ResponseWriter, r *http.Request, fw *router.Forward[*cluster.Cluster], isGRPC bool, dynamic time.Duration) (time.Duration, bool) {
	timeout := fw.Timeout
	if dynamic > 0 {
		timeout = dynamic // Dubbo's dynamic configuration for meshgate overrides the route's
	}
	if v := r.Header.Get(tripleTimeoutHeader); !isGRPC && v != "" {
		// Triple's unary HTTP form: the caller's timeout in milliseconds.
		ms, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			bridgeError(c, r, http.StatusBadRequest, codes.InvalidArgument, fmt.Sprintf("%s %q is not milliseconds", tripleTimeoutHeader, v))
			return 0, false
		}
		if d := time.Duration(ms) * time.Millisecond; timeout == 0 || d < timeout {
			timeout = d
		}
	}
	if isGRPC {
		var err error
		if timeout, err = wire.CallTimeout(timeout, r.Header.Get("Grpc-Timeout"), fw.GRPCTimeoutMax); err != nil {
			wire.WriteGRPCStatus(c, codes.InvalidArgument, err.Error())
			return 0, false
		}
	}
	return timeout, true
}

// bridgeCall is one bridged call on its way through its attempts.
type bridgeCall struct {
	cl       *cluster.Cluster
	callSpec *bridge.Call
	grpc     *bridge.GRPCCall
	b        *bridge.Route
	policy   *governance.RetryPolicy
	r        *http.Request
	// What the last attempt left: the answer, or why it failed.
	resp     *dubbo.Response
	fail     bridge.Failure
	lastHost string
}

// attempt calls the method on a's host: a generic Dubbo2 call, or the
// method itself in Triple's non-IDL form.
func (bc *bridgeCall) attempt(ctx context.Context, a *cluster.Attempt, _ int) upstream.Result {
	cl, spec := bc.cl, bc.callSpec
	bc.lastHost = a.Host.Address
	var callTimeout time.Duration
	if dl, ok := ctx.Deadline(); ok {
		callTimeout = time.Until(dl)
	}
	actx, acancel := ctx, context.CancelFunc(func() {})
	if p := bc.policy; p != nil && p.PerTryTimeout > 0 {
		actx, acancel = context.WithTimeout(ctx, p.PerTryTimeout)
		callTimeout = min(callTimeout, p.PerTryTimeout)
		if callTimeout <= 0 {
			callTimeout = p.PerTryTimeout
		}
	}
	defer acancel()
	if spec.Attachments == nil {
		spec.Attachments = map[string]string{}
	}
	// A traced request's attempt: its span's context goes in the
	// attachments, where a Dubbo provider's tracing filter reads it.
	span, traced := tracing.StartAttempt(ctx, cl.Name, a.Host.Address, propagation.MapCarrier(spec.Attachments))
	var resp *dubbo.Response
	var err error
	if traced {
		defer func() { tracing.EndAttempt(span, 0, -1, err) }()
	}
	if cl.Dubbo != nil {
		req := dubbo.GenericRequest(spec.Service, spec.Types, spec.Args, spec.Attachments)
		req.Timeout = callTimeout
		resp, err = cl.Dubbo.Call(actx, a.Host.Address, req)
	} else {
		var tr *triple.Response
		tr, err = triple.Call(actx, cl.Transport(true), cl.Scheme(), a.Host.Address, triple.Request{
			Service: triple.Service(spec.Service), Args: spec.Args, Types: spec.Types, Attachments: spec.Attachments, Timeout: callTimeout,
		})
		resp = (*dubbo.Response)(tr)
	}
	if err == nil {
		bc.resp = resp
		return upstream.Result{Outcome: governance.Outcome{Status: http.StatusOK}, Judge: true}
	}
	if bc.r.Context().Err() != nil {
		return upstream.Result{Failed: true} // the client left: not the host's doing
	}
	bc.fail = bc.b.Classify(actx, err, cl.Name, a.Host.Address)
	if bc.fail.Outcome.Local == governance.Timeout && ctx.Err() == nil {
		cl.Stats.RqTimeout.Add(1) // a per-try timeout
	}
	res := upstream.Result{Outcome: bc.fail.Outcome, Judge: true, Failed: true,
		Attempt: governance.Attempt{Outcome: bc.fail.Outcome, GRPCStatus: -1}}
	if bc.fail.Outcome.Status != 0 && bc.fail.Outcome.Status != http.StatusOK {
		res.Attempt.GRPCStatus = int(bc.fail.GRPC)
	}
	return res
}
