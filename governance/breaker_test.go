package governance

import (
	"testing"
	"time"
)

func waitState(t *testing.T, b *EndpointBreaker, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for b.State() != want {
		if time.Now().After(deadline) {
			t.Fatalf("breaker state %q, want %q within 5s", b.State(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func send(t *testing.T, b *EndpointBreaker, out Outcome) bool {
	t.Helper()
	done, ok := b.Allow()
	if ok {
		done(out)
	}
	return ok
}

func TestEndpointBreaker_Consecutive(t *testing.T) {
	var changes []string
	b := NewEndpointBreaker("h", BreakerConfig{ConsecutiveFailures: 3, OpenFor: 30 * time.Millisecond},
		func(from, to string) { changes = append(changes, from+">"+to) })
	send(t, b, err500)
	send(t, b, err500)
	send(t, b, ok200) // resets the run
	send(t, b, err500)
	send(t, b, err500)
	if b.State() != "closed" {
		t.Fatalf("state %q after 2 failures, want closed", b.State())
	}
	send(t, b, Outcome{Local: Timeout})
	if !b.Open() || b.Opens.Load() != 1 {
		t.Fatalf("after 3 failures in a row: state %q, opens %d", b.State(), b.Opens.Load())
	}
	if send(t, b, ok200) {
		t.Fatal("an open breaker let a request through")
	}
	waitState(t, b, "half-open")
	done, ok := b.Allow()
	if !ok {
		t.Fatal("half-open refused the probe")
	}
	if _, second := b.Allow(); second {
		t.Fatal("half-open let a second probe through (limit 1)")
	}
	done(err503) // the probe fails: open again
	if !b.Open() || b.Opens.Load() != 2 {
		t.Fatalf("after a failed probe: state %q, opens %d", b.State(), b.Opens.Load())
	}
	waitState(t, b, "half-open")
	send(t, b, ok200) // the probe succeeds: closed
	if b.State() != "closed" {
		t.Fatalf("after a good probe: state %q", b.State())
	}
	want := []string{"closed>open", "open>half-open", "half-open>open", "open>half-open", "half-open>closed"}
	if len(changes) != len(want) {
		t.Fatalf("state changes %v, want %v", changes, want)
	}
	for i := range want {
		if changes[i] != want[i] {
			t.Fatalf("state changes %v, want %v", changes, want)
		}
	}
}

func TestEndpointBreaker_Ratio(t *testing.T) {
	b := NewEndpointBreaker("h", BreakerConfig{FailureRatio: 0.5, MinRequests: 10, OpenFor: time.Hour}, nil)
	for i := range 9 {
		if i%2 == 0 {
			send(t, b, err500)
		} else {
			send(t, b, ok200)
		}
	}
	if b.Open() {
		t.Fatal("tripped below min_requests")
	}
	send(t, b, err500) // 6 of 10 failed
	if !b.Open() {
		t.Fatal("60% failures over 10 requests did not trip a 50% breaker")
	}
}
