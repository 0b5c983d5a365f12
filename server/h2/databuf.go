package h2

import "sync"

// dataBuffer holds a stream's received body until it is read: chunks from
// pools, given back as they are read, so that a reader behind its writer
// neither grows nor copies one big slice.
type dataBuffer struct {
	chunks []*[]byte // (*chunks[0])[r:] is the next to read
	r      int
	size   int
	room   [2]*[]byte // chunks' first backing array: no allocation for a small body
}

// chunkSizes are the pooled chunk sizes; a chunk is picked by how much is
// being written (a 16 KiB frame takes one chunk, a small message a small one).
var chunkSizes = [...]int{1 << 10, 4 << 10, 16 << 10}

var chunkPools = [len(chunkSizes)]sync.Pool{
	{New: func() any { b := make([]byte, chunkSizes[0]); return &b }},
	{New: func() any { b := make([]byte, chunkSizes[1]); return &b }},
	{New: func() any { b := make([]byte, chunkSizes[2]); return &b }},
}

// getChunk is an empty pooled chunk for want bytes; the pointer goes back
// to the pool as it came (putting a fresh one would allocate it).
func getChunk(want int) *[]byte {
	for i, s := range chunkSizes {
		if want <= s || i == len(chunkSizes)-1 {
			c := chunkPools[i].Get().(*[]byte)
			*c = (*c)[:0]
			return c
		}
	}
	panic("unreachable")
}

func putChunk(c *[]byte) {
	for i, s := range chunkSizes {
		if cap(*c) == s {
			chunkPools[i].Put(c)
			return
		}
	}
}

// Len is how many bytes are buffered.
func (b *dataBuffer) Len() int { return b.size }

// Write appends p.
func (b *dataBuffer) Write(p []byte) {
	b.size += len(p)
	for len(p) > 0 {
		if n := len(b.chunks); n == 0 || len(*b.chunks[n-1]) == cap(*b.chunks[n-1]) {
			if b.chunks == nil {
				b.chunks = b.room[:0]
			}
			b.chunks = append(b.chunks, getChunk(len(p)))
		}
		last := b.chunks[len(b.chunks)-1]
		k := copy((*last)[len(*last):cap(*last)], p)
		*last = (*last)[:len(*last)+k]
		p = p[k:]
	}
}

// Read moves up to len(p) bytes into p.
func (b *dataBuffer) Read(p []byte) int {
	n := 0
	for n < len(p) && len(b.chunks) > 0 {
		c := b.chunks[0]
		k := copy(p[n:], (*c)[b.r:])
		n += k
		b.r += k
		if b.r == len(*c) && (len(b.chunks) > 1 || len(*c) == cap(*c)) {
			putChunk(c)
			b.chunks[0] = nil
			b.chunks = b.chunks[1:]
			b.r = 0
		} else if b.r == len(*c) {
			// The last chunk, drained but not full: written again from
			// its start.
			*c = (*c)[:0]
			b.r = 0
			break
		}
	}
	b.size -= n
	return n
}

// Reset drops what is buffered and gives the chunks back.
func (b *dataBuffer) Reset() {
	for i, c := range b.chunks {
		putChunk(c)
		b.chunks[i] = nil
	}
	b.chunks, b.r, b.size = nil, 0, 0
}
