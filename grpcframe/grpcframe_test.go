package grpcframe

import (
	"bytes"
	"testing"
)

func TestAppendAndSingle(t *testing.T) {
	msg := []byte("hello")
	b := Append(nil, 0, msg)
	if want := []byte{0, 0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'}; !bytes.Equal(b, want) {
		t.Fatalf("Append = %v, want %v", b, want)
	}
	tests := []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"one message", b, true},
		{"empty message", []byte{0, 0, 0, 0, 0}, true},
		{"short prefix", []byte{0, 0, 0}, false},
		{"compressed", Append(nil, Compressed, msg), false},
		{"two messages", Append(Append(nil, 0, msg), 0, msg), false},
		{"truncated", b[:len(b)-1], false},
		{"a trailer frame", Append(nil, TrailerFlag, msg), false},
	}
	for _, tt := range tests {
		got, ok := Single(tt.b)
		if ok != tt.ok || (ok && !bytes.Equal(got, tt.b[HeaderLen:])) {
			t.Errorf("%s: Single = %q, %v; want ok %v", tt.name, got, ok, tt.ok)
		}
	}
}

func TestSizeWatch(t *testing.T) {
	stream := func(lens ...int) []byte {
		var b []byte
		for _, n := range lens {
			b = Append(b, 0, make([]byte, n))
		}
		return b
	}
	tests := []struct {
		name   string
		stream []byte
		pieces int // bytes per Scan call; 0: all at once
		ok     bool
	}{
		{"within the limit", stream(10, 100, 0), 0, true},
		{"one message over", stream(10, 101), 0, false},
		{"over, prefix split byte by byte", stream(5, 200), 1, false},
		{"within, in pieces of 7", stream(100, 99, 1), 7, true},
		{"an empty stream", nil, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := SizeWatch{Max: 100}
			ok := true
			p := tt.stream
			for ok && len(p) > 0 {
				k := len(p)
				if tt.pieces > 0 {
					k = min(k, tt.pieces)
				}
				ok = w.Scan(p[:k])
				p = p[k:]
			}
			if ok != tt.ok {
				t.Errorf("Scan = %v, want %v", ok, tt.ok)
			}
		})
	}
}
