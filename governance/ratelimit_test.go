package governance

import (
	"testing"
	"time"
)

func TestTokenBucket(t *testing.T) {
	clock := &fakeClock{t: time.Unix(0, 0)}
	b := NewTokenBucket(3, 2, time.Second)
	b.now = clock.now
	b.last = clock.t
	take := func(n int) int {
		ok := 0
		for range n {
			if b.Take() {
				ok++
			}
		}
		return ok
	}
	if got := take(5); got != 3 {
		t.Fatalf("a full bucket of 3 gave %d of 5", got)
	}
	clock.add(999 * time.Millisecond)
	if got := take(1); got != 0 {
		t.Fatalf("refilled before the interval: %d", got)
	}
	clock.add(time.Millisecond)
	if got := take(5); got != 2 {
		t.Fatalf("one fill of 2 gave %d", got)
	}
	clock.add(10 * time.Second)
	if got := take(10); got != 3 {
		t.Fatalf("many fills are capped at max 3, gave %d", got)
	}
}

func TestRateLimit_ShadowMode(t *testing.T) {
	l := &RateLimit{Bucket: NewTokenBucket(1, 1, time.Hour), Enabled: 1, Enforced: 0}
	for range 5 {
		if !l.Allow() {
			t.Fatal("a rate limit enforced for 0% refused a request")
		}
	}
	if l.Limited.Load() != 4 || l.Refused.Load() != 0 {
		t.Errorf("limited %d, refused %d; want 4 counted and none refused", l.Limited.Load(), l.Refused.Load())
	}
	off := &RateLimit{Bucket: NewTokenBucket(1, 1, time.Hour), Enabled: 0, Enforced: 1}
	for range 5 {
		if !off.Allow() {
			t.Fatal("a rate limit enabled for 0% refused a request")
		}
	}
}
