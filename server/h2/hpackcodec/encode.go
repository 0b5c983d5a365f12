package hpackcodec

import (
	"strings"

	"golang.org/x/net/http2/hpack"
)

// Encoder writes header blocks into its own buffer: Reset, WriteField for
// each field, then Bytes. One per connection direction, used under the
// connection's write lock (blocks must reach the peer in encoding order).
type Encoder struct {
	tab dynamicTable
	// limit is the peer's SETTINGS_HEADER_TABLE_SIZE; the table never
	// grows past it.
	limit uint32
	// sizeUpdate: the next block starts with a Dynamic Table Size Update
	// (RFC 7541 section 6.3), the smallest size since the last one first
	// when the table also grew again since (section 4.2).
	sizeUpdate bool
	minSize    uint32
	buf        []byte
	// recent holds the last fields left out of the table because their
	// values often change: one seen again is indexed after all.
	recent     [8]hpack.HeaderField
	recentNext int
}

// NewEncoder returns an encoder with the initial 4,096-byte table.
func NewEncoder() *Encoder {
	e := &Encoder{limit: DefaultTableSize, minSize: ^uint32(0)}
	e.tab.setMaxSize(DefaultTableSize)
	return e
}

// Reset starts a new header block.
func (e *Encoder) Reset() { e.buf = e.buf[:0] }

// Bytes is the block written since Reset; valid until the next Reset. A
// block with no field still carries a pending table size update: a decoder
// that shrank its table may insist on it before the next block.
func (e *Encoder) Bytes() []byte {
	e.writeSizeUpdate()
	return e.buf
}

// writeSizeUpdate writes the Dynamic Table Size Update a smaller limit
// asked for, if one is pending (a block begins with it).
func (e *Encoder) writeSizeUpdate() {
	if !e.sizeUpdate {
		return
	}
	e.sizeUpdate = false
	if e.minSize < e.tab.maxSize {
		e.buf = appendTableSize(e.buf, e.minSize)
	}
	e.minSize = ^uint32(0)
	e.buf = appendTableSize(e.buf, e.tab.maxSize)
}

// SetMaxDynamicTableSizeLimit applies the peer's
// SETTINGS_HEADER_TABLE_SIZE: a smaller one shrinks the table (announced
// at the start of the next block). A larger one is not used: the table
// stays at most the initial 4,096 bytes.
func (e *Encoder) SetMaxDynamicTableSizeLimit(v uint32) {
	e.limit = v
	if e.tab.maxSize > v {
		e.sizeUpdate = true
		e.minSize = min(e.minSize, v)
		e.tab.setMaxSize(v)
	}
}

// WriteField appends f's representation to the block: an index when the
// tables hold the field, else a literal, added to the table only when
// worth keeping. Sensitive fields, and credentials whatever the flag says
// (a request's header map does not keep how a field came), are literals
// never indexed, here and by every intermediary after (RFC 7541 section
// 7.1.3).
func (e *Encoder) WriteField(f hpack.HeaderField) {
	e.writeSizeUpdate()
	f.Sensitive = f.Sensitive || secret(f)
	idx, full := staticSearch(f)
	if !full && !f.Sensitive {
		if d, dfull := e.search(f); dfull || (idx == 0 && d != 0) {
			idx, full = d, dfull
		}
	}
	if full && !f.Sensitive {
		e.buf = appendVarInt(e.buf, 7, 0x80, idx)
		return
	}
	indexing := !f.Sensitive && f.Size() <= e.tab.maxSize && e.worthIndexing(f)
	switch {
	case f.Sensitive:
		e.buf = appendVarInt(e.buf, 4, 0x10, idx) // literal never indexed
	case indexing:
		e.buf = appendVarInt(e.buf, 6, 0x40, idx) // literal with incremental indexing
		e.tab.add(f)
	default:
		e.buf = appendVarInt(e.buf, 4, 0x00, idx) // literal without indexing
	}
	if idx == 0 {
		e.buf = appendString(e.buf, f.Name)
	}
	e.buf = appendString(e.buf, f.Value)
}

// search looks f up in the dynamic table, newest first: the HPACK index of
// the same name and value (full), else of the newest entry with the name.
func (e *Encoder) search(f hpack.HeaderField) (idx uint64, full bool) {
	for d := 1; d <= e.tab.n; d++ {
		ent := e.tab.newest(d)
		if ent.Name != f.Name {
			continue
		}
		at := uint64(len(staticTable) + d)
		if ent.Value == f.Value {
			return at, true
		}
		if idx == 0 {
			idx = at
		}
	}
	return idx, false
}

// worthIndexing reports whether f is likely to be sent again on this
// connection: values made new for every request (ids, trace context) are
// not, and in the table they would only push out the fields that do
// repeat. Values that often change (timestamps, lengths, deadlines) are
// indexed the second time they are written.
func (e *Encoder) worthIndexing(f hpack.HeaderField) bool {
	switch f.Name {
	case "x-request-id", "x-client-trace-id", "traceparent", "tracestate", "b3", "x-b3-traceid", "x-b3-spanid",
		"x-b3-parentspanid":
		return false
	case ":path":
		if !strings.ContainsRune(f.Value, '?') {
			return true
		}
	case "content-length", "date", "age", "etag", "last-modified", "expires", "if-modified-since", "if-none-match",
		"location", "set-cookie", "grpc-timeout":
	default:
		return !idLike(f.Value)
	}
	for _, r := range e.recent {
		if r.Name == f.Name && r.Value == f.Value {
			return true
		}
	}
	e.recent[e.recentNext] = hpack.HeaderField{Name: f.Name, Value: f.Value}
	e.recentNext = (e.recentNext + 1) % len(e.recent)
	return false
}

// secret reports a credential: authorization headers, and cookies short
// enough to be guessed from the size of their index (nghttp2's rule).
func secret(f hpack.HeaderField) bool {
	switch f.Name {
	case "authorization", "proxy-authorization":
		return true
	case "cookie":
		return len(f.Value) < 20
	}
	return false
}

// idLike reports a value in the shape of a UUID (8-4-4-4-12 hex digits):
// a request or correlation id, whatever the header's name (backends echo
// them under their own).
func idLike(v string) bool {
	if len(v) != 36 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

func appendTableSize(dst []byte, v uint32) []byte {
	return appendVarInt(dst, 5, 0x20, uint64(v))
}

// appendVarInt appends i as an HPACK integer with an n-bit prefix (RFC
// 7541 section 5.1), the first byte's high bits set to mark.
func appendVarInt(dst []byte, n uint, mark byte, i uint64) []byte {
	k := uint64(1)<<n - 1
	if i < k {
		return append(dst, mark|byte(i))
	}
	dst = append(dst, mark|byte(k))
	i -= k
	for ; i >= 128; i >>= 7 {
		dst = append(dst, byte(0x80|i&0x7f))
	}
	return append(dst, byte(i))
}

// appendString appends s as a string literal, Huffman-coded when that is
// shorter (section 5.2).
func appendString(dst []byte, s string) []byte {
	if hl := hpack.HuffmanEncodeLength(s); hl < uint64(len(s)) {
		dst = appendVarInt(dst, 7, 0x80, hl)
		return hpack.AppendHuffmanString(dst, s)
	}
	dst = appendVarInt(dst, 7, 0, uint64(len(s)))
	return append(dst, s...)
}
