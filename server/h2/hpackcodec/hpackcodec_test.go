package hpackcodec

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"golang.org/x/net/http2/hpack"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func hf(name, value string) hpack.HeaderField { return hpack.HeaderField{Name: name, Value: value} }

// The static table is the one x/net decodes: every index alone as a block.
func TestStaticTable_AgreesWithXNet(t *testing.T) {
	dec := hpack.NewDecoder(4096, nil)
	for i := range staticTable {
		block := appendVarInt(nil, 7, 0x80, uint64(i+1))
		got, err := dec.DecodeFull(block)
		if err != nil || len(got) != 1 {
			t.Fatalf("index %d: %v %v", i+1, got, err)
		}
		if got[0] != staticTable[i] {
			t.Errorf("index %d: x/net has %v, we have %v", i+1, got[0], staticTable[i])
		}
	}
	if _, err := dec.DecodeFull(appendVarInt(nil, 7, 0x80, uint64(len(staticTable)+1))); err == nil {
		t.Errorf("x/net has more than %d static entries", len(staticTable))
	}
}

// RFC 7541 Appendix C.4: three requests on one connection, Huffman coded,
// each field indexed as the RFC's encoder does (and ours, for these).
var rfcRequests = []struct {
	fields []hpack.HeaderField
	wire   string
}{
	{[]hpack.HeaderField{hf(":method", "GET"), hf(":scheme", "http"), hf(":path", "/"), hf(":authority", "www.example.com")},
		"8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"},
	{[]hpack.HeaderField{hf(":method", "GET"), hf(":scheme", "http"), hf(":path", "/"), hf(":authority", "www.example.com"), hf("cache-control", "no-cache")},
		"8286 84be 5886 a8eb 1064 9cbf"},
	{[]hpack.HeaderField{hf(":method", "GET"), hf(":scheme", "https"), hf(":path", "/index.html"), hf(":authority", "www.example.com"), hf("custom-key", "custom-value")},
		"8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"},
}

func TestEncoder_RFC7541RequestExamples(t *testing.T) {
	enc := NewEncoder()
	for i, c := range rfcRequests {
		enc.Reset()
		for _, f := range c.fields {
			enc.WriteField(f)
		}
		if want := unhex(t, c.wire); !bytes.Equal(enc.Bytes(), want) {
			t.Errorf("request %d: wrote %x, RFC 7541 C.4 has %x", i+1, enc.Bytes(), want)
		}
	}
}

func TestDecoder_RFC7541Examples(t *testing.T) {
	t.Run("C.4 requests", func(t *testing.T) {
		checkDecode(t, 4096, func(i int) ([]hpack.HeaderField, string) { return rfcRequests[i].fields, rfcRequests[i].wire }, len(rfcRequests))
	})
	// C.6: responses with a 256-byte table, so entries are evicted.
	responses := []struct {
		fields []hpack.HeaderField
		wire   string
	}{
		{[]hpack.HeaderField{hf(":status", "302"), hf("cache-control", "private"), hf("date", "Mon, 21 Oct 2013 20:13:21 GMT"), hf("location", "https://www.example.com")},
			"4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3"},
		{[]hpack.HeaderField{hf(":status", "307"), hf("cache-control", "private"), hf("date", "Mon, 21 Oct 2013 20:13:21 GMT"), hf("location", "https://www.example.com")},
			"4883 640e ffc1 c0bf"},
		{[]hpack.HeaderField{hf(":status", "200"), hf("cache-control", "private"), hf("date", "Mon, 21 Oct 2013 20:13:22 GMT"), hf("location", "https://www.example.com"),
			hf("content-encoding", "gzip"), hf("set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1")},
			"88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07"},
	}
	t.Run("C.6 responses, 256-byte table", func(t *testing.T) {
		checkDecode(t, 256, func(i int) ([]hpack.HeaderField, string) { return responses[i].fields, responses[i].wire }, len(responses))
	})
}

// checkDecode decodes n blocks on one decoder, each whole and, on a second
// decoder, cut in two at every point.
func checkDecode(t *testing.T, tableSize uint32, block func(int) ([]hpack.HeaderField, string), n int) {
	t.Helper()
	var got []hpack.HeaderField
	emit := func(f hpack.HeaderField) { got = append(got, f) }
	whole := NewDecoder(tableSize, emit)
	for i := 0; i < n; i++ {
		want, wire := block(i)
		b := unhex(t, wire)
		got = nil
		if err := whole.Write(b); err != nil {
			t.Fatalf("block %d: %v", i+1, err)
		}
		if err := whole.Close(); err != nil {
			t.Fatalf("block %d: %v", i+1, err)
		}
		if !equalFields(got, want) {
			t.Errorf("block %d: got %v, want %v", i+1, got, want)
		}
	}
	for cut := 0; ; cut++ {
		cutDec, more := NewDecoder(tableSize, emit), false
		for i := 0; i < n; i++ {
			want, wire := block(i)
			b := unhex(t, wire)
			at := min(cut, len(b))
			more = more || cut < len(b)
			got = nil
			if err := cutDec.Write(b[:at]); err != nil {
				t.Fatalf("cut at %d, block %d: %v", cut, i+1, err)
			}
			if err := cutDec.Write(b[at:]); err != nil {
				t.Fatalf("cut at %d, block %d: %v", cut, i+1, err)
			}
			if err := cutDec.Close(); err != nil {
				t.Fatalf("cut at %d, block %d: %v", cut, i+1, err)
			}
			if !equalFields(got, want) {
				t.Errorf("cut at %d, block %d: got %v, want %v", cut, i+1, got, want)
			}
		}
		if !more {
			break
		}
	}
}

func equalFields(a, b []hpack.HeaderField) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestDecoder_Errors(t *testing.T) {
	cases := []struct {
		name  string
		block string
	}{
		{"index 0", "80"},
		{"index past the tables", "be"}, // 62: the dynamic table is empty
		{"name index past the tables", "7f00 0161"},
		{"size update over the limit", "3fe2 1f"}, // 4097
		{"size update after an indexed field", "4001 6101 62 20"},
		{"integer overflow", "ff ffffffffffffffffff7f"},
		{"invalid Huffman (EOS padding too long)", "0081 ff81 ff"},
		{"truncated string", "0005 6162"},
		{"truncated integer", "ff80"},
		{"string over the limit", "0063 " + strings.Repeat("61", 99) + "00"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := NewDecoder(4096, func(hpack.HeaderField) {})
			d.SetMaxStringLength(64)
			err := d.Write(unhex(t, c.block))
			if err == nil {
				err = d.Close()
			}
			if err == nil {
				t.Fatal("decoded without an error")
			}
			// x/net refuses the same blocks.
			x := hpack.NewDecoder(4096, nil)
			x.SetMaxStringLength(64)
			if _, xerr := x.DecodeFull(unhex(t, c.block)); xerr == nil {
				t.Errorf("x/net decodes it (the case is wrong): we said %v", err)
			}
		})
	}
}

// A block's fields go back and forth through the encoder and x/net's
// decoder unchanged, sensitive ones marked so; repeated fields become
// indexes, per-request values never enter the table.
func TestEncoder_RoundTripAndIndexing(t *testing.T) {
	enc := NewEncoder()
	dec := hpack.NewDecoder(4096, nil)
	block := []hpack.HeaderField{
		hf(":status", "200"), hf("content-type", "application/grpc"), hf("grpc-status", "0"),
		hf("x-request-id", "9b1f4c2e-0000-4000-8000-000000000001"),
		hf("x-trailer-request-id", "9b1f4c2e-0000-4000-8000-000000000001"),
		hf("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
		{Name: "authorization", Value: "Bearer secret", Sensitive: true},
		hf(":path", "/search?q=1"),
	}
	var sizes []int
	for round := 0; round < 2; round++ {
		enc.Reset()
		for _, f := range block {
			enc.WriteField(f)
		}
		got, err := dec.DecodeFull(enc.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if !equalFields(got, block) {
			t.Fatalf("round %d: decoded %v, want %v", round, got, block)
		}
		sizes = append(sizes, len(enc.Bytes()))
	}
	// Indexed in round 1: content-type and grpc-status (one byte each in
	// round 2); the query path only when seen again in round 2. Never: the
	// ids, the trace context, the secret.
	want := []hpack.HeaderField{block[1], block[2], block[7]}
	if got := enc.tab.entries(); !equalFields(got, want) {
		t.Errorf("dynamic table holds %v, want %v", got, want)
	}
	// x/net's literals of the same two fields, less the two index bytes.
	var b bytes.Buffer
	x := hpack.NewEncoder(&b)
	_ = x.WriteField(block[1])
	_ = x.WriteField(block[2])
	if saved, want := sizes[0]-sizes[1], b.Len()-2; saved != want {
		t.Errorf("second block is %d bytes shorter, want %d (two literals became indexes)", saved, want)
	}
}

// A smaller table from the peer is announced at the next block, and the
// table is kept within it.
func TestEncoder_TableSizeLimit(t *testing.T) {
	enc := NewEncoder()
	dec := hpack.NewDecoder(4096, nil)
	enc.WriteField(hf("content-type", "application/grpc"))
	if _, err := dec.DecodeFull(enc.Bytes()); err != nil {
		t.Fatal(err)
	}
	enc.SetMaxDynamicTableSizeLimit(0)
	enc.Reset()
	enc.WriteField(hf("content-type", "application/grpc"))
	if enc.Bytes()[0] != 0x20 {
		t.Errorf("block starts %x, want a size update to 0 (20)", enc.Bytes())
	}
	got, err := dec.DecodeFull(enc.Bytes())
	if err != nil || !equalFields(got, []hpack.HeaderField{hf("content-type", "application/grpc")}) {
		t.Fatalf("decoded %v, %v", got, err)
	}
	if enc.tab.n != 0 {
		t.Errorf("table of 0 bytes holds %v", enc.tab.entries())
	}
}

func TestIDLike(t *testing.T) {
	for _, c := range []struct {
		v    string
		want bool
	}{
		{"9b1f4c2e-0000-4000-8000-000000000001", true},
		{"9B1F4C2E-AAAA-4000-8000-00000000000F", true},
		{"9b1f4c2e-0000-4000-8000-00000000000g", false},
		{"9b1f4c2e00000-4000-8000-000000000001", false},
		{"application/grpc", false},
		{"", false},
	} {
		if got := idLike(c.v); got != c.want {
			t.Errorf("idLike(%q) = %v", c.v, got)
		}
	}
}

// staticSearch finds every static entry by name and value, a name's first
// entry for another value, and nothing for names not in the table.
func TestStaticSearch(t *testing.T) {
	for i, f := range staticTable {
		if idx, full := staticSearch(f); !full || staticTable[idx-1] != f {
			t.Errorf("entry %d %v: found %d (full %v)", i+1, f, idx, full)
		}
		idx, full := staticSearch(hf(f.Name, "not a static value"))
		if full || idx == 0 || staticTable[idx-1].Name != f.Name || (idx > 1 && staticTable[idx-2].Name == f.Name) {
			t.Errorf("name of entry %d (%s) with another value: found %d (full %v), want the name's first entry", i+1, f.Name, idx, full)
		}
	}
	for _, name := range []string{"grpc-status", "x-request-id", "", "content-typf", strings.Repeat("a", 40)} {
		if idx, _ := staticSearch(hf(name, "")); idx != 0 {
			t.Errorf("%q: found static index %d", name, idx)
		}
	}
}

// Credentials go out never indexed even when the field does not say so (a
// request's header map does not keep how it came): authorization always,
// cookies when short; a long cookie is indexed.
func TestEncoder_CredentialsNeverIndexed(t *testing.T) {
	enc := NewEncoder()
	for _, c := range []struct {
		f     hpack.HeaderField
		first byte // representation: 0x10 never indexed, 0x40 incremental indexing
	}{
		{hf("authorization", "Bearer abc"), 0x10},
		{hf("proxy-authorization", "Basic abc"), 0x10},
		{hf("cookie", "sid=1"), 0x10},
		{hf("cookie", "a-long-session-cookie=0123456789"), 0x40},
	} {
		enc.Reset()
		enc.WriteField(c.f)
		got, err := hpack.NewDecoder(4096, nil).DecodeFull(enc.Bytes())
		if err != nil || len(got) != 1 || got[0].Value != c.f.Value {
			t.Fatalf("%s: decoded %v, %v", c.f.Name, got, err)
		}
		if kind := enc.Bytes()[0] & 0xf0; kind != c.first && !(c.first == 0x40 && kind&0xc0 == 0x40) {
			t.Errorf("%s: representation %#x, want %#x", c.f.Name, enc.Bytes()[0], c.first)
		}
		if got[0].Sensitive != (c.first == 0x10) {
			t.Errorf("%s: decoded as sensitive %v", c.f.Name, got[0].Sensitive)
		}
	}
}

// A block without fields still carries a pending table size update.
func TestEncoder_SizeUpdateInEmptyBlock(t *testing.T) {
	enc := NewEncoder()
	enc.SetMaxDynamicTableSizeLimit(0)
	enc.Reset()
	if b := enc.Bytes(); len(b) != 1 || b[0] != 0x20 {
		t.Fatalf("empty block after the limit went to 0 is %x, want 20", b)
	}
	enc.Reset()
	if b := enc.Bytes(); len(b) != 0 {
		t.Errorf("the next empty block is %x, want nothing (the update went)", b)
	}
}
