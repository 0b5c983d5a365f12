package integration

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// A request field the client sends as a literal never indexed reaches the
// upstream as one too (RFC 7541 section 7.1.3), and a response field the
// upstream sends so reaches the client so, through the whole gateway: the
// first call through a handler (it dials), the next relayed. The upstream
// is a hand-driven HTTP/2 server that notes how the field came.
func TestGateway_NeverIndexedFieldsStaySo(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var flags []bool // Sensitive of x-api-key, per request that reached the upstream
	var conns []net.Conn
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go rawGRPCUpstream(c, func(f *http2.MetaHeadersFrame) {
				for _, hf := range f.RegularFields() {
					if hf.Name == "x-api-key" {
						mu.Lock()
						flags = append(flags, hf.Sensitive)
						mu.Unlock()
					}
				}
			})
		}
	}()
	t.Cleanup(func() {
		lis.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	g := startGateway(t, render(t, baseConfig, baseData{GRPC: lis.Addr().String(), HTTP: "127.0.0.1:1"}))
	c, err := net.Dial("tcp", g.addr("main"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	var hbuf bytes.Buffer
	henc := hpack.NewEncoder(&hbuf)
	if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	_ = fr.WriteSettings()
	cl := clusterNamed(t, g, "grpc")
	const calls = 6
	var secretFlags []bool // Sensitive of x-secret, per answer the client got
	for i := range calls {
		id := uint32(2*i + 1)
		hbuf.Reset()
		for _, hf := range []hpack.HeaderField{
			{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"}, {Name: ":authority", Value: "x"},
			{Name: ":path", Value: "/demo.v1.DemoService/Echo"}, {Name: "content-type", Value: "application/grpc"},
			{Name: "te", Value: "trailers"}, {Name: "x-api-key", Value: "k-123", Sensitive: true},
		} {
			_ = henc.WriteField(hf)
		}
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, EndHeaders: true, BlockFragment: hbuf.Bytes()})
		_ = fr.WriteData(id, true, []byte{0, 0, 0, 0, 0})
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for done := false; !done; {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
			switch f := f.(type) {
			case *http2.MetaHeadersFrame:
				done = f.StreamID == id && f.StreamEnded()
				for _, hf := range f.RegularFields() {
					if f.StreamID == id && hf.Name == "x-secret" {
						secretFlags = append(secretFlags, hf.Sensitive)
					}
				}
			case *http2.RSTStreamFrame:
				if f.StreamID == id {
					t.Fatalf("call %d reset: %v", i, f.ErrCode)
				}
			case *http2.SettingsFrame:
				if !f.IsAck() {
					_ = fr.WriteSettingsAck()
				}
			}
		}
		if i == 0 {
			time.Sleep(50 * time.Millisecond) // the connection the first call dialed is ready for the relay
		}
	}
	relayed := cl.Stats.RqRelayed.Load()
	if relayed == 0 || relayed == calls {
		t.Errorf("%d of %d calls relayed; want both paths taken", relayed, calls)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(flags) != calls {
		t.Fatalf("x-api-key reached the upstream %d times, want %d", len(flags), calls)
	}
	for i, sensitive := range flags {
		if !sensitive {
			t.Errorf("call %d: x-api-key reached the upstream indexable, want never indexed", i)
		}
	}
	if len(secretFlags) != calls {
		t.Fatalf("x-secret reached the client %d times, want %d", len(secretFlags), calls)
	}
	for i, sensitive := range secretFlags {
		if !sensitive {
			t.Errorf("call %d: x-secret reached the client indexable, want never indexed", i)
		}
	}
}

// rawGRPCUpstream serves one HTTP/2 connection: each request's HEADERS go
// to seen, and it is answered OK (trailers-only) once it ended.
func rawGRPCUpstream(c net.Conn, seen func(*http2.MetaHeadersFrame)) {
	defer c.Close()
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, preface); err != nil {
		return
	}
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	var hbuf bytes.Buffer
	henc := hpack.NewEncoder(&hbuf)
	_ = fr.WriteSettings()
	answer := func(id uint32) {
		hbuf.Reset()
		for _, hf := range []hpack.HeaderField{{Name: ":status", Value: "200"}, {Name: "content-type", Value: "application/grpc"},
			{Name: "x-secret", Value: "s-1", Sensitive: true}, {Name: "grpc-status", Value: "0"}} {
			_ = henc.WriteField(hf)
		}
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, EndHeaders: true, EndStream: true, BlockFragment: hbuf.Bytes()})
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				_ = fr.WritePing(true, f.Data)
			}
		case *http2.MetaHeadersFrame:
			seen(f)
			if f.StreamEnded() {
				answer(f.StreamID)
			}
		case *http2.DataFrame:
			if f.StreamEnded() {
				answer(f.StreamID)
			}
		}
	}
}
