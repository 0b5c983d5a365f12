package h2

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/meshgate/meshgate/server/h2/hpackcodec"
)

// headerReader decodes a connection's header blocks (HEADERS and its
// CONTINUATION frames) as the Framer's ReadMetaHeaders does, with the same
// checks and limits, but into one MetaHeadersFrame and field slice reused
// from block to block: the read loop hands the frame to handlers that copy
// what they keep before the next read, and x/net's version allocated the
// frame, its growing field slice and a closure with its captured state for
// every block.
type headerReader struct {
	dec *hpackcodec.Decoder
	max uint32 // SETTINGS_MAX_HEADER_LIST_SIZE we announced

	mh                            http2.MetaHeadersFrame
	fields                        []hpack.HeaderField
	headersRemain, trailersRemain uint32
	sawRegular                    bool
	invalid                       error
}

func newHeaderReader(max uint32) *headerReader {
	r := &headerReader{max: max}
	r.dec = hpackcodec.NewDecoder(hpackcodec.DefaultTableSize, r.emit)
	r.dec.SetMaxStringLength(int(max))
	return r
}

func (r *headerReader) emit(hf hpack.HeaderField) {
	if !httpguts.ValidHeaderFieldValue(hf.Value) {
		// The value stays out of the error: it may be a secret.
		r.invalid = fmt.Errorf("invalid header field value for %q", hf.Name)
	}
	if strings.HasPrefix(hf.Name, ":") {
		if r.sawRegular {
			r.invalid = errors.New("pseudo header field after regular")
		}
	} else {
		r.sawRegular = true
		if !validWireHeaderFieldName(hf.Name) {
			r.invalid = fmt.Errorf("invalid header field name %q", hf.Name)
		}
	}
	if r.invalid != nil {
		r.dec.SetEmitEnabled(false)
		return
	}
	remain, size := &r.headersRemain, hf.Size()
	if hf.Name == "trailer" {
		// Each declared trailer counts as a field of its own.
		n := uint32(strings.Count(hf.Value, ",") + 1)
		remain, size = &r.trailersRemain, uint32(len(hf.Value))-n+1+n*hpack.HeaderField{}.Size()
	}
	if size > *remain {
		r.dec.SetEmitEnabled(false)
		r.mh.Truncated = true
		r.headersRemain, r.trailersRemain = 0, 0
		return
	}
	*remain -= size
	r.fields = append(r.fields, hf)
}

// next reads fr's next frame, a whole header block as one
// MetaHeadersFrame.
func (r *headerReader) next(fr *http2.Framer) (http2.Frame, error) {
	f, err := fr.ReadFrame()
	if err != nil {
		return nil, err
	}
	if hf, ok := f.(*http2.HeadersFrame); ok {
		mh, err := r.read(fr, hf)
		if err != nil {
			return nil, err
		}
		return mh, nil
	}
	return f, nil
}

// read decodes the block that hf starts, reading its CONTINUATION frames
// from fr. The frame it returns is valid until the next call. Errors are
// x/net's: a StreamError for a malformed but decodable block, a
// ConnectionError when the connection's HPACK state or size budget is lost.
func (r *headerReader) read(fr *http2.Framer, hf *http2.HeadersFrame) (*http2.MetaHeadersFrame, error) {
	clear(r.fields) // drop the last block's strings
	r.fields = r.fields[:0]
	r.mh = http2.MetaHeadersFrame{HeadersFrame: hf}
	r.headersRemain, r.trailersRemain = r.max, r.max
	r.sawRegular, r.invalid = false, nil
	r.dec.SetEmitEnabled(true)

	var hc interface {
		HeaderBlockFragment() []byte
		HeadersEnded() bool
	} = hf
	for {
		frag := hc.HeaderBlockFragment()
		// Far over the budget, or more after an invalid field (whose size
		// was not counted): the block is not decoded (CONTINUATION floods).
		if int64(len(frag)) > 2*int64(r.headersRemain+r.trailersRemain) || r.invalid != nil {
			return nil, http2.ConnectionError(http2.ErrCodeProtocol)
		}
		if err := r.dec.Write(frag); err != nil {
			return nil, http2.ConnectionError(http2.ErrCodeCompression)
		}
		if hc.HeadersEnded() {
			break
		}
		f, err := fr.ReadFrame()
		if err != nil {
			return nil, err
		}
		hc = f.(*http2.ContinuationFrame) // the Framer checks the frame order
	}
	if err := r.dec.Close(); err != nil {
		return nil, http2.ConnectionError(http2.ErrCodeCompression)
	}
	r.mh.Fields = r.fields
	if r.invalid != nil {
		return nil, http2.StreamError{StreamID: hf.StreamID, Code: http2.ErrCodeProtocol, Cause: r.invalid}
	}
	if err := checkPseudos(r.fields); err != nil {
		return nil, http2.StreamError{StreamID: hf.StreamID, Code: http2.ErrCodeProtocol, Cause: err}
	}
	return &r.mh, nil
}

// checkPseudos rejects unknown and repeated pseudo-header fields, and a
// mix of request and response ones (RFC 9113 section 8.3).
func checkPseudos(fields []hpack.HeaderField) error {
	var request, response bool
	for i, hf := range fields {
		if !hf.IsPseudo() {
			break // they come first (checked while decoding)
		}
		switch hf.Name {
		case ":method", ":path", ":scheme", ":authority", ":protocol":
			request = true
		case ":status":
			response = true
		default:
			return fmt.Errorf("invalid pseudo-header %q", hf.Name)
		}
		for _, prev := range fields[:i] {
			if prev.Name == hf.Name {
				return fmt.Errorf("duplicate pseudo-header %q", hf.Name)
			}
		}
	}
	if request && response {
		return errors.New("mix of request and response pseudo headers")
	}
	return nil
}

// validWireHeaderFieldName is a token without upper case letters: HTTP/2
// sends names in lower case (RFC 9113 section 8.2.1).
func validWireHeaderFieldName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !httpguts.IsTokenRune(rune(c)) || ('A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}
