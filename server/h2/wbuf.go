package h2

import (
	"io"
	"sync"

	"golang.org/x/net/http2"
)

// wbufSize is the most a connection gathers before it writes: four full
// DATA frames (16 KiB each by default), so a stream going out fast leaves
// in 64 KiB writes.
const wbufSize = 64 << 10

var wbufPool = sync.Pool{New: func() any { b := make([]byte, 0, wbufSize); return &b }}

// pooledWriter is a connection's write buffer, taken from a pool at the
// first write and given back when flushed: an idle connection holds none
// (a bufio.Writer held its buffer for the connection's life), and a busy one
// writes in bigger pieces.
type pooledWriter struct {
	w   io.Writer
	buf *[]byte // nil: empty
	err error   // the first write error, returned from then on
	// data is 1 + where the last thing buffered, a DATA frame of stream
	// dataID, begins in buf; 0 when the last thing is anything else. The
	// next DATA of that stream may join it.
	data   int
	dataID uint32
}

func (p *pooledWriter) Write(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	p.data = 0
	if p.buf != nil && len(*p.buf)+len(b) > wbufSize {
		if err := p.writeOut(); err != nil {
			return 0, err
		}
	}
	if len(b) >= wbufSize {
		n, err := p.w.Write(b)
		p.err = err
		return n, err
	}
	if p.buf == nil {
		p.buf = wbufPool.Get().(*[]byte)
	}
	*p.buf = append(*p.buf, b...)
	return len(b), nil
}

// frameHeaderLen is the size of an HTTP/2 frame header (RFC 9113 4.1).
const frameHeaderLen = 9

// writeData buffers a DATA frame of stream id carrying p (unpadded,
// END_STREAM when end). When the last frame buffered is a DATA frame of the
// same stream and both fit in one frame of maxFrame bytes, p joins it: a
// relayed stream of small messages (gRPC streams one DATA frame per
// message) reaches its peer in frames of up to maxFrame bytes, so the peer
// handles one frame where it had dozens. DATA frame boundaries mean
// nothing in HTTP (RFC 9113 section 8.1); the bytes, their order and the
// flow-control windows they take are the same. started tells whether p
// began a frame of its own (the flood watch counts frames the peer gets).
func (p *pooledWriter) writeData(id uint32, end bool, b []byte, maxFrame uint32) (started bool, err error) {
	if p.err != nil {
		return false, p.err
	}
	if p.data > 0 && p.dataID == id && len(*p.buf)+len(b) <= wbufSize {
		hdr := (*p.buf)[p.data-1 : p.data-1+frameHeaderLen]
		n := uint32(hdr[0])<<16 | uint32(hdr[1])<<8 | uint32(hdr[2])
		if hdr[4]&byte(http2.FlagDataEndStream) == 0 && n+uint32(len(b)) <= maxFrame {
			n += uint32(len(b))
			hdr[0], hdr[1], hdr[2] = byte(n>>16), byte(n>>8), byte(n)
			if end {
				hdr[4] |= byte(http2.FlagDataEndStream)
			}
			*p.buf = append(*p.buf, b...)
			return false, nil
		}
	}
	var hdr [frameHeaderLen]byte
	n := len(b)
	hdr[0], hdr[1], hdr[2] = byte(n>>16), byte(n>>8), byte(n)
	hdr[3] = byte(http2.FrameData)
	if end {
		hdr[4] = byte(http2.FlagDataEndStream)
	}
	hdr[5], hdr[6], hdr[7], hdr[8] = byte(id>>24&0x7f), byte(id>>16), byte(id>>8), byte(id)
	if p.buf != nil && len(*p.buf)+frameHeaderLen+n > wbufSize {
		if err := p.writeOut(); err != nil {
			return true, err
		}
	}
	if frameHeaderLen+n >= wbufSize {
		// The header through the buffer (hdr must not escape: this runs
		// for every relayed DATA frame), the payload after it.
		if p.buf == nil {
			p.buf = wbufPool.Get().(*[]byte)
		}
		*p.buf = append(*p.buf, hdr[:]...)
		if err := p.writeOut(); err != nil {
			return true, err
		}
		_, err := p.Write(b)
		return true, err
	}
	if p.buf == nil {
		p.buf = wbufPool.Get().(*[]byte)
	}
	p.data, p.dataID = len(*p.buf)+1, id
	*p.buf = append(append(*p.buf, hdr[:]...), b...)
	return true, nil
}

// WriteString is Write for the client preface.
func (p *pooledWriter) WriteString(s string) (int, error) { return p.Write([]byte(s)) }

// Buffered is how many bytes wait for Flush.
func (p *pooledWriter) Buffered() int {
	if p.buf == nil {
		return 0
	}
	return len(*p.buf)
}

// Flush writes what is buffered and gives the buffer back.
func (p *pooledWriter) Flush() error {
	p.data = 0
	if p.buf == nil {
		return p.err
	}
	err := p.writeOut()
	*p.buf = (*p.buf)[:0]
	wbufPool.Put(p.buf)
	p.buf = nil
	return err
}

func (p *pooledWriter) writeOut() error {
	p.data = 0
	if p.err == nil && len(*p.buf) > 0 {
		_, p.err = p.w.Write(*p.buf)
	}
	*p.buf = (*p.buf)[:0]
	return p.err
}
