package identity

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"

	"github.com/meshgate/meshgate/config"
)

// Names of the store source and of the secrets it writes (istio-agent's
// SDS resource names, which Istio's listeners and clusters ask for).
const (
	StoreSource = "identity"
	CertSecret  = "default"
	RootSecret  = "ROOTCA"
)

// Source keeps the workload identity in the store. IstioCA and Files are
// the two there are.
type Source interface {
	// Run writes the identity and keeps it fresh until ctx ends; it
	// returns nil then, having stopped everything it started. Called once.
	Run(ctx context.Context) error
	// Ready reports whether a certificate is in the store. Safe from any
	// goroutine; instantaneous.
	Ready() bool
	// WaitReady blocks until Ready or until ctx ends (its error then).
	WaitReady(ctx context.Context) error
	// Current is the identity in the store now; false before the first.
	Current() (Info, bool)
}

var (
	_ Source = (*IstioCA)(nil)
	_ Source = (*Files)(nil)
)

// Info describes the certificate in the store.
type Info struct {
	// SPIFFEID is the leaf's spiffe:// URI SAN ("" when it has none).
	SPIFFEID string
	// Serial is the leaf's serial number in hex.
	Serial              string
	NotBefore, NotAfter time.Time
}

// LogValue logs the identity as a group (spiffe_id, serial, expires).
func (i Info) LogValue() slog.Value {
	return slog.GroupValue(slog.String("spiffe_id", i.SPIFFEID), slog.String("serial", i.Serial), slog.Time("expires", i.NotAfter))
}

// Clock is the time a source reads and waits on. Tests give a fake one.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Option tunes a source.
type Option func(*options)

type options struct {
	log   *slog.Logger
	clock Clock
	rand  func() float64
	// retryBase and retryMax bound the backoff between failed attempts.
	retryBase, retryMax time.Duration
	// graceRatio is the share of a certificate's lifetime left when it is
	// renewed; graceJitter spreads it by up to that much either way.
	graceRatio, graceJitter float64
	// poll re-reads Files this often besides watching.
	poll time.Duration
	// watch turns Files' file watching on (tests turn it off).
	watch bool
}

func newOptions(opts []Option) options {
	o := options{
		log:         slog.Default(),
		clock:       realClock{},
		rand:        rand.Float64,
		retryBase:   time.Second,
		retryMax:    time.Minute,
		graceRatio:  DefaultGraceRatio,
		graceJitter: DefaultGraceJitter,
		poll:        DefaultPollInterval,
		watch:       true,
	}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// Defaults of the options, istio-agent's where it has one
// (SECRET_GRACE_PERIOD_RATIO, SECRET_GRACE_PERIOD_RATIO_JITTER).
const (
	DefaultGraceRatio   = 0.5
	DefaultGraceJitter  = 0.01
	DefaultPollInterval = time.Minute
)

// WithLogger logs to l (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithClock reads and waits on c instead of the system clock.
func WithClock(c Clock) Option { return func(o *options) { o.clock = c } }

// WithRand draws jitter from f, which returns values in [0, 1) (default
// math/rand/v2's Float64). A constant 0.5 means no jitter.
func WithRand(f func() float64) Option { return func(o *options) { o.rand = f } }

// WithBackoff waits base after a first failure, doubling up to max
// (defaults 1s and 1m), each wait jittered by ±10%.
func WithBackoff(base, max time.Duration) Option {
	return func(o *options) { o.retryBase, o.retryMax = base, max }
}

// WithGraceRatio renews a certificate when ratio of its lifetime is left
// (0 < ratio < 1; default 0.5, at half life), give or take jitter (default
// 0.01, as istio-agent).
func WithGraceRatio(ratio, jitter float64) Option {
	return func(o *options) { o.graceRatio, o.graceJitter = ratio, jitter }
}

// WithPollInterval makes Files re-read its files this often besides
// watching them (default 1m).
func WithPollInterval(d time.Duration) Option { return func(o *options) { o.poll = d } }

// renewDelay is how long to wait, at now, before renewing a certificate
// issued at issued that expires at notAfter: until ratio (±jitter) of its
// lifetime is left, as istio-agent's rotateTime. Lifetime counts from the
// local issuance time, not NotBefore, which CAs may backdate.
func renewDelay(now, issued, notAfter time.Time, ratio, jitter, r float64) time.Duration {
	g := min(max(ratio+jitter*(2*r-1), 0), 1)
	grace := time.Duration(g * float64(notAfter.Sub(issued)))
	return max(notAfter.Add(-grace).Sub(now), 0)
}

// backoff is the wait after the n-th failure in a row (n >= 1).
func backoff(n int, base, maxWait time.Duration, r float64) time.Duration {
	d := base
	for i := 1; i < n && d < maxWait; i++ {
		d *= 2
	}
	d = min(d, maxWait)
	return time.Duration(float64(d) * (0.9 + 0.2*r))
}

// bundle is a certificate with its key and trust anchors, checked.
type bundle struct {
	chainPEM, keyPEM, rootsPEM []byte
	leaf                       *x509.Certificate
	roots                      []*x509.Certificate
}

// newBundle checks that the chain's leaf matches the key and that roots
// holds certificates.
func newBundle(chainPEM, keyPEM []byte, roots []*x509.Certificate) (*bundle, error) {
	kp, err := tls.X509KeyPair(chainPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certificate and key: %w", err)
	}
	if len(roots) == 0 {
		return nil, errors.New("no root certificate")
	}
	return &bundle{chainPEM: chainPEM, keyPEM: keyPEM, rootsPEM: encodeCerts(roots), leaf: kp.Leaf, roots: roots}, nil
}

func (b *bundle) info() Info {
	return Info{SPIFFEID: spiffeURI(b.leaf), Serial: hex.EncodeToString(b.leaf.SerialNumber.Bytes()),
		NotBefore: b.leaf.NotBefore, NotAfter: b.leaf.NotAfter}
}

// secrets are the SDS resources of the bundle.
func (b *bundle) secrets() []proto.Message {
	inline := func(p []byte) *corev3.DataSource {
		return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: p}}
	}
	return []proto.Message{
		&tlsv3.Secret{Name: CertSecret, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: inline(b.chainPEM), PrivateKey: inline(b.keyPEM),
		}}},
		&tlsv3.Secret{Name: RootSecret, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: inline(b.rootsPEM),
		}}},
	}
}

// spiffeURI is the certificate's first spiffe:// URI SAN.
func spiffeURI(c *x509.Certificate) string {
	for _, u := range c.URIs {
		if strings.EqualFold(u.Scheme, "spiffe") {
			return u.String()
		}
	}
	return ""
}

// parseCerts reads every CERTIFICATE block of PEM data.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return out, nil
}

// mergeCerts appends to a the certificates of b it lacks.
func mergeCerts(a []*x509.Certificate, b ...*x509.Certificate) []*x509.Certificate {
	out := a
	for _, c := range b {
		dup := false
		for _, have := range out {
			if have.Equal(c) {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, c)
		}
	}
	return out
}

func encodeCerts(cs []*x509.Certificate) []byte {
	var out []byte
	for _, c := range cs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// publisher writes bundles into the store and tracks readiness; both
// sources embed it.
type publisher struct {
	store     *config.Store
	ready     chan struct{}
	readyOnce sync.Once
	cur       atomic.Pointer[Info]
}

func newPublisher(store *config.Store) publisher {
	return publisher{store: store, ready: make(chan struct{})}
}

// publish replaces both secrets with b's in one store update.
func (p *publisher) publish(ctx context.Context, b *bundle) (Info, error) {
	info := b.info()
	err := p.store.Apply(ctx, config.Update{
		Source:    StoreSource,
		Version:   "identity:" + info.Serial,
		Replace:   []string{config.SecretType},
		Resources: b.secrets(),
	})
	if err != nil {
		return Info{}, fmt.Errorf("identity: store: %w", err)
	}
	p.cur.Store(&info)
	p.readyOnce.Do(func() { close(p.ready) })
	return info, nil
}

// Ready reports whether a certificate is in the store.
func (p *publisher) Ready() bool { return p.cur.Load() != nil }

// WaitReady blocks until a certificate is in the store or ctx ends.
func (p *publisher) WaitReady(ctx context.Context) error {
	select {
	case <-p.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Current is the certificate in the store now.
func (p *publisher) Current() (Info, bool) {
	if i := p.cur.Load(); i != nil {
		return *i, true
	}
	return Info{}, false
}
