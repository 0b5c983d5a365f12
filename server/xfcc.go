package server

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"net/http"
	"strings"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// xfccDetails is what set_current_client_cert_details adds to
// x-forwarded-client-cert besides the certificate's hash.
type xfccDetails struct {
	subject, cert, chain, dns, uri bool
}

func newXFCCDetails(d *hcmv3.HttpConnectionManager_SetCurrentClientCertDetails) xfccDetails {
	return xfccDetails{subject: d.GetSubject().GetValue(), cert: d.GetCert(), chain: d.GetChain(), dns: d.GetDns(), uri: d.GetUri()}
}

// applyXFCC edits a request's x-forwarded-client-cert as Envoy's
// forward_client_cert_details says: kept as sent with
// ALWAYS_FORWARD_ONLY; removed unless the client presented a certificate;
// then kept (FORWARD_ONLY), removed (SANITIZE), replaced by this client's
// details (SANITIZE_SET) or those appended to it (APPEND_FORWARD).
func (ch *chain) applyXFCC(r *http.Request) {
	const name = "X-Forwarded-Client-Cert"
	hdr := r.Header
	if ch.xfcc == hcmv3.HttpConnectionManager_ALWAYS_FORWARD_ONLY {
		return
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		delete(hdr, name)
		return
	}
	switch ch.xfcc {
	case hcmv3.HttpConnectionManager_FORWARD_ONLY:
	case hcmv3.HttpConnectionManager_APPEND_FORWARD:
		v := ch.clientCertDetails(r.TLS.PeerCertificates)
		if prior := hdr.Values(name); len(prior) > 0 {
			v = strings.Join(prior, ",") + "," + v
		}
		hdr[name] = []string{v}
	case hcmv3.HttpConnectionManager_SANITIZE_SET:
		hdr[name] = []string{ch.clientCertDetails(r.TLS.PeerCertificates)}
	default:
		delete(hdr, name)
	}
}

// clientCertDetails is one x-forwarded-client-cert element in Envoy's
// order: By (this listener's certificate's first URI SAN, when it has
// one), Hash (SHA-256 of the client certificate), then Cert, Chain,
// Subject, URI and DNS as configured.
func (ch *chain) clientCertDetails(peer []*x509.Certificate) string {
	leaf := peer[0]
	var parts []string
	if by := ch.localURI(); by != "" {
		parts = append(parts, "By="+by)
	}
	sum := sha256.Sum256(leaf.Raw)
	parts = append(parts, "Hash="+hex.EncodeToString(sum[:]))
	d := ch.xfccSet
	if d.cert {
		parts = append(parts, `Cert="`+urlEncodePEM(peer[:1])+`"`)
	}
	if d.chain {
		parts = append(parts, `Chain="`+urlEncodePEM(peer)+`"`)
	}
	if d.subject {
		parts = append(parts, `Subject="`+leaf.Subject.String()+`"`)
	}
	if d.uri {
		// Envoy keeps the key even when the certificate has no URI SAN.
		uri := ""
		if len(leaf.URIs) > 0 {
			uri = leaf.URIs[0].String()
		}
		parts = append(parts, "URI="+uri)
	}
	if d.dns {
		for _, n := range leaf.DNSNames {
			parts = append(parts, "DNS="+n)
		}
	}
	return strings.Join(parts, ";")
}

// localURI is the first URI SAN of the certificate the listener serves
// now (an SDS certificate rotates), "" without one.
func (ch *chain) localURI() string {
	if ch.localCert == nil {
		return ""
	}
	c, err := ch.localCert(nil) // meshgate's GetCertificate reads no hello
	if err != nil || c == nil || len(c.Certificate) == 0 {
		return ""
	}
	leaf := c.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return ""
		}
	}
	if len(leaf.URIs) == 0 {
		return ""
	}
	return leaf.URIs[0].String()
}

// localCertOf returns how to read a TLS config's serving certificate.
func localCertOf(conf *tls.Config) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	switch {
	case conf == nil:
		return nil
	case conf.GetCertificate != nil:
		return conf.GetCertificate
	case len(conf.Certificates) > 0:
		c := &conf.Certificates[0]
		return func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c, nil }
	}
	return nil
}

// urlEncodePEM is the certificates' PEM, percent-encoded as Envoy does
// for XFCC (everything but RFC 3986's unreserved characters).
func urlEncodePEM(certs []*x509.Certificate) string {
	var p []byte
	for _, c := range certs {
		p = append(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	const hexdigits = "0123456789ABCDEF"
	var b strings.Builder
	for _, c := range p {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexdigits[c>>4])
		b.WriteByte(hexdigits[c&15])
	}
	return b.String()
}
