package server

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// frames builds a gRPC body of messages of the given sizes.
func frames(sizes ...int) []byte {
	var b bytes.Buffer
	for _, n := range sizes {
		var hdr [5]byte
		binary.BigEndian.PutUint32(hdr[1:], uint32(n))
		b.Write(hdr[:])
		b.Write(make([]byte, n))
	}
	return b.Bytes()
}

// chunkReader returns its data in reads of the given sizes.
type chunkReader struct {
	data   []byte
	chunks []int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := len(c.data)
	if len(c.chunks) > 0 {
		n = max(1, min(n, c.chunks[0]))
		c.chunks = c.chunks[1:]
	}
	n = copy(p[:min(n, len(p))], c.data)
	c.data = c.data[n:]
	return n, nil
}

func (c *chunkReader) Close() error { return nil }

func TestLimitedBody(t *testing.T) {
	tests := []struct {
		name    string
		body    []byte
		chunks  []int
		maxBody uint64
		maxMsg  uint64
		want    error
	}{
		{"messages under the limit", frames(10, 100, 0, 100), []int{3, 1, 7, 50}, 0, 100, nil},
		{"message over the limit", frames(10, 101), nil, 0, 100, errMessageTooLarge},
		{"header split byte by byte", frames(5, 200), []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, 0, 100, errMessageTooLarge},
		{"body under the limit", make([]byte, 1000), []int{100}, 1000, 0, nil},
		{"body over the limit", make([]byte, 1001), []int{100}, 1000, 0, errBodyTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lb := &limitedBody{ReadCloser: &chunkReader{data: tc.body, chunks: tc.chunks}, maxBody: tc.maxBody, maxMsg: tc.maxMsg}
			_, err := io.Copy(io.Discard, lb)
			if !errors.Is(err, tc.want) || lb.Tripped() != tc.want {
				t.Errorf("copy = %v, Tripped() = %v; want %v", err, lb.Tripped(), tc.want)
			}
		})
	}
}

// FuzzLimitedBody checks the streaming gRPC frame scanner against a plain
// walk over the whole body, for any body and any way of splitting it.
func FuzzLimitedBody(f *testing.F) {
	f.Add(frames(1, 2, 3), []byte{1, 2, 3}, uint16(2))
	f.Add(frames(70000), []byte{5}, uint16(65535))
	f.Add([]byte{0, 0, 0}, []byte{}, uint16(1))
	f.Fuzz(func(t *testing.T, body, splits []byte, limit uint16) {
		maxMsg := uint64(limit) + 1
		var want error
		for rest := body; len(rest) >= 5; {
			n := uint64(binary.BigEndian.Uint32(rest[1:5]))
			if n > maxMsg {
				want = errMessageTooLarge
				break
			}
			rest = rest[5:]
			rest = rest[min(uint64(len(rest)), n):]
		}
		chunks := make([]int, len(splits))
		for i, s := range splits {
			chunks[i] = int(s)
		}
		lb := &limitedBody{ReadCloser: &chunkReader{data: body, chunks: chunks}, maxMsg: maxMsg}
		_, err := io.Copy(io.Discard, lb)
		if !errors.Is(err, want) && !(want == nil && err == nil) {
			t.Fatalf("scanner says %v, a whole-body walk says %v", err, want)
		}
	})
}
