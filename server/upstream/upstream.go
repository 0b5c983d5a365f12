// Package upstream is the one attempt loop every upstream call goes
// through: HTTP and gRPC forwarding, the Dubbo2 bridge and the Dubbo2
// listener. It admits the call by the cluster's circuit breakers, takes a
// host from the cluster's balancer (avoiding the hosts already tried when
// asked, and any the caller names), lets the caller try it, reports how the
// attempt ended to the host's breaker and outlier detection, and tries
// again while the caller's policy, the cluster's retry budget and the
// deadline allow, with backoff between tries. Caddy's reverse proxy
// (proxyLoopIteration and tryAgain) has the same shape.
//
// What an attempt is (an HTTP round trip, a Dubbo2 call, a Triple call)
// and how its failure is answered stay with the caller.
package upstream

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/meshgate/meshgate/dubbo/rules"
	"github.com/meshgate/meshgate/governance"
	"github.com/meshgate/meshgate/server/cluster"
)

// Call is what governs one call's attempts.
type Call struct {
	Cluster *cluster.Cluster
	// Priority picks the cluster's circuit breaker thresholds (Envoy's
	// routing priority: 0 default, 1 high).
	Priority int
	// Pick is what the balancer goes by (a hash for consistent hashing).
	Pick governance.PickInfo
	// Retries is how many times a failed attempt may be tried again, and
	// Retriable says whether this one may (nil: none).
	Retries   int
	Retriable func(Result) bool
	// Backoff is the wait before retry n (1 for the first); nil: none.
	Backoff func(n int) time.Duration
	// SkipTried makes a retry avoid the hosts already tried (Envoy's
	// previous_hosts predicate; Dubbo's failover always does).
	SkipTried bool
	// Avoid names more hosts to skip on each attempt (Dubbo2 providers
	// shutting down); nil: none.
	Avoid func() []*cluster.Host
	// Dubbo is a Dubbo call as the cluster's traffic rules see it (nil:
	// not a Dubbo call, or no rules apply): each attempt goes to a
	// provider the rules leave it.
	Dubbo *rules.Call
	// Prior is the call's first attempt when it was made elsewhere (the
	// HTTP/2 frame relay) and failed in a way the retry policy retries;
	// Run goes on from the first retry. nil: none.
	Prior *Prior
}

// Prior is a first attempt made before Run: its host (tried), and the
// retry it booked in the cluster's retry budget (AcquireRetry), which Run
// releases.
type Prior struct {
	Host         *cluster.Host
	ReleaseRetry func()
}

// Result is how one attempt ended.
type Result struct {
	// Outcome is what the host's breaker and outlier detection learn.
	Outcome governance.Outcome
	// Judge says the host answers for Outcome; false when the failure is
	// not the host's doing (the client left, the request was over a
	// limit), which counts as a success for the host.
	Judge bool
	// Failed: the attempt did not give an answer to pass on. A failed
	// attempt may be tried again if the call's Retriable says so.
	Failed bool
	// Keep: the attempt has an answer the caller passes on (it streams
	// it) and ends the attempt itself (Attempt.End). A failed attempt may
	// keep its answer too (an upstream 503 a retry might better): if it is
	// not retried, the caller passes it on; if it is, Run calls Discard.
	Keep    bool
	Discard func()
	// Attempt is what the retry policy judges (status, gRPC status,
	// refused stream).
	Attempt governance.Attempt
}

// Errors Run returns before any attempt gave a result; each wraps the
// cluster's own error.
var (
	// ErrOverloaded: the cluster's circuit breaker turned the call away.
	ErrOverloaded = errors.New("upstream overloaded")
	// ErrNoHost: the balancer had no host to try.
	ErrNoHost = errors.New("no host to try")
)

// runError is ErrOverloaded or ErrNoHost with the cluster's own reason,
// which is what it says.
type runError struct{ kind, err error }

func (e *runError) Error() string        { return e.err.Error() }
func (e *runError) Is(target error) bool { return target == e.kind }
func (e *runError) Unwrap() error        { return e.err }

// Try makes one attempt on a's host. n counts attempts from 0; ctx is the
// call's. It must not end a: Run does, unless the result says Keep.
type Try func(ctx context.Context, a *cluster.Attempt, n int) Result

// Run makes the call's attempts. It returns the last attempt's result with
// its attempt (still open when the result says Keep: the caller ends it
// once it passed the answer on), or an error wrapping
// ErrOverloaded or ErrNoHost when no attempt could be made, or the
// context's error when it ended while waiting to retry. Admission holds for
// the whole call; a retry also needs the cluster's retry budget.
func Run(ctx context.Context, c Call, try Try) (Result, *cluster.Attempt, error) {
	if err := ctx.Err(); err != nil {
		// The client went before the first attempt (a stream reset as soon
		// as it opened: rapid reset): nothing goes upstream.
		return Result{}, nil, err
	}
	cl := c.Cluster
	if err := cl.Admit(c.Priority); err != nil {
		return Result{}, nil, &runError{kind: ErrOverloaded, err: err}
	}
	var tried []*cluster.Host
	var releaseRetry func()
	defer func() {
		if releaseRetry != nil {
			releaseRetry()
		}
	}()
	first := 0
	if p := c.Prior; p != nil {
		tried, releaseRetry, first = []*cluster.Host{p.Host}, p.ReleaseRetry, 1
		if c.Backoff != nil {
			wait := time.NewTimer(c.Backoff(1))
			select {
			case <-wait.C:
			case <-ctx.Done():
				wait.Stop()
				return Result{}, nil, ctx.Err()
			}
		}
	}
	for n := first; ; n++ {
		var avoid []*cluster.Host
		if c.SkipTried {
			avoid = tried
		}
		if c.Avoid != nil {
			if more := c.Avoid(); len(more) > 0 {
				avoid = append(slices.Clip(avoid), more...)
			}
		}
		a, err := cl.BeginRouted(c.Pick, avoid, c.Dubbo)
		if err != nil {
			return Result{}, nil, &runError{kind: ErrNoHost, err: err}
		}
		res := try(ctx, a, n)
		if !res.Failed {
			if n > 0 {
				cl.Stats.RqRetrySuccess.Add(1)
			}
			if !res.Keep {
				a.End(res.Outcome, res.Judge)
				a = nil
			}
			return res, a, nil
		}
		retry := n < c.Retries && res.Judge && ctx.Err() == nil && c.Retriable != nil && c.Retriable(res)
		if retry {
			// One retry at a time counts against the budget.
			if releaseRetry != nil {
				releaseRetry()
				releaseRetry = nil
			}
			releaseRetry, retry = cl.AcquireRetry(c.Priority)
		}
		if !retry {
			if res.Keep {
				return res, a, nil // passed on as it is
			}
			a.End(res.Outcome, res.Judge)
			return res, nil, nil
		}
		if res.Keep && res.Discard != nil {
			res.Discard()
		}
		a.End(res.Outcome, res.Judge)
		tried = append(tried, a.Host)
		if c.Backoff == nil {
			continue
		}
		wait := time.NewTimer(c.Backoff(n + 1))
		select {
		case <-wait.C:
		case <-ctx.Done():
			wait.Stop()
			return res, nil, ctx.Err()
		}
	}
}
