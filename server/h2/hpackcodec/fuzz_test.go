package hpackcodec

import (
	"bytes"
	"testing"

	"golang.org/x/net/http2/hpack"
)

// splitBlocks cuts fuzz data into up to three header blocks, each cut in
// two fragments, at points its first bytes choose.
func splitBlocks(data []byte) (blocks [][2][]byte) {
	for len(data) > 2 && len(blocks) < 3 {
		n, cut := int(data[0])%(len(data)-1)+1, int(data[1])
		data = data[2:]
		n = min(n, len(data))
		b := data[:n]
		data = data[n:]
		cut = min(cut, len(b))
		blocks = append(blocks, [2][]byte{b[:cut], b[cut:]})
	}
	return blocks
}

// FuzzDecoder decodes the same blocks with x/net's decoder and ours (whose
// table must stay in step across blocks): both fail, or both emit the same
// fields.
func FuzzDecoder(f *testing.F) {
	for _, c := range rfcRequests {
		b := unhex(f, c.wire)
		f.Add(append([]byte{byte(len(b)), 3}, b...))
	}
	f.Add([]byte{5, 1, 0x40, 0x01, 'a', 0x01, 'b', 2, 1, 0xbe, 0x20})
	f.Add([]byte{4, 0, 0x3f, 0xe1, 0x1f, 0x82})
	f.Fuzz(func(t *testing.T, data []byte) {
		var ours, theirs []hpack.HeaderField
		d := NewDecoder(4096, func(f hpack.HeaderField) { ours = append(ours, f) })
		d.SetMaxStringLength(64)
		x := hpack.NewDecoder(4096, func(f hpack.HeaderField) { theirs = append(theirs, f) })
		x.SetMaxStringLength(64)
		for i, b := range splitBlocks(data) {
			ours, theirs = nil, nil
			err := d.Write(b[0])
			if err == nil {
				err = d.Write(b[1])
			}
			if err == nil {
				err = d.Close()
			}
			_, xerr := x.Write(b[0])
			if xerr == nil {
				_, xerr = x.Write(b[1])
			}
			if xerr == nil {
				xerr = x.Close()
			}
			if (err == nil) != (xerr == nil) {
				t.Fatalf("block %d %x|%x: ours %v, x/net %v", i, b[0], b[1], err, xerr)
			}
			if err != nil {
				return // the connection is gone
			}
			if !equalFields(ours, theirs) {
				t.Fatalf("block %d: ours %v, x/net %v", i, ours, theirs)
			}
		}
	})
}

// FuzzEncoder encodes fields made of fuzz data on one connection, with
// table size changes between blocks, and decodes them with x/net's
// decoder: the same fields come out, in order, sensitive ones so marked.
func FuzzEncoder(f *testing.F) {
	f.Add([]byte("\x00content-type\x00application/grpc\x01x-request-id\x009b1f4c2e-0000-4000-8000-000000000001\x02authorization\x00x"))
	f.Add([]byte("\x00:status\x00200\x04\x00:status\x00200\x00grpc-status\x000"))
	f.Add([]byte("authorization\x00Bearer x\x00cookie\x00a=1\x00cookie\x00a-long-session-cookie=0123456789\x00\x03\x01x\x00y"))
	f.Fuzz(func(t *testing.T, data []byte) {
		enc := NewEncoder()
		dec := hpack.NewDecoder(4096, nil)
		parts := bytes.Split(data, []byte{0})
		var block []hpack.HeaderField
		flush := func() {
			got, err := dec.DecodeFull(enc.Bytes())
			if err != nil {
				t.Fatalf("x/net cannot decode %x: %v", enc.Bytes(), err)
			}
			if len(got)+len(block) > 0 && !equalFields(got, block) {
				t.Fatalf("decoded %v, want %v", got, block)
			}
			enc.Reset()
			block = block[:0]
		}
		for i := 0; i+1 < len(parts); i += 2 {
			name, value := string(parts[i]), string(parts[i+1])
			var sensitive bool
			if len(name) > 0 && name[0] < 8 {
				// A control byte: 1 sensitive, 2 ends the block, 3 and 4
				// limit the table (to the next byte's value * 16).
				switch name[0] {
				case 1:
					sensitive = true
				case 2:
					flush()
				case 3, 4:
					if len(name) > 1 {
						flush()
						enc.SetMaxDynamicTableSizeLimit(uint32(name[1]) * 16)
					}
				}
				name = name[1:]
			}
			fld := hpack.HeaderField{Name: name, Value: value, Sensitive: sensitive}
			enc.WriteField(fld)
			fld.Sensitive = fld.Sensitive || secret(fld) // credentials always go never indexed
			block = append(block, fld)
			if enc.tab.size > enc.tab.maxSize {
				t.Fatalf("table of %d bytes over its %d", enc.tab.size, enc.tab.maxSize)
			}
		}
		flush()
	})
}
