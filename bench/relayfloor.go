package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The floor: a bare HTTP/2 frame relay in Go, run beside the proxies on the
// gRPC paths to show what the language and runtime allow on this machine
// when no goroutine is handed a stream. One upstream connection per
// downstream one, two goroutines per pair, each reading one side's frames
// and writing them to the other: header blocks decoded and encoded again
// (as any proxy must), everything else (DATA, SETTINGS, WINDOW_UPDATE, PING,
// RST_STREAM, GOAWAY) passed as it is, so the two ends' flow control and
// stream ids carry through; a write buffer is flushed when its reader has
// nothing more buffered. No routing, no headers changed, no limits, no TLS:
// a reference, not a proxy to deploy.

//
// On the HTTP/1.1 path the floor is lower still: the bytes are copied as
// they come, both ways, by two goroutines per connection pair, one upstream
// connection per downstream one — not even the requests are parsed. It shows
// what the runtime's reads and writes alone cost a Go proxy per request: the
// copy goes through a buffer in the program (read, then write), as a proxy's
// must, not splice(2), which io.Copy between two TCP connections would use.

//
// With -http-floor epoll the HTTP/1.1 copy is made by one epoll loop on a
// locked OS thread instead (epollfloor.go): no goroutine parks per read, as
// in nginx's event loop.

const relayFloorFlag = "relay-floor" // -relay-floor LISTEN,BACKEND,HTTPLISTEN,HTTPBACKEND[,epoll]: be the floor relays

// runRelayFloor serves the HTTP/2 relay on args[0] towards args[1] and the
// HTTP/1.1 byte relay on args[2] towards args[3] until killed; args[4],
// when there, is "epoll" for the HTTP/1.1 copy by an epoll loop.
func runRelayFloor(args []string) error {
	if len(args) != 4 && (len(args) != 5 || args[4] != "epoll") {
		return fmt.Errorf("-%s wants LISTEN,BACKEND,HTTPLISTEN,HTTPBACKEND[,epoll]", relayFloorFlag)
	}
	errs := make(chan error, 2)
	serve := func(listen string, pair func(net.Conn)) {
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			errs <- err
			return
		}
		for {
			c, err := ln.Accept()
			if err != nil {
				errs <- err
				return
			}
			go pair(c)
		}
	}
	go serve(args[0], func(c net.Conn) { relayPair(c, args[1]) })
	if len(args) == 5 {
		go func() { errs <- epollCopy(args[2], args[3]) }()
	} else {
		go serve(args[2], func(c net.Conn) { copyPair(c, args[3]) })
	}
	return <-errs
}

// copyPair copies the bytes of down to a new connection to backend and back.
func copyPair(down net.Conn, backend string) {
	defer down.Close()
	up, err := net.Dial("tcp", backend)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{})
	go func() {
		userCopy(down, up)
		_ = down.Close()
		close(done)
	}()
	userCopy(up, down)
	_ = up.Close()
	<-done
}

// userCopy copies src to dst through a 32 KiB buffer of its own: the plain
// reader and writer hide the TCP connections' ReadFrom and WriteTo, so the
// kernel does not splice the bytes past the program.
func userCopy(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	_, _ = io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, buf)
}

func relayPair(down net.Conn, backend string) {
	defer down.Close()
	up, err := net.Dial("tcp", backend)
	if err != nil {
		return
	}
	defer up.Close()
	dr := bufio.NewReaderSize(down, 64<<10)
	pre := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(dr, pre); err != nil || string(pre) != http2.ClientPreface {
		return
	}
	uw := bufio.NewWriterSize(up, 64<<10)
	_, _ = uw.WriteString(http2.ClientPreface)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); relayFrames(dr, uw); _ = up.Close() }()
	go func() {
		defer wg.Done()
		relayFrames(bufio.NewReaderSize(up, 64<<10), bufio.NewWriterSize(down, 64<<10))
		_ = down.Close()
	}()
	wg.Wait()
}

// relayFrames passes r's frames to w until either side fails.
func relayFrames(r *bufio.Reader, w *bufio.Writer) {
	fr := http2.NewFramer(w, r)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.MaxHeaderListSize = 1 << 20
	fr.SetReuseFrames()
	var block blockBuffer
	enc := hpack.NewEncoder(&block)
	for {
		if r.Buffered() == 0 && w.Flush() != nil {
			return
		}
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			block = block[:0]
			for _, hf := range f.Fields {
				_ = enc.WriteField(hf)
			}
			err = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: f.StreamID, BlockFragment: block,
				EndStream: f.StreamEnded(), EndHeaders: true})
		case *http2.DataFrame:
			err = fr.WriteData(f.StreamID, f.StreamEnded(), f.Data())
		case *http2.SettingsFrame:
			if f.IsAck() {
				err = fr.WriteSettingsAck()
			} else {
				var ss []http2.Setting
				_ = f.ForeachSetting(func(s http2.Setting) error { ss = append(ss, s); return nil })
				err = fr.WriteSettings(ss...)
			}
		case *http2.WindowUpdateFrame:
			err = fr.WriteWindowUpdate(f.StreamID, f.Increment)
		case *http2.PingFrame:
			err = fr.WritePing(f.IsAck(), f.Data)
		case *http2.RSTStreamFrame:
			err = fr.WriteRSTStream(f.StreamID, f.ErrCode)
		case *http2.GoAwayFrame:
			err = fr.WriteGoAway(f.LastStreamID, f.ErrCode, f.DebugData())
		}
		if err != nil {
			return
		}
	}
}

type blockBuffer []byte

func (b *blockBuffer) Write(p []byte) (int, error) { *b = append(*b, p...); return len(p), nil }

// startRelayFloor runs the floor relay in a process of its own (this
// program again), in front of the gRPC backend only.
func startRelayFloor(grpcBackend, httpBackend, httpFloor string) *proxy {
	name := "bare Go relay (floor)"
	arg := ""
	if httpFloor == "epoll" {
		name, arg = "bare Go relay (floor; HTTP/1.1 by an epoll loop)", ",epoll"
	}
	self, err := os.Executable()
	if err != nil {
		return &proxy{name: name, skip: err.Error()}
	}
	addr, err := freeAddr()
	if err != nil {
		return &proxy{name: name, skip: err.Error()}
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return &proxy{name: name, skip: err.Error()}
	}
	cmd := exec.Command(self, "-"+relayFloorFlag, addr+","+grpcBackend+","+httpAddr+","+httpBackend+arg)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return &proxy{name: name, skip: err.Error()}
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	for _, a := range []string{addr, httpAddr} {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
				_ = c.Close()
				break
			}
			if time.Now().After(deadline) {
				stop()
				return &proxy{name: name, skip: fmt.Sprintf("the relay did not listen on %s", a)}
			}
		}
	}
	return &proxy{name: name, version: name + ": bench/relayfloor.go, this program's `-" + relayFloorFlag + "` mode",
		grpcAddr: addr, httpAddr: httpAddr, pid: cmd.Process.Pid, stop: stop}
}
