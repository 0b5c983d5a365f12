package hpackcodec

import (
	"bytes"
	"fmt"
	"testing"

	"golang.org/x/net/http2/hpack"
)

// benchBlock is what a relayed gRPC call's response carries: headers and
// trailers, a request id echoed under two names (new on every call).
func benchBlock(i int) []hpack.HeaderField {
	id := fmt.Sprintf("9b1f4c2e-0000-4000-8000-%012d", i)
	return []hpack.HeaderField{
		hf(":status", "200"), hf("content-type", "application/grpc"), hf("grpc-accept-encoding", "gzip"),
		hf("x-request-id", id), hf("grpc-status", "0"), hf("grpc-message", ""), hf("x-trailer-request-id", id),
	}
}

// BenchmarkEncode encodes a call's header blocks on one connection, with
// this package and with x/net's encoder, side by side.
func BenchmarkEncode(b *testing.B) {
	blocks := make([][]hpack.HeaderField, 1024)
	for i := range blocks {
		blocks[i] = benchBlock(i)
	}
	b.Run("hpackcodec", func(b *testing.B) {
		enc := NewEncoder()
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			enc.Reset()
			for _, f := range blocks[i%len(blocks)] {
				enc.WriteField(f)
			}
		}
	})
	b.Run("x/net", func(b *testing.B) {
		var buf bytes.Buffer
		enc := hpack.NewEncoder(&buf)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			buf.Reset()
			for _, f := range blocks[i%len(blocks)] {
				_ = enc.WriteField(f)
			}
		}
	})
}

// BenchmarkDecode decodes the blocks a grpc-go server (x/net's encoder)
// sends for such calls, with this package and with x/net's decoder.
func BenchmarkDecode(b *testing.B) {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	wire := make([][]byte, 1024)
	for i := range wire {
		buf.Reset()
		for _, f := range benchBlock(i) {
			_ = enc.WriteField(f)
		}
		wire[i] = bytes.Clone(buf.Bytes())
	}
	var n int
	emit := func(hpack.HeaderField) { n++ }
	b.Run("hpackcodec", func(b *testing.B) {
		dec := NewDecoder(DefaultTableSize, emit)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if err := dec.Write(wire[i%len(wire)]); err != nil {
				b.Fatal(err)
			}
			if err := dec.Close(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("x/net", func(b *testing.B) {
		dec := hpack.NewDecoder(DefaultTableSize, emit)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := dec.Write(wire[i%len(wire)]); err != nil {
				b.Fatal(err)
			}
			if err := dec.Close(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
