package jwtauthn

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// FuzzParseJWKS feeds arbitrary bytes to parseJWKS, the parser of both
// local_jwks (config) and remote_jwks (the body of the HTTP fetch). Beyond
// not panicking:
//
//   - a set is returned, with a status parseJWKS can give, and it has keys
//     exactly when its status is OK (a failed set verifies nothing, an OK
//     one has something to verify with);
//   - the status is the one the document's shape calls for: not a JSON
//     object, jwksParseError; "keys" not an array (or null), jwksBadKeys; no
//     "keys", the X.509 form ({"kid": "<PEM>"}, jwksNoValidKeys at worst)
//     when every member is a non-empty string under a non-empty name, else
//     jwksNoKeys — the same on every parse of the same bytes;
//   - every key kept is usable: a public key of a type verify knows, that
//     some implemented algorithm fits, and that Go's crypto accepts (an RSA
//     key crypto/rsa refuses, a point off its curve, are dead weight that
//     turn "no valid key" into OK);
//   - an Ed25519 key of the {"keys":[...]} form is the published "x" as is
//     (Envoy refuses an x that is not 32 bytes: JwksOKPXWrongLength);
//   - no set verifies a token whose payload was changed after signing (the
//     same tokens verify under the seed JWKS they were signed for), and a
//     failed set answers with its own status.
func FuzzParseJWKS(f *testing.F) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	hmacKey := []byte("0123456789abcdef0123456789abcdef")
	marshal := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		return string(b)
	}
	jwkEC := jose.JSONWebKey{Key: &ecKey.PublicKey, KeyID: "ec1", Algorithm: "ES256", Use: "sig"}
	jwkRSA := jose.JSONWebKey{Key: &rsaKey.PublicKey, KeyID: "rsa1", Algorithm: "RS256", Use: "sig"}
	jwkPS := jose.JSONWebKey{Key: &rsaKey.PublicKey, KeyID: "ps1", Algorithm: "PS256", Use: "sig"}
	jwkEd := jose.JSONWebKey{Key: edKey.Public(), KeyID: "ed1", Algorithm: "EdDSA", Use: "sig"}
	jwkOct := jose.JSONWebKey{Key: hmacKey, KeyID: "hs1", Algorithm: "HS256", Use: "sig"}
	jwks := marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwkEC, jwkRSA, jwkPS, jwkEd, jwkOct}})

	// The X.509 form (Google's): a self-signed certificate under its kid.
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "jwks"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<32, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ecKey.PublicKey, ecKey)
	if err != nil {
		f.Fatal(err)
	}
	certPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	spki, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		f.Fatal(err)
	}
	pubPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}))

	for _, seed := range []string{
		jwks,
		marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwkEC}}),
		marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwkRSA}}),
		marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwkEd}}),
		marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwkOct}}),
		// A private key published by mistake: only its public half is kept.
		marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: ecKey, KeyID: "ecpriv", Algorithm: "ES256"}}}),
		// Keys that would verify forgeries or nothing (the fuzzer's finds):
		// a short Ed25519 x, the identity point, an RSA key of zeros.
		`{"keys":[{"kty":"OKP","crv":"Ed25519","x":""}]}`, `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AQ"}]}`,
		`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}`,
		`{"keys":[{"kty":"RSA","n":"","e":""}]}`, `{"0":"0","":""}`, `{"a":1,"b":"not pem"}`,
		`{"keys":[{"kty":"EC","crv":"P-256","x":"AQ","y":"AQ"},{"kty":"RSA"},{"kty":"OKP","crv":"X25519","x":"AQ"},1,null,"x",[]],"other":{}}`,
		marshal(map[string]string{"x509": certPEM}),
		marshal(map[string]string{"x509": certPEM, "other": certPEM}),
		marshal(map[string]string{"pem": pubPEM}), // a PEM public key is no certificate
		pubPEM,
		"", "{}", "null", "[]", `"keys"`, `{"keys":null}`, `{"keys":[]}`, `{"keys":{}}`, `{"keys":"a"}`,
		`{"":"x"}`, `{"a":""}`, `{"a":"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}`,
		"\x00\xff{garbage", `{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"`,
	} {
		f.Add([]byte(seed))
	}

	// Tokens of every family, each signed by a seed key, then given another
	// payload: no key verifies them. Under the seed JWKS the untouched ones
	// verify, the HMAC one too (oct keys are kept, as Envoy's).
	var tampered []*jwt
	seedSet := parseJWKS([]byte(jwks))
	for _, s := range []struct {
		alg jose.SignatureAlgorithm
		key any
	}{{jose.RS256, rsaKey}, {jose.PS256, rsaKey}, {jose.ES256, ecKey}, {jose.EdDSA, edKey}, {jose.HS256, hmacKey}} {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: s.alg, Key: s.key}, nil)
		if err != nil {
			f.Fatal(err)
		}
		obj, err := signer.Sign([]byte(`{"iss":"https://issuer.example","sub":"alice"}`))
		if err != nil {
			f.Fatal(err)
		}
		tok, err := obj.CompactSerialize()
		if err != nil {
			f.Fatal(err)
		}
		good, st := parseJWT(tok)
		if st != statusOK {
			f.Fatalf("%s token: %v", s.alg, st)
		}
		{
			if st := seedSet.verify(good); st != statusOK {
				f.Fatalf("the seed JWKS does not verify its own %s token: %v", s.alg, st)
			}
		}
		parts := strings.Split(tok, ".")
		parts[1] = base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"https://issuer.example","sub":"mallory"}`))
		bad, st := parseJWT(strings.Join(parts, "."))
		if st != statusOK {
			f.Fatalf("tampered %s token: %v", s.alg, st)
		}
		tampered = append(tampered, bad)
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		ks := parseJWKS(data)
		if ks == nil {
			t.Fatal("parseJWKS returned nil")
		}
		want, x509Form, mixed := wantJWKSStatus(data)
		// parseX509Set walks a map: when some members are strings and some
		// are not, parse again; the status must not depend on the order.
		tries := 1
		if mixed {
			tries = 20
		}
		for i := range tries {
			if i > 0 {
				ks = parseJWKS(data)
			}
			if !want(ks.status) {
				t.Fatalf("parse %d of %q: status %q (%d), not what the document's shape calls for", i+1, data, ks.status, ks.status)
			}
		}
		if (ks.status == statusOK) != (len(ks.keys) > 0) {
			t.Fatalf("%q: status %q with %d keys", data, ks.status, len(ks.keys))
		}
		published := publishedOKPX(data)
		for i, k := range ks.keys {
			if err := jwkUsable(k.key); err != nil {
				t.Fatalf("%q: key %d (kid %q, alg %q) is unusable: %v", data, i, k.kid, k.alg, err)
			}
			fits := false
			for alg := range implementedAlgs {
				fits = fits || keyFitsAlg(k.key, alg)
			}
			if !fits {
				t.Fatalf("%q: key %d (%T) fits no algorithm", data, i, k.key)
			}
			if x509Form && k.kid == "" {
				t.Fatalf("%q: X.509 key %d without a kid", data, i)
			}
			if ed, ok := k.key.(ed25519.PublicKey); ok && !x509Form && !published[string(ed)] {
				t.Fatalf("%q: Ed25519 key %d %x is no published x (%d of them)", data, i, []byte(ed), len(published))
			}
		}
		for _, tok := range tampered {
			st := ks.verify(tok)
			if st == statusOK {
				t.Fatalf("%q verifies a tampered %s token", data, tok.alg)
			}
			if ks.status != statusOK && st != ks.status {
				t.Fatalf("%q: a set with status %q answers %q", data, ks.status, st)
			}
		}
	})
}

// wantJWKSStatus is the status the shape of data calls for, after
// parseJWKS's and parseX509Set's doc comments; whether data, with no
// "keys", is a candidate for the X.509 form; and whether it is one with
// members of both kinds, which a walk meets in random order.
func wantJWKSStatus(data []byte) (ok func(status) bool, x509Form, mixed bool) {
	is := func(sts ...status) func(status) bool {
		return func(s status) bool {
			for _, x := range sts {
				if s == x {
					return true
				}
			}
			return false
		}
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil || top == nil {
		return is(jwksParseError), false, false
	}
	if raw, ok := top["keys"]; ok {
		var list []json.RawMessage
		if json.Unmarshal(raw, &list) != nil {
			return is(jwksBadKeys), false, false
		}
		return is(statusOK, jwksNoValidKeys), false, false
	}
	if len(top) == 0 {
		return is(jwksNoKeys), false, false
	}
	strs := 0
	for name, raw := range top {
		var s string
		if name != "" && json.Unmarshal(raw, &s) == nil && s != "" {
			strs++
		}
	}
	if strs < len(top) {
		return is(jwksNoKeys), true, strs > 0
	}
	return is(statusOK, jwksNoValidKeys), true, false
}

// publishedOKPX are the "x" values of the OKP keys of a {"keys":[...]}
// document, decoded as go-jose decodes them (its JSON is case-sensitive,
// hence maps rather than structs).
func publishedOKPX(data []byte) map[string]bool {
	out := map[string]bool{}
	var top map[string]json.RawMessage
	var list []json.RawMessage
	if json.Unmarshal(data, &top) != nil || json.Unmarshal(top["keys"], &list) != nil {
		return out
	}
	for _, item := range list {
		var k map[string]json.RawMessage
		var kty, x string
		if json.Unmarshal(item, &k) != nil || json.Unmarshal(k["kty"], &kty) != nil || kty != "OKP" ||
			json.Unmarshal(k["x"], &x) != nil {
			continue
		}
		if b, err := base64.RawURLEncoding.DecodeString(x); err == nil {
			out[string(b)] = true
		}
	}
	return out
}

// jwkUsable says why key cannot verify anything, nil when it can: it must
// be a public key of a type verify knows that Go's crypto accepts.
func jwkUsable(key any) error {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k == nil || k.N == nil || k.N.Sign() <= 0 {
			return errors.New("RSA key without a modulus")
		}
		// A wrong signature of the right size: a usable key says it does not
		// verify, an unusable one that the key is bad.
		sum := sha256.Sum256([]byte("x"))
		sig := make([]byte, (k.N.BitLen()+7)/8)
		err := rsa.VerifyPKCS1v15(k, crypto.SHA256, sum[:], sig)
		if !errors.Is(err, rsa.ErrVerification) {
			return fmt.Errorf("RSA key (%d bits, e %d): %v", k.N.BitLen(), k.E, err)
		}
	case *ecdsa.PublicKey:
		if k == nil || k.Curve == nil {
			return errors.New("EC key without a curve")
		}
		// Bytes checks the curve is one crypto/ecdsa verifies on and the
		// point is on it (and not at infinity).
		if _, err := k.Bytes(); err != nil {
			return fmt.Errorf("EC key: %v", err)
		}
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("Ed25519 key of %d bytes", len(k))
		}
	case []byte:
		if len(k) == 0 {
			return errors.New("empty oct key")
		}
	default:
		return fmt.Errorf("a %T", key)
	}
	return nil
}
