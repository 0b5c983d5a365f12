package server

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestCallContext checks that the one context of a call ends as the
// context package's would: by its deadline (Err DeadlineExceeded), by
// idleness (cause errStreamIdle, unless activity keeps it alive), or by
// stop.
func TestCallContext(t *testing.T) {
	tests := []struct {
		name          string
		timeout, idle time.Duration
		arrival       time.Duration // request_timeout
		arriveAfter   time.Duration // when requestArrived is called; 0: never
		touchEvery    time.Duration // 0: never
		wantErr       error
		wantCause     error
	}{
		{name: "deadline", timeout: 30 * time.Millisecond, wantErr: context.DeadlineExceeded, wantCause: context.DeadlineExceeded},
		{name: "idle", idle: 30 * time.Millisecond, wantErr: context.Canceled, wantCause: errStreamIdle},
		{name: "idle before deadline", timeout: 5 * time.Second, idle: 30 * time.Millisecond, wantErr: context.Canceled, wantCause: errStreamIdle},
		{name: "deadline while active", timeout: 150 * time.Millisecond, idle: 40 * time.Millisecond, touchEvery: 5 * time.Millisecond,
			wantErr: context.DeadlineExceeded, wantCause: context.DeadlineExceeded},
		{name: "request not arrived", timeout: 5 * time.Second, arrival: 30 * time.Millisecond, wantErr: context.Canceled, wantCause: errRequestTimeout},
		{name: "request arrived, then the deadline", timeout: 150 * time.Millisecond, arrival: 60 * time.Millisecond, arriveAfter: 10 * time.Millisecond,
			wantErr: context.DeadlineExceeded, wantCause: context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			c := newCallContext(context.Background(), tt.timeout, tt.idle, tt.arrival)
			defer c.stop()
			if tt.arriveAfter > 0 {
				time.AfterFunc(tt.arriveAfter, c.requestArrived)
			}
			if dl, ok := c.Deadline(); ok != (tt.timeout > 0) || (ok && dl.Sub(start) > tt.timeout+50*time.Millisecond) {
				t.Fatalf("Deadline() = %v, %v for a timeout of %v", dl, ok, tt.timeout)
			}
			if tt.touchEvery > 0 {
				tick := time.NewTicker(tt.touchEvery)
				defer tick.Stop()
			loop:
				for {
					select {
					case <-tick.C:
						c.touch()
					case <-c.Done():
						break loop
					}
				}
			}
			select {
			case <-c.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("the call context did not end")
			}
			if !errors.Is(c.Err(), tt.wantErr) || !errors.Is(context.Cause(c), tt.wantCause) {
				t.Fatalf("Err %v, cause %v; want %v, %v", c.Err(), context.Cause(c), tt.wantErr, tt.wantCause)
			}
			if tt.touchEvery > 0 && time.Since(start) < tt.timeout {
				t.Fatalf("ended after %v, before its deadline %v although active", time.Since(start), tt.timeout)
			}
		})
	}
}

// TestCallContextStop: stopping cancels (a plain cancel) and the parent's
// earlier deadline stays the call's.
func TestCallContextStop(t *testing.T) {
	parent, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c := newCallContext(parent, time.Hour, time.Hour, 0)
	pdl, _ := parent.Deadline()
	if dl, ok := c.Deadline(); !ok || !dl.Equal(pdl) {
		t.Fatalf("Deadline() = %v, %v; want the parent's %v", dl, ok, pdl)
	}
	c.stop()
	if !errors.Is(c.Err(), context.Canceled) || !errors.Is(context.Cause(c), context.Canceled) {
		t.Fatalf("after stop: Err %v, cause %v", c.Err(), context.Cause(c))
	}
}
