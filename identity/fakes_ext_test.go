package identity_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	securityv1alpha1 "istio.io/api/security/v1alpha1"

	"github.com/meshgate/meshgate/config"
)

const waitFor = 5 * time.Second

// fakeClock is a clock the test moves: every wait a source asks for is
// handed to the test (next), which checks its length and ends it (fire).
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits chan *clockWait
}

type clockWait struct {
	d  time.Duration
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	// Whole seconds, as certificates keep time.
	return &fakeClock{now: time.Now().Truncate(time.Second), waits: make(chan *clockWait, 16)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	w := &clockWait{d: d, ch: make(chan time.Time, 1)}
	c.waits <- w
	return w.ch
}

// next is the next wait the source asked for.
func (c *fakeClock) next(t *testing.T) *clockWait {
	t.Helper()
	select {
	case w := <-c.waits:
		return w
	case <-time.After(waitFor):
		t.Fatal("the source did not wait for anything within 5s")
		return nil
	}
}

// fire moves the clock to the end of w and ends it.
func (c *fakeClock) fire(w *clockWait) {
	c.mu.Lock()
	c.now = c.now.Add(w.d)
	now := c.now
	c.mu.Unlock()
	w.ch <- now
}

// testCA is a root and an intermediate that signs workload certificates.
type testCA struct {
	root, inter       *x509.Certificate
	rootKey, interKey *ecdsa.PrivateKey
	rootPEM, interPEM []byte
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func serialNumber(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func sign(t *testing.T, tmpl, parent *x509.Certificate, pub any, key *ecdsa.PrivateKey) (*x509.Certificate, []byte) {
	t.Helper()
	c, p, err := signCert(tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	return c, p
}

func signCert(tmpl, parent *x509.Certificate, pub any, key *ecdsa.PrivateKey) (*x509.Certificate, []byte, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		return nil, nil, err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return c, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// newTestCA is valid an hour around now, in the fake clock's time and the
// real one (TLS handshakes read the latter).
func newTestCA(t *testing.T, name string, now time.Time) *testCA {
	t.Helper()
	ca := &testCA{rootKey: newKey(t), interKey: newKey(t)}
	rootTmpl := &x509.Certificate{SerialNumber: serialNumber(t), Subject: pkix.Name{CommonName: name + " root", Organization: []string{name}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(48 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	ca.root, ca.rootPEM = sign(t, rootTmpl, rootTmpl, &ca.rootKey.PublicKey, ca.rootKey)
	interTmpl := &x509.Certificate{SerialNumber: serialNumber(t), Subject: pkix.Name{CommonName: name + " intermediate", Organization: []string{name}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(48 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	ca.inter, ca.interPEM = sign(t, interTmpl, ca.root, &ca.interKey.PublicKey, ca.rootKey)
	return ca
}

// workload signs a workload certificate for pub (Istio's: the SPIFFE URIs,
// client and server use) valid from now for ttl; it returns its PEM.
func (ca *testCA) workload(pub any, uris []*url.URL, now time.Time, ttl time.Duration) (*x509.Certificate, []byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, nil, err
	}
	return signCert(&x509.Certificate{SerialNumber: serial, NotBefore: now, NotAfter: now.Add(ttl), URIs: uris,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}, ca.inter, pub, ca.interKey)
}

// leafFiles are a workload certificate's chain (leaf, intermediate) and
// key, as files hold them.
func (ca *testCA) leafFiles(t *testing.T, id string) (leaf *x509.Certificate, chainPEM, keyPEM []byte) {
	t.Helper()
	key := newKey(t)
	u, err := url.Parse(id)
	if err != nil {
		t.Fatal(err)
	}
	leaf, leafPEM, err := ca.workload(&key.PublicKey, []*url.URL{u}, time.Now().Add(-time.Minute), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return leaf, append(leafPEM, ca.interPEM...), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// servingCert is istiod's certificate, signed by the root.
func (ca *testCA) servingCert(t *testing.T, dns string) tls.Certificate {
	t.Helper()
	key := newKey(t)
	_, certPEM := sign(t, &x509.Certificate{SerialNumber: serialNumber(t), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{dns}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		ca.root, &key.PublicKey, ca.rootKey)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// caCall is what one CreateCertificate call brought.
type caCall struct {
	authorization, clusterID string
	uris                     []string
	validity                 int64
}

// fakeIstiod serves istio.v1.auth.IstioCertificateService as istiod does:
// it signs the CSR's key for validity_duration seconds from the clock's
// now, and answers leaf, intermediate, root.
type fakeIstiod struct {
	securityv1alpha1.UnimplementedIstioCertificateServiceServer
	ca    *testCA
	clock interface{ Now() time.Time }
	calls chan caCall

	mu       sync.Mutex
	failNext int
	// answer, when set, rewrites the chain it answers.
	answer func(chain []string) []string
}

func startFakeIstiod(t *testing.T, ca *testCA, clock interface{ Now() time.Time }) (*fakeIstiod, string) {
	t.Helper()
	f := &fakeIstiod{ca: ca, clock: clock, calls: make(chan caCall, 16)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{ca.servingCert(t, "istiod.istio-system.svc")}, MinVersion: tls.VersionTLS12,
	})))
	securityv1alpha1.RegisterIstioCertificateServiceServer(srv, f)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return f, ln.Addr().String()
}

func (f *fakeIstiod) fail(n int) {
	f.mu.Lock()
	f.failNext = n
	f.mu.Unlock()
}

func first(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

func (f *fakeIstiod) CreateCertificate(ctx context.Context, req *securityv1alpha1.IstioCertificateRequest) (*securityv1alpha1.IstioCertificateResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	call := caCall{authorization: first(md, "authorization"), clusterID: first(md, "clusterid"), validity: req.GetValidityDuration()}
	block, _ := pem.Decode([]byte(req.GetCsr()))
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, status.Error(codes.InvalidArgument, "csr is not a PEM CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err == nil {
		err = csr.CheckSignature()
	}
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "csr: %v", err)
	}
	for _, u := range csr.URIs {
		call.uris = append(call.uris, u.String())
	}
	f.calls <- call
	f.mu.Lock()
	failing := f.failNext > 0
	if failing {
		f.failNext--
	}
	answer := f.answer
	f.mu.Unlock()
	if failing {
		return nil, status.Error(codes.Unavailable, "injected failure")
	}
	_, leafPEM, err := f.ca.workload(csr.PublicKey, csr.URIs, f.clock.Now(), time.Duration(req.GetValidityDuration())*time.Second)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "sign: %v", err)
	}
	chain := []string{string(leafPEM), string(f.ca.interPEM), string(f.ca.rootPEM)}
	if answer != nil {
		chain = answer(chain)
	}
	return &securityv1alpha1.IstioCertificateResponse{CertChain: chain}, nil
}

// next is the next call the CA got.
func (f *fakeIstiod) next(t *testing.T) caCall {
	t.Helper()
	select {
	case c := <-f.calls:
		return c
	case <-time.After(waitFor):
		t.Fatal("istiod got no CreateCertificate call within 5s")
		return caCall{}
	}
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// storeSecrets reads the two identity secrets of a Set: the certificate
// (its chain parsed, leaf first) and the trust anchors.
func storeSecrets(t *testing.T, set *config.Set) (chain []*x509.Certificate, chainPEM, keyPEM []byte, roots []*x509.Certificate) {
	t.Helper()
	def, rootca := set.Secret("default"), set.Secret("ROOTCA")
	if def == nil || rootca == nil {
		t.Fatalf("secrets default %v and ROOTCA %v, want both in the store", def, rootca)
	}
	for _, name := range []string{"default", "ROOTCA"} {
		if r := set.Get(config.SecretType, name); r.Source != "identity" {
			t.Errorf("secret %s has source %q, want identity", name, r.Source)
		}
	}
	chainPEM = def.GetTlsCertificate().GetCertificateChain().GetInlineBytes()
	keyPEM = def.GetTlsCertificate().GetPrivateKey().GetInlineBytes()
	if _, err := tls.X509KeyPair(chainPEM, keyPEM); err != nil {
		t.Fatalf("the default secret's chain and key: %v", err)
	}
	return parsePEM(t, chainPEM), chainPEM, keyPEM, parsePEM(t, rootca.GetValidationContext().GetTrustedCa().GetInlineBytes())
}

func parsePEM(t *testing.T, data []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return out
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}

// changes is a store whose every committed change is sent on the channel.
func changes() (*config.Store, chan *config.Set) {
	ch := make(chan *config.Set, 16)
	return config.NewStore(config.ConsumerFunc(func(_ context.Context, next *config.Set, _ config.Change) error {
		ch <- next
		return nil
	})), ch
}

var errTimeout = errors.New("timed out")

func nextChange(ch chan *config.Set) (*config.Set, error) {
	select {
	case s := <-ch:
		return s, nil
	case <-time.After(waitFor):
		return nil, errTimeout
	}
}
