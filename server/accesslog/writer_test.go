package accesslog

import (
	"os"
	"path/filepath"
	"testing"
)

func writeLine(w *Writer, s string) {
	b := w.Buffer()
	*b = append(*b, s...)
	w.Write(b)
}

// Lines reach the file in order; after the file is moved away (log
// rotation) Reopen starts a new one at the path; Close writes what is
// queued.
func TestWriter_ReopenAndClose(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	w, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	writeLine(w, "one\n")
	writeLine(w, "two\n")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := w.Reopen(); err != nil {
		t.Fatal(err)
	}
	writeLine(w, "three\n")
	w.Close()
	for file, want := range map[string]string{path + ".1": "one\ntwo\n", path: "three\n"} {
		b, err := os.ReadFile(file)
		if err != nil || string(b) != want {
			t.Errorf("%s: %q %v, want %q", file, b, err, want)
		}
	}
	if err := w.Reopen(); err == nil {
		t.Error("Reopen after Close: no error")
	}
	// A request that ends after the gateway closed its logs (past the
	// drain timeout) writes into a closed writer: dropped, no panic.
	writeLine(w, "late\n")
	w.Close()
	if b, _ := os.ReadFile(path); string(b) != "three\n" {
		t.Errorf("after Close: %q, want the late line dropped", b)
	}
}

// A queue the disk does not drain drops lines and counts them instead of
// blocking the caller.
func TestWriter_DropsWhenFull(t *testing.T) {
	dropped := 0
	w := &Writer{path: "x", lines: make(chan *[]byte, 2), dropped: func() { dropped++ }}
	w.pool.New = func() any { b := make([]byte, 0, 8); return &b }
	for range 5 {
		writeLine(w, "x\n") // no goroutine drains it
	}
	if dropped != 3 {
		t.Errorf("dropped %d of 5 with room for 2, want 3", dropped)
	}
}
