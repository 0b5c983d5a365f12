package integration

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meshgate/meshgate/internal/demo"
	demov1 "github.com/meshgate/meshgate/proto/demo/v1"
)

// A client cancel reaches the backend, for each streaming kind.
func TestGRPC_ClientCancelReachesBackend(t *testing.T) {
	b := startBackend(t, "b1")
	g := startGateway(t, render(t, baseConfig, baseData{GRPC: b.GRPCAddr, HTTP: b.HTTPAddr}))
	c := demoClient(t, g.addr("main"))

	t.Run("unary", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := c.Echo(ctx, &demov1.EchoRequest{DelayMs: 10_000})
			done <- err
		}()
		time.Sleep(100 * time.Millisecond) // let the call reach the backend
		cancel()
		if err := <-done; status.Code(err) != codes.Canceled {
			t.Fatalf("cancelled Echo = %v, want Canceled", err)
		}
		waitCancel(t, b, "Echo")
	})
	t.Run("bidi", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		s, err := c.BidiStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(&demov1.EchoRequest{Message: "one"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(); err != nil {
			t.Fatal(err)
		}
		cancel()
		waitCancel(t, b, "BidiStream")
	})
	t.Run("server stream", func(t *testing.T) { cancelServerStream(t, b, c) })
}

// cancelServerStream cancels a server stream after its first message and
// waits for the backend to see it cancelled.
func cancelServerStream(t *testing.T, b *demo.Backend, c demov1.DemoServiceClient) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := c.ServerStream(ctx, &demov1.ServerStreamRequest{Count: 1000, IntervalMs: 20})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatal(err)
	}
	cancel()
	waitCancel(t, b, "ServerStream")
}

// A backend that goes away mid-stream ends the client's call with
// UNAVAILABLE, not a hang.
func TestGRPC_BackendGoneMidStream(t *testing.T) {
	b := startBackend(t, "b1")
	g := startGateway(t, render(t, baseConfig, baseData{GRPC: b.GRPCAddr, HTTP: b.HTTPAddr}))
	c := demoClient(t, g.addr("main"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.ServerStream(ctx, &demov1.ServerStreamRequest{Count: 1000, IntervalMs: 20})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatal(err)
	}
	b.Stop()
	_, err = drain(s)
	if code := status.Code(err); code != codes.Unavailable && code != codes.Internal {
		t.Fatalf("stream after the backend stopped = %v, want Unavailable or Internal", err)
	}
}

// An HTTP/2 stream reset by the backend becomes the gRPC status the spec
// maps it to. The backend here is a bare HTTP/2 server that resets on
// purpose: grpc-go will not send chosen reset codes.
// backendResets are backends resetting a call (Go's HTTP/2 server answers
// a panic with RST_STREAM INTERNAL_ERROR) and the status the client gets.
var backendResets = []struct {
	name  string
	reset func(w http.ResponseWriter)
	want  codes.Code
}{
	{"reset before headers", func(http.ResponseWriter) { panic(http.ErrAbortHandler) }, codes.Internal},
	{"reset after a message", func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/grpc")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte{0, 0, 0, 0, 0}) // one empty message
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}, codes.Internal},
}

func TestGRPC_BackendResetMapsToStatus(t *testing.T) {
	for _, tc := range backendResets {
		t.Run(tc.name, func(t *testing.T) {
			addr := serveH2C(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				tc.reset(w)
			}))
			g := startGateway(t, render(t, baseConfig, baseData{GRPC: addr, HTTP: addr}))
			c := demoClient(t, g.addr("main"))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s, err := c.ServerStream(ctx, &demov1.ServerStreamRequest{Count: 1})
			if err == nil {
				_, err = drain(s)
			}
			if got := status.Code(err); got != tc.want {
				t.Fatalf("call to a resetting backend = %v, want %v", err, tc.want)
			}
		})
	}
}

// serveH2C serves h on a cleartext HTTP/2 port.
func serveH2C(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: h, Protocols: &p, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// 100 MB stream through the gateway while its heap stays bounded, and a
// slow reader holds the backend back instead of filling the gateway.
func TestGRPC_LargeStreamBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 100 MB; skipped with -short")
	}
	b := startBackend(t, "b1")
	g := startGateway(t, render(t, baseConfig, baseData{GRPC: b.GRPCAddr, HTTP: b.HTTPAddr}))
	c := demoClient(t, g.addr("main"))
	const msgSize = 64 << 10
	const total = 100 << 20
	const count = total / msgSize

	t.Run("100MB", func(t *testing.T) {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base := ms.HeapInuse
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		s, err := c.ServerStream(ctx, &demov1.ServerStreamRequest{Count: count, PayloadSize: msgSize})
		if err != nil {
			t.Fatal(err)
		}
		var bytes, peak uint64
		for i := 0; ; i++ {
			r, err := s.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("after %d bytes: %v", bytes, err)
			}
			bytes += uint64(len(r.GetPayload()))
			if i%100 == 0 {
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
		}
		if bytes != total {
			t.Fatalf("received %d bytes, want %d", bytes, total)
		}
		// The whole test process (client, gateway and backend) must stay far
		// below the 100 MB that went through.
		const bound = 48 << 20
		if grew := peak - min(peak, base); grew > bound {
			t.Errorf("heap grew by %d MiB while streaming 100 MiB, want under %d MiB", grew>>20, bound>>20)
		}
		t.Logf("heap in use: %d MiB before, %d MiB at peak", base>>20, peak>>20)
	})

	t.Run("slow reader", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		before := b.Service.Sent.Load()
		s, err := c.ServerStream(ctx, &demov1.ServerStreamRequest{Count: count, PayloadSize: msgSize})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(); err != nil {
			t.Fatal(err)
		}
		// Stop reading. The backend must stall once the flow-control
		// windows (client, gateway both ways, backend) are full, long
		// before it has sent everything.
		sent := waitStable(b.Service.Sent.Load)
		if n := sent - before; n >= count/2 {
			t.Fatalf("the backend sent %d of %d messages to a client that read 1: no backpressure", n, count)
		} else {
			t.Logf("backend stalled after %d messages (%d MiB) for a client that read 1", n, n*msgSize>>20)
		}
	})
}

// waitStable polls f until it stops changing for 300ms.
func waitStable(f func() int64) int64 {
	last := f()
	for {
		time.Sleep(300 * time.Millisecond)
		now := f()
		if now == last {
			return now
		}
		last = now
	}
}
