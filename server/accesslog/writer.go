package accesslog

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// queueLines bounds the lines waiting for the disk; past it lines are
// dropped and counted, never waited for.
const queueLines = 8192

// flushEvery is how long a written line may sit in the buffer (Envoy's
// access_log_flush_interval default is 1s).
const flushEvery = time.Second

// Writer appends lines to a file (or stdout / stderr) from its own
// goroutine: Write never blocks a request.
type Writer struct {
	path    string
	lines   chan *[]byte
	dropped func()
	reopen  chan chan error
	// stop asks the writer to end (lines is never closed: a request that
	// ends after Close, past the drain timeout, still writes into it).
	stop   chan struct{}
	done   chan struct{}
	closed sync.Once

	pool sync.Pool // line buffers
}

// Open starts a writer for path ("/dev/stdout" and "/dev/stderr" write
// to the process's own). dropped is called for each line dropped because
// the queue was full (may be nil).
func Open(path string, dropped func()) (*Writer, error) {
	f, err := openFile(path)
	if err != nil {
		return nil, err
	}
	w := &Writer{path: path, lines: make(chan *[]byte, queueLines), dropped: dropped,
		reopen: make(chan chan error), stop: make(chan struct{}), done: make(chan struct{})}
	w.pool.New = func() any { b := make([]byte, 0, 512); return &b }
	go w.run(f)
	return w, nil
}

func openFile(path string) (io.WriteCloser, error) {
	switch path {
	case "/dev/stdout":
		return nopCloser{os.Stdout}, nil
	case "/dev/stderr":
		return nopCloser{os.Stderr}, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("access log %s: %w", path, err)
	}
	return f, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// Buffer returns an empty line buffer for Write.
func (w *Writer) Buffer() *[]byte {
	b := w.pool.Get().(*[]byte)
	*b = (*b)[:0]
	return b
}

// Write queues a line (a buffer from Buffer; the writer owns it now). A
// full queue drops the line.
func (w *Writer) Write(line *[]byte) {
	select {
	case <-w.stop: // closed: the line is dropped
		w.pool.Put(line)
		return
	default:
	}
	select {
	case w.lines <- line: // the writer puts it back in the pool once written
	default:
		w.pool.Put(line)
		if w.dropped != nil {
			w.dropped()
		}
	}
}

// Reopen closes and opens the file again (after log rotation: SIGUSR1).
func (w *Writer) Reopen() error {
	res := make(chan error, 1)
	select {
	case w.reopen <- res:
		return <-res
	case <-w.done:
		return fmt.Errorf("access log %s: closed", w.path)
	}
}

// Close writes what is queued and stops.
func (w *Writer) Close() {
	w.closed.Do(func() { close(w.stop) })
	<-w.done
}

func (w *Writer) write(bw *bufio.Writer, line *[]byte) {
	_, _ = bw.Write(*line)
	*line = (*line)[:0]
	w.pool.Put(line)
}

// drain writes what is queued now.
func (w *Writer) drain(bw *bufio.Writer) {
	for {
		select {
		case line := <-w.lines:
			w.write(bw, line)
		default:
			return
		}
	}
}

func (w *Writer) run(f io.WriteCloser) {
	defer close(w.done)
	bw := bufio.NewWriterSize(f, 64<<10)
	tick := time.NewTicker(flushEvery)
	defer tick.Stop()
	for {
		select {
		case line := <-w.lines:
			w.write(bw, line)
		case <-w.stop:
			w.drain(bw)
			_ = bw.Flush()
			_ = f.Close()
			return
		case <-tick.C:
			_ = bw.Flush()
		case res := <-w.reopen:
			// What was queued before the rotation goes to the old file.
			w.drain(bw)
			_ = bw.Flush()
			_ = f.Close()
			nf, err := openFile(w.path)
			if err != nil {
				// Keep writing somewhere rather than nowhere: the error is the caller's to log.
				nf = nopCloser{io.Discard}
			}
			f = nf
			bw.Reset(f)
			res <- err
		}
	}
}
