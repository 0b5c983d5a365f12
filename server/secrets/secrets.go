// Package secrets holds the SDS secrets the data plane's TLS configs read
// at every handshake: certificates with their keys, and trust anchors. A
// listener or cluster names a secret (tls_certificate_sds_secret_configs,
// validation_context_sds_secret_config) and holds a Ref to it; an updated
// secret (a rotated workload certificate, a renewed gateway certificate)
// is taken by the next handshake, with no recompile and no connection
// dropped.
package secrets

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// Secret is a parsed SDS secret: a certificate with its key, or trust
// anchors with the rest of a validation context (SAN matchers, which a
// combined validation context merges with its default one).
type Secret struct {
	Name string
	// Cert is a tls_certificate secret's chain and key; its Leaf is set.
	Cert *tls.Certificate
	// Roots and Validation are a validation_context secret's.
	Roots      *x509.CertPool
	Validation *tlsv3.CertificateValidationContext
}

// Parse reads an SDS Secret. Only tls_certificate and validation_context
// secrets are taken; the others (session ticket keys, generic secrets) are
// refused, as nothing here would use them.
func Parse(s *tlsv3.Secret) (*Secret, error) {
	out := &Secret{Name: s.GetName()}
	switch t := s.GetType().(type) {
	case *tlsv3.Secret_TlsCertificate:
		c := t.TlsCertificate
		if c.GetPkcs12() != nil || c.GetPrivateKeyProvider() != nil || c.GetPassword() != nil {
			return nil, errors.New("tls_certificate: only certificate_chain and private_key are supported")
		}
		chain, err := ReadData(c.GetCertificateChain())
		if err != nil {
			return nil, fmt.Errorf("tls_certificate.certificate_chain: %w", err)
		}
		key, err := ReadData(c.GetPrivateKey())
		if err != nil {
			return nil, fmt.Errorf("tls_certificate.private_key: %w", err)
		}
		kp, err := tls.X509KeyPair(chain, key)
		if err != nil {
			return nil, fmt.Errorf("tls_certificate: %w", err)
		}
		out.Cert = &kp
	case *tlsv3.Secret_ValidationContext:
		vc := t.ValidationContext
		//lint:ignore SA1019 the deprecated field is refused here too.
		oldSANs := vc.GetMatchSubjectAltNames()
		switch {
		case len(vc.GetMatchTypedSubjectAltNames()) > 0, len(oldSANs) > 0:
			return nil, errors.New("validation_context: subject alt name matchers in a secret are not supported (give them in the combined validation context's default)")
		case len(vc.GetVerifyCertificateSpki()) > 0, len(vc.GetVerifyCertificateHash()) > 0, vc.GetCrl() != nil, vc.GetCustomValidatorConfig() != nil:
			return nil, errors.New("validation_context: only trusted_ca is supported in a secret")
		}
		if vc.GetTrustedCa() == nil {
			return nil, errors.New("validation_context: needs trusted_ca")
		}
		pem, err := ReadData(vc.GetTrustedCa())
		if err != nil {
			return nil, fmt.Errorf("validation_context.trusted_ca: %w", err)
		}
		out.Roots = x509.NewCertPool()
		if !out.Roots.AppendCertsFromPEM(pem) {
			return nil, errors.New("validation_context.trusted_ca: no PEM certificate found")
		}
		out.Validation = vc
	case nil:
		return nil, errors.New("the secret holds nothing")
	default:
		return nil, fmt.Errorf("%T secrets are not supported (only tls_certificate and validation_context)", t)
	}
	return out, nil
}

// Table is the secrets by name. Refs are handed out once per name and
// outlive configs: a config compiled later sees the same Ref.
type Table struct {
	mu   sync.Mutex
	refs map[string]*Ref
}

// NewTable returns an empty table.
func NewTable() *Table { return &Table{refs: map[string]*Ref{}} }

// Ref is a named secret as it is now.
type Ref struct {
	name string
	cur  atomic.Pointer[Secret]
}

// Name is the secret's name.
func (r *Ref) Name() string { return r.name }

// Load is the secret now, nil while it has not arrived (or was removed).
func (r *Ref) Load() *Secret { return r.cur.Load() }

// Ref returns the handle of the named secret.
func (t *Table) Ref(name string) *Ref {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.refs[name]
	if r == nil {
		r = &Ref{name: name}
		t.refs[name] = r
	}
	return r
}

// Put makes s the named secret's value (nil: removed).
func (t *Table) Put(name string, s *Secret) { t.Ref(name).cur.Store(s) }

// Names lists the secrets present now.
func (t *Table) Names() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for n, r := range t.refs {
		if r.cur.Load() != nil {
			out = append(out, n)
		}
	}
	return out
}

// ReadData reads an Envoy DataSource: a file, or inline bytes or string.
func ReadData(ds *corev3.DataSource) ([]byte, error) {
	switch s := ds.GetSpecifier().(type) {
	case *corev3.DataSource_Filename:
		return os.ReadFile(s.Filename)
	case *corev3.DataSource_InlineBytes:
		return s.InlineBytes, nil
	case *corev3.DataSource_InlineString:
		return []byte(s.InlineString), nil
	case nil:
		return nil, errors.New("data source is empty")
	default:
		return nil, fmt.Errorf("data source %T is not supported", s)
	}
}
