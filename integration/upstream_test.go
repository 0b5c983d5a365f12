package integration

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/meshgate/meshgate/internal/demo"
	demov1 "github.com/meshgate/meshgate/proto/demo/v1"
	"github.com/meshgate/meshgate/server/cluster"
)

func clusterNamed(t *testing.T, g *gateway, name string) *cluster.Cluster {
	t.Helper()
	for _, c := range g.srv.Clusters() {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no cluster %q", name)
	return nil
}

// Upstream connections are pooled: many calls, few dials.
func TestUpstream_PooledConnections(t *testing.T) {
	b := startBackend(t, "b1")
	g := startGateway(t, render(t, baseConfig, baseData{GRPC: b.GRPCAddr, HTTP: b.HTTPAddr}))
	addr := g.addr("main")
	c := demoClient(t, addr)
	hc := httpClient(t)
	hc.Transport.(*http.Transport).MaxIdleConnsPerHost = 8

	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for range 8 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for range 25 {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := c.Echo(ctx, &demov1.EchoRequest{Message: "m"})
				cancel()
				if err != nil {
					errs <- err
				}
			}
		}()
		go func() {
			defer wg.Done()
			for range 25 {
				resp, err := hc.Get("http://" + addr + "/echo")
				if err != nil {
					errs <- err
					continue
				}
				var e echoed
				_ = json.NewDecoder(resp.Body).Decode(&e)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("call failed: %v", err)
	}
	grpcC, httpC := clusterNamed(t, g, "grpc"), clusterNamed(t, g, "http")
	if n := grpcC.Stats.RqTotal.Load(); n != 200 {
		t.Errorf("grpc cluster saw %d requests, want 200", n)
	}
	if cx := grpcC.Stats.CxTotal.Load(); cx != 1 {
		t.Errorf("200 gRPC calls, 8 at a time, opened %d HTTP/2 connections, want 1 (multiplexed)", cx)
	}
	// Without a pool each request dials; with one, about one connection per
	// concurrent caller. Go's transport may dial while a connection is on
	// its way back to the pool (seen once under load: 9), hence the slack.
	if cx := httpC.Stats.CxTotal.Load(); cx > 16 {
		t.Errorf("200 HTTP/1.1 requests, 8 at a time, opened %d connections, want about 8 (keep-alive pool)", cx)
	}
}

// gRPC to a TLS backend (ALPN h2, verified against a CA file), and REST to a
// cleartext HTTP/2 backend.
func TestUpstream_TLSAndHTTP2(t *testing.T) {
	dir := t.TempDir()
	writeCert(t, dir)
	cert, err := tls.LoadX509KeyPair(dir+"/cert.pem", dir+"/key.pem")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}})))
	demov1.RegisterDemoServiceServer(gs, demo.NewService("tls-backend"))
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)
	plain := startBackend(t, "h2c-backend")

	cfg := render(t, `
listeners:
  - name: main
    address: 127.0.0.1:0
    virtual_hosts:
      - routes:
          - match: { prefix: /demo.v1.DemoService/ }
            cluster: grpc-tls
          - match: { prefix: /echo }
            cluster: rest-h2
clusters:
  - name: grpc-tls
    protocol: grpc
    tls: { ca_file: cert.pem, sni: localhost }
    endpoints: [ "{{.TLS}}" ]
  - name: rest-h2
    protocol: http2
    endpoints: [ "{{.H2C}}" ]
`, map[string]string{"TLS": ln.Addr().String(), "H2C": plain.HTTPAddr})
	g := startGatewayIn(t, dir, cfg)
	addr := g.addr("main")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := demoClient(t, addr).Echo(ctx, &demov1.EchoRequest{Message: "to tls"})
	if err != nil || resp.GetServer() != "tls-backend" {
		t.Fatalf("gRPC to a TLS backend = %v, %v", resp, err)
	}
	hresp, err := httpClient(t).Get("http://" + addr + "/echo")
	if err != nil {
		t.Fatal(err)
	}
	defer hresp.Body.Close()
	var e echoed
	if err := json.NewDecoder(hresp.Body).Decode(&e); err != nil {
		t.Fatal(err)
	}
	if e.Server != "h2c-backend" || e.Proto != "HTTP/2.0" {
		t.Fatalf("REST to an HTTP/2 backend: answered by %q over %q, want h2c-backend over HTTP/2.0", e.Server, e.Proto)
	}
}

// A malformed HTTP/2 connection gets a connection error (GOAWAY with
// PROTOCOL_ERROR), and the gateway serves the next client.
func TestListener_MalformedHTTP2(t *testing.T) {
	b := startBackend(t, "b1")
	g := startGateway(t, render(t, baseConfig, baseData{GRPC: b.GRPCAddr, HTTP: b.HTTPAddr}))
	addr := g.addr("main")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, bufio.NewReader(conn))
	fr.AllowIllegalWrites = true
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	// DATA on stream 0 is a connection error of type PROTOCOL_ERROR (RFC 9113 6.1).
	if err := fr.WriteData(0, false, []byte("junk")); err != nil {
		t.Fatal(err)
	}
	var goAway *http2.GoAwayFrame
	for goAway == nil {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("connection ended without GOAWAY: %v", err)
		}
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			goAway = ga
		}
	}
	if goAway.ErrCode != http2.ErrCodeProtocol {
		t.Errorf("GOAWAY code %v, want PROTOCOL_ERROR", goAway.ErrCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := demoClient(t, addr).Echo(ctx, &demov1.EchoRequest{Message: "still here"}); err != nil {
		t.Errorf("after a malformed connection, a good call failed: %v", err)
	}
}
