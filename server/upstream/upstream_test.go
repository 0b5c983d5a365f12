package upstream_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshgate/meshgate/governance"
	"github.com/meshgate/meshgate/server/cluster"
	"github.com/meshgate/meshgate/server/upstream"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newCluster is a STATIC cluster of n hosts (never dialled here) with the
// given circuit breaker thresholds (0: Envoy's defaults).
func newCluster(t *testing.T, n int, maxRequests, maxRetries uint32) *cluster.Cluster {
	t.Helper()
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: "c", Endpoints: []*endpointv3.LocalityLbEndpoints{{}}}
	for i := range n {
		cla.Endpoints[0].LbEndpoints = append(cla.Endpoints[0].LbEndpoints, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{
				Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Address: fmt.Sprintf("10.0.0.%d", i+1), PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 80}}}}}}})
	}
	spec := &clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}, LoadAssignment: cla}
	if maxRequests > 0 || maxRetries > 0 {
		th := &clusterv3.CircuitBreakers_Thresholds{}
		if maxRequests > 0 {
			th.MaxRequests = wrapperspb.UInt32(maxRequests)
		}
		if maxRetries > 0 {
			th.MaxRetries = wrapperspb.UInt32(maxRetries)
		}
		spec.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{th}}
	}
	c, err := cluster.New(spec, cluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

var (
	ok     = upstream.Result{Outcome: governance.Outcome{Status: 200}, Judge: true}
	failed = upstream.Result{Outcome: governance.Outcome{Local: governance.ConnectFailure}, Judge: true, Failed: true}
	always = func(upstream.Result) bool { return true }
)

// script answers attempt n with results[n] (the last one after that) and
// notes the hosts tried.
type script struct {
	results []upstream.Result
	hosts   []string
}

func (s *script) try(_ context.Context, a *cluster.Attempt, n int) upstream.Result {
	s.hosts = append(s.hosts, a.Host.Address)
	return s.results[min(n, len(s.results)-1)]
}

func TestRun(t *testing.T) {
	tests := []struct {
		name     string
		hosts    int
		call     upstream.Call
		results  []upstream.Result
		attempts int
		failed   bool
		wantErr  error
		distinct bool // every attempt on a different host
	}{
		{name: "first attempt answers", hosts: 3, results: []upstream.Result{ok}, attempts: 1},
		{name: "no retry without a policy", hosts: 3, results: []upstream.Result{failed, ok}, attempts: 1, failed: true},
		{name: "a retry on another host answers", hosts: 3, call: upstream.Call{Retries: 2, Retriable: always, SkipTried: true},
			results: []upstream.Result{failed, ok}, attempts: 2, distinct: true},
		{name: "retries run out", hosts: 3, call: upstream.Call{Retries: 2, Retriable: always, SkipTried: true},
			results: []upstream.Result{failed}, attempts: 3, failed: true, distinct: true},
		{name: "the policy says no", hosts: 3, call: upstream.Call{Retries: 2, Retriable: func(upstream.Result) bool { return false }},
			results: []upstream.Result{failed}, attempts: 1, failed: true},
		{name: "not the host's doing: no retry", hosts: 3, call: upstream.Call{Retries: 2, Retriable: always},
			results: []upstream.Result{{Failed: true}}, attempts: 1, failed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := newCluster(t, tt.hosts, 0, 0)
			tt.call.Cluster = cl
			s := &script{results: tt.results}
			res, a, err := upstream.Run(context.Background(), tt.call, s.try)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Run = %v, want %v", err, tt.wantErr)
			}
			if len(s.hosts) != tt.attempts || res.Failed != tt.failed || a != nil {
				t.Errorf("%d attempts (%v), failed %v, open attempt %v; want %d, %v, none", len(s.hosts), s.hosts, res.Failed, a != nil, tt.attempts, tt.failed)
			}
			if tt.distinct {
				seen := map[string]bool{}
				for _, h := range s.hosts {
					if seen[h] {
						t.Errorf("host %s tried twice: %v", h, s.hosts)
					}
					seen[h] = true
				}
			}
			if active := cl.Stats.RqActive.Load(); active != 0 {
				t.Errorf("%d attempts left open", active)
			}
			if want := uint64(0); !tt.failed && tt.attempts > 1 {
				if got := cl.Stats.RqRetrySuccess.Load(); got != 1 {
					t.Errorf("retry successes %d, want 1", got)
				}
			} else if got := cl.Stats.RqRetrySuccess.Load(); got != want {
				t.Errorf("retry successes %d, want %d", got, want)
			}
		})
	}
}

// A kept answer leaves its attempt open for the caller; a kept answer
// that is retried is discarded first; one not retried is passed on.
func TestRun_Keep(t *testing.T) {
	cl := newCluster(t, 2, 0, 0)
	res, a, err := upstream.Run(context.Background(), upstream.Call{Cluster: cl}, func(context.Context, *cluster.Attempt, int) upstream.Result {
		return upstream.Result{Outcome: governance.Outcome{Status: 200}, Judge: true, Keep: true}
	})
	if err != nil || a == nil || res.Failed || cl.Stats.RqActive.Load() != 1 {
		t.Fatalf("kept answer: %v %v %+v, active %d; want its attempt open", err, a, res, cl.Stats.RqActive.Load())
	}
	a.End(res.Outcome, true)

	discarded := 0
	retriable503 := upstream.Result{Outcome: governance.Outcome{Status: 503}, Judge: true, Failed: true, Keep: true,
		Discard: func() { discarded++ }}
	s := &script{results: []upstream.Result{retriable503}}
	res, a, err = upstream.Run(context.Background(), upstream.Call{Cluster: cl, Retries: 1, Retriable: always}, s.try)
	if err != nil || a == nil || !res.Failed || discarded != 1 || len(s.hosts) != 2 {
		t.Fatalf("a retried 503, then the last passed on: %v, open %v, %+v, discarded %d, attempts %d", err, a != nil, res, discarded, len(s.hosts))
	}
	a.End(res.Outcome, true)
	if cl.Stats.RqActive.Load() != 0 {
		t.Error("attempts left open")
	}
}

// The breakers: a call over max_requests is turned away before any
// attempt; a retry beyond max_retries is not made.
func TestRun_Breakers(t *testing.T) {
	cl := newCluster(t, 2, 1, 1)
	block := make(chan struct{})
	started := make(chan struct{})
	go func() {
		_, _, _ = upstream.Run(context.Background(), upstream.Call{Cluster: cl}, func(context.Context, *cluster.Attempt, int) upstream.Result {
			close(started)
			<-block
			return ok
		})
	}()
	<-started
	_, _, err := upstream.Run(context.Background(), upstream.Call{Cluster: cl}, (&script{results: []upstream.Result{ok}}).try)
	close(block)
	if !errors.Is(err, upstream.ErrOverloaded) {
		t.Fatalf("a call over max_requests: %v, want ErrOverloaded", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for cl.Stats.RqActive.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
}

// The deadline ends a call that waits to retry.
func TestRun_DeadlineWhileBackingOff(t *testing.T) {
	cl := newCluster(t, 2, 0, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	s := &script{results: []upstream.Result{failed}}
	_, _, err := upstream.Run(ctx, upstream.Call{Cluster: cl, Retries: 3, Retriable: always,
		Backoff: func(int) time.Duration { return time.Hour }}, s.try)
	if !errors.Is(err, context.DeadlineExceeded) || len(s.hosts) != 1 {
		t.Errorf("Run = %v after %d attempts, want the deadline after 1", err, len(s.hosts))
	}
}

// A call whose client already went (a stream reset as soon as it opened)
// makes no attempt and books nothing.
func TestRun_CancelledBeforeTheFirstAttempt(t *testing.T) {
	cl := newCluster(t, 2, 0, 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := &script{results: []upstream.Result{ok}}
	_, a, err := upstream.Run(ctx, upstream.Call{Cluster: cl}, s.try)
	if !errors.Is(err, context.Canceled) || a != nil || len(s.hosts) != 0 || cl.Stats.RqTotal.Load() != 0 {
		t.Errorf("Run = %v, %v after %d attempts (%d upstream requests), want Canceled before any", err, a, len(s.hosts), cl.Stats.RqTotal.Load())
	}
}

// No host to try: an error before any attempt.
func TestRun_NoHost(t *testing.T) {
	cl := newCluster(t, 0, 0, 0)
	_, _, err := upstream.Run(context.Background(), upstream.Call{Cluster: cl}, (&script{results: []upstream.Result{ok}}).try)
	if !errors.Is(err, upstream.ErrNoHost) || err.Error() == upstream.ErrNoHost.Error() {
		t.Errorf("Run on an empty cluster = %v, want ErrNoHost with the cluster's reason", err)
	}
}

// Hosts the caller names (Dubbo2 providers going away) are never tried.
func TestRun_Avoid(t *testing.T) {
	cl := newCluster(t, 3, 0, 0)
	away := cl.Hosts()[0]
	s := &script{results: []upstream.Result{failed}}
	_, _, _ = upstream.Run(context.Background(), upstream.Call{Cluster: cl, Retries: 1, Retriable: always, SkipTried: true,
		Avoid: func() []*cluster.Host { return []*cluster.Host{away} }}, s.try)
	if len(s.hosts) != 2 {
		t.Fatalf("%d attempts, want 2", len(s.hosts))
	}
	for _, h := range s.hosts {
		if h == away.Address {
			t.Errorf("the avoided host %s was tried: %v", h, s.hosts)
		}
	}
}

// A first attempt made before Run (the frame relay's) counts: Run goes on
// from the first retry, avoids that host, and releases the retry it booked.
func TestRun_Prior(t *testing.T) {
	tests := []struct {
		name     string
		results  []upstream.Result
		attempts int
		failed   bool
	}{
		{name: "the retry answers", results: []upstream.Result{ok}, attempts: 1},
		{name: "retries run out", results: []upstream.Result{failed}, attempts: 2, failed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := newCluster(t, 3, 0, 0)
			first := cl.Hosts()[0]
			release, ok := cl.AcquireRetry(0)
			if !ok {
				t.Fatal("no retry to book")
			}
			s := &script{results: tt.results}
			call := upstream.Call{Cluster: cl, Retries: 2, Retriable: always, SkipTried: true,
				Prior: &upstream.Prior{Host: first, ReleaseRetry: release}}
			res, _, err := upstream.Run(context.Background(), call, s.try)
			if err != nil {
				t.Fatal(err)
			}
			if len(s.hosts) != tt.attempts || res.Failed != tt.failed {
				t.Errorf("%d attempts (%v), failed %v; want %d (num_retries 2 after the prior one), %v", len(s.hosts), s.hosts, res.Failed, tt.attempts, tt.failed)
			}
			for _, h := range s.hosts {
				if h == first.Address {
					t.Errorf("the prior attempt's host %s was tried again: %v", h, s.hosts)
				}
			}
			if n := cl.Stats.RetriesActive.Load(); n != 0 {
				t.Errorf("%d retries still booked after Run", n)
			}
		})
	}
}
