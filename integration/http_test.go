package integration

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	demov1 "github.com/meshgate/meshgate/proto/demo/v1"
)

// echoed is what the demo HTTP echo reports about a request.
type echoed struct {
	Server  string            `json:"server"`
	Method  string            `json:"method"`
	Host    string            `json:"host"`
	Path    string            `json:"path"`
	Query   string            `json:"query"`
	Proto   string            `json:"proto"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
}

// errorJSON is the gateway's HTTP error body.
type errorJSON struct {
	Error struct {
		Code    int    `json:"code"`
		Status  string `json:"status"`
		Message string `json:"message"`
	} `json:"error"`
}

func do(t *testing.T, c *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", req.Method, req.URL, err)
	}
	return resp, body
}

func newReq(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

const routingConfig = `
listeners:
  - name: main
    address: 127.0.0.1:0
    max_request_headers_kb: 8
    max_request_body_bytes: 1024
    max_grpc_message_bytes: 1024
    virtual_hosts:
      - name: api
        domains: ["api.example.com", "*.api.example.com"]
        routes:
          - match: { prefix: /v1/ }
            prefix_rewrite: /echo/
            cluster: http
            host_rewrite: backend.internal
      - name: all
        routes:
          - name: grpc
            match: { prefix: /demo.v1.DemoService/, grpc: true }
            cluster: grpc
            timeout: 0s
          - name: canary
            match:
              prefix: /echo
              headers: [ { name: x-canary, exact: "yes" } ]
            cluster: http
            request_headers_to_set: { x-route: canary }
            response_headers_to_set: { x-route: canary }
          - name: regex
            match: { regex: "/items/[0-9]+" }
            regex_rewrite: { pattern: "^/items/([0-9]+)$", substitution: "/echo/item-\\1" }
            cluster: http
          - name: echo
            match: { prefix: /echo }
            cluster: http
            request_headers_to_remove: [ x-secret ]
            request_headers_to_set: { x-route: echo }
          - name: nowhere
            match: { prefix: /down }
            cluster: down
          - name: direct
            match: { path: /teapot }
            direct_response: { status: 418, body: "short and stout" }
          - name: moved
            match: { prefix: /old/ }
            redirect: { prefix_rewrite: /echo/, code: 301 }
clusters:
  - name: grpc
    protocol: grpc
    endpoints: [ "{{.GRPC}}" ]
  - name: http
    endpoints: [ "{{.HTTP}}" ]
  - name: down
    connect_timeout: 1s
    endpoints: [ "{{.Down}}" ]
`

// closedPort returns an address nothing listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func TestHTTP_Routing(t *testing.T) {
	b := startBackend(t, "b1")
	g := startGateway(t, render(t, routingConfig, map[string]string{"GRPC": b.GRPCAddr, "HTTP": b.HTTPAddr, "Down": closedPort(t)}))
	base := "http://" + g.addr("main")
	c := httpClient(t)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	t.Run("proxied with headers edited", func(t *testing.T) {
		req := newReq(t, "POST", base+"/echo/a%2Fb?x=1&y=%20", strings.NewReader("payload"))
		req.Header.Set("X-Secret", "s3cr3t")
		resp, body := do(t, c, req)
		var e echoed
		if err := json.Unmarshal(body, &e); err != nil || resp.StatusCode != 200 {
			t.Fatalf("status %d body %s", resp.StatusCode, body)
		}
		if e.Body != "payload" || e.Query != "x=1&y=%20" || e.Headers["x-route"] != "echo" || e.Headers["x-secret"] != "" {
			t.Errorf("backend saw %+v", e)
		}
		if e.Headers["x-forwarded-for"] != "127.0.0.1" || e.Headers["x-forwarded-proto"] != "http" {
			t.Errorf("forwarded headers = %q, %q", e.Headers["x-forwarded-for"], e.Headers["x-forwarded-proto"])
		}
	})
	t.Run("header match wins by order", func(t *testing.T) {
		req := newReq(t, "GET", base+"/echo", nil)
		req.Header.Set("X-Canary", "yes")
		resp, body := do(t, c, req)
		var e echoed
		_ = json.Unmarshal(body, &e)
		if e.Headers["x-route"] != "canary" || resp.Header.Get("X-Route") != "canary" {
			t.Errorf("canary request: backend saw x-route %q, response x-route %q", e.Headers["x-route"], resp.Header.Get("X-Route"))
		}
	})
	t.Run("virtual host by wildcard, prefix and host rewrite", func(t *testing.T) {
		req := newReq(t, "GET", base+"/v1/users", nil)
		req.Host = "eu.api.example.com"
		_, body := do(t, c, req)
		var e echoed
		_ = json.Unmarshal(body, &e)
		if e.Path != "/echo/users" || e.Host != "backend.internal" {
			t.Errorf("backend saw path %q host %q, want /echo/users backend.internal", e.Path, e.Host)
		}
	})
	t.Run("regex rewrite", func(t *testing.T) {
		_, body := do(t, c, newReq(t, "GET", base+"/items/42", nil))
		var e echoed
		_ = json.Unmarshal(body, &e)
		if e.Path != "/echo/item-42" {
			t.Errorf("backend saw path %q, want /echo/item-42", e.Path)
		}
	})
	t.Run("direct response", func(t *testing.T) {
		resp, body := do(t, c, newReq(t, "GET", base+"/teapot", nil))
		if resp.StatusCode != 418 || string(body) != "short and stout" {
			t.Errorf("got %d %q", resp.StatusCode, body)
		}
	})
	t.Run("redirect", func(t *testing.T) {
		resp, _ := do(t, c, newReq(t, "GET", base+"/old/x?y=1", nil))
		if want := base + "/echo/x?y=1"; resp.StatusCode != 301 || resp.Header.Get("Location") != want {
			t.Errorf("got %d Location %q, want 301 %q", resp.StatusCode, resp.Header.Get("Location"), want)
		}
	})

	errorCases := []struct {
		name     string
		req      func() *http.Request
		code     int
		contains string
	}{
		{"no route", func() *http.Request { return newReq(t, "GET", base+"/nothing", nil) }, 404, "no route"},
		{"connect failure names the cluster", func() *http.Request { return newReq(t, "GET", base+"/down", nil) }, 503, `cluster "down"`},
		{"body over the limit", func() *http.Request {
			return newReq(t, "POST", base+"/echo", bytes.NewReader(make([]byte, 4096)))
		}, 413, "limit"},
		{"chunked body over the limit", func() *http.Request {
			r := newReq(t, "POST", base+"/echo", io.MultiReader(bytes.NewReader(make([]byte, 4096))))
			r.ContentLength = -1
			return r
		}, 413, "limit"},
		{"headers over the limit", func() *http.Request {
			r := newReq(t, "GET", base+"/echo", nil)
			r.Header.Set("X-Big", strings.Repeat("a", 16<<10))
			return r
		}, 431, ""},
	}
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, c, tc.req())
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tc.code)
			}
			if tc.contains == "" {
				return
			}
			var e errorJSON
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("error body is not JSON: %q", body)
			}
			if e.Error.Code != tc.code || !strings.Contains(e.Error.Message, tc.contains) {
				t.Errorf("error body %+v, want code %d and a message with %q", e.Error, tc.code, tc.contains)
			}
		})
	}

	t.Run("gRPC errors", func(t *testing.T) {
		cc := dialGRPC(t, g.addr("main"))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := cc.Invoke(ctx, "/no.Such/Method", &demov1.EchoRequest{}, &demov1.EchoResponse{})
		if status.Code(err) != codes.Unimplemented {
			t.Errorf("unknown method = %v, want Unimplemented", err)
		}
		_, err = demov1.NewDemoServiceClient(cc).Echo(ctx, &demov1.EchoRequest{Payload: make([]byte, 4096)})
		if st := status.Convert(err); st.Code() != codes.ResourceExhausted {
			t.Errorf("4 KiB message over a 1 KiB limit = %v, want ResourceExhausted", err)
		}
		resp, err := demov1.NewDemoServiceClient(cc).Echo(ctx, &demov1.EchoRequest{Message: "fits"})
		if err != nil || resp.GetMessage() != "fits" {
			t.Errorf("small message = %v, %v", resp, err)
		}
	})
}

// One port serves HTTP/1.1, cleartext HTTP/2 and TLS with ALPN h2 and
// http/1.1.
func TestListener_OnePortAllProtocols(t *testing.T) {
	b := startBackend(t, "b1")
	dir := t.TempDir()
	pool := writeCert(t, dir)
	cfg := render(t, `
listeners:
  - name: main
    address: 127.0.0.1:0
    tls: { cert_file: cert.pem, key_file: key.pem, allow_plaintext: true }
    virtual_hosts:
      - routes:
          - match: { prefix: /demo.v1.DemoService/ }
            cluster: grpc
            timeout: 0s
          - match: { prefix: /echo }
            cluster: http
clusters:
  - { name: grpc, protocol: grpc, endpoints: [ "{{.GRPCAddr}}" ] }
  - { name: http, endpoints: [ "{{.HTTPAddr}}" ] }
`, b)
	g := startGatewayIn(t, dir, cfg)
	addr := g.addr("main")

	clients := []struct {
		name      string
		transport *http.Transport
		scheme    string
		wantProto string
	}{
		{"HTTP/1.1 cleartext", &http.Transport{}, "http", "HTTP/1.1"},
		{"HTTP/2 cleartext", h2cTransport(), "http", "HTTP/2.0"},
		{"TLS HTTP/1.1", &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}}}, "https", "HTTP/1.1"},
		{"TLS HTTP/2", &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}, "https", "HTTP/2.0"},
	}
	for _, tc := range clients {
		t.Run(tc.name, func(t *testing.T) {
			defer tc.transport.CloseIdleConnections()
			c := &http.Client{Transport: tc.transport, Timeout: 5 * time.Second}
			resp, body := do(t, c, newReq(t, "GET", tc.scheme+"://localhost:"+port(addr)+"/echo", nil))
			if resp.StatusCode != 200 || resp.Proto != tc.wantProto {
				t.Fatalf("got %d over %s (%s), want 200 over %s", resp.StatusCode, resp.Proto, body, tc.wantProto)
			}
			var e echoed
			_ = json.Unmarshal(body, &e)
			wantFwd := tc.scheme
			if e.Headers["x-forwarded-proto"] != wantFwd {
				t.Errorf("x-forwarded-proto = %q, want %q", e.Headers["x-forwarded-proto"], wantFwd)
			}
		})
	}
	t.Run("gRPC over TLS", func(t *testing.T) {
		cc, err := grpc.NewClient("localhost:"+port(addr), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool})))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := demov1.NewDemoServiceClient(cc).Echo(ctx, &demov1.EchoRequest{Message: "over tls"})
		if err != nil || resp.GetMessage() != "over tls" {
			t.Fatalf("Echo over TLS = %v, %v", resp, err)
		}
	})
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

func h2cTransport() *http.Transport {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Transport{Protocols: &p}
}

// writeCert writes a self-signed certificate for localhost to dir and
// returns a pool that trusts it.
func writeCert(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("cert.pem", certPEM)
	write("key.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return pool
}
