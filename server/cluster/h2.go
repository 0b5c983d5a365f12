package cluster

import (
	"context"
	"net"
	"net/http"

	"github.com/meshgate/meshgate/server/h2"
)

// pool is a pooling transport.
type pool interface {
	http.RoundTripper
	CloseIdleConnections()
}

// http2Transport multiplexes requests over one connection per host (more
// only when the server's stream limit is reached); concurrent first
// requests share one dial. It is meshgate's own HTTP/2 client (server/h2):
// x/net's flushed every frame and spent a fifth of the gateway's CPU per
// gRPC call in write system calls; net/http's dials once per concurrent
// first request for cleartext HTTP/2 (TestUpstream_PooledConnections saw 8
// connections for 8 callers), which is not multiplexing.
func (c *Cluster) http2Transport(d *net.Dialer, opts Options) pool {
	dial := c.dial(d)
	return &h2.Transport{
		IdleConnTimeout: opts.IdleConnTimeout,
		PingInterval:    opts.PingInterval,
		PingTimeout:     opts.PingTimeout,
		// Every dial does the endpoint's TLS (ALPN h2) or none (cleartext
		// HTTP/2 with prior knowledge).
		Dial: func(ctx context.Context, addr string) (net.Conn, error) {
			raw, err := dial(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			return c.handshake(ctx, raw, addr, c.hostTLS(addr), "h2", d.Timeout)
		},
	}
}
