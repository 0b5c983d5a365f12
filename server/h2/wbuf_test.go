package h2

import (
	"bytes"
	"cmp"
	"errors"
	"io"
	"slices"
	"testing"

	"golang.org/x/net/http2"
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

// TestPooledWriter_DataFramesJoin: DATA frames of one stream written one
// after the other leave as one frame while they fit in the peer's frame
// size; anything else in between, another stream, a flush or END_STREAM
// starts a new frame. The frames are read back with x/net's Framer.
func TestPooledWriter_DataFramesJoin(t *testing.T) {
	type op struct {
		id    uint32 // 0: a PING frame (anything but DATA); flush: a Flush
		n     int
		end   bool
		flush bool
		max   uint32 // the peer's frame size for this write; 0: the case's
	}
	type frame struct {
		id  uint32
		n   int
		end bool
	}
	tests := []struct {
		name     string
		maxFrame uint32
		ops      []op
		want     []frame
	}{
		{name: "same stream joins", maxFrame: 16384, ops: []op{{id: 1, n: 1029}, {id: 1, n: 1029}, {id: 1, n: 1029}},
			want: []frame{{1, 3087, false}}},
		{name: "END_STREAM of the last carries over", maxFrame: 16384, ops: []op{{id: 1, n: 100}, {id: 1, n: 5, end: true}},
			want: []frame{{1, 105, true}}},
		{name: "an empty END_STREAM joins", maxFrame: 16384, ops: []op{{id: 3, n: 100}, {id: 3, end: true}},
			want: []frame{{3, 100, true}}},
		{name: "nothing joins a frame that ended the stream", maxFrame: 16384, ops: []op{{id: 1, n: 10, end: true}, {id: 1, n: 10}},
			want: []frame{{1, 10, true}, {1, 10, false}}},
		{name: "another stream", maxFrame: 16384, ops: []op{{id: 1, n: 10}, {id: 3, n: 10}, {id: 1, n: 10}},
			want: []frame{{1, 10, false}, {3, 10, false}, {1, 10, false}}},
		{name: "a frame of another type in between", maxFrame: 16384, ops: []op{{id: 1, n: 10}, {id: 0}, {id: 1, n: 10}},
			want: []frame{{1, 10, false}, {0, 8, false}, {1, 10, false}}},
		{name: "a flush in between", maxFrame: 16384, ops: []op{{id: 1, n: 10}, {flush: true}, {id: 1, n: 10}},
			want: []frame{{1, 10, false}, {1, 10, false}}},
		{name: "never past the peer's frame size", maxFrame: 1000, ops: []op{{id: 1, n: 600}, {id: 1, n: 400}, {id: 1, n: 1}},
			want: []frame{{1, 1000, false}, {1, 1, false}}},
		{name: "a smaller frame size for the next write", maxFrame: 16384, ops: []op{{id: 1, n: 9000}, {id: 1, n: 9000, max: 16384}, {id: 1, n: 100, max: 9000}},
			want: []frame{{1, 9000, false}, {1, 9000, false}, {1, 100, false}}},
		{name: "a frame past the buffer goes straight, and nothing joins it", maxFrame: 1 << 20,
			ops:  []op{{id: 1, n: 10}, {id: 1, n: 70000}, {id: 1, n: 10}},
			want: []frame{{1, 10, false}, {1, 70000, false}, {1, 10, false}}},
		{name: "past the buffer: a new frame after it is written out", maxFrame: 1 << 20,
			ops:  []op{{id: 1, n: 16384}, {id: 1, n: 16384}, {id: 1, n: 16384}, {id: 1, n: 16384}, {id: 1, n: 16384}},
			want: []frame{{1, 3 * 16384, false}, {1, 2 * 16384, false}}}, // (the frame header counts)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cw := &countingWriter{}
			p := &pooledWriter{w: cw}
			var payload bytes.Buffer // all the DATA bytes, in order
			startedFrames := 0       // the DATA frames writeData said it began
			for i, o := range tt.ops {
				switch {
				case o.flush:
					if err := p.Flush(); err != nil {
						t.Fatal(err)
					}
				case o.id == 0:
					fr := http2.NewFramer(p, nil)
					if err := fr.WritePing(false, [8]byte{}); err != nil {
						t.Fatal(err)
					}
				default:
					b := bytes.Repeat([]byte{byte('a' + i)}, o.n)
					payload.Write(b)
					started, err := p.writeData(o.id, o.end, b, cmp.Or(o.max, tt.maxFrame))
					if err != nil {
						t.Fatal(err)
					}
					if started {
						startedFrames++
					}
				}
			}
			if err := p.Flush(); err != nil {
				t.Fatal(err)
			}
			fr := http2.NewFramer(nil, &cw.out)
			fr.SetMaxReadFrameSize(1<<24 - 1)
			var got []frame
			var data bytes.Buffer
			for {
				f, err := fr.ReadFrame()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("reading the frames back: %v", err)
				}
				switch f := f.(type) {
				case *http2.DataFrame:
					data.Write(f.Data())
					got = append(got, frame{f.StreamID, len(f.Data()), f.StreamEnded()})
				case *http2.PingFrame:
					got = append(got, frame{0, 8, false})
				default:
					t.Fatalf("unexpected frame %v", f)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("frames %v, want %v", got, tt.want)
			}
			if !bytes.Equal(data.Bytes(), payload.Bytes()) {
				t.Fatal("the DATA bytes read back differ from those written")
			}
			dataFrames := 0
			for _, f := range got {
				if f.id != 0 {
					dataFrames++
				}
			}
			if startedFrames != dataFrames {
				t.Fatalf("writeData said it began %d DATA frames, %d went out", startedFrames, dataFrames)
			}
		})
	}
}
