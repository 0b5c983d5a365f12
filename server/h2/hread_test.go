package h2

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// TestHeaderReader checks the header block decoder against what RFC 9113
// and x/net's ReadMetaHeaders require: each case is a block as a peer
// would send it (split over CONTINUATION frames when asked), and what the
// reader must make of it.
func TestHeaderReader(t *testing.T) {
	request := []hpack.HeaderField{{Name: ":method", Value: "POST"}, {Name: ":path", Value: "/a"}, {Name: ":scheme", Value: "http"}, {Name: "x-a", Value: "1"}}
	tests := []struct {
		name      string
		fields    []hpack.HeaderField
		split     int    // bytes per fragment (0: one HEADERS frame)
		max       uint32 // header list budget (0: 16 KiB)
		stream    bool   // a StreamError (the stream is reset)
		conn      bool   // a ConnectionError
		truncated bool
	}{
		{name: "request", fields: request},
		{name: "request over continuations", fields: request, split: 3},
		{name: "response", fields: []hpack.HeaderField{{Name: ":status", Value: "200"}, {Name: "grpc-status", Value: "0"}}},
		{name: "upper case name", fields: []hpack.HeaderField{{Name: ":status", Value: "200"}, {Name: "X-A", Value: "1"}}, stream: true},
		{name: "pseudo after regular", fields: []hpack.HeaderField{{Name: "x-a", Value: "1"}, {Name: ":status", Value: "200"}}, stream: true},
		{name: "unknown pseudo", fields: []hpack.HeaderField{{Name: ":nope", Value: "1"}}, stream: true},
		{name: "duplicate pseudo", fields: []hpack.HeaderField{{Name: ":path", Value: "/a"}, {Name: ":path", Value: "/b"}}, stream: true},
		{name: "request and response pseudo", fields: []hpack.HeaderField{{Name: ":path", Value: "/a"}, {Name: ":status", Value: "200"}}, stream: true},
		{name: "control byte in value", fields: []hpack.HeaderField{{Name: "x-a", Value: "a\x00b"}}, stream: true},
		{name: "over the budget", fields: []hpack.HeaderField{{Name: ":status", Value: "200"}, {Name: "x-a", Value: strings.Repeat("a", 80)}, {Name: "x-b", Value: strings.Repeat("b", 80)}}, max: 200, truncated: true},
		{name: "continuation over the budget", fields: []hpack.HeaderField{{Name: "x-a", Value: strings.Repeat("~", 80)}, {Name: "x-b", Value: strings.Repeat("~", 80)}, {Name: "x-c", Value: strings.Repeat("~", 80)}}, max: 200, split: 90, conn: true},
		{name: "far over the budget", fields: []hpack.HeaderField{{Name: "x-big", Value: strings.Repeat("v", 3000)}}, max: 200, conn: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var block bytes.Buffer
			enc := hpack.NewEncoder(&block)
			for _, f := range tt.fields {
				if err := enc.WriteField(f); err != nil {
					t.Fatal(err)
				}
			}
			var wire bytes.Buffer
			fw := http2.NewFramer(&wire, nil)
			b := block.Bytes()
			split := tt.split
			if split == 0 {
				split = len(b)
			}
			first := true
			for first || len(b) > 0 {
				chunk := b[:min(split, len(b))]
				b = b[len(chunk):]
				if first {
					_ = fw.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: chunk, EndStream: true, EndHeaders: len(b) == 0})
					first = false
				} else {
					_ = fw.WriteContinuation(1, len(b) == 0, chunk)
				}
			}
			// A frame behind the block: the reader stops at the block's end.
			_ = fw.WritePing(false, [8]byte{1})

			max := tt.max
			if max == 0 {
				max = 16 << 10
			}
			r := newHeaderReader(max)
			fr := http2.NewFramer(nil, &wire)
			f, err := r.next(fr)
			var se http2.StreamError
			var ce http2.ConnectionError
			switch {
			case tt.stream:
				if !errors.As(err, &se) || se.Code != http2.ErrCodeProtocol || se.StreamID != 1 {
					t.Fatalf("got %v, %v; want a PROTOCOL_ERROR stream error", f, err)
				}
				return
			case tt.conn:
				if !errors.As(err, &ce) {
					t.Fatalf("got %v, %v; want a connection error", f, err)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			mh := f.(*http2.MetaHeadersFrame)
			if mh.Truncated != tt.truncated {
				t.Fatalf("truncated %v, want %v", mh.Truncated, tt.truncated)
			}
			if !tt.truncated {
				if len(mh.Fields) != len(tt.fields) {
					t.Fatalf("fields %v, want %v", mh.Fields, tt.fields)
				}
				for i := range mh.Fields {
					if mh.Fields[i].Name != tt.fields[i].Name || mh.Fields[i].Value != tt.fields[i].Value {
						t.Fatalf("fields %v, want %v", mh.Fields, tt.fields)
					}
				}
			}
			if !mh.StreamEnded() || mh.StreamID != 1 {
				t.Fatalf("frame %v lost its flags", mh)
			}
			if next, err := r.next(fr); err != nil {
				t.Fatal(err)
			} else if _, ok := next.(*http2.PingFrame); !ok {
				t.Fatalf("after the block: %T, want the PING", next)
			}
		})
	}
}
