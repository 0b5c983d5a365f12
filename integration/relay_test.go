package integration

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	demov1 "github.com/meshgate/meshgate/proto/demo/v1"
)

// The HTTP/2 server relays plain gRPC calls frame by frame once the
// upstream connection is up (the first call of a gateway goes through a
// handler and dials). These tests warm the connection, check that the call
// under test was relayed, and that it behaves as through a handler: the
// other gRPC tests cover the handler path (their one call is the first).

// relayed runs call after warming the gateway's connection to the grpc
// cluster, and fails the test unless the call was relayed.
func relayed(t *testing.T, g *gateway, c demov1.DemoServiceClient, call func()) {
	t.Helper()
	if _, err := c.Echo(context.Background(), &demov1.EchoRequest{Message: "warm"}); err != nil {
		t.Fatalf("warm-up call: %v", err)
	}
	cl := clusterNamed(t, g, "grpc")
	// The warm-up dialed; wait until a call is relayed (the connection
	// is ready) before the one under test.
	deadline := time.Now().Add(5 * time.Second)
	for before := cl.Stats.RqRelayed.Load(); cl.Stats.RqRelayed.Load() == before; {
		if time.Now().After(deadline) {
			t.Fatal("no call was relayed: the relay did not take plain gRPC calls")
		}
		if _, err := c.Echo(context.Background(), &demov1.EchoRequest{Message: "warm"}); err != nil {
			t.Fatalf("warm-up call: %v", err)
		}
	}
	before := cl.Stats.RqRelayed.Load()
	call()
	if cl.Stats.RqRelayed.Load() == before {
		t.Fatal("the call under test was not relayed")
	}
}

func TestRelay_Calls(t *testing.T) {
	b := startBackend(t, "b1")
	g := startGateway(t, render(t, baseConfig, baseData{GRPC: b.GRPCAddr, HTTP: b.HTTPAddr}))
	c := demoClient(t, g.addr("main"))
	relayed(t, g, c, func() {
		resp, err := c.Echo(context.Background(), &demov1.EchoRequest{Message: "through the relay"})
		if err != nil || resp.GetMessage() != "through the relay" {
			t.Fatalf("Echo = %v, %v", resp, err)
		}
	})
	relayed(t, g, c, func() {
		// More than the client's and the backend's initial windows, both
		// ways, through a slow reader: the relay holds back, nothing lost.
		s, err := c.ServerStream(context.Background(), &demov1.ServerStreamRequest{Count: 200, Message: strings.Repeat("x", 4096)})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for {
			m, err := s.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("after %d messages: %v", n, err)
			}
			if len(m.GetMessage()) != 4096 {
				t.Fatalf("message %d is %d bytes", n, len(m.GetMessage()))
			}
			n++
			if n%50 == 0 {
				time.Sleep(20 * time.Millisecond)
			}
		}
		if n != 200 {
			t.Fatalf("%d messages, want 200", n)
		}
	})
	relayed(t, g, c, func() {
		s, err := c.BidiStream(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			if err := s.Send(&demov1.EchoRequest{Message: strings.Repeat("y", 20000)}); err != nil {
				t.Fatal(err)
			}
			m, err := s.Recv()
			if err != nil || len(m.GetMessage()) != 20000 {
				t.Fatalf("bidi message %d: %d bytes, %v", i, len(m.GetMessage()), err)
			}
		}
		_ = s.CloseSend()
		if _, err := s.Recv(); err != io.EOF {
			t.Fatalf("end of bidi stream: %v", err)
		}
	})
	relayed(t, g, c, func() {
		b.Service.Faults.GRPCCode.Store(int32(codes.PermissionDenied))
		defer b.Service.Faults.GRPCCode.Store(0)
		_, err := c.Echo(context.Background(), &demov1.EchoRequest{})
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("a trailers-only answer = %v, want PermissionDenied", err)
		}
	})
}

func TestRelay_DeadlinesAndCancel(t *testing.T) {
	b := startBackend(t, "b1")
	t.Run("client deadline", func(t *testing.T) {
		g := startGateway(t, render(t, baseConfig, baseData{GRPC: b.GRPCAddr, HTTP: b.HTTPAddr}))
		c := demoClient(t, g.addr("main"))
		relayed(t, g, c, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			_, err := c.Echo(ctx, &demov1.EchoRequest{DelayMs: 10_000})
			if code := status.Code(err); code != codes.DeadlineExceeded {
				t.Fatalf("Echo with a 200ms deadline = %v, want DeadlineExceeded", err)
			}
			waitCancel(t, b, "Echo")
		})
	})
	t.Run("route timeout", func(t *testing.T) {
		g := startGateway(t, render(t, baseConfig, baseData{GRPC: b.GRPCAddr, HTTP: b.HTTPAddr, Timeout: "300ms"}))
		c := demoClient(t, g.addr("main"))
		relayed(t, g, c, func() {
			_, err := c.Echo(context.Background(), &demov1.EchoRequest{DelayMs: 10_000})
			st := status.Convert(err)
			if st.Code() != codes.DeadlineExceeded {
				t.Fatalf("Echo past the route timeout = %v, want DeadlineExceeded", err)
			}
			waitCancel(t, b, "Echo")
		})
	})
	t.Run("route timeout mid-stream", func(t *testing.T) {
		g := startGateway(t, render(t, baseConfig, baseData{GRPC: b.GRPCAddr, HTTP: b.HTTPAddr, Timeout: "300ms"}))
		c := demoClient(t, g.addr("main"))
		relayed(t, g, c, func() {
			s, err := c.ServerStream(context.Background(), &demov1.ServerStreamRequest{Count: 1000, IntervalMs: 50})
			if err != nil {
				t.Fatal(err)
			}
			got, err := drain(s)
			if status.Code(err) != codes.DeadlineExceeded || len(got) == 0 {
				t.Fatalf("stream past the route timeout: %d messages then %v, want some then DeadlineExceeded", len(got), err)
			}
			waitCancel(t, b, "ServerStream")
		})
	})
	t.Run("client cancel reaches the backend", func(t *testing.T) {
		g := startGateway(t, render(t, baseConfig, baseData{GRPC: b.GRPCAddr, HTTP: b.HTTPAddr}))
		c := demoClient(t, g.addr("main"))
		relayed(t, g, c, func() {
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
		})
	})
}

func TestRelay_UpstreamResetsAndLoss(t *testing.T) {
	for _, tc := range backendResets {
		t.Run(tc.name, func(t *testing.T) {
			addr := serveH2C(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				if strings.HasSuffix(r.URL.Path, "/Echo") {
					w.Header().Set("Content-Type", "application/grpc")
					w.Header().Set("Trailer", "Grpc-Status")
					_, _ = w.Write([]byte{0, 0, 0, 0, 0})
					w.Header().Set("Grpc-Status", "0")
					return
				}
				tc.reset(w)
			}))
			g := startGateway(t, render(t, baseConfig, baseData{GRPC: addr, HTTP: addr}))
			c := demoClient(t, g.addr("main"))
			relayed(t, g, c, func() {
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
		})
	}
	t.Run("backend gone mid-stream", func(t *testing.T) {
		b := startBackend(t, "b1")
		g := startGateway(t, render(t, baseConfig, baseData{GRPC: b.GRPCAddr, HTTP: b.HTTPAddr}))
		c := demoClient(t, g.addr("main"))
		relayed(t, g, c, func() {
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
		})
	})
}
