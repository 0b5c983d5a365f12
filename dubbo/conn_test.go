package dubbo

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	hessian "github.com/apache/dubbo-go-hessian2"
)

// fakeProvider answers Dubbo2 calls in unit tests: handle returns the
// value (or an error to send as an exception) for a decoded request.
type fakeProvider struct {
	t      *testing.T
	ln     net.Listener
	handle func(method string, args []any, att map[string]any) (any, error)
	delay  func(method string, args []any) time.Duration
	mu     sync.Mutex
	conns  []net.Conn
}

func startFake(t *testing.T, handle func(string, []any, map[string]any) (any, error)) *fakeProvider {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &fakeProvider{t: t, ln: ln, handle: handle}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, c)
			p.mu.Unlock()
			go p.serve(c)
		}
	}()
	t.Cleanup(p.close)
	return p
}

func (p *fakeProvider) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
}

// send writes a frame to every open connection.
func (p *fakeProvider) send(frame []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_, _ = c.Write(frame)
	}
}

func (p *fakeProvider) serve(c net.Conn) {
	var wmu sync.Mutex
	br := bufio.NewReader(c)
	for {
		f, err := ReadFrame(br, 1<<20)
		if err != nil {
			return
		}
		if f.Header.Type&hessian.PackageHeartbeat != 0 {
			resp, _ := hessian.NewHessianCodec(nil).Write(hessian.Service{},
				hessian.DubboHeader{SerialID: 2, Type: hessian.PackageHeartbeat, ID: f.Header.ID, ResponseStatus: hessian.Response_OK}, nil)
			wmu.Lock()
			_, _ = c.Write(resp)
			wmu.Unlock()
			continue
		}
		codec := hessian.NewHessianCodec(bufio.NewReaderSize(bytes.NewReader(f.raw), len(f.raw)))
		var h hessian.DubboHeader
		if err := codec.ReadHeader(&h); err != nil {
			p.t.Errorf("fake provider: header: %v", err)
			return
		}
		body := make([]any, 7)
		if err := codec.ReadBody(body); err != nil {
			p.t.Errorf("fake provider: body: %v", err)
			return
		}
		method, _ := body[3].(string)
		args, _ := body[5].([]any)
		att, _ := body[6].(map[string]any)
		go func() {
			if p.delay != nil {
				time.Sleep(p.delay(method, args))
			}
			v, herr := p.handle(method, args, att)
			resp := &hessian.Response{RspObj: v, Attachments: map[string]string{"dubbo": "2.0.2"}}
			if herr != nil {
				resp = &hessian.Response{Exception: herr, Attachments: map[string]string{"dubbo": "2.0.2"}}
			}
			frame, err := hessian.NewHessianCodec(nil).Write(hessian.Service{},
				hessian.DubboHeader{SerialID: 2, Type: hessian.PackageResponse, ID: h.ID, ResponseStatus: hessian.Response_OK}, resp)
			if err != nil {
				p.t.Errorf("fake provider: encode: %v", err)
				return
			}
			wmu.Lock()
			_, _ = c.Write(frame)
			wmu.Unlock()
		}()
	}
}

func echoArgs(method string, args []any, _ map[string]any) (any, error) {
	if method == "fail" {
		return nil, errors.New("boom")
	}
	return args[0], nil
}

func TestConn_MultiplexesOutOfOrderAnswers(t *testing.T) {
	p := startFake(t, echoArgs)
	// Later calls answer first: the answers must still find their calls.
	p.delay = func(_ string, args []any) time.Duration {
		return time.Duration(50-args[0].(int64)) * time.Millisecond
	}
	c, err := Dial(context.Background(), p.ln.Addr().String(), ConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Call(context.Background(), Request{Service: Service{Interface: "x.Svc", Method: "echo"}, Args: []any{int64(i)}})
			if err != nil {
				t.Errorf("call %d: %v", i, err)
				return
			}
			if resp.Value != int64(i) {
				t.Errorf("call %d got the answer %v", i, resp.Value)
			}
		}()
	}
	wg.Wait()
	if n := c.InFlight(); n != 0 {
		t.Errorf("%d calls still counted in flight", n)
	}
}

func TestConn_ExceptionAndTimeout(t *testing.T) {
	p := startFake(t, echoArgs)
	p.delay = func(method string, _ []any) time.Duration {
		if method == "slow" {
			return time.Second
		}
		return 0
	}
	c, err := Dial(context.Background(), p.ln.Addr().String(), ConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Call(context.Background(), Request{Service: Service{Interface: "x.Svc", Method: "fail"}, Args: []any{"a"}})
	var ex *ExceptionError
	if !errors.As(err, &ex) {
		t.Fatalf("error %v, want an ExceptionError", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = c.Call(ctx, Request{Service: Service{Interface: "x.Svc", Method: "slow"}, Args: []any{"a"}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want the deadline", err)
	}
	// The late answer is dropped, and the connection still serves.
	time.Sleep(1100 * time.Millisecond)
	resp, err := c.Call(context.Background(), Request{Service: Service{Interface: "x.Svc", Method: "echo"}, Args: []any{"after"}})
	if err != nil || resp.Value != "after" {
		t.Fatalf("after a timed-out call: %v, %v", resp, err)
	}
}

func TestConn_ProviderGone(t *testing.T) {
	p := startFake(t, echoArgs)
	p.delay = func(string, []any) time.Duration { return time.Hour }
	c, err := Dial(context.Background(), p.ln.Addr().String(), ConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Call(context.Background(), Request{Service: Service{Interface: "x.Svc", Method: "echo"}, Args: []any{"a"}})
		errc <- err
	}()
	for c.InFlight() == 0 {
		time.Sleep(time.Millisecond)
	}
	p.close()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("a call whose provider went away succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a call whose provider went away still waits")
	}
	if c.Usable() {
		t.Error("a connection whose provider went away is still usable")
	}
}

func TestConn_ReadonlyEventStopsNewCalls(t *testing.T) {
	p := startFake(t, echoArgs)
	c, err := Dial(context.Background(), p.ln.Addr().String(), ConnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Call(context.Background(), Request{Service: Service{Interface: "x.Svc", Method: "echo"}, Args: []any{"a"}}); err != nil {
		t.Fatal(err)
	}
	// Java Dubbo's readonly event: a one-way event request with body "R".
	enc := hessian.NewEncoder()
	hdr := []byte{0xda, 0xbb, 0x80 | 0x20 | 2, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0}
	if err := enc.Encode("R"); err != nil {
		t.Fatal(err)
	}
	body := enc.Buffer()
	hdr[15] = byte(len(body))
	p.send(append(hdr, body...))
	deadline := time.Now().Add(5 * time.Second)
	for c.Usable() {
		if time.Now().After(deadline) {
			t.Fatal("the readonly event did not take the connection out")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := c.Call(context.Background(), Request{Service: Service{Interface: "x.Svc", Method: "echo"}, Args: []any{"a"}}); !errors.Is(err, ErrGoingAway) {
		t.Errorf("a call after the readonly event: %v, want ErrGoingAway", err)
	}
}

func TestConn_HeartbeatsKeepAQuietConnection(t *testing.T) {
	p := startFake(t, echoArgs)
	c, err := Dial(context.Background(), p.ln.Addr().String(), ConnOptions{Heartbeat: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(200 * time.Millisecond) // ten intervals without a call
	if !c.Usable() {
		t.Fatal("a quiet connection whose provider answers heartbeats was closed")
	}
}

func TestConn_UnansweredHeartbeatsClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			buf := make([]byte, 1024)
			for {
				if _, err := c.Read(buf); err != nil { // reads, never answers
					return
				}
			}
		}
	}()
	c, err := Dial(context.Background(), ln.Addr().String(), ConnOptions{Heartbeat: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a connection whose peer never answers heartbeats stayed open")
	}
}

func TestPool_SharesConnectionsAndBacksOff(t *testing.T) {
	p := startFake(t, echoArgs)
	pool := NewPool(PoolOptions{ConnsPerHost: 2, MinBackoff: time.Hour})
	defer pool.Close()
	for i := range 20 {
		resp, err := pool.Call(context.Background(), p.ln.Addr().String(), Request{Service: Service{Interface: "x.Svc", Method: "echo"}, Args: []any{fmt.Sprint(i)}})
		if err != nil || resp.Value != fmt.Sprint(i) {
			t.Fatalf("call %d: %v, %v", i, resp, err)
		}
	}
	p.mu.Lock()
	n := len(p.conns)
	p.mu.Unlock()
	if n != 2 {
		t.Errorf("20 calls opened %d connections, want 2", n)
	}

	// A provider that refuses: the first call dials and fails, the next
	// fails at once without dialling until the backoff has passed.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	_, err := pool.Call(context.Background(), dead, Request{Service: Service{Interface: "x.Svc", Method: "echo"}})
	var ce *ConnectError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v, want a ConnectError", err)
	}
	_, err = pool.Call(context.Background(), dead, Request{Service: Service{Interface: "x.Svc", Method: "echo"}})
	if !errors.As(err, &ce) || !bytes.Contains([]byte(err.Error()), []byte("next attempt in")) {
		t.Fatalf("error %v, want the backoff's ConnectError", err)
	}
}

// Closing a pool ends every goroutine its connections started (readers,
// heartbeats), including calls that were waiting.
func TestPool_CloseLeaksNothing(t *testing.T) {
	p := startFake(t, echoArgs)
	p.delay = func(method string, _ []any) time.Duration {
		if method == "slow" {
			return time.Second // the fake's own goroutine ends after it
		}
		return 0
	}
	before := runtime.NumGoroutine()
	pool := NewPool(PoolOptions{ConnsPerHost: 3})
	for i := range 10 {
		if _, err := pool.Call(context.Background(), p.ln.Addr().String(), Request{Service: Service{Interface: "x", Method: "echo"}, Args: []any{fmt.Sprint(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	waiting := make(chan error)
	go func() {
		_, err := pool.Call(context.Background(), p.ln.Addr().String(), Request{Service: Service{Interface: "x", Method: "slow"}, Args: []any{"a"}})
		waiting <- err
	}()
	time.Sleep(50 * time.Millisecond)
	pool.Close()
	if err := <-waiting; !errors.Is(err, ErrClosed) {
		t.Errorf("a waiting call got %v, want ErrClosed", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after Close, %d before the pool", runtime.NumGoroutine(), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := pool.Call(context.Background(), p.ln.Addr().String(), Request{Service: Service{Interface: "x", Method: "echo"}}); err == nil {
		t.Error("a closed pool made a call")
	}
}

// readonlyFrame is Java Dubbo's readonly event: a one-way event request
// whose body is "R".
func readonlyFrame(t *testing.T) []byte {
	t.Helper()
	enc := hessian.NewEncoder()
	if err := enc.Encode("R"); err != nil {
		t.Fatal(err)
	}
	body := enc.Buffer()
	hdr := []byte{0xda, 0xbb, 0x80 | 0x20 | 2, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, byte(len(body))}
	return append(hdr, body...)
}

// A provider's readonly event takes it out of the pool for the away
// window: calls fail at once without a dial, and Away says so.
func TestPool_ReadonlyTakesTheProviderAway(t *testing.T) {
	p := startFake(t, echoArgs)
	addr := p.ln.Addr().String()
	pool := NewPool(PoolOptions{ConnsPerHost: 1, AwayFor: 300 * time.Millisecond})
	defer pool.Close()
	call := func() error {
		_, err := pool.Call(context.Background(), addr, Request{Service: Service{Interface: "x", Method: "echo"}, Args: []any{"a"}})
		return err
	}
	if err := call(); err != nil {
		t.Fatal(err)
	}
	if pool.AnyAway() || pool.Away(addr) {
		t.Fatal("away before any readonly event")
	}
	p.send(readonlyFrame(t))
	deadline := time.Now().Add(5 * time.Second)
	for !pool.Away(addr) {
		if time.Now().After(deadline) {
			t.Fatal("the readonly event did not take the provider away")
		}
		time.Sleep(time.Millisecond)
	}
	p.mu.Lock()
	dialled := len(p.conns)
	p.mu.Unlock()
	var ce *ConnectError
	if err := call(); !errors.As(err, &ce) || !errors.Is(err, ErrGoingAway) {
		t.Errorf("a call to a provider going away: %v, want a ConnectError wrapping ErrGoingAway", err)
	}
	p.mu.Lock()
	if len(p.conns) != dialled {
		t.Error("the pool dialled a provider that is going away")
	}
	p.mu.Unlock()
	// After the window the provider is dialled again (a restarted one
	// serves).
	time.Sleep(400 * time.Millisecond)
	if pool.Away(addr) {
		t.Error("still away after the window")
	}
	if err := call(); err != nil {
		t.Errorf("after the away window: %v", err)
	}
}
