//go:build unix

package h1

import (
	"net"
	"syscall"
)

// stillOpen peeks (without blocking or consuming) at an idle connection:
// false when the server closed it or sent something unasked, which must not
// be taken for the next request's answer.
func stillOpen(nc net.Conn) bool {
	for {
		u, ok := nc.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		nc = u.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		open = n <= 0 && rerr == syscall.EAGAIN
		return true // never wait
	})
	return err == nil && open
}
