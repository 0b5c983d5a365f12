package h2

import (
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// serveWith runs s on a listener, each connection with set.
func serveWith(t *testing.T, s *Server, set ConnSettings) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go s.ServeConnWith(c, set)
		}
	}()
	t.Cleanup(func() {
		lis.Close()
		<-done
		s.Close()
	})
	return lis.Addr().String()
}

func okHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
}

// Each connection limit of ConnSettings, as Envoy's HttpConnectionManager
// names it, seen from a raw client.
func TestServer_ConnSettings(t *testing.T) {
	t.Run("settings advertised", func(t *testing.T) {
		addr := serveWith(t, &Server{Handler: okHandler()}, ConnSettings{MaxConcurrentStreams: 7, StreamWindow: 70000, ConnWindow: 1 << 20})
		log := readFrames(dialRaw(t, addr))
		sf := log.next(t, "SETTINGS", func(f any) bool { s, ok := f.(settingsSeen); return ok && !s.ack }).(settingsSeen)
		if v := sf.values[http2.SettingMaxConcurrentStreams]; v != 7 {
			t.Errorf("MAX_CONCURRENT_STREAMS %d, want 7", v)
		}
		if v := sf.values[http2.SettingInitialWindowSize]; v != 70000 {
			t.Errorf("INITIAL_WINDOW_SIZE %d, want 70000", v)
		}
		wu := log.next(t, "the connection's WINDOW_UPDATE", func(f any) bool { w, ok := f.(*http2.WindowUpdateFrame); return ok && w.StreamID == 0 }).(*http2.WindowUpdateFrame)
		if wu.Increment != 1<<20-65535 {
			t.Errorf("connection window raised by %d, want %d", wu.Increment, 1<<20-65535)
		}
	})

	t.Run("max_requests_per_connection", func(t *testing.T) {
		addr := serveWith(t, &Server{Handler: okHandler()}, ConnSettings{MaxRequests: 2})
		rc := dialRaw(t, addr)
		log := readFrames(rc)
		rc.headers(1, true, "/")
		log.next(t, "answer 1", answered(1))
		rc.headers(3, true, "/")
		g := log.next(t, "GOAWAY after the second request", isGoAway).(*http2.GoAwayFrame)
		if g.LastStreamID != 3 {
			t.Errorf("GOAWAY names stream %d, want 3", g.LastStreamID)
		}
		log.next(t, "answer 3", answered(3))
		log.closed(t)
	})

	t.Run("max_connection_duration", func(t *testing.T) {
		addr := serveWith(t, &Server{Handler: okHandler()}, ConnSettings{MaxDuration: 200 * time.Millisecond})
		rc := dialRaw(t, addr)
		log := readFrames(rc)
		start := time.Now()
		rc.headers(1, true, "/")
		log.next(t, "answer 1", answered(1))
		g := log.next(t, "the drain's GOAWAY", isGoAway).(*http2.GoAwayFrame)
		if d := time.Since(start); d < 150*time.Millisecond || g.LastStreamID != 1<<31-1 {
			t.Errorf("GOAWAY (last stream %d) %v after the connection opened, want the drain's at 200ms", g.LastStreamID, d)
		}
		ping := log.next(t, "the drain's PING", isPing).(*http2.PingFrame)
		if err := rc.fr.WritePing(true, ping.Data); err != nil {
			t.Fatal(err)
		}
		log.next(t, "the final GOAWAY", isGoAway)
		log.closed(t)
	})

	t.Run("max_headers_count", func(t *testing.T) {
		addr := serveWith(t, &Server{Handler: okHandler()}, ConnSettings{MaxHeaders: 3})
		rc := dialRaw(t, addr)
		log := readFrames(rc)
		send := func(id uint32, n int) {
			rc.hbuf.Reset()
			for _, kv := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/"}} {
				_ = rc.henc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
			}
			for i := range n {
				_ = rc.henc.WriteField(hpack.HeaderField{Name: "x-h" + strconv.Itoa(i), Value: "v"})
			}
			if err := rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: rc.hbuf.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			id     uint32
			fields int
			want   string
		}{{1, 3, "200"}, {3, 4, "431"}} {
			send(tc.id, tc.fields)
			h := log.next(t, "an answer", answered(tc.id)).(*http2.MetaHeadersFrame)
			if got := h.PseudoValue("status"); got != tc.want {
				t.Errorf("%d header fields (limit 3): %s, want %s", tc.fields, got, tc.want)
			}
		}
	})
}
