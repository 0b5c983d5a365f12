package server

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net/http"
)

// newRequestID returns a random (version 4) UUID in its text form, the
// x-request-id Envoy's UuidRequestIdConfig generates. Written here, not
// taken from a UUID module: it is these few lines.
func newRequestID() string {
	// math/rand/v2's generator (the runtime's ChaCha8, seeded by the OS)
	// is unpredictable enough for an id and makes no system call:
	// crypto/rand's getrandom was 2% of a relayed call.
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 9562 variant
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:16])
	return string(out[:])
}

// requestID makes sure r carries an x-request-id when the chain generates
// them (HCM generate_request_id, default true): a client's is kept, one is
// made up otherwise. It returns the request's id ("" when none).
func (ch *chain) requestID(r *http.Request) string {
	if vs := r.Header["X-Request-Id"]; len(vs) > 0 && vs[0] != "" {
		return vs[0]
	}
	if !ch.genRequestID {
		return ""
	}
	id := newRequestID()
	r.Header["X-Request-Id"] = []string{id}
	return id
}
