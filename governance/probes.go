package governance

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// HTTPProbe checks a host with an HTTP GET (Envoy's http_health_check).
type HTTPProbe struct {
	Path string
	// Host is the Host header (default: the host's address).
	Host string
	// Expected lists [start, end) status ranges that pass (default 200).
	Expected [][2]int
	// HTTP2 checks over HTTP/2 (cleartext prior knowledge, or ALPN h2).
	HTTP2 bool
	TLS   *tls.Config

	once   sync.Once
	client *http.Client
}

func (p *HTTPProbe) init() {
	p.once.Do(func() {
		var protos http.Protocols
		switch {
		case p.HTTP2 && p.TLS == nil:
			protos.SetUnencryptedHTTP2(true)
		case p.HTTP2:
			protos.SetHTTP2(true)
		default:
			protos.SetHTTP1(true)
		}
		p.client = &http.Client{Transport: &http.Transport{Protocols: &protos, TLSClientConfig: p.TLS, DisableCompression: true, MaxIdleConnsPerHost: 1}}
	})
}

// Check implements Probe.
func (p *HTTPProbe) Check(ctx context.Context, addr string) error {
	p.init()
	scheme := "http"
	if p.TLS != nil {
		scheme = "https"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+addr+p.Path, nil)
	if err != nil {
		return err
	}
	if p.Host != "" {
		req.Host = p.Host
	}
	req.Header.Set("User-Agent", "meshgate-health-check")
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	expected := p.Expected
	if len(expected) == 0 {
		expected = [][2]int{{200, 201}}
	}
	for _, r := range expected {
		if resp.StatusCode >= r[0] && resp.StatusCode < r[1] {
			return nil
		}
	}
	return fmt.Errorf("health check: status %d", resp.StatusCode)
}

// Forget implements Probe; idle connections close with the transport.
func (p *HTTPProbe) Forget(string) {}

// Close implements Probe.
func (p *HTTPProbe) Close() {
	p.init()
	p.client.CloseIdleConnections()
}

// TCPProbe connects, optionally sends a payload and expects every Receive
// payload in what comes back (Envoy's tcp_health_check).
type TCPProbe struct {
	Send    []byte
	Receive [][]byte
	TLS     *tls.Config
}

// Check implements Probe.
func (p *TCPProbe) Check(ctx context.Context, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if p.TLS != nil {
		tc := tls.Client(conn, p.TLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			return err
		}
		conn = tc
	}
	if len(p.Send) > 0 {
		if _, err := conn.Write(p.Send); err != nil {
			return err
		}
	}
	if len(p.Receive) == 0 {
		return nil
	}
	var got []byte
	buf := make([]byte, 4096)
	for {
		if all(p.Receive, got) {
			return nil
		}
		n, err := conn.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			if all(p.Receive, got) {
				return nil
			}
			return fmt.Errorf("health check: the answer lacks the expected payload: %w", err)
		}
	}
}

func all(want [][]byte, got []byte) bool {
	return !slices.ContainsFunc(want, func(w []byte) bool { return !bytes.Contains(got, w) })
}

// Forget implements Probe.
func (p *TCPProbe) Forget(string) {}

// Close implements Probe.
func (p *TCPProbe) Close() {}

// GRPCProbe asks grpc.health.v1.Health/Check over a connection kept per
// host (Envoy's grpc_health_check).
type GRPCProbe struct {
	Service   string
	Authority string
	TLS       *tls.Config

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

// ErrNotServing is a health answer other than SERVING.
var ErrNotServing = errors.New("health check: not serving")

func (p *GRPCProbe) conn(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cc := p.conns[addr]; cc != nil {
		return cc, nil
	}
	creds := insecure.NewCredentials()
	if p.TLS != nil {
		creds = credentials.NewTLS(p.TLS)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if p.Authority != "" {
		opts = append(opts, grpc.WithAuthority(p.Authority))
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, opts...)
	if err != nil {
		return nil, err
	}
	if p.conns == nil {
		p.conns = map[string]*grpc.ClientConn{}
	}
	p.conns[addr] = cc
	return cc, nil
}

// Check implements Probe.
func (p *GRPCProbe) Check(ctx context.Context, addr string) error {
	cc, err := p.conn(addr)
	if err != nil {
		return err
	}
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: p.Service})
	if err != nil {
		return err
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("%w (%v)", ErrNotServing, resp.GetStatus())
	}
	return nil
}

// Forget implements Probe.
func (p *GRPCProbe) Forget(addr string) {
	p.mu.Lock()
	cc := p.conns[addr]
	delete(p.conns, addr)
	p.mu.Unlock()
	if cc != nil {
		_ = cc.Close()
	}
}

// Close implements Probe.
func (p *GRPCProbe) Close() {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, cc := range conns {
		_ = cc.Close()
	}
}
