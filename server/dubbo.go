package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/meshgate/meshgate/dubbo"
	"github.com/meshgate/meshgate/governance"
	"github.com/meshgate/meshgate/server/cluster"
	"github.com/meshgate/meshgate/server/dubbobridge"
	"github.com/meshgate/meshgate/server/router"
	"github.com/meshgate/meshgate/server/upstream"
	"github.com/meshgate/meshgate/server/wire"
	"github.com/meshgate/meshgate/triple"
)

// defaultDubboBody bounds a bridged request's body when the listener sets
// no limit: the bridge reads it whole (Dubbo's own payload default).
const defaultDubboBody = 8 << 20

// bridgeDubbo answers a request whose route calls a Dubbo2 method: the
// arguments from the request, a generic call on a host of the route's
// cluster (with the route's timeout and retries, and the cluster's
// balancer, breakers and outlier detection), the answer as JSON.
func (ch *chain) bridgeDubbo(c *call, r *http.Request, rt *router.Route[*cluster.Cluster], b *dubbobridge.Route) {
	f := rt.Forward
	target := f.Pick(rand.Uint64())
	if t, ok := serviceTarget(ch.resolve, target.Name, false); ok {
		// A service named independent of protocol: its Triple providers,
		// else its Dubbo2 ones.
		target = t
	}
	c.cluster = target.Name
	if !target.Found {
		bridgeError(c, r, http.StatusServiceUnavailable, codeUnavailable, fmt.Sprintf("cluster %q is not configured", target.Name))
		return
	}
	cl := target.Target
	if cl.Dubbo == nil && !cl.Triple {
		bridgeError(c, r, http.StatusServiceUnavailable, codeUnavailable,
			fmt.Sprintf("the route calls Dubbo services, but cluster %q holds neither Dubbo2 nor Triple providers (protocol dubbo or tri)", cl.Name))
		return
	}
	body, ok := ch.bridgeBody(c, r)
	if !ok {
		return
	}
	isGRPC := router.IsGRPC(r)
	ctx := r.Context()
	timeout, ok := bridgeTimeout(c, r, f, isGRPC)
	if !ok {
		return
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if cl.Triple && isTripleUnary(r) && mediaType(r) == "application/proto" {
		ch.tripleProto(c, r, rt, cl, b, body, ctx, timeout, nil)
		return
	}
	if md, ok := b.IDLMethod(r.URL.Path); ok && cl.Triple && !isGRPC {
		// JSON to an IDL Triple method: transcoded with the descriptor.
		msg, err := dubbobridge.JSONToProto(body, md)
		if err != nil {
			if br, ok := dubbobridge.IsBadRequest(err); ok {
				bridgeError(c, r, br.Status, br.GRPC, br.Msg)
			} else {
				bridgeError(c, r, http.StatusInternalServerError, codeInternal, err.Error())
			}
			return
		}
		ch.tripleProto(c, r, rt, cl, b, msg, ctx, timeout, md)
		return
	}
	ch.bridgeGeneric(c, r, f, cl, b, body, ctx)
}

// bridgeGeneric calls a Dubbo2 or non-IDL Triple method by generic
// invocation, through the attempt loop, and answers in the caller's form.
func (ch *chain) bridgeGeneric(c *call, r *http.Request, f *router.Forward[*cluster.Cluster], cl *cluster.Cluster,
	b *dubbobridge.Route, body []byte, ctx context.Context) {
	isGRPC := router.IsGRPC(r)
	var err error
	svc := cl.DubboService
	bsvc := dubbobridge.Service{Interface: svc.Interface, Version: svc.Version, Group: svc.Group, Methods: svc.Methods, Signatures: svc.Signatures}
	var callSpec *dubbobridge.Call
	var grpcCall *dubbobridge.GRPCCall
	if isGRPC {
		if grpcCall, err = b.GRPCRequest(r, body, bsvc); err == nil {
			callSpec = grpcCall.Call
		}
	} else {
		callSpec, err = b.Request(r, body, bsvc)
	}
	if err != nil {
		if br, ok := dubbobridge.IsBadRequest(err); ok {
			bridgeError(c, r, br.Status, br.GRPC, br.Msg)
			return
		}
		bridgeError(c, r, http.StatusInternalServerError, codeInternal, err.Error())
		return
	}

	bc := &bridgeCall{cl: cl, callSpec: callSpec, grpc: grpcCall, b: b, policy: f.Retry, r: r}
	call := upstream.Call{Cluster: cl, Priority: f.Priority}
	call.Pick.Hash, call.Pick.HasHash = f.Hash(r)
	if callSpec.HasHash {
		call.Pick.Hash, call.Pick.HasHash = callSpec.Hash, true
	}
	if p := f.Retry; p != nil {
		call.Retries, call.Backoff, call.SkipTried = int(p.NumRetries), p.Backoff, p.SkipPreviousHosts
		call.Retriable = func(res upstream.Result) bool { return res.Outcome.Failed() && p.Retriable(res.Attempt) }
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
		ch.markOverloaded(c)
		bridgeError(c, r, http.StatusServiceUnavailable, codeUnavailable, err.Error())
	case errors.Is(err, upstream.ErrNoHost):
		bridgeError(c, r, http.StatusServiceUnavailable, codeUnavailable, err.Error())
	case err != nil: // the deadline passed while waiting to retry
		writeDubboFailure(c, r, b.Classify(ctx, err, cl.Name, bc.lastHost))
	case !res.Failed:
		var werr error
		if grpcCall != nil {
			werr = b.AnswerGRPC(c, grpcCall, bc.resp)
		} else {
			werr = b.Answer(c, bc.resp)
		}
		if werr != nil && !c.wroteHeader {
			bridgeError(c, r, http.StatusBadGateway, codeInternal, werr.Error())
		}
	case r.Context().Err() == nil: // (the client that left gets no answer)
		writeDubboFailure(c, r, bc.fail)
	}
}

// bridgeBody reads a bridged request's body whole (it becomes the call's
// arguments), within the listener's limit; false: answered already.
func (ch *chain) bridgeBody(c *call, r *http.Request) ([]byte, bool) {
	limit := ch.maxBody
	if limit == 0 {
		limit = defaultDubboBody
	}
	if r.ContentLength > int64(limit) {
		bridgeError(c, r, http.StatusRequestEntityTooLarge, codeResourceExhausted,
			fmt.Sprintf("request body of %d bytes is over the limit of %d", r.ContentLength, limit))
		return nil, false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	if err != nil {
		bridgeError(c, r, http.StatusBadRequest, codes.InvalidArgument, "reading the request body: "+err.Error())
		return nil, false
	}
	if uint64(len(body)) > limit {
		bridgeError(c, r, http.StatusRequestEntityTooLarge, codeResourceExhausted,
			fmt.Sprintf("request body is over the limit of %d bytes", limit))
		return nil, false
	}
	return body, true
}

// bridgeTimeout is a bridged call's deadline: the route's timeout, or the
// caller's own (Triple-Timeout-Ms, grpc-timeout) when sooner; false: the
// caller's was malformed and was answered.
func bridgeTimeout(c *call, r *http.Request, f *router.Forward[*cluster.Cluster], isGRPC bool) (time.Duration, bool) {
	timeout := f.Timeout
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
	if v := r.Header.Get("Grpc-Timeout"); isGRPC && v != "" {
		d, err := parseGRPCTimeout(v)
		if err != nil {
			wire.WriteGRPCStatus(c, codes.InvalidArgument, err.Error())
			return 0, false
		}
		if f.GRPCTimeoutMax > 0 && d > f.GRPCTimeoutMax {
			d = f.GRPCTimeoutMax
		}
		if timeout == 0 || d < timeout {
			timeout = d
		}
	}
	return timeout, true
}

// bridgeCall is one bridged call on its way through its attempts.
type bridgeCall struct {
	cl       *cluster.Cluster
	callSpec *dubbobridge.Call
	grpc     *dubbobridge.GRPCCall
	b        *dubbobridge.Route
	policy   *governance.RetryPolicy
	r        *http.Request
	// What the last attempt left: the answer, or why it failed.
	resp     *dubbo.Response
	fail     dubbobridge.Failure
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
	var resp *dubbo.Response
	var err error
	if cl.Dubbo != nil {
		req := dubbo.GenericRequest(spec.Service, spec.Types, spec.Args, spec.Attachments)
		req.Timeout = callTimeout
		resp, err = cl.Dubbo.Call(actx, a.Host.Address, req)
	} else {
		resp, err = triple.Call(actx, cl.Transport(true), cl.Scheme(), a.Host.Address, triple.Request{
			Service: spec.Service, Args: spec.Args, Types: spec.Types, Attachments: spec.Attachments, Timeout: callTimeout,
		})
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

// tripleProto carries Triple's unary application/proto form to a Triple
// provider in the gRPC form: the message (IDL, or a non-IDL wrapper) is
// framed and the answer's message returned, neither decoded.
func (ch *chain) tripleProto(c *call, r *http.Request, rt *router.Route[*cluster.Cluster], cl *cluster.Cluster, b *dubbobridge.Route,
	body []byte, ctx context.Context, timeout time.Duration, asJSON protoreflect.MethodDescriptor) {
	f := rt.Forward
	if err := cl.Admit(f.Priority); err != nil {
		bridgeError(c, r, http.StatusServiceUnavailable, codeUnavailable, err.Error())
		return
	}
	var info governance.PickInfo
	info.Hash, info.HasHash = f.Hash(r)
	a, err := cl.Begin(info, nil)
	if err != nil {
		bridgeError(c, r, http.StatusServiceUnavailable, codeUnavailable, err.Error())
		return
	}
	msg, hdr, err := triple.CallProto(ctx, cl.Transport(true), cl.Scheme(), a.Host.Address, r.URL.Path, body, r.Header, timeout)
	if err != nil {
		if r.Context().Err() != nil {
			a.End(governance.Outcome{}, false)
			return
		}
		fail := b.Classify(ctx, err, cl.Name, a.Host.Address)
		a.End(fail.Outcome, true)
		writeDubboFailure(c, r, fail)
		return
	}
	a.End(governance.Outcome{Status: http.StatusOK}, true)
	contentType := "application/proto"
	if asJSON != nil {
		if msg, err = dubbobridge.ProtoToJSON(msg, asJSON); err != nil {
			bridgeError(c, r, http.StatusBadGateway, codeInternal, err.Error())
			return
		}
		contentType = "application/json"
	}
	h := c.Header()
	for k, vs := range hdr {
		if lk := strings.ToLower(k); strings.HasPrefix(lk, "tri-") && len(vs) > 0 {
			h.Set(k, vs[0])
		}
	}
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(msg)))
	c.WriteHeader(http.StatusOK)
	_, _ = c.Write(msg)
}

// mediaType is the request's content type without parameters, lower case.
func mediaType(r *http.Request) string {
	t, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	return strings.ToLower(strings.TrimSpace(t))
}

// Headers of Triple's unary HTTP form (dubbo-go's names).
const (
	tripleVersionHeader = "Triple-Protocol-Version"
	tripleTimeoutHeader = "Triple-Timeout-Ms"
)

// isTripleUnary tells a caller of Triple's unary HTTP form, which expects
// Triple's error answer.
func isTripleUnary(r *http.Request) bool {
	return r.Header.Get(tripleVersionHeader) != "" && !router.IsGRPC(r)
}

// bridgeError answers a bridged call's failure in the caller's protocol:
// gRPC status, Triple's unary error, or the JSON error.
func bridgeError(w http.ResponseWriter, r *http.Request, httpCode int, grpcCode codes.Code, msg string) {
	if isTripleUnary(r) {
		writeTripleError(w, grpcCode, msg)
		return
	}
	wire.WriteError(w, r, httpCode, grpcCode, msg)
}

// writeTripleError is Triple's unary error answer: the HTTP status of the
// code, and {"code":"<name>","message":...}.
func writeTripleError(w http.ResponseWriter, code codes.Code, msg string) {
	name := strings.ToLower(wire.StatusName(code))
	if code == codes.Canceled {
		name = "canceled"
	}
	b, _ := json.Marshal(map[string]string{"code": name, "message": msg})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(tripleHTTPStatus(code))
	_, _ = w.Write(b)
}

// tripleHTTPStatus is the Triple (Connect) mapping of codes to HTTP.
func tripleHTTPStatus(c codes.Code) int {
	switch c {
	case codes.Canceled, codes.DeadlineExceeded:
		return 408
	case codes.InvalidArgument, codes.OutOfRange:
		return 400
	case codes.NotFound, codes.Unimplemented:
		return 404
	case codes.AlreadyExists, codes.Aborted:
		return 409
	case codes.PermissionDenied:
		return 403
	case codes.ResourceExhausted:
		return 429
	case codes.FailedPrecondition:
		return 412
	case codes.Unavailable:
		return 503
	case codes.Unauthenticated:
		return 401
	}
	return 500
}

// writeDubboFailure answers with the failure: for HTTP, the usual JSON
// error with the exception and Dubbo status added.
func writeDubboFailure(w http.ResponseWriter, r *http.Request, f dubbobridge.Failure) {
	if f.HTTP == 499 {
		return // nobody to answer
	}
	if router.IsGRPC(r) {
		wire.WriteGRPCStatus(w, f.GRPC, f.Msg)
		return
	}
	if isTripleUnary(r) {
		writeTripleError(w, f.GRPC, f.Msg)
		return
	}
	wire.WriteErrorBody(w, f.HTTP, f.GRPC, f.Msg, func(e *wire.ErrorBody) {
		e.Error.Exception = f.Exception
		e.Error.DubboStatus = f.DubboStatus
	})
}
