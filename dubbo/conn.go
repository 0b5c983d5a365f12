package dubbo

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	hessian "github.com/apache/dubbo-go-hessian2"
)

// Request is one two-way call.
type Request struct {
	Service Service
	Args    []any
	// Attachments travel with the call (Dubbo's RpcContext); path,
	// interface, version, group and timeout are added from Service.
	Attachments map[string]string
	// Timeout, when set, tells the provider how long the caller waits.
	Timeout time.Duration
}

// Response is a provider's answer to a call that did not fail.
type Response struct {
	Value       any
	Attachments map[string]string
}

// ErrClosed is what calls on a connection that ended get.
var ErrClosed = errors.New("dubbo: connection closed")

// ErrGoingAway marks a provider that announced its shutdown (the readonly
// event): it takes no new calls.
var ErrGoingAway = errors.New("dubbo: the provider is shutting down")

// ConnOptions tune one connection.
type ConnOptions struct {
	// Heartbeat is how long the connection may stay quiet before a
	// heartbeat is sent; three quiet intervals close it (default 30s, as
	// Dubbo's own default is 60s and the provider's idle check 180s).
	Heartbeat time.Duration
	// MaxResponse bounds a response frame's body (default 8 MiB, Dubbo's
	// payload default).
	MaxResponse int
}

func (o *ConnOptions) defaults() {
	if o.Heartbeat <= 0 {
		o.Heartbeat = 30 * time.Second
	}
	if o.MaxResponse <= 0 {
		o.MaxResponse = 8 << 20
	}
}

// Conn is one multiplexed TCP connection to a provider: calls are
// written whole under a lock and their answers matched by request id, so
// any number of calls share it.
type Conn struct {
	addr string
	nc   net.Conn
	opts ConnOptions

	wmu sync.Mutex // one frame on the wire at a time

	mu      sync.Mutex
	pending map[int64]chan *Frame
	err     error // set once the connection ended

	nextID    atomic.Int64
	lastRead  atomic.Int64 // unix nanos of the last frame read
	inflight  atomic.Int32
	goingAway atomic.Bool
	done      chan struct{}
	// onGoingAway, when set, hears of the provider's readonly event (the
	// pool stops dialling it).
	onGoingAway func()
}

// Dial connects to a provider and starts reading its frames.
func Dial(ctx context.Context, addr string, opts ConnOptions) (*Conn, error) {
	return dial(ctx, addr, opts, nil)
}

func dial(ctx context.Context, addr string, opts ConnOptions, onGoingAway func()) (*Conn, error) {
	opts.defaults()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dubbo: dial %s: %w", addr, err)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	c := &Conn{addr: addr, nc: nc, opts: opts, pending: map[int64]chan *Frame{}, done: make(chan struct{}), onGoingAway: onGoingAway}
	c.lastRead.Store(time.Now().UnixNano())
	go c.readLoop()
	go c.heartbeatLoop()
	return c, nil
}

// Addr is the provider's address.
func (c *Conn) Addr() string { return c.addr }

// Usable reports whether new calls may use the connection.
func (c *Conn) Usable() bool {
	select {
	case <-c.done:
		return false
	default:
		return !c.goingAway.Load()
	}
}

// InFlight is the number of calls waiting for their answers.
func (c *Conn) InFlight() int { return int(c.inflight.Load()) }

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Close ends the connection; waiting calls get ErrClosed.
func (c *Conn) Close() error {
	c.fail(ErrClosed)
	return nil
}

// Call sends one two-way request and waits for its answer, ctx's end, or
// the connection's. A provider's exception or error status comes back as
// *ExceptionError or *StatusError.
func (c *Conn) Call(ctx context.Context, req Request) (*Response, error) {
	if c.goingAway.Load() {
		return nil, ErrGoingAway
	}
	id := c.nextID.Add(1)
	att := make(map[string]string, len(req.Attachments)+6)
	for k, v := range req.Attachments {
		att[k] = v
	}
	svc := req.Service
	frame, err := hessian.NewHessianCodec(nil).Write(hessian.Service{
		Path: svc.Interface, Interface: svc.Interface, Version: svc.Version, Group: svc.Group, Method: svc.Method, Timeout: req.Timeout,
	}, hessian.DubboHeader{SerialID: Hessian2SerialID, Type: hessian.PackageRequest_TwoWay, ID: id}, hessian.NewRequest(req.Args, att))
	if err != nil {
		return nil, &EncodeError{Err: fmt.Errorf("%s.%s: %w", svc.Interface, svc.Method, err)}
	}

	ch := make(chan *Frame, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	c.pending[id] = ch
	c.mu.Unlock()
	c.inflight.Add(1)
	defer func() {
		c.inflight.Add(-1)
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}()

	if err := c.write(frame); err != nil {
		return nil, err
	}
	select {
	case f := <-ch:
		v, att, err := f.Response()
		if err != nil {
			return nil, err
		}
		return &Response{Value: v, Attachments: att}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.done:
		return nil, c.closeErr()
	}
}

// EncodeError is a request the codec could not encode (an argument of a
// type hessian2 cannot write): the caller's fault, not the provider's.
type EncodeError struct{ Err error }

func (e *EncodeError) Error() string { return "dubbo: encode " + e.Err.Error() }
func (e *EncodeError) Unwrap() error { return e.Err }

func (c *Conn) write(frame []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	// A stuck peer must not hold every caller: bound the write.
	_ = c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.nc.Write(frame); err != nil {
		err = fmt.Errorf("dubbo: send to %s: %w", c.addr, err)
		c.fail(err)
		return err
	}
	return nil
}

func (c *Conn) closeErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// fail ends the connection once, with err for every waiting call.
func (c *Conn) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	c.mu.Unlock()
	_ = c.nc.Close()
	close(c.done)
}

func (c *Conn) readLoop() {
	br := bufio.NewReaderSize(c.nc, 32<<10)
	for {
		f, err := ReadFrame(br, c.opts.MaxResponse)
		if err != nil {
			c.fail(fmt.Errorf("dubbo: connection to %s: %w", c.addr, err))
			return
		}
		c.lastRead.Store(time.Now().UnixNano())
		h := f.Header
		if h.Type&hessian.PackageRequest != 0 {
			c.event(f)
			continue
		}
		if h.Type&hessian.PackageHeartbeat != 0 {
			continue // the answer to our heartbeat
		}
		c.mu.Lock()
		ch := c.pending[h.ID]
		c.mu.Unlock()
		if ch != nil {
			select {
			case ch <- f:
			default: // a second answer to one id: dropped
			}
		}
	}
}

// readonlyEvent is the body of the event a Dubbo provider sends before it
// shuts down.
const readonlyEvent = "R"

// event handles a request from the provider: a heartbeat (answered) or the
// readonly event (no new calls on this connection).
func (c *Conn) event(f *Frame) {
	if f.Header.Type&hessian.PackageHeartbeat == 0 {
		return // a provider does not call its consumer otherwise
	}
	if v, err := f.eventBody(); err == nil && v == readonlyEvent {
		if !c.goingAway.Swap(true) && c.onGoingAway != nil {
			c.onGoingAway()
		}
		return
	}
	if f.Header.Type&hessian.PackageRequest_TwoWay == 0 {
		return
	}
	resp, err := hessian.NewHessianCodec(nil).Write(hessian.Service{},
		hessian.DubboHeader{SerialID: f.Header.SerialID, Type: hessian.PackageHeartbeat, ID: f.Header.ID, ResponseStatus: hessian.Response_OK}, nil)
	if err == nil {
		go func() { _ = c.write(resp) }() // not from the read loop: a write may block
	}
}

// heartbeatLoop keeps a quiet connection checked: a heartbeat after one
// quiet interval, the connection closed after three.
func (c *Conn) heartbeatLoop() {
	t := time.NewTicker(c.opts.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		quiet := time.Since(time.Unix(0, c.lastRead.Load()))
		if quiet >= 3*c.opts.Heartbeat {
			c.fail(fmt.Errorf("dubbo: %s sent nothing for %v (heartbeats unanswered)", c.addr, quiet.Round(time.Second)))
			return
		}
		if quiet >= c.opts.Heartbeat {
			hb, err := hessian.NewHessianCodec(nil).Write(hessian.Service{},
				hessian.DubboHeader{SerialID: Hessian2SerialID, Type: hessian.PackageHeartbeat, ID: c.nextID.Add(1)}, hessian.NewRequest([]any{}, nil))
			if err == nil {
				_ = c.write(hb)
			}
		}
	}
}

// eventBody decodes an event frame's body (nil for a heartbeat, "R" for
// readonly).
func (f *Frame) eventBody() (any, error) {
	if err := checkHessian(f.raw[HeaderLen:]); err != nil {
		return nil, err
	}
	var v any
	err := decodeSafely(func() error {
		var err error
		v, err = hessian.NewDecoder(bytes.Clone(f.raw[HeaderLen:])).Decode()
		return err
	})
	return v, err
}

// CallRaw forwards a request frame from another connection (a Dubbo2
// consumer's) under a request id of this connection and returns the
// answer's frame, its id still this connection's.
func (c *Conn) CallRaw(ctx context.Context, req *Frame) (*Frame, error) {
	if c.goingAway.Load() {
		return nil, ErrGoingAway
	}
	id := c.nextID.Add(1)
	ch := make(chan *Frame, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	c.pending[id] = ch
	c.mu.Unlock()
	c.inflight.Add(1)
	defer func() {
		c.inflight.Add(-1)
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}()
	if err := c.write(req.WithID(id)); err != nil {
		return nil, err
	}
	select {
	case f := <-ch:
		return f, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.done:
		return nil, c.closeErr()
	}
}

// SendRaw forwards a one-way request frame: nothing comes back.
func (c *Conn) SendRaw(req *Frame) error {
	if c.goingAway.Load() {
		return ErrGoingAway
	}
	return c.write(req.WithID(c.nextID.Add(1)))
}
