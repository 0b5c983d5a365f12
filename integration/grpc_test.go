package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/meshgate/meshgate/internal/demo"
	demov1 "github.com/meshgate/meshgate/proto/demo/v1"
)

// Each stream kind gives the same answers through the gateway as directly.
func TestGRPC_StreamKinds(t *testing.T) {
	b := startBackend(t, "b1")
	g := startGateway(t, render(t, baseConfig, baseData{GRPC: b.GRPCAddr, HTTP: b.HTTPAddr}))
	direct := demoClient(t, b.GRPCAddr)
	via := demoClient(t, g.addr("main"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	kinds := []struct {
		name string
		call func(demov1.DemoServiceClient) (any, error)
	}{
		{"unary", func(c demov1.DemoServiceClient) (any, error) {
			return c.Echo(ctx, &demov1.EchoRequest{Message: "hello", Payload: []byte{0, 1, 2, 255}})
		}},
		{"server streaming", func(c demov1.DemoServiceClient) (any, error) {
			s, err := c.ServerStream(ctx, &demov1.ServerStreamRequest{Message: "s", Count: 50, PayloadSize: 300})
			if err != nil {
				return nil, err
			}
			return drain(s)
		}},
		{"client streaming", func(c demov1.DemoServiceClient) (any, error) {
			s, err := c.ClientStream(ctx)
			if err != nil {
				return nil, err
			}
			for i := range 40 {
				if err := s.Send(&demov1.EchoRequest{Message: fmt.Sprint("m", i), Payload: make([]byte, i*100)}); err != nil {
					return nil, err
				}
			}
			return s.CloseAndRecv()
		}},
		{"bidi streaming", func(c demov1.DemoServiceClient) (any, error) {
			s, err := c.BidiStream(ctx)
			if err != nil {
				return nil, err
			}
			var got []*demov1.EchoResponse
			for i := range 30 {
				// Ping-pong: each answer must arrive before the next send.
				if err := s.Send(&demov1.EchoRequest{Message: fmt.Sprint("b", i)}); err != nil {
					return nil, err
				}
				r, err := s.Recv()
				if err != nil {
					return nil, err
				}
				got = append(got, r)
			}
			if err := s.CloseSend(); err != nil {
				return nil, err
			}
			if _, err := s.Recv(); !errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("after CloseSend: Recv() = %v, want EOF", err)
			}
			return got, nil
		}},
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			want, err := k.call(direct)
			if err != nil {
				t.Fatalf("direct: %v", err)
			}
			got, err := k.call(via)
			if err != nil {
				t.Fatalf("through gateway: %v", err)
			}
			// The gateway adds x-forwarded-for and x-forwarded-proto, which
			// the backend echoes in metadata; everything else must match.
			opts := cmp.Options{protocmp.Transform(), protocmp.IgnoreFields(&demov1.EchoResponse{}, "metadata")}
			if diff := cmp.Diff(want, got, opts); diff != "" {
				t.Errorf("through gateway differs from direct (-direct +gateway):\n%s", diff)
			}
		})
	}
}

func drain(s grpc.ServerStreamingClient[demov1.EchoResponse]) ([]*demov1.EchoResponse, error) {
	var out []*demov1.EchoResponse
	for {
		r, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
}

// Request metadata reaches the backend, and its headers and trailers, text
// and binary, come back: for a unary call, a stream, and an error status.
func TestGRPC_MetadataAndTrailers(t *testing.T) {
	b := startBackend(t, "b1")
	g := startGateway(t, render(t, baseConfig, baseData{GRPC: b.GRPCAddr, HTTP: b.HTTPAddr}))
	c := demoClient(t, g.addr("main"))
	md := metadata.Pairs("x-user", "alice", "x-blob-bin", string([]byte{0, 0xff, 'z'}))
	ctx := metadata.NewOutgoingContext(context.Background(), md)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()

	check := func(t *testing.T, header, trailer metadata.MD) {
		t.Helper()
		if got := header.Get("x-user"); len(got) != 1 || got[0] != "alice" {
			t.Errorf("header x-user = %q, want [alice]", got)
		}
		if got := header.Get("x-blob-bin"); len(got) != 1 || got[0] != string([]byte{0, 0xff, 'z'}) {
			t.Errorf("header x-blob-bin = %q, want the bytes 00 ff 7a", got)
		}
		if got := trailer.Get("x-trailer-user"); len(got) != 1 || got[0] != "alice" {
			t.Errorf("trailer x-trailer-user = %q, want [alice]", got)
		}
		if got := trailer.Get("x-trailer-blob-bin"); len(got) != 1 || got[0] != string([]byte{0, 0xff, 'z'}) {
			t.Errorf("trailer x-trailer-blob-bin = %q, want the bytes 00 ff 7a", got)
		}
	}
	t.Run("unary", func(t *testing.T) {
		var header, trailer metadata.MD
		resp, err := c.Echo(ctx, &demov1.EchoRequest{Message: "m"}, grpc.Header(&header), grpc.Trailer(&trailer))
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{
			"x-user": "alice", "x-blob-bin": "AP96", // base64 of 00 ff 7a
			"x-forwarded-for": "127.0.0.1", "x-forwarded-proto": "http",
		}
		got := resp.GetMetadata()
		if id := got["x-request-id"]; !uuidV4.MatchString(id) {
			t.Errorf("x-request-id the backend saw: %q, want one the gateway made up", id)
		}
		delete(got, "x-request-id")
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("metadata the backend saw (-want +got):\n%s", diff)
		}
		check(t, header, trailer)
	})
	t.Run("server stream", func(t *testing.T) {
		s, err := c.ServerStream(ctx, &demov1.ServerStreamRequest{Count: 3})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := drain(s); err != nil {
			t.Fatal(err)
		}
		header, err := s.Header()
		if err != nil {
			t.Fatal(err)
		}
		check(t, header, s.Trailer())
	})
	t.Run("error status", func(t *testing.T) {
		var header, trailer metadata.MD
		_, err := c.Echo(ctx, &demov1.EchoRequest{FailCode: int32(codes.PermissionDenied), FailMessage: "nope: 100% ünïcode"},
			grpc.Header(&header), grpc.Trailer(&trailer))
		st := status.Convert(err)
		if st.Code() != codes.PermissionDenied || st.Message() != "nope: 100% ünïcode" {
			t.Errorf("status = %v %q, want PermissionDenied %q", st.Code(), st.Message(), "nope: 100% ünïcode")
		}
		check(t, header, trailer)
	})
}

// A client deadline ends the call with DEADLINE_EXCEEDED and the backend
// sees the call cancelled; so does a route timeout with no client deadline.
// Each call is its gateway's first: the handler path (the relay's tests run
// the same cases relayed).
func TestGRPC_Deadlines(t *testing.T) {
	checkDeadlines(t, func(_ *testing.T, _ *gateway, _ demov1.DemoServiceClient, call func()) { call() })
}

// through runs a test's call on a gateway: at once, or after warming it so
// that the call is relayed.
type through func(t *testing.T, g *gateway, c demov1.DemoServiceClient, call func())

// checkDeadlines runs the deadline cases, each on a gateway of its own,
// their calls made through th.
func checkDeadlines(t *testing.T, th through) {
	b := startBackend(t, "b1")
	t.Run("client deadline", func(t *testing.T) {
		g := startGateway(t, render(t, baseConfig, baseData{GRPC: b.GRPCAddr, HTTP: b.HTTPAddr}))
		c := demoClient(t, g.addr("main"))
		th(t, g, c, func() {
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
		th(t, g, c, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := c.Echo(ctx, &demov1.EchoRequest{DelayMs: 10_000})
			// The gateway ends the call itself ("upstream request timeout"), or
			// the backend does first: it got the route timeout as grpc-timeout
			// and, on a loaded machine, its own timer may fire before the
			// gateway's. Either way the route timeout ended the call.
			st := status.Convert(err)
			if st.Code() != codes.DeadlineExceeded || !strings.Contains(st.Message(), "upstream request timeout") && !strings.Contains(st.Message(), "context deadline exceeded") {
				t.Fatalf("Echo past the route timeout = %v, want DeadlineExceeded from the gateway", err)
			}
			waitCancel(t, b, "Echo")
		})
	})
	t.Run("route timeout mid-stream", func(t *testing.T) {
		g := startGateway(t, render(t, baseConfig, baseData{GRPC: b.GRPCAddr, HTTP: b.HTTPAddr, Timeout: "300ms"}))
		c := demoClient(t, g.addr("main"))
		th(t, g, c, func() {
			s, err := c.ServerStream(context.Background(), &demov1.ServerStreamRequest{Count: 1000, IntervalMs: 50})
			if err != nil {
				t.Fatal(err)
			}
			got, err := drain(s)
			if status.Code(err) != codes.DeadlineExceeded || len(got) == 0 {
				t.Fatalf("stream past the route timeout: %d messages then %v, want some messages then DeadlineExceeded", len(got), err)
			}
			waitCancel(t, b, "ServerStream")
		})
	})
	t.Run("client cancel mid-stream", func(t *testing.T) {
		g := startGateway(t, render(t, baseConfig, baseData{GRPC: b.GRPCAddr, HTTP: b.HTTPAddr}))
		c := demoClient(t, g.addr("main"))
		th(t, g, c, func() { cancelServerStream(t, b, c) })
	})
}

// waitCancel waits until the backend reports method cancelled.
func waitCancel(t *testing.T, b *demo.Backend, method string) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case m := <-b.Service.Cancels:
			if m == method {
				return
			}
		case <-timeout:
			t.Fatalf("the backend did not see %s cancelled within 5s", method)
		}
	}
}
