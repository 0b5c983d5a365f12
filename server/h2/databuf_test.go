package h2

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// Whatever the sizes written and read, the bytes come out in order and
// Len follows.
func TestDataBuffer_RoundTrip(t *testing.T) {
	tests := []struct {
		name          string
		writes, reads []int
	}{
		{"small messages, big reads", []int{5, 10, 3, 1000, 7}, []int{32 << 10}},
		{"frames, small reads", []int{16 << 10, 16 << 10, 100}, []int{1, 999, 4096, 5000}},
		{"one byte at a time", []int{1, 1, 1}, []int{1, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b dataBuffer
			var want, got bytes.Buffer
			for i, n := range tt.writes {
				p := bytes.Repeat([]byte{byte('a' + i)}, n)
				b.Write(p)
				want.Write(p)
			}
			if b.Len() != want.Len() {
				t.Fatalf("Len = %d, want %d", b.Len(), want.Len())
			}
			for i := 0; b.Len() > 0; i++ {
				p := make([]byte, tt.reads[i%len(tt.reads)])
				n := b.Read(p)
				if n == 0 {
					t.Fatal("Read took nothing from a buffer that has data")
				}
				got.Write(p[:n])
			}
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Errorf("read %d bytes back, not what was written", got.Len())
			}
		})
	}
}

// Interleaved writes and reads keep the order.
func TestDataBuffer_Interleaved(t *testing.T) {
	var b dataBuffer
	r := rand.New(rand.NewPCG(1, 2))
	var in, out []byte
	seq := byte(0)
	for range 2000 {
		if r.IntN(2) == 0 {
			p := make([]byte, r.IntN(20000))
			for i := range p {
				p[i] = seq
				seq++
			}
			b.Write(p)
			in = append(in, p...)
		} else {
			p := make([]byte, r.IntN(20000))
			n := b.Read(p)
			out = append(out, p[:n]...)
		}
	}
	p := make([]byte, b.Len())
	out = append(out, p[:b.Read(p)]...)
	if !bytes.Equal(in, out) {
		t.Errorf("%d bytes in, %d out, or out of order", len(in), len(out))
	}
	b.Reset()
	if b.Len() != 0 {
		t.Error("Len after Reset")
	}
}

// Tiny DATA frames queued for a slow reader share pooled chunks instead
// of holding one each, keep their bytes in order, and the last frame's
// END_STREAM stays with the bytes.
func TestKeepQueued_CoalescesSmallFrames(t *testing.T) {
	var q []relayItem
	var want []byte
	frame := make([]byte, 10) // reused for every frame, as the framer's buffer is
	for i := range 300 {
		for j := range frame {
			frame[j] = byte(i + j)
		}
		want = append(want, frame...)
		q = append(q, relayItem{data: frame, end: i == 299})
		keepQueued(&q)
	}
	var got []byte
	for _, it := range q {
		got = append(got, it.data...)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("queued bytes differ from the frames'")
	}
	if len(q) > 3 { // 3,000 bytes in 1 KiB chunks
		t.Errorf("300 frames of 10 bytes took %d queue items, want at most 3", len(q))
	}
	if !q[len(q)-1].end {
		t.Error("END_STREAM was lost")
	}
	for _, it := range q[:len(q)-1] {
		if it.end {
			t.Error("END_STREAM on an item before the last")
		}
	}
	releaseItems(q)
}
