package server

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// A retry's attempt sends the whole body again: what the first attempt
// read, then the rest.
func TestReplayBody_RetrySeesEverything(t *testing.T) {
	src := &chunkReader{data: []byte("hello, replayed world"), chunks: []int{5, 3, 100}}
	rb := newReplayBody(src, 1024)
	first := rb.attempt()
	buf := make([]byte, 8)
	n, _ := first.Read(buf)
	if string(buf[:n]) != "hello" {
		t.Fatalf("first read %q", buf[:n])
	}
	_ = first.Close()
	if _, err := first.Read(buf); !errors.Is(err, errAttemptOver) {
		t.Fatalf("a closed attempt read: %v", err)
	}
	second := rb.attempt()
	all, err := io.ReadAll(second)
	if err != nil || string(all) != "hello, replayed world" {
		t.Fatalf("retry read %q, %v; want the whole body", all, err)
	}
	if !rb.Replayable() {
		t.Error("a body under the limit is not replayable")
	}
}

// Past the limit the body streams through and can no longer be replayed.
func TestReplayBody_Overflow(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 100)
	rb := newReplayBody(&chunkReader{data: data, chunks: []int{30, 30, 30, 30}}, 50)
	first := rb.attempt()
	all, err := io.ReadAll(first)
	if err != nil || len(all) != 100 {
		t.Fatalf("first attempt read %d bytes, %v; want all 100 passed through", len(all), err)
	}
	if rb.Replayable() {
		t.Fatal("a body past the limit claims to be replayable")
	}
	if _, err := rb.attempt().Read(make([]byte, 10)); !errors.Is(err, errAttemptOver) {
		t.Errorf("an attempt after the overflow read: %v, want errAttemptOver", err)
	}
}
