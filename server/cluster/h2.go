//lint:file-ignore SA1019 x/net's HTTP/2 transport is used on purpose; see http2Transport.

package cluster

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"

	"golang.org/x/net/http2"
)

// pool is a pooling transport.
type pool interface {
	http.RoundTripper
	CloseIdleConnections()
}

// http2Transport multiplexes requests over one connection per host (more
// only when the server's stream limit is reached); concurrent first
// requests share one dial. It is x/net's transport, which x/net now marks
// deprecated in favour of net/http's: net/http's dials once per concurrent
// first request for cleartext HTTP/2 (TestUpstream_PooledConnections saw 8
// connections for 8 callers), which is not multiplexing.
func (c *Cluster) http2Transport(d *net.Dialer, opts Options) pool {
	dial := c.dial(d)
	return &http2.Transport{
		DisableCompression: true,
		// Every dial goes through DialTLSContext, which does the
		// endpoint's TLS or none (cleartext HTTP/2 with prior knowledge).
		AllowHTTP:       true,
		IdleConnTimeout: opts.IdleConnTimeout,
		ReadIdleTimeout: opts.PingInterval,
		PingTimeout:     opts.PingTimeout,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			raw, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return c.handshake(ctx, raw, addr, c.hostTLS(addr), "h2", d.Timeout)
		},
	}
}
