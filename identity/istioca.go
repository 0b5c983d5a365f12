package identity

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	securityv1alpha1 "istio.io/api/security/v1alpha1"

	"github.com/meshgate/meshgate/config"
)

// Defaults of IstioCAConfig, istio-agent's.
const (
	DefaultTrustDomain    = "cluster.local"
	DefaultNamespace      = "istio-system"
	DefaultServiceAccount = "meshgate"
	DefaultClusterID      = "Kubernetes"
	DefaultCAServerName   = "istiod.istio-system.svc"
	DefaultCertTTL        = 24 * time.Hour
	// DefaultRequestTimeout bounds one CreateCertificate call.
	DefaultRequestTimeout = 30 * time.Second
)

// IstioCAConfig says where istiod's CA is and who the gateway is to it.
type IstioCAConfig struct {
	// Address is istiod's secure port, host:port (istiod.istio-system.svc:15012).
	Address string
	// RootCertFile is the PEM roots that verify istiod (the
	// istio-ca-root-cert configmap's root-cert.pem). It is read again for
	// each request, and its roots go into RootSecret too.
	RootCertFile string
	// TokenFile is the projected service-account token (audience
	// istio-ca), read again for each request.
	TokenFile string
	// ServerName is the name istiod's certificate must hold (default
	// istiod.istio-system.svc).
	ServerName string
	// TrustDomain, Namespace and ServiceAccount make the SPIFFE ID asked
	// for (defaults cluster.local, istio-system, meshgate). istiod issues
	// the token's identity whatever the CSR says.
	TrustDomain, Namespace, ServiceAccount string
	// ClusterID is sent as the ClusterID header: which cluster's API
	// server istiod checks the token with (default Kubernetes).
	ClusterID string
	// CertTTL is the validity asked for, whole seconds (default 24h);
	// istiod may cap it (its MAX_WORKLOAD_CERT_TTL).
	CertTTL time.Duration
	// RequestTimeout bounds one request (default 30s).
	RequestTimeout time.Duration
}

func (c *IstioCAConfig) setDefaults() {
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&c.ServerName, DefaultCAServerName)
	def(&c.TrustDomain, DefaultTrustDomain)
	def(&c.Namespace, DefaultNamespace)
	def(&c.ServiceAccount, DefaultServiceAccount)
	def(&c.ClusterID, DefaultClusterID)
	if c.CertTTL == 0 {
		c.CertTTL = DefaultCertTTL
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
}

// IstioCA gets the workload certificate from istiod's CA, as istio-agent
// does for a proxy, and renews it before it expires.
type IstioCA struct {
	publisher
	cfg  IstioCAConfig
	id   string
	opts options

	conn *grpc.ClientConn // used by Run's goroutine only
}

// NewIstioCA checks c and returns a source that writes into store. Nothing
// is dialled before Run.
func NewIstioCA(store *config.Store, c IstioCAConfig, opts ...Option) (*IstioCA, error) {
	c.setDefaults()
	if _, _, err := net.SplitHostPort(c.Address); err != nil {
		return nil, fmt.Errorf("identity: istio CA address %q: want host:port", c.Address)
	}
	if c.RootCertFile == "" {
		return nil, errors.New("identity: istio CA: a root certificate file is required (istiod's certificate is verified)")
	}
	if c.TokenFile == "" {
		return nil, errors.New("identity: istio CA: a token file is required")
	}
	if c.CertTTL < time.Second {
		return nil, fmt.Errorf("identity: istio CA: certificate TTL %v: want at least 1s", c.CertTTL)
	}
	id, err := SPIFFEID(c.TrustDomain, c.Namespace, c.ServiceAccount)
	if err != nil {
		return nil, err
	}
	o := newOptions(opts)
	if o.graceRatio <= 0 || o.graceRatio >= 1 {
		return nil, fmt.Errorf("identity: grace ratio %v: want between 0 and 1", o.graceRatio)
	}
	return &IstioCA{publisher: newPublisher(store), cfg: c, id: id, opts: o}, nil
}

// SPIFFEID is the identity asked for.
func (c *IstioCA) SPIFFEID() string { return c.id }

// Run gets a certificate, writes it, and renews it when the grace ratio of
// its lifetime is left, until ctx ends. A failed request is retried with
// backoff while the certificate in the store keeps serving.
func (c *IstioCA) Run(ctx context.Context) error {
	defer c.closeConn()
	log := c.opts.log.With("source", "istio-ca", "address", c.cfg.Address)
	failures := 0
	for {
		var wait time.Duration
		issued := c.opts.clock.Now()
		b, err := c.issue(ctx)
		var info Info
		if err == nil {
			info, err = c.publish(ctx, b)
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			failures++
			c.closeConn() // the next attempt dials again, reading the roots again (istiod's may have rotated)
			wait = backoff(failures, c.opts.retryBase, c.opts.retryMax, c.opts.rand())
			args := []any{"spiffe_id", c.id, "attempt", failures, "retry_in", wait, "error", err}
			cur, ok := c.Current()
			switch {
			case !ok:
				log.Error("workload certificate request failed; no certificate yet", args...)
			case !c.opts.clock.Now().Before(cur.NotAfter):
				log.Error("workload certificate renewal failed; the certificate in use has EXPIRED", append(args, "expired", cur.NotAfter)...)
			default:
				log.Warn("workload certificate renewal failed; the certificate in use is still valid", append(args, "expires", cur.NotAfter)...)
			}
		default:
			failures = 0
			now := c.opts.clock.Now()
			wait = max(renewDelay(now, issued, b.leaf.NotAfter, c.opts.graceRatio, c.opts.graceJitter, c.opts.rand()), c.opts.retryBase)
			if info.SPIFFEID != c.id {
				log.Warn("istiod issued another identity than the one asked for (it issues the token's)", "asked", c.id, "issued", info.SPIFFEID)
			}
			log.Info("workload certificate issued", "spiffe_id", info.SPIFFEID, "serial", info.Serial,
				"expires", info.NotAfter, "renew_in", wait)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.opts.clock.After(wait):
		}
	}
}

// issue makes a key, has istiod sign its CSR, and checks the answer.
func (c *IstioCA) issue(ctx context.Context) (*bundle, error) {
	keyPEM, csrPEM, err := newKeyAndCSR(c.id)
	if err != nil {
		return nil, err
	}
	roots, err := readRoots(c.cfg.RootCertFile)
	if err != nil {
		return nil, err
	}
	conn, err := c.dial(roots)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	// Sent as istio-agent's citadel client sends it; istiod's Kubernetes
	// authenticator reads "clusterid".
	rctx = metadata.AppendToOutgoingContext(rctx, "ClusterID", c.cfg.ClusterID)
	resp, err := securityv1alpha1.NewIstioCertificateServiceClient(conn).CreateCertificate(rctx, &securityv1alpha1.IstioCertificateRequest{
		Csr:              string(csrPEM),
		ValidityDuration: int64(c.cfg.CertTTL / time.Second),
	})
	if err != nil {
		return nil, fmt.Errorf("identity: istio CA %s: CreateCertificate: %w", c.cfg.Address, err)
	}
	return c.checkChain(resp.GetCertChain(), keyPEM, roots)
}

// checkChain reads istiod's answer, leaf first and root last: the leaf
// must match the key and chain to that root, which joins the file's roots
// as trust anchors.
func (c *IstioCA) checkChain(pems []string, keyPEM []byte, fileRoots []*x509.Certificate) (*bundle, error) {
	if len(pems) < 2 {
		return nil, fmt.Errorf("identity: istio CA: cert_chain has %d certificates, want the leaf and the root at least", len(pems))
	}
	var chain []*x509.Certificate
	for i, p := range pems {
		cs, err := parseCerts([]byte(p))
		if err != nil {
			return nil, fmt.Errorf("identity: istio CA: cert_chain[%d]: %w", i, err)
		}
		chain = append(chain, cs...)
	}
	root := chain[len(chain)-1]
	// The secret holds the certificates as parsed, re-encoded: not the
	// answer's text, in which a certificate split across two entries
	// would make a block that was never checked.
	b, err := newBundle(encodeCerts(chain), keyPEM, mergeCerts(fileRoots, root))
	if err != nil {
		return nil, fmt.Errorf("identity: istio CA: %w", err)
	}
	// The answer stands on its own: the leaf chains to the answer's root
	// (which becomes a trust anchor, so it is not taken on the file's word).
	pool, inter := x509.NewCertPool(), x509.NewCertPool()
	pool.AddCert(root)
	for _, ic := range chain[1 : len(chain)-1] {
		inter.AddCert(ic)
	}
	if _, err := b.leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: c.opts.clock.Now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("identity: istio CA: the issued certificate does not verify: %w", err)
	}
	return b, nil
}

// dial connects to istiod over TLS verified by roots, with the token on
// every call. The connection is kept until a request fails.
func (c *IstioCA) dial(roots []*x509.Certificate) (*grpc.ClientConn, error) {
	if c.conn != nil {
		return c.conn, nil
	}
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	creds := credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: c.cfg.ServerName, MinVersion: tls.VersionTLS12})
	conn, err := grpc.NewClient(c.cfg.Address, grpc.WithTransportCredentials(creds),
		grpc.WithPerRPCCredentials(TokenCredentials(c.cfg.TokenFile)))
	if err != nil {
		return nil, fmt.Errorf("identity: istio CA %s: %w", c.cfg.Address, err)
	}
	c.conn = conn
	return conn, nil
}

func (c *IstioCA) closeConn() {
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn = nil
	}
}

func readRoots(file string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("identity: root certificates: %w", err)
	}
	roots, err := parseCerts(data)
	if err != nil {
		return nil, fmt.Errorf("identity: root certificates %s: %w", file, err)
	}
	return roots, nil
}
