package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/meshgate/meshgate/server/router"
	"github.com/meshgate/meshgate/server/secrets"
)

// verifier checks a peer's certificate as an Envoy validation context
// says: its chain against trust anchors (inline, a file, the system's, or
// an SDS secret read at each handshake), then its subject alt names
// against matchers.
type verifier struct {
	static *x509.CertPool
	system bool
	ref    *secrets.Ref
	sans   []sanMatcher
}

func newVerifier(common *tlsv3.CommonTlsContext, table *secrets.Table) (*verifier, error) {
	v := &verifier{}
	var vc *tlsv3.CertificateValidationContext
	switch t := common.GetValidationContextType().(type) {
	case nil:
		return nil, nil
	case *tlsv3.CommonTlsContext_ValidationContext:
		vc = t.ValidationContext
	case *tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig:
		if err := v.sds(t.ValidationContextSdsSecretConfig, table); err != nil {
			return nil, fmt.Errorf("common_tls_context.validation_context_sds_secret_config: %w", err)
		}
	case *tlsv3.CommonTlsContext_CombinedValidationContext:
		vc = t.CombinedValidationContext.GetDefaultValidationContext()
		if err := v.sds(t.CombinedValidationContext.GetValidationContextSdsSecretConfig(), table); err != nil {
			return nil, fmt.Errorf("common_tls_context.combined_validation_context.validation_context_sds_secret_config: %w", err)
		}
	default:
		return nil, fmt.Errorf("common_tls_context: %T is not supported", t)
	}
	if vc != nil {
		if err := v.inline(vc); err != nil {
			return nil, err
		}
	}
	if v.static == nil && !v.system && v.ref == nil {
		if len(v.sans) > 0 {
			// As Envoy: names are only worth checking on a verified chain.
			return nil, errors.New("validation context: subject alt name matchers need trust anchors (trusted_ca or a validation context secret)")
		}
		return nil, nil
	}
	return v, nil
}

func (v *verifier) sds(c *tlsv3.SdsSecretConfig, table *secrets.Table) error {
	switch {
	case c.GetName() == "":
		return errors.New("name: must be set")
	case table == nil:
		return errors.New("SDS secrets are not available here")
	}
	v.ref = table.Ref(c.GetName())
	return nil
}

// inline reads an inline validation context; what it asks for that is not
// done is refused, as a security check never fails open.
func (v *verifier) inline(vc *tlsv3.CertificateValidationContext) error {
	switch {
	case len(vc.GetVerifyCertificateSpki()) > 0, len(vc.GetVerifyCertificateHash()) > 0:
		return errors.New("validation context: certificate pinning (verify_certificate_spki / _hash) is not supported")
	case vc.GetCrl() != nil:
		return errors.New("validation context: crl is not supported")
	case vc.GetCustomValidatorConfig() != nil, vc.GetCaCertificateProviderInstance() != nil:
		return errors.New("validation context: custom validators and certificate providers are not supported")
	}
	if ca := vc.GetTrustedCa(); ca != nil {
		pem, err := secrets.ReadData(ca)
		if err != nil {
			return fmt.Errorf("trusted_ca: %w", err)
		}
		v.static = x509.NewCertPool()
		if !v.static.AppendCertsFromPEM(pem) {
			return errors.New("trusted_ca: no PEM certificate found")
		}
	}
	v.system = vc.GetSystemRootCerts() != nil
	for i, m := range vc.GetMatchTypedSubjectAltNames() {
		sm, err := compileTypedSAN(m)
		if err != nil {
			return fmt.Errorf("match_typed_subject_alt_names[%d]: %w", i, err)
		}
		v.sans = append(v.sans, sm)
	}
	//lint:ignore SA1019 deprecated, still sent by control planes.
	for i, m := range vc.GetMatchSubjectAltNames() {
		sm, err := router.CompileStringMatcher(m)
		if err != nil {
			return fmt.Errorf("match_subject_alt_names[%d]: %w", i, err)
		}
		v.sans = append(v.sans, sanMatcher{kind: sanAny, m: sm})
	}
	return nil
}

// plain reports a check crypto/tls does alone: fixed roots, no names.
func (v *verifier) plain() bool { return v.ref == nil && len(v.sans) == 0 }

// verify is tls.Config.VerifyConnection: the peer's chain against the
// roots of the moment, then its names.
func (v *verifier) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return nil // a client that sent none where none is required (crypto/tls enforces "required")
	}
	roots := v.static
	switch {
	case v.ref != nil:
		s := v.ref.Load()
		if s == nil || s.Roots == nil {
			return fmt.Errorf("the trust anchors of SDS secret %q have not arrived%s", v.ref.Name(), whereFrom(v.ref.Name()))
		}
		roots = s.Roots
	case v.system:
		var err error
		if roots, err = x509.SystemCertPool(); err != nil {
			return fmt.Errorf("system roots: %w", err)
		}
	}
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	// Any key usage, as Envoy: mesh certificates serve as client and server.
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("peer certificate: %w", err)
	}
	if len(v.sans) == 0 {
		return nil
	}
	for i := range v.sans {
		if v.sans[i].match(leaf) {
			return nil
		}
	}
	return fmt.Errorf("peer certificate: its subject alt names (%v) match none the validation context allows", sanList(leaf))
}

type sanKind uint8

const (
	sanAny sanKind = iota
	sanDNS
	sanURI
	sanEmail
	sanIP
)

// sanMatcher is one subject alt name matcher.
type sanMatcher struct {
	kind sanKind
	m    router.StringMatcher
}

func compileTypedSAN(m *tlsv3.SubjectAltNameMatcher) (sanMatcher, error) {
	var kind sanKind
	switch m.GetSanType() {
	case tlsv3.SubjectAltNameMatcher_DNS:
		kind = sanDNS
	case tlsv3.SubjectAltNameMatcher_URI:
		kind = sanURI
	case tlsv3.SubjectAltNameMatcher_EMAIL:
		kind = sanEmail
	case tlsv3.SubjectAltNameMatcher_IP_ADDRESS:
		kind = sanIP
	default:
		return sanMatcher{}, fmt.Errorf("san_type %v is not supported", m.GetSanType())
	}
	sm, err := compileMatcher(m.GetMatcher())
	return sanMatcher{kind: kind, m: sm}, err
}

func compileMatcher(m *matcherv3.StringMatcher) (router.StringMatcher, error) {
	if m == nil {
		return router.StringMatcher{}, errors.New("matcher: must be set")
	}
	return router.CompileStringMatcher(m)
}

func (s *sanMatcher) match(c *x509.Certificate) bool {
	if s.kind == sanAny || s.kind == sanDNS {
		for _, n := range c.DNSNames {
			if s.m.Match(n) {
				return true
			}
		}
	}
	if s.kind == sanAny || s.kind == sanURI {
		for _, u := range c.URIs {
			if s.m.Match(u.String()) {
				return true
			}
		}
	}
	if s.kind == sanAny || s.kind == sanEmail {
		for _, e := range c.EmailAddresses {
			if s.m.Match(e) {
				return true
			}
		}
	}
	if s.kind == sanAny || s.kind == sanIP {
		for _, ip := range c.IPAddresses {
			if s.m.Match(ip.String()) {
				return true
			}
		}
	}
	return false
}

func sanList(c *x509.Certificate) []string {
	var out []string
	out = append(out, c.DNSNames...)
	for _, u := range c.URIs {
		out = append(out, u.String())
	}
	out = append(out, c.EmailAddresses...)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}
