package h2

import (
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// frameLog reads rc's frames on its own goroutine, so a test can wait for
// one while it writes. A SETTINGS frame is passed on as a settingsSeen:
// the framer invalidates a frame at its next read, and SETTINGS are the
// frames whose accessors check that (the others are read by field).
type frameLog struct {
	frames chan any
	err    chan error
}

// settingsSeen is a SETTINGS frame's content.
type settingsSeen struct {
	ack    bool
	values map[http2.SettingID]uint32
}

func readFrames(rc *rawClient) *frameLog {
	l := &frameLog{frames: make(chan any, 64), err: make(chan error, 1)}
	go func() {
		for {
			f, err := rc.fr.ReadFrame()
			if err != nil {
				l.err <- err
				close(l.frames)
				return
			}
			if sf, ok := f.(*http2.SettingsFrame); ok {
				seen := settingsSeen{ack: sf.IsAck(), values: map[http2.SettingID]uint32{}}
				_ = sf.ForeachSetting(func(s http2.Setting) error { seen.values[s.ID] = s.Val; return nil })
				l.frames <- seen
				continue
			}
			l.frames <- f
		}
	}()
	return l
}

// next returns the first frame match accepts; it fails the test when the
// connection ends or timeout passes first.
func (l *frameLog) next(t *testing.T, what string, match func(any) bool) any {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case f, ok := <-l.frames:
			if !ok {
				t.Fatalf("waiting for %s: connection ended: %v", what, <-l.err)
			}
			if match(f) {
				return f
			}
		case <-timeout:
			t.Fatalf("waiting for %s: none within 5s", what)
		}
	}
}

func isGoAway(f any) bool { _, ok := f.(*http2.GoAwayFrame); return ok }

func isPing(f any) bool {
	p, ok := f.(*http2.PingFrame)
	return ok && !p.IsAck()
}

func answered(id uint32) func(any) bool {
	return func(f any) bool {
		h, ok := f.(*http2.MetaHeadersFrame)
		return ok && h.StreamID == id
	}
}

// Drain tells an open connection to go in two steps and refuses nothing a
// client sent before it could know: streams opened between the first
// GOAWAY and the PING's ACK are served, those after the second GOAWAY are
// not, and the connection closes once its streams ended. A connection
// that opens during the drain is served, then told to go the same way.
func TestServer_Drain(t *testing.T) {
	release := make(chan struct{})
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		w.WriteHeader(http.StatusOK)
	})}
	addr := serve(t, s)
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before serve's cleanup waits for the handlers

	rc := dialRaw(t, addr)
	log := readFrames(rc)
	rc.headers(1, true, "/slow")
	time.Sleep(50 * time.Millisecond) // stream 1 is at its handler
	s.Drain()

	first := log.next(t, "the first GOAWAY", isGoAway).(*http2.GoAwayFrame)
	if first.LastStreamID != 1<<31-1 || first.ErrCode != http2.ErrCodeNo {
		t.Fatalf("first GOAWAY: last stream %d, code %v; want %d, NO_ERROR", first.LastStreamID, first.ErrCode, uint32(1<<31-1))
	}
	ping := log.next(t, "the drain's PING", isPing).(*http2.PingFrame)
	rc.headers(3, true, "/fast") // sent before the client acknowledged: served
	log.next(t, "the answer to stream 3", answered(3))
	if err := rc.fr.WritePing(true, ping.Data); err != nil {
		t.Fatal(err)
	}
	second := log.next(t, "the second GOAWAY", isGoAway).(*http2.GoAwayFrame)
	if second.LastStreamID != 3 {
		t.Fatalf("second GOAWAY names stream %d, want 3 (the last one opened)", second.LastStreamID)
	}
	rc.headers(5, true, "/fast")
	refused := log.next(t, "stream 5 refused", func(f any) bool {
		if h, ok := f.(*http2.MetaHeadersFrame); ok && h.StreamID == 5 {
			t.Fatal("stream 5, opened after the second GOAWAY, was answered")
		}
		_, ok := f.(*http2.RSTStreamFrame)
		return ok
	}).(*http2.RSTStreamFrame)
	if refused.StreamID != 5 || refused.ErrCode != http2.ErrCodeRefusedStream {
		t.Errorf("got RST_STREAM %d %v, want stream 5 REFUSED_STREAM", refused.StreamID, refused.ErrCode)
	}

	// A connection opened during the drain: its request is served, and it
	// is told to go.
	rc2 := dialRaw(t, addr)
	log2 := readFrames(rc2)
	rc2.headers(1, true, "/fast")
	log2.next(t, "the new connection's first GOAWAY", isGoAway)
	log2.next(t, "the new connection's answer", answered(1))

	unblock()
	log.next(t, "the answer to stream 1", answered(1))
	log.closed(t)
}

// closed waits for the connection to end (EOF) within 5s.
func (l *frameLog) closed(t *testing.T) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-l.frames:
			if !ok {
				if err := <-l.err; !errors.Is(err, io.EOF) {
					t.Errorf("the connection ended with %v, want EOF (closed by the server)", err)
				}
				return
			}
		case <-timeout:
			t.Fatal("the drained connection was still open 5s after its last stream ended")
		}
	}
}

// A drain keeps relayed streams whose requests are still being sent: each
// connection closes only once its stream's answer went — and that answer
// is not lost to the close (it is written by the upstream connection's
// read loop, and flushed before the downstream connection closes).
func TestServer_DrainKeepsRelayedStream(t *testing.T) {
	tr, up := relayTo(t, http.HandlerFunc(grpcEcho))
	s := &Server{Relay: relayAll(tr, up), Handler: http.NotFoundHandler()}
	addr := serve(t, s)
	const conns = 30
	clients := make([]*rawClient, conns)
	logs := make([]*frameLog, conns)
	for i := range clients {
		rc := dialRaw(t, addr)
		clients[i], logs[i] = rc, readFrames(rc)
		startUpload(t, rc)
	}
	time.Sleep(100 * time.Millisecond)
	s.Drain()
	for i, rc := range clients {
		logs[i].next(t, "the first GOAWAY", isGoAway)
		ping := logs[i].next(t, "the drain's PING", isPing).(*http2.PingFrame)
		if err := rc.fr.WritePing(true, ping.Data); err != nil {
			t.Fatal(err)
		}
		logs[i].next(t, "the second GOAWAY", isGoAway)
	}
	time.Sleep(100 * time.Millisecond)
	for _, rc := range clients {
		if err := rc.fr.WriteData(1, true, []byte{0, 0, 0, 0, 1, 'b'}); err != nil {
			t.Fatalf("the rest of the request: %v (the connection closed under a stream)", err)
		}
	}
	for _, log := range logs {
		h := log.next(t, "the answer", answered(1)).(*http2.MetaHeadersFrame)
		if h.PseudoValue("status") != "200" {
			t.Errorf("answer %q", h.PseudoValue("status"))
		}
		log.closed(t)
	}
}

// A drain keeps a handler stream whose request is still being sent.
func TestServer_DrainKeepsUploadingStream(t *testing.T) {
	s := &Server{Handler: http.HandlerFunc(grpcEcho)}
	addr := serve(t, s)
	rc := dialRaw(t, addr)
	log := readFrames(rc)
	startUpload(t, rc)
	time.Sleep(50 * time.Millisecond)
	s.Drain()
	log.next(t, "the first GOAWAY", isGoAway)
	ping := log.next(t, "the drain's PING", isPing).(*http2.PingFrame)
	if err := rc.fr.WritePing(true, ping.Data); err != nil {
		t.Fatal(err)
	}
	log.next(t, "the second GOAWAY", isGoAway)
	time.Sleep(100 * time.Millisecond)
	if err := rc.fr.WriteData(1, true, []byte{0, 0, 0, 0, 1, 'b'}); err != nil {
		t.Fatalf("the rest of the request: %v (the connection closed under a stream)", err)
	}
	log.next(t, "the answer", answered(1))
	log.closed(t)
}

// startUpload opens stream 1 as a gRPC call whose request has begun (a
// message sent) but not ended.
func startUpload(t *testing.T, rc *rawClient) {
	t.Helper()
	rc.hbuf.Reset()
	for _, kv := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/held"}, {"content-type", "application/grpc"}} {
		_ = rc.henc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
	}
	if err := rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: rc.hbuf.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	if err := rc.fr.WriteData(1, false, []byte{0, 0, 0, 0, 1, 'a'}); err != nil {
		t.Fatal(err)
	}
}
