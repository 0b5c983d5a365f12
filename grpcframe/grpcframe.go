// Package grpcframe is gRPC's length-prefixed message envelope (a flags
// byte and a 4-byte big-endian length), written and read here once for
// every protocol that carries it: gRPC, gRPC-Web, Connect streams and
// Triple.
package grpcframe

import "encoding/binary"

// HeaderLen is the length of a message's prefix.
const HeaderLen = 5

// Flags of the prefix: a compressed message; a gRPC-Web frame of trailers.
const (
	Compressed  = 0x01
	TrailerFlag = 0x80
)

// Append appends msg to dst as one length-prefixed message with the given
// flags.
func Append(dst []byte, flags byte, msg []byte) []byte {
	n := uint32(len(msg))
	dst = append(dst, flags, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	return append(dst, msg...)
}

// Length reads the message length a prefix declares; ok is false when b is
// shorter than a prefix.
func Length(b []byte) (n uint32, ok bool) {
	if len(b) < HeaderLen {
		return 0, false
	}
	return binary.BigEndian.Uint32(b[1:HeaderLen]), true
}

// Single is the message of b when b is exactly one uncompressed message.
func Single(b []byte) (msg []byte, ok bool) {
	n, ok := Length(b)
	if !ok || b[0] != 0 || uint64(n) != uint64(len(b)-HeaderLen) {
		return nil, false
	}
	return b[HeaderLen:], true
}

// SizeWatch follows a stream of length-prefixed messages as its bytes go
// by, in pieces of any size, without buffering: it only reads the 5-byte
// prefixes. Max is the largest message length allowed.
type SizeWatch struct {
	Max  uint64
	left uint64 // bytes left of the current message
	hdr  [HeaderLen]byte
	hdrN int // prefix bytes gathered so far
}

// Scan takes the next bytes of the stream; false once a message's prefix
// says it is longer than Max.
func (w *SizeWatch) Scan(p []byte) bool {
	for len(p) > 0 {
		if w.left > 0 {
			k := min(uint64(len(p)), w.left)
			w.left -= k
			p = p[k:]
			continue
		}
		k := copy(w.hdr[w.hdrN:], p)
		w.hdrN += k
		p = p[k:]
		if w.hdrN < len(w.hdr) {
			return true
		}
		w.hdrN = 0
		n, _ := Length(w.hdr[:])
		w.left = uint64(n)
		if w.left > w.Max {
			return false
		}
	}
	return true
}
