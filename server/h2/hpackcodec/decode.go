package hpackcodec

import (
	"errors"
	"fmt"

	"golang.org/x/net/http2/hpack"
)

// Errors a header block can fail with; each means the connection's HPACK
// state is lost (a COMPRESSION_ERROR).
var (
	ErrStringLength = errors.New("hpack: string too long")
	ErrTruncated    = errors.New("hpack: truncated header block")
	errNeedMore     = errors.New("hpack: need more data")
)

// Decoder decodes a connection's header blocks, fed fragment by fragment
// (HEADERS, CONTINUATION) with Write and ended with Close, calling emit for
// each field as x/net's Decoder does, with the same checks.
type Decoder struct {
	tab        dynamicTable
	allowedMax uint32 // our SETTINGS_HEADER_TABLE_SIZE
	maxStrLen  int    // 0: no limit
	emit       func(hpack.HeaderField)
	emitOff    bool
	firstField bool
	saved      []byte // a field cut between fragments
}

// NewDecoder returns a decoder whose table may grow to maxTableSize (the
// SETTINGS_HEADER_TABLE_SIZE announced).
func NewDecoder(maxTableSize uint32, emit func(hpack.HeaderField)) *Decoder {
	d := &Decoder{allowedMax: maxTableSize, emit: emit, firstField: true}
	d.tab.setMaxSize(maxTableSize)
	return d
}

// SetMaxStringLength bounds every name and value, decoded (0: no bound).
func (d *Decoder) SetMaxStringLength(n int) { d.maxStrLen = n }

// SetEmitEnabled turns emitting on or off: off, the block is still decoded
// to keep the table in step, without making strings nobody reads.
func (d *Decoder) SetEmitEnabled(on bool) { d.emitOff = !on }

// Write decodes a fragment of a header block.
func (d *Decoder) Write(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	buf := p
	if len(d.saved) > 0 {
		d.saved = append(d.saved, p...)
		buf = d.saved
	}
	for len(buf) > 0 {
		rest, err := d.field(buf)
		if err == errNeedMore {
			// A field is cut: keep its bytes, within what a field of
			// legal strings can take.
			if d.maxStrLen != 0 && int64(len(buf)) > 2*(int64(d.maxStrLen)+8) {
				return ErrStringLength
			}
			d.saved = append(d.saved[:0], buf...)
			return nil
		}
		if err != nil {
			d.saved = d.saved[:0]
			return err
		}
		d.firstField = false
		buf = rest
	}
	d.saved = d.saved[:0]
	return nil
}

// Close ends a header block: a field left cut is an error.
func (d *Decoder) Close() error {
	d.firstField = true
	if len(d.saved) > 0 {
		d.saved = d.saved[:0]
		return ErrTruncated
	}
	return nil
}

// field decodes one representation at the start of p (RFC 7541 section 6).
func (d *Decoder) field(p []byte) ([]byte, error) {
	b := p[0]
	switch {
	case b&0x80 != 0: // indexed
		idx, rest, err := readVarInt(7, p)
		if err != nil {
			return nil, err
		}
		f, ok := d.tab.at(idx)
		if !ok {
			return nil, fmt.Errorf("hpack: invalid index %d", idx)
		}
		return rest, d.callEmit(hpack.HeaderField{Name: f.Name, Value: f.Value})
	case b&0xc0 == 0x40:
		return d.literal(p, 6, true, false)
	case b&0xf0 == 0x00:
		return d.literal(p, 4, false, false)
	case b&0xf0 == 0x10:
		return d.literal(p, 4, false, true)
	case b&0xe0 == 0x20: // dynamic table size update
		// x/net's rule: allowed after fields only while the table is
		// empty.
		if !d.firstField && d.tab.size > 0 {
			return nil, errors.New("hpack: dynamic table size update after a header field")
		}
		size, rest, err := readVarInt(5, p)
		if err != nil {
			return nil, err
		}
		if size > uint64(d.allowedMax) {
			return nil, errors.New("hpack: dynamic table size update too large")
		}
		d.tab.setMaxSize(uint32(size))
		return rest, nil
	}
	return nil, errors.New("hpack: invalid representation")
}

// literal decodes a literal field with an n-bit name index prefix.
func (d *Decoder) literal(p []byte, n uint, index, sensitive bool) ([]byte, error) {
	nameIdx, p, err := readVarInt(n, p)
	if err != nil {
		return nil, err
	}
	var f hpack.HeaderField
	var name, value []byte
	var nameHuff, valueHuff bool
	if nameIdx > 0 {
		e, ok := d.tab.at(nameIdx)
		if !ok {
			return nil, fmt.Errorf("hpack: invalid index %d", nameIdx)
		}
		f.Name = e.Name
	} else if name, nameHuff, p, err = d.readString(p); err != nil {
		return nil, err
	}
	if value, valueHuff, p, err = d.readString(p); err != nil {
		return nil, err
	}
	if !d.emitOff || index {
		if nameIdx == 0 {
			if f.Name, err = d.decodeString(name, nameHuff); err != nil {
				return nil, err
			}
		}
		if f.Value, err = d.decodeString(value, valueHuff); err != nil {
			return nil, err
		}
	}
	if index {
		d.tab.add(f)
	}
	f.Sensitive = sensitive
	return p, d.callEmit(f)
}

func (d *Decoder) callEmit(f hpack.HeaderField) error {
	if d.maxStrLen != 0 && (len(f.Name) > d.maxStrLen || len(f.Value) > d.maxStrLen) {
		return ErrStringLength
	}
	if !d.emitOff {
		d.emit(f)
	}
	return nil
}

// readString splits a string literal off p, undecoded.
func (d *Decoder) readString(p []byte) (s []byte, huff bool, rest []byte, err error) {
	if len(p) == 0 {
		return nil, false, nil, errNeedMore
	}
	huff = p[0]&0x80 != 0
	n, p, err := readVarInt(7, p)
	if err != nil {
		return nil, false, nil, err
	}
	if d.maxStrLen != 0 && n > uint64(d.maxStrLen) {
		return nil, false, nil, ErrStringLength
	}
	if uint64(len(p)) < n {
		return nil, false, nil, errNeedMore
	}
	return p[:n], huff, p[n:], nil
}

func (d *Decoder) decodeString(b []byte, huff bool) (string, error) {
	if !huff {
		return string(b), nil
	}
	s, err := hpack.HuffmanDecodeToString(b)
	if err != nil {
		return "", fmt.Errorf("hpack: %w", err)
	}
	return s, nil
}

// readVarInt reads an integer with an n-bit prefix (RFC 7541 section
// 5.1); values past 2^63 are refused.
func readVarInt(n uint, p []byte) (uint64, []byte, error) {
	if len(p) == 0 {
		return 0, nil, errNeedMore
	}
	k := uint64(1)<<n - 1
	i := uint64(p[0]) & k
	if i < k {
		return i, p[1:], nil
	}
	var m uint
	for j := 1; j < len(p); j++ {
		b := p[j]
		i += uint64(b&0x7f) << m
		if b&0x80 == 0 {
			return i, p[j+1:], nil
		}
		m += 7
		if m >= 63 {
			return 0, nil, errors.New("hpack: integer overflow")
		}
	}
	return 0, nil, errNeedMore
}
