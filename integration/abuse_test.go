package integration

import (
	"bytes"
	"context"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	demov1 "github.com/meshgate/meshgate/proto/demo/v1"
)

// endLegitLoad stops the legitimate callers (startCalls, on their own
// connection) and fails the test if any call failed or none ran.
func endLegitLoad(t *testing.T, l *callLoop) {
	t.Helper()
	l.end()
	if l.failed.Load() > 0 {
		t.Errorf("%d of %d legitimate calls on another connection failed during the attack (last: %v)", l.failed.Load(), l.ok.Load()+l.failed.Load(), l.lastErr.Load())
	}
	if l.ok.Load() == 0 {
		t.Error("no legitimate call ran during the attack")
	}
}

// attacker is a raw HTTP/2 client connection to the gateway.
type attacker struct {
	conn   net.Conn
	fr     *http2.Framer
	hbuf   bytes.Buffer
	henc   *hpack.Encoder
	goAway atomic.Value // the GOAWAY's error code, once read
	status atomic.Value // stream 1's :status, once answered
	ended  chan error   // the connection's end, as the reader saw it
}

func attack(t *testing.T, addr string) *attacker {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	a := &attacker{conn: c, fr: http2.NewFramer(c, c), ended: make(chan error, 1)}
	a.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	a.henc = hpack.NewEncoder(&a.hbuf)
	if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	if err := a.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			f, err := a.fr.ReadFrame()
			if err != nil {
				a.ended <- err
				return
			}
			if g, ok := f.(*http2.GoAwayFrame); ok && g.ErrCode != http2.ErrCodeNo {
				a.goAway.Store(g.ErrCode)
			}
			if h, ok := f.(*http2.MetaHeadersFrame); ok && h.StreamID == 1 {
				a.status.Store(h.PseudoValue("status"))
			}
		}
	}()
	return a
}

// block encodes a request's header block.
func (a *attacker) block(method, path string, extra ...string) []byte {
	a.hbuf.Reset()
	fields := append([]string{":method", method, ":scheme", "http", ":authority", "gw", ":path", path}, extra...)
	for i := 0; i+1 < len(fields); i += 2 {
		_ = a.henc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return a.hbuf.Bytes()
}

// closedWithin waits for the gateway to end the connection.
func (a *attacker) closedWithin(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-a.ended:
	case <-time.After(d):
		t.Fatalf("the gateway still serves the attacking connection after %v", d)
	}
}

// clusterRequests is a cluster's upstream request count.
func clusterRequests(g *gateway, name string) uint64 {
	for _, c := range g.srv.Clusters() {
		if c.Name == name {
			return c.Stats.RqTotal.Load()
		}
	}
	return 0
}

// HTTP/2 abuse against the whole gateway, each attack on its own raw
// connection while a grpc-go client calls through the gateway on another:
// the attacker is cut off (GOAWAY where the client can still read it),
// the backend sees a bounded share of the attack, the gateway's heap stays
// bounded, and no legitimate call fails.
func TestAbuse_HTTP2(t *testing.T) {
	b := startBackend(t, "b1")
	g := startGateway(t, render(t, baseConfig, baseData{GRPC: b.GRPCAddr, HTTP: b.HTTPAddr}))
	addr := g.addr("main")
	// Warm both clusters' connections.
	if _, err := demoClient(t, addr).Echo(context.Background(), &demov1.EchoRequest{Message: "warm"}); err != nil {
		t.Fatal(err)
	}

	const rapidStreams = 5000
	// rapidReset's count of what reached the backend leaves out the
	// legitimate calls of the same cluster (one upstream request each).
	rapidReset := func(t *testing.T, cluster string, load *callLoop, block func(a *attacker) []byte) {
		a := attack(t, addr)
		legitCalls := func() int64 { return load.ok.Load() + load.failed.Load() }
		before, legitBefore := clusterRequests(g, cluster), legitCalls()
		sent := 0
		for i := range rapidStreams {
			id := uint32(2*i + 1)
			if a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block(a), EndHeaders: true}) != nil ||
				a.fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
				break
			}
			sent++
		}
		a.closedWithin(t, 10*time.Second)
		if code, _ := a.goAway.Load().(http2.ErrCode); code != http2.ErrCodeEnhanceYourCalm {
			t.Errorf("GOAWAY %v, want ENHANCE_YOUR_CALM", a.goAway.Load())
		}
		time.Sleep(100 * time.Millisecond) // attempts already under way are counted
		upstream := clusterRequests(g, cluster) - before
		if cluster == "grpc" {
			upstream -= uint64(legitCalls() - legitBefore)
		}
		if upstream > 200 {
			t.Errorf("the backend saw %d requests of %d reset streams, want at most 200", upstream, sent)
		}
		t.Logf("%d streams sent and reset; %d reached the backend", sent, upstream)
	}

	tests := []struct {
		name string
		run  func(t *testing.T, load *callLoop)
	}{
		{"rapid reset, relayed gRPC", func(t *testing.T, load *callLoop) {
			rapidReset(t, "grpc", load, func(a *attacker) []byte {
				return a.block("POST", "/demo.v1.DemoService/Echo", "content-type", "application/grpc", "te", "trailers")
			})
		}},
		{"rapid reset, HTTP through the filter chain", func(t *testing.T, load *callLoop) {
			rapidReset(t, "http", load, func(a *attacker) []byte { return a.block("GET", "/echo?delay=1s") })
		}},
		{"CONTINUATION flood", func(t *testing.T, _ *callLoop) {
			a := attack(t, addr)
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			heapBefore := ms.HeapInuse
			if err := a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: a.block("GET", "/echo")}); err != nil {
				t.Fatal(err)
			}
			junk := bytes.Repeat([]byte{0x40, 0x01, 'x', 0x01, 'y'}, 16000/5) // literal fields x: y, 16 KB a frame
			sent := 0
			for ; sent < 4096; sent++ { // 64 MB if all were taken
				if a.fr.WriteContinuation(1, false, junk) != nil {
					break
				}
			}
			a.closedWithin(t, 10*time.Second)
			runtime.ReadMemStats(&ms)
			if grew := int64(ms.HeapInuse) - int64(heapBefore); grew > 32<<20 {
				t.Errorf("the gateway's heap grew %d MiB under the flood, want it bounded", grew>>20)
			}
			t.Logf("%d CONTINUATION frames (16 KB each) written before the gateway cut the connection", sent)
		}},
		{"oversize header list", func(t *testing.T, _ *callLoop) {
			a := attack(t, addr)
			big := a.block("GET", "/echo", "x-big", strings.Repeat("a", 100<<10)) // over the 60 KiB default
			if err := a.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: big[:16000], EndStream: true}); err != nil {
				t.Fatal(err)
			}
			var err error
			for rest := big[16000:]; len(rest) > 0 && err == nil; {
				n := min(len(rest), 16000)
				err = a.fr.WriteContinuation(1, n == len(rest), rest[:n])
				rest = rest[n:]
			}
			// The stream is answered 431 or the connection fails; either
			// way the headers never reach the backend.
			before := clusterRequests(g, "http")
			deadline := time.After(5 * time.Second)
		wait:
			for a.status.Load() == nil {
				select {
				case <-a.ended:
					break wait
				case <-deadline:
					t.Fatal("no answer to an oversize header list, and the connection is still open")
				case <-time.After(10 * time.Millisecond):
				}
			}
			if st := a.status.Load(); st != nil && st != "431" {
				t.Errorf("an oversize header list was answered %v, want 431", st)
			}
			if n := clusterRequests(g, "http") - before; n != 0 {
				t.Errorf("%d requests reached the backend", n)
			}
			t.Logf("answer %v, or the connection ended", a.status.Load())
		}},
		{"SETTINGS flood", func(t *testing.T, _ *callLoop) {
			a := attack(t, addr)
			go func() {
				for a.fr.WriteSettings(http2.Setting{ID: http2.SettingEnablePush, Val: 0}) == nil {
				}
			}()
			a.closedWithin(t, 10*time.Second)
		}},
		{"PING flood", func(t *testing.T, _ *callLoop) {
			a := attack(t, addr)
			go func() {
				for i := 0; a.fr.WritePing(false, [8]byte{byte(i)}) == nil; i++ {
				}
			}()
			a.closedWithin(t, 10*time.Second)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			load := startCalls(demoClient(t, addr), 4)
			time.Sleep(50 * time.Millisecond)
			tc.run(t, load)
			time.Sleep(100 * time.Millisecond)
			endLegitLoad(t, load)
			t.Logf("%d legitimate calls on another connection during the attack, %d failed", load.ok.Load()+load.failed.Load(), load.failed.Load())
		})
	}
}
