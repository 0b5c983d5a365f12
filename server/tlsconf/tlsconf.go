// Package tlsconf turns Envoy TLS contexts (DownstreamTlsContext,
// UpstreamTlsContext) into crypto/tls configs, reading certificates from
// files or inline data.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// Client builds the config a cluster dials with. As in Envoy, the server
// certificate is verified only when a validation context says against what
// (trusted_ca, or system_root_certs for the system pool).
func Client(utc *tlsv3.UpstreamTlsContext) (*tls.Config, error) {
	conf := &tls.Config{ServerName: utc.GetSni(), MinVersion: tls.VersionTLS12}
	common := utc.GetCommonTlsContext()
	certs, err := certificates(common)
	if err != nil {
		return nil, err
	}
	conf.Certificates = certs
	vc, err := validationContext(common)
	if err != nil {
		return nil, err
	}
	switch {
	case vc.GetTrustedCa() != nil:
		if conf.RootCAs, err = pool(vc.GetTrustedCa()); err != nil {
			return nil, err
		}
	case vc.GetSystemRootCerts() != nil:
		// nil RootCAs selects the system pool.
	default:
		conf.InsecureSkipVerify = true //nolint:gosec // Envoy's behaviour without a trust anchor.
	}
	return conf, nil
}

// Server builds the config a listener terminates TLS with, offering ALPN
// h2 and http/1.1 unless the context lists its own protocols.
func Server(dtc *tlsv3.DownstreamTlsContext) (*tls.Config, error) {
	common := dtc.GetCommonTlsContext()
	certs, err := certificates(common)
	if err != nil {
		return nil, err
	}
	if len(certs) == 0 {
		return nil, errors.New("common_tls_context.tls_certificates: a listener needs a certificate")
	}
	conf := &tls.Config{Certificates: certs, MinVersion: tls.VersionTLS12, NextProtos: common.GetAlpnProtocols()}
	if len(conf.NextProtos) == 0 {
		conf.NextProtos = []string{"h2", "http/1.1"}
	}
	vc, err := validationContext(common)
	if err != nil {
		return nil, err
	}
	if vc.GetTrustedCa() != nil {
		if conf.ClientCAs, err = pool(vc.GetTrustedCa()); err != nil {
			return nil, err
		}
		conf.ClientAuth = tls.VerifyClientCertIfGiven
	}
	if dtc.GetRequireClientCertificate().GetValue() {
		if conf.ClientCAs == nil {
			return nil, errors.New("require_client_certificate: needs a validation_context with trusted_ca")
		}
		conf.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return conf, nil
}

func certificates(common *tlsv3.CommonTlsContext) ([]tls.Certificate, error) {
	if len(common.GetTlsCertificateSdsSecretConfigs()) > 0 {
		return nil, errors.New("common_tls_context.tls_certificate_sds_secret_configs: SDS is not supported yet")
	}
	var out []tls.Certificate
	for i, c := range common.GetTlsCertificates() {
		certPEM, err := ReadData(c.GetCertificateChain())
		if err != nil {
			return nil, fmt.Errorf("tls_certificates[%d].certificate_chain: %w", i, err)
		}
		keyPEM, err := ReadData(c.GetPrivateKey())
		if err != nil {
			return nil, fmt.Errorf("tls_certificates[%d].private_key: %w", i, err)
		}
		kp, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("tls_certificates[%d]: %w", i, err)
		}
		out = append(out, kp)
	}
	return out, nil
}

func validationContext(common *tlsv3.CommonTlsContext) (*tlsv3.CertificateValidationContext, error) {
	if common.GetValidationContext() == nil && common.GetValidationContextType() != nil {
		return nil, errors.New("common_tls_context: only an inline validation_context is supported")
	}
	return common.GetValidationContext(), nil
}

func pool(ds *corev3.DataSource) (*x509.CertPool, error) {
	pem, err := ReadData(ds)
	if err != nil {
		return nil, fmt.Errorf("trusted_ca: %w", err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pem) {
		return nil, errors.New("trusted_ca: no PEM certificate found")
	}
	return p, nil
}

// ReadData reads an Envoy DataSource.
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
