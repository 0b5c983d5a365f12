package governance

import (
	"math/rand/v2"
	"slices"
	"time"

	"github.com/meshgate/meshgate/governance/retryon"
)

// RetryOn is the set of conditions a route retries on (Envoy's retry_on),
// read by package retryon.
type RetryOn = retryon.Set

// The retry conditions, named as Envoy's retry_on tokens.
const (
	Retry5xx                   = retryon.Retry5xx
	RetryGatewayError          = retryon.RetryGatewayError
	RetryReset                 = retryon.RetryReset
	RetryConnectFailure        = retryon.RetryConnectFailure
	RetryRetriable4xx          = retryon.RetryRetriable4xx
	RetryRefusedStream         = retryon.RetryRefusedStream
	RetryRetriableStatusCodes  = retryon.RetryRetriableStatusCodes
	RetryGRPCCancelled         = retryon.RetryGRPCCancelled
	RetryGRPCDeadlineExceeded  = retryon.RetryGRPCDeadlineExceeded
	RetryGRPCInternal          = retryon.RetryGRPCInternal
	RetryGRPCResourceExhausted = retryon.RetryGRPCResourceExhausted
	RetryGRPCUnavailable       = retryon.RetryGRPCUnavailable
)

// ParseRetryOn reads a comma-separated retry_on value.
func ParseRetryOn(s string) (RetryOn, error) { return retryon.Parse(s) }

// RetryPolicy is a compiled Envoy RetryPolicy.
type RetryPolicy struct {
	On         RetryOn
	NumRetries uint32
	// PerTryTimeout bounds each attempt until its response headers arrive
	// (0: only the route's timeout).
	PerTryTimeout time.Duration
	// BaseInterval and MaxInterval shape the backoff between attempts
	// (defaults 25ms and 10 x base).
	BaseInterval, MaxInterval time.Duration
	RetriableStatusCodes      []int
	// SkipPreviousHosts makes a retry avoid the hosts already tried
	// (envoy.retry_host_predicates.previous_hosts).
	SkipPreviousHosts bool
}

// Attempt describes how one attempt ended, as far as retrying goes.
type Attempt struct {
	Outcome
	// GRPCStatus is the grpc-status of a trailers-only answer, or -1.
	GRPCStatus int
	// RefusedStream: the upstream refused the stream (REFUSED_STREAM).
	RefusedStream bool
}

// Retriable reports whether the policy retries an attempt that ended so.
func (p *RetryPolicy) Retriable(a Attempt) bool {
	on := p.On
	switch {
	case a.Local == ConnectFailure && on&(RetryConnectFailure|Retry5xx|RetryGatewayError) != 0:
		return true
	case a.RefusedStream && on&(RetryRefusedStream|Retry5xx|RetryGatewayError|RetryReset) != 0:
		return true
	case (a.Local == Reset || a.Local == Timeout) && on&(RetryReset|Retry5xx|RetryGatewayError) != 0:
		return true
	case a.Local != NoLocalFailure:
		return false
	}
	s := a.Status
	switch {
	case s >= 500 && on&Retry5xx != 0:
		return true
	case (s == 502 || s == 503 || s == 504) && on&RetryGatewayError != 0:
		return true
	case s == 409 && on&RetryRetriable4xx != 0:
		return true
	case on&RetryRetriableStatusCodes != 0 && slices.Contains(p.RetriableStatusCodes, s):
		return true
	}
	switch a.GRPCStatus {
	case 1:
		return on&RetryGRPCCancelled != 0
	case 4:
		return on&RetryGRPCDeadlineExceeded != 0
	case 13:
		return on&RetryGRPCInternal != 0
	case 8:
		return on&RetryGRPCResourceExhausted != 0
	case 14:
		return on&RetryGRPCUnavailable != 0
	}
	return false
}

// Backoff is the wait before retry n (1 for the first retry): a uniform
// draw from [0, min(max, base * 2^(n-1))), Envoy's fully jittered
// exponential backoff.
func (p *RetryPolicy) Backoff(n int) time.Duration {
	base, maxI := p.BaseInterval, p.MaxInterval
	if base <= 0 {
		base = 25 * time.Millisecond
	}
	if maxI <= 0 {
		maxI = 10 * base
	}
	ceiling := base
	for i := 1; i < n && ceiling < maxI; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, maxI)
	return time.Duration(rand.Int64N(int64(ceiling)))
}

// HTTPStatusFromGRPC maps a gRPC status code to the HTTP status Envoy uses
// for it in statistics, outlier detection and retries.
func HTTPStatusFromGRPC(code int) int {
	switch code {
	case 0:
		return 200
	case 1:
		return 499
	case 2, 13, 15:
		return 500
	case 3, 9, 11:
		return 400
	case 4:
		return 504
	case 5:
		return 404
	case 6, 10:
		return 409
	case 7:
		return 403
	case 8:
		return 429
	case 12:
		return 501
	case 14:
		return 503
	case 16:
		return 401
	}
	return 500
}
