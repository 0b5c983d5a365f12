package h2

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// dataFrame is a DATA frame a test writes: its data, its padding, and
// whether a PING follows it (a frame that is not DATA, which ends a run).
type dataFrame struct {
	data []byte
	pad  int
	ping bool
}

// patterned is n bytes that show where each came from (a byte moved or
// lost shows).
func patterned(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + seed)
	}
	return b
}

// writeFrames writes the frames of stream id on fr, the last with
// END_STREAM when end.
func writeFrames(fr *http2.Framer, id uint32, frames []dataFrame, end bool) {
	for i, f := range frames {
		last := end && i == len(frames)-1
		var err error
		if f.pad > 0 {
			err = fr.WriteDataPadded(id, last, f.data, make([]byte, f.pad))
		} else {
			err = fr.WriteData(id, last, f.data)
		}
		if err != nil {
			panic(err) // a frame the test got wrong
		}
		if f.ping {
			_ = fr.WritePing(false, [8]byte{byte(i)})
		}
	}
}

func joined(frames []dataFrame) []byte {
	var b []byte
	for _, f := range frames {
		b = append(b, f.data...)
	}
	return b
}

// The cases of DATA read back to back that the read loops gather into runs.
var runCases = []struct {
	name   string
	frames []dataFrame
}{
	{"one frame", []dataFrame{{data: patterned(100, 1)}}},
	{"many small frames", func() []dataFrame {
		var fs []dataFrame
		for i := range 60 {
			fs = append(fs, dataFrame{data: patterned(1+i*17%900, i)})
		}
		return fs
	}()},
	{"frames that fill a chunk exactly", []dataFrame{
		{data: patterned(8192, 1)}, {data: patterned(8183, 2)}, {data: patterned(9, 3)}, {data: patterned(1, 4)}, {data: patterned(2, 5)},
	}},
	{"frames that fill a chunk and go past it", []dataFrame{
		{data: patterned(9000, 1)}, {data: patterned(7000, 2)}, {data: patterned(384, 3)}, {data: patterned(1, 4)},
		{data: patterned(16384, 5)}, {data: patterned(16000, 6)}, {data: patterned(500, 7)},
	}},
	{"padded frames", []dataFrame{
		{data: patterned(10, 1), pad: 200}, {data: patterned(1000, 2)}, {data: nil, pad: 255},
		{data: patterned(16128, 3), pad: 255}, {data: patterned(3, 4), pad: 1},
	}},
	{"runs broken by PINGs", []dataFrame{
		{data: patterned(700, 1)}, {data: patterned(800, 2), ping: true}, {data: patterned(900, 3), ping: true},
		{data: patterned(10, 4)}, {data: patterned(20, 5)},
	}},
	{"empty frames", []dataFrame{{data: nil}, {data: patterned(5, 1)}, {data: nil}, {data: nil}}},
}

// rawUpstream is rawServerGoAways answering /warm (the Transport's first
// call, which leaves a connection up) itself and every other request with
// answer.
func rawUpstream(t *testing.T, answer func(fr *http2.Framer, enc func(...string) []byte, f *http2.MetaHeadersFrame)) (string, <-chan http2.ErrCode) {
	t.Helper()
	return rawServerGoAways(t, func(fr *http2.Framer, enc func(...string) []byte, f *http2.MetaHeadersFrame) {
		if f.PseudoValue("path") == "/warm" {
			_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: f.StreamID, EndHeaders: true, EndStream: true, BlockFragment: enc(":status", "200")})
			return
		}
		answer(fr, enc, f)
	})
}

// relayCall makes a call to the relaying server at addr with a client
// whose stream window is window (0: the default).
func relayCall(t *testing.T, addr string, window int32) (*http.Response, error) {
	t.Helper()
	var d net.Dialer
	client := &Transport{StreamWindow: window, Dial: func(ctx context.Context, a string) (net.Conn, error) { return d.DialContext(ctx, "tcp", a) }}
	t.Cleanup(client.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/svc/Method", bytes.NewReader([]byte{0, 0, 0, 0, 0}))
	req.Header.Set("Content-Type", "application/grpc")
	resp, err := client.RoundTrip(req)
	if err == nil {
		t.Cleanup(func() { resp.Body.Close() })
	}
	return resp, err
}

// Response DATA the upstream sends back to back reaches the client whole
// and in order, padding and PINGs between frames included, before the
// trailers (or with END_STREAM on the last frame).
func TestRelay_ResponseDataRuns(t *testing.T) {
	for _, tc := range runCases {
		for _, trailers := range []bool{true, false} {
			name := tc.name + map[bool]string{true: ", trailers", false: ", END_STREAM on DATA"}[trailers]
			t.Run(name, func(t *testing.T) {
				up, _ := rawUpstream(t, func(fr *http2.Framer, enc func(...string) []byte, f *http2.MetaHeadersFrame) {
					id := f.StreamID
					_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, EndHeaders: true, BlockFragment: enc(":status", "200", "content-type", "application/grpc")})
					writeFrames(fr, id, tc.frames, !trailers)
					if trailers {
						_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, EndHeaders: true, EndStream: true, BlockFragment: enc("grpc-status", "0")})
					}
				})
				var d net.Dialer
				tr := &Transport{Dial: func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }}
				t.Cleanup(tr.Close)
				if err := warm(tr, up); err != nil {
					t.Fatal(err)
				}
				addr := serve(t, &Server{Relay: relayAll(tr, up), Handler: http.NotFoundHandler()})
				resp, err := relayCall(t, addr, 0)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				if want := joined(tc.frames); !bytes.Equal(got, want) {
					t.Fatalf("the client got %d bytes, want the %d the upstream sent (first difference at %d)", len(got), len(want), firstDiff(got, want))
				}
				if trailers && resp.Trailer.Get("Grpc-Status") != "0" {
					t.Errorf("trailers %v; want grpc-status 0", resp.Trailer)
				}
			})
		}
	}
}

// Request DATA a client sends back to back reaches the upstream whole and
// in order (the upstream echoes it), padding and PINGs included.
func TestRelay_RequestDataRuns(t *testing.T) {
	for _, tc := range runCases {
		t.Run(tc.name, func(t *testing.T) {
			tr, up := relayTo(t, http.HandlerFunc(grpcEcho))
			addr := serve(t, &Server{Relay: relayAll(tr, up), Handler: http.NotFoundHandler()})
			rc := dialRaw(t, addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20})
			var out bytes.Buffer
			fr := http2.NewFramer(&out, nil)
			_ = fr.WriteWindowUpdate(0, 1<<20)
			rc.hbuf.Reset()
			for _, kv := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/svc/Echo"}, {"content-type", "application/grpc"}} {
				_ = rc.henc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
			}
			_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true, BlockFragment: rc.hbuf.Bytes()})
			writeFrames(fr, 1, tc.frames, true)
			if _, err := rc.conn.Write(out.Bytes()); err != nil {
				t.Fatal(err)
			}
			var got []byte
			status := ""
			err := rc.readUntil(10*time.Second, func(f http2.Frame) bool {
				switch f := f.(type) {
				case *http2.DataFrame:
					got = append(got, f.Data()...)
					return f.StreamEnded()
				case *http2.MetaHeadersFrame:
					if v := fieldValue(f.Fields, "grpc-status"); v != "" {
						status = v
					}
					return f.StreamEnded()
				case *http2.RSTStreamFrame, *http2.GoAwayFrame:
					t.Fatalf("the call ended with %v", f)
				}
				return false
			})
			if err != nil {
				t.Fatal(err)
			}
			if want := joined(tc.frames); !bytes.Equal(got, want) {
				t.Fatalf("the upstream echoed %d bytes, want the %d the client sent (first difference at %d)", len(got), len(want), firstDiff(got, want))
			}
			if status != "0" {
				t.Errorf("grpc-status %q, want 0", status)
			}
		})
	}
}

// A peer that sends more DATA than the connection's window allows, in
// frames a run gathers, is still caught: the connection gets GOAWAY
// FLOW_CONTROL_ERROR, and the call does not end as if it went well.
func TestRelay_DataRunsKeepTheConnectionWindow(t *testing.T) {
	overrun := make([]dataFrame, 70) // 70 KiB against a 64 KiB window
	for i := range overrun {
		overrun[i] = dataFrame{data: patterned(1024, i)}
	}
	t.Run("upstream", func(t *testing.T) {
		up, goaways := rawUpstream(t, func(fr *http2.Framer, enc func(...string) []byte, f *http2.MetaHeadersFrame) {
			id := f.StreamID
			_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, EndHeaders: true, BlockFragment: enc(":status", "200", "content-type", "application/grpc")})
			writeFrames(fr, id, overrun, false)
			_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, EndHeaders: true, EndStream: true, BlockFragment: enc("grpc-status", "0")})
		})
		var d net.Dialer
		tr := &Transport{StreamWindow: 1 << 20, ConnWindow: 65535,
			Dial: func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }}
		t.Cleanup(tr.Close)
		if err := warm(tr, up); err != nil {
			t.Fatal(err)
		}
		addr := serve(t, &Server{Relay: relayAll(tr, up), Handler: http.NotFoundHandler()})
		// The client takes 1 KiB and reads nothing until the GOAWAY: the
		// relay cannot give the upstream's window back meanwhile.
		resp, err := relayCall(t, addr, 1024)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case code := <-goaways:
			if code != http2.ErrCodeFlowControl {
				t.Errorf("GOAWAY %v, want FLOW_CONTROL_ERROR", code)
			}
		case <-time.After(5 * time.Second):
			t.Error("no GOAWAY to the upstream that overran the connection window")
		}
		if _, err := io.ReadAll(resp.Body); err == nil && resp.Trailer.Get("Grpc-Status") == "0" {
			t.Error("the call through an upstream that overran its connection window ended with grpc-status 0")
		}
	})
	t.Run("client", func(t *testing.T) {
		// The upstream takes 1 KiB of the request and waits: the relay
		// cannot give the client's window back meanwhile.
		up := serveWith(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/warm" {
				<-r.Context().Done()
			}
		})}, ConnSettings{StreamWindow: 1024})
		var d net.Dialer
		tr := &Transport{Dial: func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }}
		t.Cleanup(tr.Close)
		if err := warm(tr, up); err != nil {
			t.Fatal(err)
		}
		addr := serveWith(t, &Server{Relay: relayAll(tr, up), Handler: http.NotFoundHandler()}, ConnSettings{StreamWindow: 1 << 20, ConnWindow: 65535})
		rc := dialRaw(t, addr)
		var out bytes.Buffer
		fr := http2.NewFramer(&out, nil)
		rc.hbuf.Reset()
		for _, kv := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/svc/Echo"}, {"content-type", "application/grpc"}} {
			_ = rc.henc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
		}
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true, BlockFragment: rc.hbuf.Bytes()})
		writeFrames(fr, 1, overrun, true)
		if _, err := rc.conn.Write(out.Bytes()); err != nil {
			t.Fatal(err)
		}
		var code http2.ErrCode = 0xffff
		_ = rc.readUntil(10*time.Second, func(f http2.Frame) bool {
			if g, ok := f.(*http2.GoAwayFrame); ok {
				code = g.ErrCode
				return true
			}
			return false
		})
		if code != http2.ErrCodeFlowControl {
			t.Errorf("GOAWAY code %v, want FLOW_CONTROL_ERROR", code)
		}
	})
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// A call that the client itself ends (DATA past its stream window, a
// message over the listener's limit) is answered, not handed to a handler
// for a retry on a route that retries: the request is not whole (what
// failed is not held) and no other host would take it either.
func TestRelay_ClientFaultsAreNotRetried(t *testing.T) {
	overrun := make([]dataFrame, 10) // 10,000 bytes against a 4,096-byte window
	for i := range overrun {
		overrun[i] = dataFrame{data: patterned(1000, i)}
	}
	tests := []struct {
		name       string
		set        ConnSettings
		maxMessage uint64
		frames     []dataFrame
		wantStatus string
	}{
		{"DATA past the stream window", ConnSettings{StreamWindow: 4096, ConnWindow: 1 << 20}, 0, overrun, "13"},
		{"a message over the limit", ConnSettings{}, 100, []dataFrame{{data: []byte{0, 0, 0, 3, 232}}, {data: patterned(1000, 1)}}, "8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr, up := relayTo(t, http.HandlerFunc(grpcEcho))
			var retried atomic.Int32
			relay := func(r *http.Request) (*RelayTarget, bool) {
				return &RelayTarget{Transport: tr, Addr: up, RetryBuffer: 1 << 20, MaxMessage: tc.maxMessage,
					Start: func() (RequestHead, func(RelayEnd), bool) {
						out := RequestHead{Method: r.Method, Scheme: "http", Authority: r.Host, Path: r.URL.Path, Header: r.Header}
						return out, nil, true
					},
					Retry: func(RelayEnd) (*http.Request, any, bool) { retried.Add(1); return r, nil, true },
				}, true
			}
			addr := serveWith(t, &Server{Relay: relay, Handler: http.HandlerFunc(grpcEcho)}, tc.set)
			rc := dialRaw(t, addr)
			var out bytes.Buffer
			fr := http2.NewFramer(&out, nil)
			rc.hbuf.Reset()
			for _, kv := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/svc/Echo"}, {"content-type", "application/grpc"}} {
				_ = rc.henc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
			}
			_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true, BlockFragment: rc.hbuf.Bytes()})
			writeFrames(fr, 1, tc.frames, true)
			if _, err := rc.conn.Write(out.Bytes()); err != nil {
				t.Fatal(err)
			}
			status := ""
			err := rc.readUntil(5*time.Second, func(f http2.Frame) bool {
				if h, ok := f.(*http2.MetaHeadersFrame); ok && h.StreamID == 1 {
					if v := fieldValue(h.Fields, "grpc-status"); v != "" {
						status = v
					}
					return h.StreamEnded()
				}
				return false
			})
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			if status != tc.wantStatus {
				t.Errorf("grpc-status %q, want %s", status, tc.wantStatus)
			}
			if n := retried.Load(); n != 0 {
				t.Errorf("the call was handed over for a retry %d times", n)
			}
		})
	}
}
