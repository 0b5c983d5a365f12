// Package hpackcodec encodes and decodes HTTP/2 header blocks (RFC 7541)
// for the gateway's HTTP/2 relay, on golang.org/x/net/http2/hpack's
// HeaderField and Huffman code.
//
// x/net's Encoder and Decoder keep two maps per table (by name, by name
// and value) and update both on every insertion and eviction, in the
// decoder too, where nothing searches them: in a profile of relayed gRPC
// unary calls, hashing for those maps and the table churn of per-request
// values were a quarter of the gateway's CPU. Here the decoder's table is
// a plain slice, the encoder searches its table linearly and keeps it
// small by not indexing values that never repeat (request ids, trace
// context, dates, lengths), as nghttp2 does for the same reason.
package hpackcodec

import "golang.org/x/net/http2/hpack"

// DefaultTableSize is SETTINGS_HEADER_TABLE_SIZE's initial value.
const DefaultTableSize = 4096

// staticTable is RFC 7541 Appendix A; index i+1 is staticTable[i].
var staticTable = [...]hpack.HeaderField{
	{Name: ":authority"},
	{Name: ":method", Value: "GET"},
	{Name: ":method", Value: "POST"},
	{Name: ":path", Value: "/"},
	{Name: ":path", Value: "/index.html"},
	{Name: ":scheme", Value: "http"},
	{Name: ":scheme", Value: "https"},
	{Name: ":status", Value: "200"},
	{Name: ":status", Value: "204"},
	{Name: ":status", Value: "206"},
	{Name: ":status", Value: "304"},
	{Name: ":status", Value: "400"},
	{Name: ":status", Value: "404"},
	{Name: ":status", Value: "500"},
	{Name: "accept-charset"},
	{Name: "accept-encoding", Value: "gzip, deflate"},
	{Name: "accept-language"},
	{Name: "accept-ranges"},
	{Name: "accept"},
	{Name: "access-control-allow-origin"},
	{Name: "age"},
	{Name: "allow"},
	{Name: "authorization"},
	{Name: "cache-control"},
	{Name: "content-disposition"},
	{Name: "content-encoding"},
	{Name: "content-language"},
	{Name: "content-length"},
	{Name: "content-location"},
	{Name: "content-range"},
	{Name: "content-type"},
	{Name: "cookie"},
	{Name: "date"},
	{Name: "etag"},
	{Name: "expect"},
	{Name: "expires"},
	{Name: "from"},
	{Name: "host"},
	{Name: "if-match"},
	{Name: "if-modified-since"},
	{Name: "if-none-match"},
	{Name: "if-range"},
	{Name: "if-unmodified-since"},
	{Name: "last-modified"},
	{Name: "link"},
	{Name: "location"},
	{Name: "max-forwards"},
	{Name: "proxy-authenticate"},
	{Name: "proxy-authorization"},
	{Name: "range"},
	{Name: "referer"},
	{Name: "refresh"},
	{Name: "retry-after"},
	{Name: "server"},
	{Name: "set-cookie"},
	{Name: "strict-transport-security"},
	{Name: "transfer-encoding"},
	{Name: "user-agent"},
	{Name: "vary"},
	{Name: "via"},
	{Name: "www-authenticate"},
}

// staticByLen lists, for each name length, the HPACK indexes of the static
// entries whose name is that long, in order (a name's entries are
// adjacent): a field's name is compared with a handful of them at most,
// cheaper than hashing it for a map. Built once, never written.
var staticByLen = func() (by [28][]uint8) {
	for i, f := range staticTable {
		by[len(f.Name)] = append(by[len(f.Name)], uint8(i+1))
	}
	return by
}()

// staticSearch returns f's static index: with full set when name and
// value match, else the name's first index (0: not there).
func staticSearch(f hpack.HeaderField) (idx uint64, full bool) {
	if len(f.Name) >= len(staticByLen) {
		return 0, false
	}
	for _, i := range staticByLen[len(f.Name)] {
		e := &staticTable[i-1]
		if e.Name != f.Name {
			if idx != 0 {
				break // past the name's run
			}
			continue
		}
		if e.Value == f.Value {
			return uint64(i), true
		}
		if idx == 0 {
			idx = uint64(i)
		}
	}
	return idx, false
}

// dynamicTable is the table both sides keep in step: a ring of entries
// (no copying or reallocation as entries come and go, the steady state of
// a connection whose blocks carry a new request id each), their total size
// (RFC 7541 section 4.1) within maxSize.
type dynamicTable struct {
	ring    []hpack.HeaderField // len a power of two (or 0)
	head    int                 // the oldest entry's slot
	n       int                 // entries
	size    uint32
	maxSize uint32
}

func (t *dynamicTable) setMaxSize(v uint32) {
	t.maxSize = v
	t.evict()
}

func (t *dynamicTable) add(f hpack.HeaderField) {
	f.Sensitive = false
	if t.n == len(t.ring) {
		grown := make([]hpack.HeaderField, max(16, 2*len(t.ring)))
		for i := 0; i < t.n; i++ {
			grown[i] = t.ring[(t.head+i)&(len(t.ring)-1)]
		}
		t.ring, t.head = grown, 0
	}
	t.ring[(t.head+t.n)&(len(t.ring)-1)] = f
	t.n++
	t.size += f.Size()
	t.evict()
}

// evict drops the oldest entries until the table fits; their strings are
// let go at once.
func (t *dynamicTable) evict() {
	for t.size > t.maxSize && t.n > 0 {
		t.size -= t.ring[t.head].Size()
		t.ring[t.head] = hpack.HeaderField{}
		t.head = (t.head + 1) & (len(t.ring) - 1)
		t.n--
	}
}

// newest returns the d-th newest entry (d from 1 to t.n).
func (t *dynamicTable) newest(d int) *hpack.HeaderField {
	return &t.ring[(t.head+t.n-d)&(len(t.ring)-1)]
}

// entries lists the table oldest first (for tests).
func (t *dynamicTable) entries() []hpack.HeaderField {
	out := make([]hpack.HeaderField, t.n)
	for i := range out {
		out[i] = *t.newest(t.n - i)
	}
	return out
}

// at returns the entry of HPACK index i (static or dynamic).
func (t *dynamicTable) at(i uint64) (hpack.HeaderField, bool) {
	if i == 0 {
		return hpack.HeaderField{}, false
	}
	if i <= uint64(len(staticTable)) {
		return staticTable[i-1], true
	}
	d := i - uint64(len(staticTable)) // 1: the newest
	if d > uint64(t.n) {
		return hpack.HeaderField{}, false
	}
	return *t.newest(int(d)), true
}
