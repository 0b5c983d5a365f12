package dubbo

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// PoolOptions tune a Pool.
type PoolOptions struct {
	Conn ConnOptions
	// ConnsPerHost is how many connections calls to one provider share
	// (default 2: one slow frame does not stall every call).
	ConnsPerHost int
	// DialTimeout bounds one connection attempt (default 5s).
	DialTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait after a failed dial before
	// the next one; calls meanwhile fail at once (defaults 100ms, 10s).
	MinBackoff, MaxBackoff time.Duration
	// AwayFor is how long a provider that sent the readonly event (it is
	// shutting down) is not dialled again (default 10s).
	AwayFor time.Duration
}

// Pool holds multiplexed connections to many providers, dialled on first
// use and again (with backoff) after they end. It is safe for concurrent
// use.
type Pool struct {
	opts PoolOptions

	mu     sync.Mutex
	hosts  map[string]*hostConns
	closed bool
	away   atomic.Int32 // hosts inside their away window, roughly
}

type hostConns struct {
	mu      sync.Mutex
	conns   []*Conn
	next    int
	dialing chan struct{} // closed when the dial in progress ends
	lastErr error
	retryAt time.Time
	backoff time.Duration
	// awayUntil: the provider said it is shutting down; no calls or dials
	// before then.
	awayUntil time.Time
}

// NewPool returns an empty pool.
func NewPool(opts PoolOptions) *Pool {
	if opts.ConnsPerHost <= 0 {
		opts.ConnsPerHost = 2
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 10 * time.Second
	}
	if opts.AwayFor <= 0 {
		opts.AwayFor = 10 * time.Second
	}
	return &Pool{opts: opts, hosts: map[string]*hostConns{}}
}

// ConnectError is a failure to reach a provider: nothing was sent.
type ConnectError struct{ Err error }

func (e *ConnectError) Error() string { return e.Err.Error() }
func (e *ConnectError) Unwrap() error { return e.Err }

// Call sends req to the provider at addr on a pooled connection.
func (p *Pool) Call(ctx context.Context, addr string, req Request) (*Response, error) {
	c, err := p.conn(ctx, addr)
	if err != nil {
		return nil, err
	}
	return c.Call(ctx, req)
}

// conn returns a usable connection to addr, dialling one when there are
// fewer than ConnsPerHost.
func (p *Pool) conn(ctx context.Context, addr string) (*Conn, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, &ConnectError{Err: ErrClosed}
	}
	h := p.hosts[addr]
	if h == nil {
		h = &hostConns{}
		p.hosts[addr] = h
	}
	p.mu.Unlock()

	for {
		h.mu.Lock()
		if time.Now().Before(h.awayUntil) {
			h.mu.Unlock()
			return nil, &ConnectError{Err: fmt.Errorf("%s: %w", addr, ErrGoingAway)}
		}
		live := h.conns[:0]
		for _, c := range h.conns {
			if c.Usable() {
				live = append(live, c)
			}
		}
		clear(h.conns[len(live):])
		h.conns = live
		if len(live) >= p.opts.ConnsPerHost || (len(live) > 0 && h.dialing != nil) {
			h.next++
			c := live[h.next%len(live)]
			h.mu.Unlock()
			return c, nil
		}
		if h.dialing != nil {
			wait := h.dialing
			h.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if len(live) == 0 && time.Now().Before(h.retryAt) {
			err := h.lastErr
			h.mu.Unlock()
			return nil, &ConnectError{Err: fmt.Errorf("%w (next attempt in %v)", err, time.Until(h.retryAt).Round(time.Millisecond))}
		}
		h.dialing = make(chan struct{})
		h.mu.Unlock()

		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.opts.DialTimeout)
		c, err := dial(dctx, addr, p.opts.Conn, func() { p.goingAway(h) })
		cancel()

		h.mu.Lock()
		close(h.dialing)
		h.dialing = nil
		if err != nil {
			h.lastErr = err
			h.backoff = min(max(2*h.backoff, p.opts.MinBackoff), p.opts.MaxBackoff)
			h.retryAt = time.Now().Add(h.backoff)
			if len(h.conns) > 0 {
				c := h.conns[0]
				h.mu.Unlock()
				return c, nil
			}
			h.mu.Unlock()
			return nil, &ConnectError{Err: err}
		}
		h.backoff, h.lastErr = 0, nil
		p.mu.Lock()
		closed := p.closed
		p.mu.Unlock()
		if closed {
			h.mu.Unlock()
			_ = c.Close()
			return nil, &ConnectError{Err: ErrClosed}
		}
		h.conns = append(h.conns, c)
		h.mu.Unlock()
		return c, nil
	}
}

// goingAway takes a provider that sent the readonly event out for the
// away window.
func (p *Pool) goingAway(h *hostConns) {
	h.mu.Lock()
	wasAway := time.Now().Before(h.awayUntil)
	h.awayUntil = time.Now().Add(p.opts.AwayFor)
	h.mu.Unlock()
	if !wasAway {
		p.away.Add(1)
		time.AfterFunc(p.opts.AwayFor, func() { p.away.Add(-1) })
	}
}

// Away reports whether the provider at addr said it is shutting down, so
// that a balancer can pick another. Cheap when no provider did.
func (p *Pool) Away(addr string) bool {
	if p.away.Load() <= 0 {
		return false
	}
	p.mu.Lock()
	h := p.hosts[addr]
	p.mu.Unlock()
	if h == nil {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return time.Now().Before(h.awayUntil)
}

// AnyAway reports whether some provider may be in its away window.
func (p *Pool) AnyAway() bool { return p.away.Load() > 0 }

// Forget closes the connections to providers not in keep (gone from the
// cluster).
func (p *Pool) Forget(keep map[string]bool) {
	p.mu.Lock()
	var drop []*hostConns
	for addr, h := range p.hosts {
		if !keep[addr] {
			drop = append(drop, h)
			delete(p.hosts, addr)
		}
	}
	p.mu.Unlock()
	for _, h := range drop {
		h.closeAll(true)
	}
}

// Close closes every connection; calls in flight get ErrClosed.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true
	hosts := p.hosts
	p.hosts = map[string]*hostConns{}
	p.mu.Unlock()
	for _, h := range hosts {
		h.closeAll(false)
	}
}

// closeAll closes a provider's connections; gracefully, the calls in
// flight get up to drainTimeout to finish first.
func (h *hostConns) closeAll(gracefully bool) {
	h.mu.Lock()
	conns := h.conns
	h.conns = nil
	h.mu.Unlock()
	for _, c := range conns {
		if !gracefully || c.InFlight() == 0 {
			_ = c.Close()
			continue
		}
		go func() {
			deadline := time.NewTimer(drainTimeout)
			defer deadline.Stop()
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for c.InFlight() > 0 {
				select {
				case <-deadline.C:
					_ = c.Close()
					return
				case <-tick.C:
				case <-c.Done():
					return
				}
			}
			_ = c.Close()
		}()
	}
}

// drainTimeout bounds how long calls to a provider that left the cluster
// may take before its connections close.
const drainTimeout = 30 * time.Second

// CallRaw forwards a consumer's request frame to the provider at addr and
// returns the provider's answer frame.
func (p *Pool) CallRaw(ctx context.Context, addr string, req *Frame) (*Frame, error) {
	c, err := p.conn(ctx, addr)
	if err != nil {
		return nil, err
	}
	return c.CallRaw(ctx, req)
}

// SendRaw forwards a consumer's one-way request frame to addr.
func (p *Pool) SendRaw(ctx context.Context, addr string, req *Frame) error {
	c, err := p.conn(ctx, addr)
	if err != nil {
		return err
	}
	return c.SendRaw(req)
}
