//go:build !race

package integration

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	demov1 "github.com/meshgate/meshgate/proto/demo/v1"
)

// A long server stream to a grpc-go client is not taken for a PING flood:
// grpc-go pings once a round trip while data comes in (BDP estimation) and
// sends nothing else on the stream, so its PINGs soon outnumber the frames
// it sends many times over. The gateway once closed such a connection
// (GOAWAY ENHANCE_YOUR_CALM) past 1,000 PINGs in 10 s; the bench's 20 s
// streams met it. The client's own PINGs are counted on the wire so the
// test knows it went past that within one of the gateway's 10 s windows.
// Without the race detector: under it the client pings a tenth as often,
// too seldom to pass the old limit within a window (the Makefile runs this
// file in its non-race pass).
func TestGRPC_LongServerStreamIsNoPingFlood(t *testing.T) {
	const wantPings = 1500
	b := startBackend(t, "b1")
	g := startGateway(t, render(t, baseConfig, baseData{GRPC: b.GRPCAddr, HTTP: b.HTTPAddr}))
	var pings pingCounter
	cc, err := grpc.NewClient(g.addr("main"), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			return &pingCountingConn{Conn: c, pings: &pings}, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := demov1.NewDemoServiceClient(cc).ServerStream(ctx, &demov1.ServerStreamRequest{Count: 1 << 40, PayloadSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	// The gateway counts PINGs in windows of 10 s.
	deadline := time.Now().Add(10 * time.Second)
	msgs := 0
	for pings.n.Load() < wantPings {
		if time.Now().After(deadline) {
			t.Fatalf("the client sent %d PINGs in 10 s (%d messages), want %d: the test cannot show what it is for",
				pings.n.Load(), msgs, wantPings)
		}
		if _, err := s.Recv(); err != nil {
			t.Fatalf("after %d messages and %d client PINGs: %v", msgs, pings.n.Load(), err)
		}
		msgs++
	}
	t.Logf("%d messages, %d PINGs from the client", msgs, pings.n.Load())
}

// pingCounter counts the PING frames (not ACKs) a client wrote.
type pingCounter struct{ n atomic.Int64 }

// pingCountingConn follows the HTTP/2 frames written on a client
// connection and counts its PINGs.
type pingCountingConn struct {
	net.Conn
	pings *pingCounter

	mu       sync.Mutex
	preface  int    // preface bytes still to skip
	started  bool   // preface length set
	hdr      []byte // a frame header being gathered
	skipping int    // payload bytes of the current frame still to pass
}

func (c *pingCountingConn) Write(p []byte) (int, error) {
	c.follow(p)
	return c.Conn.Write(p)
}

func (c *pingCountingConn) follow(p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.started {
		c.started, c.preface = true, len(http2.ClientPreface)
	}
	for len(p) > 0 {
		switch {
		case c.preface > 0:
			k := min(c.preface, len(p))
			c.preface -= k
			p = p[k:]
		case c.skipping > 0:
			k := min(c.skipping, len(p))
			c.skipping -= k
			p = p[k:]
		default:
			k := min(9-len(c.hdr), len(p))
			c.hdr = append(c.hdr, p[:k]...)
			p = p[k:]
			if len(c.hdr) == 9 {
				length := int(c.hdr[0])<<16 | int(c.hdr[1])<<8 | int(c.hdr[2])
				if http2.FrameType(c.hdr[3]) == http2.FramePing && http2.Flags(c.hdr[4])&http2.FlagPingAck == 0 {
					c.pings.n.Add(1)
				}
				c.skipping, c.hdr = length, c.hdr[:0]
			}
		}
	}
}
