package governance

import (
	"strings"
	"testing"
	"time"
)

func TestParseRetryOn(t *testing.T) {
	on, err := ParseRetryOn("5xx, reset,unavailable")
	if err != nil || on != Retry5xx|RetryReset|RetryGRPCUnavailable {
		t.Errorf("ParseRetryOn = %b, %v", on, err)
	}
	if _, err := ParseRetryOn("5xx,sometimes"); err == nil || !strings.Contains(err.Error(), `"sometimes"`) {
		t.Errorf("unknown token: %v", err)
	}
}

func TestRetryPolicy_Retriable(t *testing.T) {
	attempt := func(status int, local LocalFailure) Attempt {
		return Attempt{Outcome: Outcome{Status: status, Local: local}, GRPCStatus: -1}
	}
	grpcAttempt := func(code int) Attempt { return Attempt{Outcome: Outcome{Status: 200}, GRPCStatus: code} }
	tests := []struct {
		on    string
		codes []int
		a     Attempt
		want  bool
	}{
		{"5xx", nil, attempt(500, 0), true},
		{"5xx", nil, attempt(404, 0), false},
		{"5xx", nil, attempt(0, ConnectFailure), true},
		{"5xx", nil, attempt(0, Timeout), true},
		{"gateway-error", nil, attempt(500, 0), false},
		{"gateway-error", nil, attempt(503, 0), true},
		{"gateway-error", nil, attempt(0, Reset), true},
		{"reset", nil, attempt(0, Reset), true},
		{"reset", nil, attempt(503, 0), false},
		{"connect-failure", nil, attempt(0, ConnectFailure), true},
		{"connect-failure", nil, attempt(0, Reset), false},
		{"retriable-4xx", nil, attempt(409, 0), true},
		{"retriable-4xx", nil, attempt(400, 0), false},
		{"refused-stream", nil, Attempt{Outcome: Outcome{Local: Reset}, RefusedStream: true, GRPCStatus: -1}, true},
		{"retriable-status-codes", []int{418}, attempt(418, 0), true},
		{"retriable-status-codes", []int{418}, attempt(419, 0), false},
		{"unavailable", nil, grpcAttempt(14), true},
		{"unavailable", nil, grpcAttempt(13), false},
		{"internal,cancelled,deadline-exceeded,resource-exhausted", nil, grpcAttempt(13), true},
		{"cancelled", nil, grpcAttempt(1), true},
		{"deadline-exceeded", nil, grpcAttempt(4), true},
		{"resource-exhausted", nil, grpcAttempt(8), true},
		{"5xx", nil, grpcAttempt(14), false}, // gRPC statuses need the gRPC conditions, as in Envoy
	}
	for _, tc := range tests {
		on, err := ParseRetryOn(tc.on)
		if err != nil {
			t.Fatal(err)
		}
		p := RetryPolicy{On: on, RetriableStatusCodes: tc.codes}
		if got := p.Retriable(tc.a); got != tc.want {
			t.Errorf("retry_on %q, attempt %+v: Retriable = %v, want %v", tc.on, tc.a, got, tc.want)
		}
	}
}

func TestRetryPolicy_Backoff(t *testing.T) {
	p := RetryPolicy{BaseInterval: 10 * time.Millisecond, MaxInterval: 50 * time.Millisecond}
	for n, ceiling := range map[int]time.Duration{1: 10 * time.Millisecond, 2: 20 * time.Millisecond, 3: 40 * time.Millisecond, 4: 50 * time.Millisecond, 9: 50 * time.Millisecond} {
		var maxSeen time.Duration
		for range 2000 {
			d := p.Backoff(n)
			if d < 0 || d >= ceiling {
				t.Fatalf("Backoff(%d) = %v, want in [0, %v)", n, d, ceiling)
			}
			maxSeen = max(maxSeen, d)
		}
		if maxSeen < ceiling*8/10 {
			t.Errorf("Backoff(%d) never came near its ceiling %v (max %v): no jitter spread", n, ceiling, maxSeen)
		}
	}
}

func TestHTTPStatusFromGRPC(t *testing.T) {
	for code, want := range map[int]int{0: 200, 1: 499, 4: 504, 8: 429, 12: 501, 13: 500, 14: 503, 16: 401, 99: 500} {
		if got := HTTPStatusFromGRPC(code); got != want {
			t.Errorf("HTTPStatusFromGRPC(%d) = %d, want %d", code, got, want)
		}
	}
}
