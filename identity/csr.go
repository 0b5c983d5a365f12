package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/url"
	"strings"
)

// SPIFFEID is Istio's identity of a Kubernetes service account:
// spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>.
func SPIFFEID(trustDomain, namespace, serviceAccount string) (string, error) {
	for _, p := range []struct{ what, v string }{
		{"trust domain", trustDomain}, {"namespace", namespace}, {"service account", serviceAccount},
	} {
		if p.v == "" || strings.ContainsAny(p.v, "/:?#@ ") {
			return "", fmt.Errorf("identity: %s %q: want a non-empty name without '/', ':', '?', '#', '@' or spaces", p.what, p.v)
		}
	}
	return "spiffe://" + trustDomain + "/ns/" + namespace + "/sa/" + serviceAccount, nil
}

// newKeyAndCSR makes a private key and a CSR for it that asks for id as
// its only SAN (a URI), both PEM.
//
// The key is ECDSA P-256, not istio-agent's default RSA 2048: it is made
// in microseconds rather than tens of milliseconds (renewals, tests), its
// handshakes sign faster and send less, and istiod signs EC CSRs (the
// agent's ECC_SIGNATURE_ALGORITHM=ECDSA). Every TLS 1.2+ peer of a mesh
// supports it. The key is PKCS#8 ("PRIVATE KEY").
func newKeyAndCSR(id string) (keyPEM, csrPEM []byte, err error) {
	u, err := url.Parse(id)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: SPIFFE ID %q: %w", id, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: generate key: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{u}}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: CSR: %w", err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}
