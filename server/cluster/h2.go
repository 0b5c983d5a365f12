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
func (c *Cluster) http2Transport(d *net.Dialer, tlsConf *tls.Config, opts Options) pool {
	dial := c.dial(d)
	t := &http2.Transport{
		DisableCompression: true,
		AllowHTTP:          tlsConf == nil,
		IdleConnTimeout:    opts.IdleConnTimeout,
		ReadIdleTimeout:    opts.PingInterval,
		PingTimeout:        opts.PingTimeout,
	}
	if tlsConf == nil {
		// Cleartext HTTP/2 with prior knowledge: the "TLS" dial is plain TCP.
		t.DialTLSContext = func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return dial(ctx, network, addr)
		}
		return t
	}
	tlsConf = tlsConf.Clone()
	tlsConf.NextProtos = []string{"h2"}
	t.TLSClientConfig = tlsConf
	t.DialTLSContext = func(ctx context.Context, network, addr string, cfg *tls.Config) (net.Conn, error) {
		raw, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		cfg = cfg.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
		}
		tc := tls.Client(raw, cfg)
		hctx, cancel := context.WithTimeout(ctx, d.Timeout)
		defer cancel()
		if err := tc.HandshakeContext(hctx); err != nil {
			_ = raw.Close()
			return nil, err
		}
		return tc, nil
	}
	return t
}
