// Package tlsconf turns Envoy TLS contexts (DownstreamTlsContext,
// UpstreamTlsContext) into crypto/tls configs, reading certificates and
// trust anchors from files, inline data or SDS secrets (secrets.Table),
// which are read again at every handshake so that rotation needs no
// recompile.
package tlsconf

import (
	"crypto/tls"
	"errors"
	"fmt"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/meshgate/meshgate/server/secrets"
)

// Client builds the config a cluster dials with. As in Envoy, the server
// certificate is verified only when a validation context says against what
// (trusted_ca, a validation context secret, or system_root_certs), and its
// subject alt names only when matchers are given.
func Client(utc *tlsv3.UpstreamTlsContext, table *secrets.Table) (*tls.Config, error) {
	common := utc.GetCommonTlsContext()
	// NextProtos carries the context's ALPN list; the cluster replaces it
	// with what its HTTP protocol offers (see cluster's alpn).
	conf := &tls.Config{ServerName: utc.GetSni(), MinVersion: tls.VersionTLS12, NextProtos: common.GetAlpnProtocols()}
	certs, ref, err := certificates(common, table)
	if err != nil {
		return nil, err
	}
	conf.Certificates = certs
	if ref != nil {
		conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return current(ref) }
	}
	v, err := newVerifier(common, table)
	if err != nil {
		return nil, err
	}
	switch {
	case v == nil:
		conf.InsecureSkipVerify = true //nolint:gosec // Envoy's behaviour without a trust anchor.
	case v.plain():
		// Static roots and no matchers: crypto/tls verifies, as before.
		conf.RootCAs = v.static
	default:
		conf.InsecureSkipVerify = true //nolint:gosec // verified by VerifyConnection below.
		conf.VerifyConnection = v.verify
	}
	return conf, nil
}

// Server builds the config a listener terminates TLS with, offering ALPN
// h2 and http/1.1 unless the context lists its own protocols.
func Server(dtc *tlsv3.DownstreamTlsContext, table *secrets.Table) (*tls.Config, error) {
	common := dtc.GetCommonTlsContext()
	certs, ref, err := certificates(common, table)
	if err != nil {
		return nil, err
	}
	if len(certs) == 0 && ref == nil {
		return nil, errors.New("common_tls_context: a listener needs a certificate (tls_certificates or tls_certificate_sds_secret_configs)")
	}
	conf := &tls.Config{Certificates: certs, MinVersion: tls.VersionTLS12, NextProtos: common.GetAlpnProtocols()}
	if ref != nil {
		conf.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return current(ref) }
	}
	if len(conf.NextProtos) == 0 {
		conf.NextProtos = []string{"h2", "http/1.1"}
	}
	v, err := newVerifier(common, table)
	if err != nil {
		return nil, err
	}
	require := dtc.GetRequireClientCertificate().GetValue()
	switch {
	case v == nil && require:
		return nil, errors.New("require_client_certificate: needs a validation context (trusted_ca or a validation context secret)")
	case v == nil:
	case v.plain() && v.static != nil:
		conf.ClientCAs = v.static
		conf.ClientAuth = tls.VerifyClientCertIfGiven
		if require {
			conf.ClientAuth = tls.RequireAndVerifyClientCert
		}
	default:
		// Roots that rotate, or matchers: verified after the handshake's
		// own checks, against the roots of the moment.
		conf.ClientAuth = tls.RequestClientCert
		if require {
			conf.ClientAuth = tls.RequireAnyClientCert
		}
		conf.VerifyConnection = v.verify
	}
	return conf, nil
}

// certificates reads a context's certificates: inline or from files, or
// the one SDS secret it names.
func certificates(common *tlsv3.CommonTlsContext, table *secrets.Table) ([]tls.Certificate, *secrets.Ref, error) {
	if sds := common.GetTlsCertificateSdsSecretConfigs(); len(sds) > 0 {
		switch {
		case len(sds) > 1:
			return nil, nil, errors.New("common_tls_context.tls_certificate_sds_secret_configs: one secret is supported")
		case len(common.GetTlsCertificates()) > 0:
			return nil, nil, errors.New("common_tls_context: give tls_certificates or tls_certificate_sds_secret_configs, not both")
		case sds[0].GetName() == "":
			return nil, nil, errors.New("common_tls_context.tls_certificate_sds_secret_configs[0].name: must be set")
		case table == nil:
			return nil, nil, errors.New("common_tls_context.tls_certificate_sds_secret_configs: SDS secrets are not available here")
		}
		return nil, table.Ref(sds[0].GetName()), nil
	}
	var out []tls.Certificate
	for i, c := range common.GetTlsCertificates() {
		certPEM, err := secrets.ReadData(c.GetCertificateChain())
		if err != nil {
			return nil, nil, fmt.Errorf("tls_certificates[%d].certificate_chain: %w", i, err)
		}
		keyPEM, err := secrets.ReadData(c.GetPrivateKey())
		if err != nil {
			return nil, nil, fmt.Errorf("tls_certificates[%d].private_key: %w", i, err)
		}
		kp, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, nil, fmt.Errorf("tls_certificates[%d]: %w", i, err)
		}
		out = append(out, kp)
	}
	return out, nil, nil
}

// current is the certificate a secret holds now.
func current(ref *secrets.Ref) (*tls.Certificate, error) {
	s := ref.Load()
	if s == nil || s.Cert == nil {
		return nil, fmt.Errorf("the certificate of SDS secret %q has not arrived%s", ref.Name(), whereFrom(ref.Name()))
	}
	return s.Cert, nil
}

// whereFrom says where an SDS secret that has not arrived comes from, for
// Istio's names: the workload certificate and mesh root are the gateway's
// own identity, which only `identity:` in meshgate's config provides.
func whereFrom(name string) string {
	if name == "default" || name == "ROOTCA" {
		return " (Istio's workload certificate and mesh root: they come from meshgate's `identity:` config, none has been issued yet)"
	}
	return ""
}
