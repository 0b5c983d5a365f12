// Package retryon reads Envoy's retry_on conditions. It is its own package
// so that config can check them without linking the rest of governance.
package retryon

import (
	"fmt"
	"slices"
	"strings"
)

// Set is the set of conditions a route retries on (Envoy's retry_on).
type Set uint32

// The retry conditions, named as Envoy's retry_on tokens.
const (
	Retry5xx Set = 1 << iota
	RetryGatewayError
	RetryReset
	RetryConnectFailure
	RetryRetriable4xx
	RetryRefusedStream
	RetryRetriableStatusCodes
	RetryGRPCCancelled
	RetryGRPCDeadlineExceeded
	RetryGRPCInternal
	RetryGRPCResourceExhausted
	RetryGRPCUnavailable
)

var retryTokens = map[string]Set{
	"5xx": Retry5xx, "gateway-error": RetryGatewayError, "reset": RetryReset,
	"connect-failure": RetryConnectFailure, "retriable-4xx": RetryRetriable4xx,
	"refused-stream": RetryRefusedStream, "retriable-status-codes": RetryRetriableStatusCodes,
	"cancelled": RetryGRPCCancelled, "deadline-exceeded": RetryGRPCDeadlineExceeded,
	"internal": RetryGRPCInternal, "resource-exhausted": RetryGRPCResourceExhausted,
	"unavailable": RetryGRPCUnavailable,
}

// Parse reads a comma-separated retry_on value.
func Parse(s string) (Set, error) {
	var out Set
	for _, tok := range strings.Split(s, ",") {
		tok = strings.TrimSpace(tok)
		if tok == "" {
			continue
		}
		v, ok := retryTokens[tok]
		if !ok {
			known := make([]string, 0, len(retryTokens))
			for k := range retryTokens {
				known = append(known, k)
			}
			slices.Sort(known)
			return 0, fmt.Errorf("retry_on %q: unknown condition (known: %s)", tok, strings.Join(known, ", "))
		}
		out |= v
	}
	return out, nil
}
