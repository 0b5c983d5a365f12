package identity

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"net/url"
	"testing"
	"time"
)

// fuzzKeyPEM is the workload key of the bundle fuzz targets (a fixed
// ECDSA P-256 key, so that a found input reproduces): the key newKeyAndCSR
// would have made for the CSR istiod answers.
const fuzzKeyPEM = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgmVaiZljJZKHubftd
nG6GAB2hOhZfsq4qerJi+BreUnehRANCAARAPOshiGMqu+wmXfck614zYacGW/hC
5UOS2jFVqwX/cj38N5+p240xMiKn99m/Og8tTPOCYZ1v3oPEZrAE3JgE
-----END PRIVATE KEY-----
`

// fuzzNow is the clock of checkChain; the seeds' certificates are valid
// from 2020 to 2040.
var fuzzNow = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

type fuzzClock struct{}

func (fuzzClock) Now() time.Time                       { return fuzzNow }
func (fuzzClock) After(time.Duration) <-chan time.Time { return nil }

// fuzzPKI is a root, an intermediate it signed, a leaf of fuzzKeyPEM the
// intermediate signed, a leaf the root signed directly, a leaf of another
// key, and another root (the root file's).
type fuzzPKI struct {
	key                                                crypto.PublicKey
	root, inter, leaf, directLeaf, otherLeaf, fileRoot string
	rootCert, fileRootCert                             *x509.Certificate
}

func newFuzzPKI(t testing.TB) *fuzzPKI {
	t.Helper()
	kb, _ := pem.Decode([]byte(fuzzKeyPEM))
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	key := k.(*ecdsa.PrivateKey)
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	serial := int64(0)
	issue := func(name string, ca bool, pub crypto.PublicKey, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, string) {
		serial++
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC)}
		if ca {
			tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
		} else {
			tmpl.URIs = []*url.URL{{Scheme: "spiffe", Host: "cluster.local", Path: "/ns/istio-system/sa/meshgate"}}
			tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		}
		if parent == nil {
			parent = tmpl
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	}
	rootKey, interKey, otherKey, fileRootKey := newKey(), newKey(), newKey(), newKey()
	p := &fuzzPKI{key: key.Public()}
	p.rootCert, p.root = issue("root", true, rootKey.Public(), nil, rootKey)
	interCert, inter := issue("intermediate", true, interKey.Public(), p.rootCert, rootKey)
	p.inter = inter
	_, p.leaf = issue("leaf", false, key.Public(), interCert, interKey)
	_, p.directLeaf = issue("direct leaf", false, key.Public(), p.rootCert, rootKey)
	_, p.otherLeaf = issue("other leaf", false, otherKey.Public(), p.rootCert, rootKey)
	p.fileRootCert, p.fileRoot = issue("file root", true, fileRootKey.Public(), nil, fileRootKey)
	return p
}

// certBlocks are the DER of data's CERTIFICATE blocks, in order.
func certBlocks(data []byte) [][]byte {
	var out [][]byte
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			return out
		}
		if b.Type == "CERTIFICATE" {
			out = append(out, b.Bytes)
		}
	}
}

func sameDER(cs []*x509.Certificate, ders [][]byte) bool {
	if len(cs) != len(ders) {
		return false
	}
	for i, c := range cs {
		if c == nil || !bytes.Equal(c.Raw, ders[i]) {
			return false
		}
	}
	return true
}

// FuzzParseCerts: parseCerts reads the roots file and each PEM of istiod's
// cert_chain. It never panics; it fails exactly when data has no
// CERTIFICATE block or one that is no certificate, and otherwise returns
// one certificate per block, in order, each of the block's very DER; and
// encodeCerts then parseCerts gives back the same DER.
func FuzzParseCerts(f *testing.F) {
	p := newFuzzPKI(f)
	for _, seed := range []string{
		p.leaf + p.inter + p.root, p.root, p.leaf,
		"istiod says:\n" + p.leaf + "\n" + fuzzKeyPEM + "trailing text\n" + p.root,
		p.leaf + "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
		p.leaf[:len(p.leaf)/2], fuzzKeyPEM, "", "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n", "\x00\xff",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cs, err := parseCerts(data)
		blocks := certBlocks(data)
		if err != nil {
			if cs != nil {
				t.Fatalf("%q: error %v with %d certificates", data, err, len(cs))
			}
			for _, b := range blocks {
				if _, perr := x509.ParseCertificate(b); perr != nil {
					return
				}
			}
			if len(blocks) > 0 {
				t.Fatalf("%q: %v, yet its %d CERTIFICATE blocks all parse", data, err, len(blocks))
			}
			return
		}
		if !sameDER(cs, blocks) {
			t.Fatalf("%q: %d certificates for %d CERTIFICATE blocks, or not their DER", data, len(cs), len(blocks))
		}
		enc := encodeCerts(cs)
		again, err := parseCerts(enc)
		if err != nil {
			t.Fatalf("%q: encodeCerts gives what parseCerts refuses: %v", data, err)
		}
		if !sameDER(again, blocks) {
			t.Fatalf("%q: encodeCerts then parseCerts gives %d certificates, not the %d read", data, len(again), len(cs))
		}
	})
}

// FuzzNewBundle: newBundle with any chain (and roots read from any bytes)
// and a fixed key. It never panics, and succeeds exactly when the chain's
// first CERTIFICATE block is a certificate of the key's public key and
// there is a root. A bundle's leaf is that certificate; it keeps the
// chain and key as given and the roots in order, and its info and secrets
// are made without trouble.
func FuzzNewBundle(f *testing.F) {
	p := newFuzzPKI(f)
	for _, seed := range [][2]string{
		{p.leaf + p.inter + p.root, p.root},
		{p.directLeaf, p.root + p.fileRoot},
		{p.leaf, ""},
		{p.otherLeaf + p.leaf, p.root},
		{p.inter + p.leaf, p.root},
		{fuzzKeyPEM + p.leaf, p.root},
		{p.leaf + "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", p.root},
		{"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n" + p.leaf, p.root},
		{"", p.root}, {"\x00\xff", "\x00\xff"},
	} {
		f.Add([]byte(seed[0]), []byte(seed[1]))
	}
	f.Fuzz(func(t *testing.T, chain, rootsData []byte) {
		roots, _ := parseCerts(rootsData)
		b, err := newBundle(chain, []byte(fuzzKeyPEM), roots)

		var first *x509.Certificate
		if blocks := certBlocks(chain); len(blocks) > 0 {
			first, _ = x509.ParseCertificate(blocks[0])
		}
		matches := first != nil && publicKeyEqual(first.PublicKey, p.key)
		if (err == nil) != (matches && len(roots) > 0) {
			t.Fatalf("chain %q, %d roots: error %v; the first certificate matches the key: %v", chain, len(roots), err, matches)
		}
		if err != nil {
			if b != nil {
				t.Fatalf("chain %q: a bundle with error %v", chain, err)
			}
			return
		}
		if b.leaf == nil || !bytes.Equal(b.leaf.Raw, first.Raw) || !publicKeyEqual(b.leaf.PublicKey, p.key) {
			t.Fatalf("chain %q: the bundle's leaf is not the chain's first certificate", chain)
		}
		if !bytes.Equal(b.chainPEM, chain) || string(b.keyPEM) != fuzzKeyPEM {
			t.Fatalf("chain %q: the bundle does not keep the chain and key as given", chain)
		}
		if got, err := parseCerts(b.rootsPEM); err != nil || len(got) != len(roots) || len(b.roots) != len(roots) {
			t.Fatalf("chain %q: roots PEM %q (%v), want the %d roots", chain, b.rootsPEM, err, len(roots))
		} else {
			for i := range got {
				if !bytes.Equal(got[i].Raw, roots[i].Raw) || b.roots[i] != roots[i] {
					t.Fatalf("chain %q: root %d differs", chain, i)
				}
			}
		}
		info := b.info()
		if info.Serial != hex.EncodeToString(b.leaf.SerialNumber.Bytes()) || !info.NotAfter.Equal(b.leaf.NotAfter) {
			t.Fatalf("chain %q: info %+v is not the leaf's", chain, info)
		}
		if n := len(b.secrets()); n != 2 {
			t.Fatalf("chain %q: %d secrets", chain, n)
		}
	})
}

// FuzzCheckChain: istiod's whole answer, cert_chain as up to three PEM
// strings (leaf, intermediate, root; the middle one left out when empty),
// with the fixed key and a root file of another CA. It never panics; an
// accepted answer has a leaf of the key that is the answer's first
// certificate and verifies at fuzzNow up to the answer's last one, which
// joins the file's roots (once); and the chain put in the secret holds the
// certificates that were checked, no more, no fewer.
func FuzzCheckChain(f *testing.F) {
	p := newFuzzPKI(f)
	for _, seed := range [][3]string{
		{p.leaf, p.inter, p.root},
		{p.directLeaf, "", p.root},
		{p.leaf + p.inter, "", p.root},
		{p.directLeaf, "", p.fileRoot},
		{p.directLeaf, p.fileRoot, p.root},
		{p.otherLeaf, "", p.root},
		{p.leaf, "", p.root},
		{p.directLeaf, "", p.root + p.root},
		{p.directLeaf + fuzzKeyPEM, "", "text " + p.root + " text"},
		{"", "", p.root}, {p.directLeaf, "", ""}, {"\x00", "", "\xff"},
		// One block split across two entries: each entry parses alone,
		// their concatenation has a block that never was checked.
		{p.directLeaf + "-----BEGIN CERTIFICATE-----\naGVsbG8g", "", "d29ybGQ=\n-----END CERTIFICATE-----\n" + p.root},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	c := &IstioCA{opts: newOptions([]Option{WithClock(fuzzClock{})})}
	fileRoots := []*x509.Certificate{p.fileRootCert}
	f.Fuzz(func(t *testing.T, leaf, mid, root string) {
		pems := []string{leaf}
		if mid != "" {
			pems = append(pems, mid)
		}
		pems = append(pems, root)
		b, err := c.checkChain(pems, []byte(fuzzKeyPEM), fileRoots)
		if err != nil {
			if b != nil {
				t.Fatalf("%q: a bundle with error %v", pems, err)
			}
			return
		}
		var chain []*x509.Certificate
		for i, pm := range pems {
			cs, err := parseCerts([]byte(pm))
			if err != nil {
				t.Fatalf("%q accepted, but cert_chain[%d] does not parse: %v", pems, i, err)
			}
			chain = append(chain, cs...)
		}
		last := chain[len(chain)-1]
		if b.leaf == nil || !bytes.Equal(b.leaf.Raw, chain[0].Raw) || !publicKeyEqual(b.leaf.PublicKey, p.key) {
			t.Fatalf("%q: the bundle's leaf is not the answer's first certificate, of the key", pems)
		}
		pool, inter := x509.NewCertPool(), x509.NewCertPool()
		pool.AddCert(last)
		for _, ic := range chain[1 : len(chain)-1] {
			inter.AddCert(ic)
		}
		if _, err := b.leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: fuzzNow,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			t.Fatalf("%q accepted, but the leaf does not verify to the answer's root: %v", pems, err)
		}
		if len(b.roots) == 0 || !b.roots[0].Equal(p.fileRootCert) {
			t.Fatalf("%q: the file's root is not the first trust anchor", pems)
		}
		n := 0
		for i, r := range b.roots {
			if r.Equal(last) {
				n++
			}
			for _, o := range b.roots[:i] {
				if o.Equal(r) {
					t.Fatalf("%q: root %d twice", pems, i)
				}
			}
		}
		if n != 1 {
			t.Fatalf("%q: the answer's root is %d times a trust anchor", pems, n)
		}
		if served := certBlocks(b.chainPEM); !sameDER(chain, served) {
			t.Fatalf("%q: the secret's chain has %d CERTIFICATE blocks, not the %d certificates checked", pems, len(served), len(chain))
		}
	})
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}
