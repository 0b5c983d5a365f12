package governance

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// TokenBucket is Envoy's local rate limit bucket: it holds up to Max tokens,
// gains PerFill tokens every Interval, and each request takes one.
type TokenBucket struct {
	max, perFill uint64
	interval     time.Duration
	now          func() time.Time

	mu     sync.Mutex
	tokens uint64
	last   time.Time // the last fill
}

// NewTokenBucket returns a full bucket.
func NewTokenBucket(maxTokens, perFill uint64, interval time.Duration) *TokenBucket {
	if perFill == 0 {
		perFill = 1
	}
	if interval <= 0 {
		interval = time.Second
	}
	b := &TokenBucket{max: max(maxTokens, 1), perFill: perFill, interval: interval, now: time.Now}
	b.tokens, b.last = b.max, b.now()
	return b
}

// Take takes a token, reporting false when the bucket is empty.
func (b *TokenBucket) Take() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if fills := uint64(now.Sub(b.last) / b.interval); fills > 0 {
		b.tokens = min(b.max, b.tokens+fills*b.perFill)
		b.last = b.last.Add(time.Duration(fills) * b.interval)
	}
	if b.tokens == 0 {
		return false
	}
	b.tokens--
	return true
}

// RateLimit is a local rate limit as Envoy applies it: for the Enabled
// share of requests the bucket is consulted, and for the Enforced share of
// those a request over the limit is refused (the rest are only counted).
type RateLimit struct {
	Bucket            *TokenBucket
	Enabled, Enforced float64 // fractions, 0 to 1

	// Limited counts requests over the limit; Refused those refused.
	Limited, Refused atomic.Uint64
}

// Allow reports whether the request may proceed.
func (l *RateLimit) Allow() bool {
	if l.Enabled < 1 && rand.Float64() >= l.Enabled {
		return true
	}
	if l.Bucket.Take() {
		return true
	}
	l.Limited.Add(1)
	if l.Enforced < 1 && rand.Float64() >= l.Enforced {
		return true
	}
	l.Refused.Add(1)
	return false
}
