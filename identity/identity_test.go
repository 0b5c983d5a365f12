package identity

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"
)

func TestRenewDelay(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name                string
		now, issued, expiry time.Time
		ratio, jitter, r    float64
		want                time.Duration
	}{
		{"half life", t0, t0, t0.Add(2 * time.Second), 0.5, 0, 0.3, time.Second},
		{"24h cert at half life", t0, t0, t0.Add(24 * time.Hour), 0.5, 0.01, 0.5, 12 * time.Hour},
		{"jitter up renews later", t0, t0, t0.Add(10 * time.Second), 0.5, 0.1, 1, 4 * time.Second},
		{"jitter down renews earlier", t0, t0, t0.Add(10 * time.Second), 0.5, 0.1, 0, 6 * time.Second},
		{"counted from issuance, time has passed", t0.Add(3 * time.Second), t0, t0.Add(10 * time.Second), 0.5, 0, 0.5, 2 * time.Second},
		{"past the renewal point", t0.Add(8 * time.Second), t0, t0.Add(10 * time.Second), 0.5, 0, 0.5, 0},
		{"expired", t0.Add(time.Hour), t0, t0.Add(10 * time.Second), 0.5, 0, 0.5, 0},
		{"ratio clamped to 1", t0, t0, t0.Add(10 * time.Second), 0.95, 0.2, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := renewDelay(tt.now, tt.issued, tt.expiry, tt.ratio, tt.jitter, tt.r)
			if d := got - tt.want; d > time.Millisecond || d < -time.Millisecond {
				t.Errorf("renewDelay(%v after issue, lifetime %v, ratio %v±%v, r %v) = %v, want %v",
					tt.now.Sub(tt.issued), tt.expiry.Sub(tt.issued), tt.ratio, tt.jitter, tt.r, got, tt.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		n    int
		r    float64
		want time.Duration
	}{
		{1, 0.5, time.Second},
		{2, 0.5, 2 * time.Second},
		{3, 0.5, 4 * time.Second},
		{7, 0.5, time.Minute},
		{1000, 0.5, time.Minute},
		{1, 0, 900 * time.Millisecond},
		{1, 1, 1100 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := backoff(tt.n, time.Second, time.Minute, tt.r); got != tt.want {
			t.Errorf("backoff(%d, 1s, 1m, %v) = %v, want %v", tt.n, tt.r, got, tt.want)
		}
	}
}

func TestSPIFFEID(t *testing.T) {
	tests := []struct {
		td, ns, sa, want, wantErr string
	}{
		{"cluster.local", "istio-system", "meshgate", "spiffe://cluster.local/ns/istio-system/sa/meshgate", ""},
		{"example.org", "gw", "edge-gateway", "spiffe://example.org/ns/gw/sa/edge-gateway", ""},
		{"", "gw", "edge", "", "trust domain"},
		{"example.org", "a/b", "edge", "", "namespace"},
		{"example.org", "gw", "", "", "service account"},
	}
	for _, tt := range tests {
		got, err := SPIFFEID(tt.td, tt.ns, tt.sa)
		if got != tt.want || (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("SPIFFEID(%q, %q, %q) = %q, %v; want %q, error about %q", tt.td, tt.ns, tt.sa, got, err, tt.want, tt.wantErr)
		}
	}
}

// The CSR is signed by the key it comes with and asks for the SPIFFE ID
// as its only SAN, a URI.
func TestNewKeyAndCSR(t *testing.T) {
	const id = "spiffe://example.org/ns/gw/sa/edge"
	keyPEM, csrPEM, err := newKeyAndCSR(id)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := pem.Decode(keyPEM)
	cb, _ := pem.Decode(csrPEM)
	if kb == nil || kb.Type != "PRIVATE KEY" || cb == nil || cb.Type != "CERTIFICATE REQUEST" {
		t.Fatalf("PEM blocks %v / %v, want PRIVATE KEY and CERTIFICATE REQUEST", kb, cb)
	}
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok || ec.Curve.Params().Name != "P-256" {
		t.Fatalf("key is %T, want ECDSA P-256", key)
	}
	csr, err := x509.ParseCertificateRequest(cb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Errorf("CSR signature: %v", err)
	}
	if !ec.PublicKey.Equal(csr.PublicKey) {
		t.Error("the CSR's public key is not the key's")
	}
	if len(csr.URIs) != 1 || csr.URIs[0].String() != id || len(csr.DNSNames)+len(csr.EmailAddresses)+len(csr.IPAddresses) != 0 {
		t.Errorf("CSR SANs: URIs %v, DNS %v, emails %v, IPs %v; want the URI %s alone", csr.URIs, csr.DNSNames, csr.EmailAddresses, csr.IPAddresses, id)
	}
}
