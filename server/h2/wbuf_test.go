package h2

import (
	"bytes"
	"errors"
	"testing"
)

// countingWriter records each Write it gets.
type countingWriter struct {
	writes []int
	out    bytes.Buffer
	err    error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	c.writes = append(c.writes, len(p))
	return c.out.Write(p)
}

func TestPooledWriter(t *testing.T) {
	tests := []struct {
		name       string
		writes     []int // sizes written before the Flush
		wantWrites []int // what reaches the connection, in order
	}{
		{name: "small writes leave in one", writes: []int{9, 100, 16393}, wantWrites: []int{16502}},
		{name: "nothing", writes: nil, wantWrites: nil},
		{name: "past the buffer: what gathered goes first", writes: []int{40 << 10, 30 << 10}, wantWrites: []int{40 << 10, 30 << 10}},
		{name: "a write as big as the buffer goes straight", writes: []int{10, wbufSize}, wantWrites: []int{10, wbufSize}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cw := &countingWriter{}
			p := &pooledWriter{w: cw}
			var want bytes.Buffer
			for i, n := range tt.writes {
				b := bytes.Repeat([]byte{byte('a' + i)}, n)
				want.Write(b)
				if k, err := p.Write(b); k != n || err != nil {
					t.Fatalf("Write(%d) = %d, %v", n, k, err)
				}
			}
			if err := p.Flush(); err != nil {
				t.Fatal(err)
			}
			if p.buf != nil || p.Buffered() != 0 {
				t.Fatal("the buffer was not given back after Flush")
			}
			if !bytes.Equal(cw.out.Bytes(), want.Bytes()) {
				t.Fatal("the bytes written differ from the bytes given")
			}
			if len(cw.writes) != len(tt.wantWrites) {
				t.Fatalf("writes %v, want %v", cw.writes, tt.wantWrites)
			}
			for i := range cw.writes {
				if cw.writes[i] != tt.wantWrites[i] {
					t.Fatalf("writes %v, want %v", cw.writes, tt.wantWrites)
				}
			}
		})
	}
}

// TestPooledWriterError: the first write error sticks, buffered bytes are
// dropped and the buffer still goes back.
func TestPooledWriterError(t *testing.T) {
	boom := errors.New("boom")
	cw := &countingWriter{err: boom}
	p := &pooledWriter{w: cw}
	if _, err := p.Write([]byte("hello")); err != nil {
		t.Fatalf("a buffered write failed early: %v", err)
	}
	if err := p.Flush(); !errors.Is(err, boom) {
		t.Fatalf("Flush = %v, want %v", err, boom)
	}
	if _, err := p.Write([]byte("x")); !errors.Is(err, boom) {
		t.Fatalf("Write after the error = %v, want %v", err, boom)
	}
	if err := p.Flush(); !errors.Is(err, boom) || p.buf != nil {
		t.Fatalf("Flush after the error = %v (buffer held: %v)", err, p.buf != nil)
	}
}
