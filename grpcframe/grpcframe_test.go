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
