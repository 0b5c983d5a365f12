package h2

import (
	"net"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// idleConnBytes opens n HTTP/2 connections to s that exchange SETTINGS
// and go quiet, and returns the heap and stack they hold, per connection.
func idleConnBytes(t testing.TB, n int) float64 {
	s := &Server{Handler: http.NotFoundHandler()}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	served := make(chan struct{}, n)
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				served <- struct{}{}
				s.ServeConn(c)
			}()
		}
	}()
	defer func() {
		lis.Close()
		s.Close()
		wg.Wait()
	}()
	measure := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse + m.StackInuse
	}
	clients := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	before := measure()
	for range n {
		c, err := net.Dial("tcp", lis.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		_, _ = c.Write([]byte(http2.ClientPreface))
		_ = http2.NewFramer(c, nil).WriteSettings()
		<-served
	}
	// Let every connection read the preface and answer.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		k := len(s.conns)
		s.mu.Unlock()
		if k == n {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	after := measure()
	return float64(after-before) / float64(n)
}

// An idle HTTP/2 connection (after SETTINGS, no stream) holds at most
// 64 KiB of the gateway's memory (client and server sockets of the test
// are in the same process: the client side here is a bare net.Conn).
func TestServer_IdleConnectionMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 2000 connections")
	}
	per := idleConnBytes(t, 2000)
	t.Logf("%.0f bytes per idle HTTP/2 connection", per)
	if per > 64<<10 {
		t.Errorf("%.0f bytes per idle connection, want at most 64 KiB", per)
	}
}
