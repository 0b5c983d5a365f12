package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/identity"
	"github.com/meshgate/meshgate/server"
	"github.com/meshgate/meshgate/xds"
)

// istioMTLSConfig: a Gateway on Port routing gRPC to a ServiceEntry whose
// one endpoint requires mTLS from the mesh, with a DestinationRule
// ISTIO_MUTUAL.
const istioMTLSConfig = `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw, namespace: istio-system }
spec:
  selector: { istio: ingressgateway }
  servers:
  - port: { number: {{.Port}}, name: http, protocol: HTTP }
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: backend, namespace: default }
spec:
  hosts: [backend.example.com]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [ { number: 9000, name: grpc, protocol: GRPC } ]
  subjectAltNames: ["spiffe://cluster.local/ns/default/sa/backend"]
  endpoints: [ { address: 127.0.0.1, ports: { grpc: {{.BackendPort}} } } ]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: backend, namespace: default }
spec:
  host: backend.example.com
  trafficPolicy: { tls: { mode: ISTIO_MUTUAL } }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: routes, namespace: default }
spec:
  hosts: ["*"]
  gateways: [istio-system/gw]
  http:
  - route: [ { destination: { host: backend.example.com, port: { number: 9000 } } } ]
`

// The gateway as an Istio ingress gateway in a STRICT mesh: it gets its
// workload certificate from istiod's own CA (a CSR with its SPIFFE ID, a
// service-account token), joins istiod's secure xDS port (TLS + token), and
// reaches a grpc-go backend that requires a client certificate of the mesh
// through a DestinationRule ISTIO_MUTUAL: the backend sees the gateway's
// SPIFFE ID.
func TestIstio_WorkloadIdentityAndIstioMutual(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs Istio's discovery server; skipped with -short")
	}
	ist := startIstiodWith(t, "", istiodOptions{Secure: true})
	caCert := meshCA(t, ist)
	backendAddr, seen := startMTLSBackend(t, caCert, "spiffe://cluster.local/ns/default/sa/backend")
	data := struct{ Port, BackendPort string }{port(freeAddr(t)), port(backendAddr)}
	ist.apply(string(render(t, istioMTLSConfig, data)))

	srv, ca := startSecureGateway(t, ist)
	info, _ := ca.Current()
	if info.SPIFFEID != "spiffe://cluster.local/ns/istio-system/sa/meshgate" {
		t.Errorf("SPIFFE ID = %q, want spiffe://cluster.local/ns/istio-system/sa/meshgate", info.SPIFFEID)
	}
	ctx := context.Background()

	listener := "0.0.0.0_" + data.Port
	var resp *healthpb.HealthCheckResponse
	waitFor(t, "a gRPC call through the gateway over ISTIO_MUTUAL", func() bool {
		addr := srv.ListenerAddr(listener)
		if addr == "" {
			return false
		}
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return false
		}
		defer cc.Close()
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		defer ccancel()
		resp, err = healthpb.NewHealthClient(cc).Check(cctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Logf("not yet: %v", err)
		}
		return err == nil
	})
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health = %v, want SERVING", resp.GetStatus())
	}
	select {
	case c := <-seen:
		if id := c.URIs[0].String(); id != "spiffe://cluster.local/ns/istio-system/sa/meshgate" {
			t.Errorf("the backend saw client %q, want the gateway's SPIFFE ID", id)
		}
	default:
		t.Error("the backend saw no client certificate")
	}
}

// startSecureGateway runs meshgate as an Istio gateway of a STRICT mesh:
// its identity from istiod's CA, its config from istiod's secure port. It
// returns once the workload certificate is in.
func startSecureGateway(t *testing.T, ist *istiod, tune ...func(*identity.IstioCAConfig)) (*server.Server, *identity.IstioCA) {
	t.Helper()
	tokenFile := filepath.Join(t.TempDir(), "istio-token")
	if err := os.WriteFile(tokenFile, []byte(ist.mintToken("istio-system", "meshgate")), 0o600); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv := server.New(server.Options{Logger: log, DrainTimeout: 2 * time.Second})
	store := config.NewStore(srv)
	ctx, cancel := context.WithCancel(context.Background())
	caConf := identity.IstioCAConfig{Address: ist.secure, RootCertFile: ist.rootFile, TokenFile: tokenFile}
	for _, f := range tune {
		f(&caConf)
	}
	ca, err := identity.NewIstioCA(store, caConf, identity.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	node, err := config.IstioNode(config.IstioNodeConfig{})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ist.rootPEM)
	client := xds.New(store, xds.Options{Address: ist.secure, Node: node, InitialFetchTimeout: 5 * time.Second,
		TLS: &tls.Config{RootCAs: roots, ServerName: "istiod.istio-system.svc"}, Token: identity.TokenCredentials(tokenFile),
		BackoffBase: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond, Logger: log})
	done := make(chan struct{}, 2)
	go func() { _ = ca.Run(ctx); done <- struct{}{} }()
	go func() { _ = client.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() {
		cancel()
		<-done
		<-done
		_ = srv.Shutdown(context.Background())
	})

	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := ca.WaitReady(wctx); err != nil {
		t.Fatalf("no workload certificate from istiod's CA: %v", err)
	}
	return srv, ca
}

// startMTLSBackend runs a grpc-go health server that requires a client
// certificate of the mesh root, with a certificate for id signed by ca,
// and reports each caller's SPIFFE ID.
func startMTLSBackend(t *testing.T, ca tls.Certificate, id string) (string, <-chan *x509.Certificate) {
	t.Helper()
	root, err := x509.ParseCertificate(ca.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	leafKey, leafDER := issueLeaf(t, root, ca, id)
	pool := x509.NewCertPool()
	pool.AddCert(root)
	creds := credentials.NewTLS(&tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool,
		Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: leafKey}}})
	seen := make(chan *x509.Certificate, 4096)
	s := grpc.NewServer(grpc.Creds(creds), grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if p, ok := peer.FromContext(ctx); ok {
			if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 && len(ti.State.PeerCertificates[0].URIs) > 0 {
				select {
				case seen <- ti.State.PeerCertificates[0]:
				default:
				}
			}
		}
		return h(ctx, req)
	}))
	healthpb.RegisterHealthServer(s, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return lis.Addr().String(), seen
}

func issueLeaf(t *testing.T, root *x509.Certificate, ca tls.Certificate, id string) (any, []byte) {
	return issueLeafUntil(t, root, ca, id, time.Now().Add(time.Hour))
}

func issueLeafUntil(t *testing.T, root *x509.Certificate, ca tls.Certificate, id string, notAfter time.Time) (any, []byte) {
	t.Helper()
	u, err := url.Parse(id)
	if err != nil {
		t.Fatal(err)
	}
	leafKey, err := ecdsaKey()
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{},
		NotBefore: notAfter.Add(-2 * time.Hour), NotAfter: notAfter, URIs: []*url.URL{u},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root, leafKey.Public(), ca.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return leafKey, der
}

func ecdsaKey() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

// istioAutoMTLSConfig: PeerAuthentication STRICT for the mesh, and one
// ServiceEntry with two endpoints: one labelled as a mesh workload
// (security.istio.io/tlsMode: istio, which requires mTLS) and one
// plaintext-only, with no DestinationRule: Istio's auto mTLS.
const istioAutoMTLSConfig = `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw, namespace: istio-system }
spec:
  selector: { istio: ingressgateway }
  servers:
  - port: { number: {{.Port}}, name: http, protocol: HTTP }
    hosts: ["*"]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: istio-system }
spec:
  mtls: { mode: STRICT }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: backend, namespace: default }
spec:
  hosts: [backend.example.com]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [ { number: 9000, name: grpc, protocol: GRPC } ]
  endpoints:
  - { address: 127.0.0.1, ports: { grpc: {{.MeshPort}} }, labels: { security.istio.io/tlsMode: istio } }
  - { address: 127.0.0.2, ports: { grpc: {{.PlainPort}} } }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: routes, namespace: default }
spec:
  hosts: ["*"]
  gateways: [istio-system/gw]
  http:
  - route: [ { destination: { host: backend.example.com, port: { number: 9000 } } } ]
`

// Auto mTLS: the mesh endpoint is reached over mTLS with the gateway's
// identity and the plaintext-only one in plaintext, in one cluster, every
// call answered.
func TestIstio_AutoMTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs Istio's discovery server; skipped with -short")
	}
	ist := startIstiodWith(t, "", istiodOptions{Secure: true})
	caCert := meshCA(t, ist)
	meshAddr, seen := startMTLSBackend(t, caCert, "spiffe://cluster.local/ns/default/sa/backend")
	plainAddr, plainCalls := startPlainBackend(t, "127.0.0.2:0")
	data := struct{ Port, MeshPort, PlainPort string }{port(freeAddr(t)), port(meshAddr), port(plainAddr)}
	ist.apply(string(render(t, istioAutoMTLSConfig, data)))
	srv, _ := startSecureGateway(t, ist)

	hc := gatewayHealthClient(t, srv, "0.0.0.0_"+data.Port)
	waitFor(t, "the backend's cluster", func() bool {
		_, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{})
		return err == nil
	})
	const calls = 40
	for i := range calls {
		if _, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	mesh := 0
	for len(seen) > 0 {
		if id := (<-seen).URIs[0].String(); id != "spiffe://cluster.local/ns/istio-system/sa/meshgate" {
			t.Errorf("the mesh backend saw client %q, want the gateway's SPIFFE ID", id)
		}
		mesh++
	}
	plain := int(plainCalls.Load())
	t.Logf("mesh endpoint (mTLS): %d calls, plaintext endpoint: %d calls", mesh, plain)
	if mesh == 0 || plain == 0 {
		t.Errorf("mesh endpoint %d calls, plaintext endpoint %d calls: want both reached", mesh, plain)
	}
}

// startPlainBackend runs a plaintext grpc-go health server on addr and
// counts its calls.
func startPlainBackend(t *testing.T, addr string) (string, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	s := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		n.Add(1)
		return h(ctx, req)
	}))
	healthpb.RegisterHealthServer(s, health.NewServer())
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return lis.Addr().String(), &n
}

// Rotation under load: with 6s certificates the gateway renews at half
// life while gRPC calls run through ISTIO_MUTUAL without a pause, past the
// expiry of the first certificate; no call fails. (An upstream connection
// keeps the certificate it was opened with, as a TLS session does; new
// connections present the current one.)
func TestIstio_CertificateRotationUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs Istio's discovery server; skipped with -short")
	}
	ist := startIstiodWith(t, "", istiodOptions{Secure: true})
	caCert := meshCA(t, ist)
	backendAddr, seen := startMTLSBackend(t, caCert, "spiffe://cluster.local/ns/default/sa/backend")
	data := struct{ Port, BackendPort string }{port(freeAddr(t)), port(backendAddr)}
	ist.apply(string(render(t, istioMTLSConfig, data)))
	srv, ca := startSecureGateway(t, ist, func(c *identity.IstioCAConfig) { c.CertTTL = 6 * time.Second })
	first, _ := ca.Current()

	hc := gatewayHealthClient(t, srv, "0.0.0.0_"+data.Port)
	waitFor(t, "the first call", func() bool {
		_, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{})
		return err == nil
	})
	// Calls from 4 callers until the first certificate has expired and
	// the gateway holds another.
	serials := map[string]bool{}
	var failed, calls atomic.Int64
	deadline := first.NotAfter.Add(time.Second)
	for time.Now().Before(deadline) {
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 25 {
					calls.Add(1)
					if _, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
						failed.Add(1)
						t.Logf("call failed: %v", err)
					}
				}
			}()
		}
		wg.Wait()
		for len(seen) > 0 {
			serials[(<-seen).SerialNumber.Text(16)] = true
		}
	}
	cur, _ := ca.Current()
	t.Logf("%d calls, %d failed; certificates %s then %s; serials the backend saw: %v", calls.Load(), failed.Load(), first.Serial, cur.Serial, serials)
	if failed.Load() != 0 {
		t.Errorf("%d of %d calls failed during rotation", failed.Load(), calls.Load())
	}
	if cur.Serial == first.Serial || !cur.NotAfter.After(first.NotAfter) {
		t.Fatalf("the certificate was not renewed before the first expired (serial %s, expiry %v)", cur.Serial, cur.NotAfter)
	}
	if len(serials) == 0 {
		t.Error("the backend saw no client certificate")
	}
}

// selfSignedCA makes a CA that is not the mesh's.
func selfSignedCA(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsaKey()
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "not the mesh"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// An upstream whose certificate the mesh would not trust is refused, and
// the caller gets UNAVAILABLE saying why: a certificate for another
// identity, one from another root, an expired one.
func TestIstio_IstioMutualRefusesBadUpstreams(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs Istio's discovery server; skipped with -short")
	}
	ist := startIstiodWith(t, "", istiodOptions{Secure: true})
	mesh := meshCA(t, ist)
	meshRoot, _ := x509.ParseCertificate(mesh.Certificate[0])
	other := selfSignedCA(t)
	otherRoot, _ := x509.ParseCertificate(other.Certificate[0])
	const backendID = "spiffe://cluster.local/ns/default/sa/backend"
	tests := []struct {
		name      string
		root      *x509.Certificate
		signer    tls.Certificate
		id        string
		notAfter  time.Time
		wantInErr string
	}{
		{name: "another identity", root: meshRoot, signer: mesh, id: "spiffe://cluster.local/ns/default/sa/impostor", notAfter: time.Now().Add(time.Hour), wantInErr: "subject alt name"},
		{name: "another root", root: otherRoot, signer: other, id: backendID, notAfter: time.Now().Add(time.Hour), wantInErr: "unknown authority"},
		{name: "expired", root: meshRoot, signer: mesh, id: backendID, notAfter: time.Now().Add(-time.Minute), wantInErr: "expired"},
	}
	srvAddr := port(freeAddr(t))
	ist.apply(string(render(t, istioMTLSConfig, struct{ Port, BackendPort string }{srvAddr, port(freeAddr(t))})))
	srv, _ := startSecureGateway(t, ist)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, der := issueLeafUntil(t, tt.root, tt.signer, tt.id, tt.notAfter)
			pool := x509.NewCertPool()
			pool.AddCert(meshRoot)
			s := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool,
				Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})))
			healthpb.RegisterHealthServer(s, health.NewServer())
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go func() { _ = s.Serve(lis) }()
			defer s.Stop()
			ist.apply(string(render(t, istioMTLSConfig, struct{ Port, BackendPort string }{srvAddr, port(lis.Addr().String())})))
			hc := gatewayHealthClient(t, srv, "0.0.0.0_"+srvAddr)
			var last error
			waitFor(t, "the call to fail for the backend's certificate", func() bool {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				_, last = hc.Check(ctx, &healthpb.HealthCheckRequest{})
				return status.Code(last) == codes.Unavailable && strings.Contains(last.Error(), tt.wantInErr)
			})
			t.Logf("refused: %v", last)
		})
	}
}

// meshCA is the harness CA's certificate and key, to sign backends'
// certificates as the mesh would.
func meshCA(t *testing.T, ist *istiod) tls.Certificate {
	t.Helper()
	ca, err := tls.LoadX509KeyPair(filepath.Join(ist.caDir, "ca-cert.pem"), filepath.Join(ist.caDir, "ca-key.pem"))
	if err != nil {
		t.Fatalf("the mesh CA's key: %v", err)
	}
	return ca
}

// gatewayHealthClient waits for the gateway's listener and returns a gRPC
// health client through it (closed with the test).
func gatewayHealthClient(t *testing.T, srv *server.Server, listener string) healthpb.HealthClient {
	t.Helper()
	waitFor(t, "the gateway's listener", func() bool { return srv.ListenerAddr(listener) != "" })
	cc, err := grpc.NewClient(srv.ListenerAddr(listener), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return healthpb.NewHealthClient(cc)
}
