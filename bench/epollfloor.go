package main

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// epollCopy is the HTTP/1.1 floor of -http-floor epoll: connections on
// listen are paired with a new connection to backend each and the bytes
// copied as they come, both ways, by one loop on a locked OS thread that
// waits in epoll_wait (level-triggered) and reads and writes the sockets
// itself. No goroutine parks on a read and no read is made before epoll
// said it would find bytes, as in nginx's event loop; Go's netpoller
// instead reads first and parks on EAGAIN, and wakes a goroutine per read.
// Accepting and dialing happen on another goroutine (not measured: the
// bench's connections are kept alive). A reference, not a proxy: nothing
// is parsed, a slow reader stalls the loop (a write that cannot go at once
// waits for room).
func epollCopy(listen, backend string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("epoll_create1: %w", err)
	}
	var mu sync.Mutex
	peers := map[int32]int{} // socket -> the socket its bytes go to
	go func() {
		for {
			down, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", backend)
			if err != nil {
				_ = down.Close()
				continue
			}
			d, derr := ownFD(down)
			u, uerr := ownFD(up)
			if derr != nil || uerr != nil {
				unix.Close(d)
				unix.Close(u)
				continue
			}
			mu.Lock()
			peers[int32(d)], peers[int32(u)] = u, d
			mu.Unlock()
			for _, fd := range []int{d, u} {
				_ = unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)})
			}
		}
	}()
	runtime.LockOSThread()
	events := make([]unix.EpollEvent, 128)
	buf := make([]byte, 32<<10)
	for {
		n, err := unix.EpollWait(ep, events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("epoll_wait: %w", err)
		}
		for _, ev := range events[:n] {
			mu.Lock()
			peer, ok := peers[ev.Fd]
			mu.Unlock()
			if !ok {
				continue
			}
			fd := int(ev.Fd)
			k, err := unix.Read(fd, buf)
			if errors.Is(err, unix.EAGAIN) {
				continue
			}
			if err != nil || k == 0 || writeAll(peer, buf[:k]) != nil {
				mu.Lock()
				delete(peers, ev.Fd)
				delete(peers, int32(peer))
				mu.Unlock()
				unix.Close(fd) // closing leaves the epoll set
				unix.Close(peer)
			}
		}
	}
}

// ownFD is a non-blocking duplicate of c's socket, c itself closed (so that
// Go's netpoller lets go of it).
func ownFD(c net.Conn) (int, error) {
	defer c.Close()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	cerr := rc.Control(func(s uintptr) { fd, err = unix.Dup(int(s)) })
	if cerr != nil {
		return -1, cerr
	}
	if err != nil {
		return -1, err
	}
	return fd, unix.SetNonblock(fd, true)
}

// writeAll writes p to fd, waiting for room when the socket is full.
func writeAll(fd int, p []byte) error {
	for len(p) > 0 {
		k, err := unix.Write(fd, p)
		if errors.Is(err, unix.EAGAIN) {
			if _, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}, -1); err != nil && !errors.Is(err, unix.EINTR) {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		p = p[k:]
	}
	return nil
}
