package h2

import (
	"io"
	"sync"
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
}

func (p *pooledWriter) Write(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
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
	if p.err == nil && len(*p.buf) > 0 {
		_, p.err = p.w.Write(*p.buf)
	}
	*p.buf = (*p.buf)[:0]
	return p.err
}
