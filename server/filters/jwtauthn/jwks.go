package jwtauthn

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// jwk is one verification key of a JWKS.
type jwk struct {
	kid, alg string
	key      any // *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey or []byte (oct)
}

// keySet is a parsed JWKS. A set that failed to parse, or has no usable
// key, has a status other than statusOK and verifies nothing.
type keySet struct {
	keys   []jwk
	status status
}

// parseJWKS reads a JWKS ({"keys":[...]}) or, as Envoy does, the X.509 form
// Google publishes ({"<kid>": "<PEM certificate>", ...}). Keys go-jose cannot
// read (unsupported kty or curve, bad fields) are skipped; a set left with
// none fails as Envoy's: "Jwks doesn't have any valid public key".
func parseJWKS(data []byte) *keySet {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil || top == nil {
		return &keySet{status: jwksParseError}
	}
	raw, ok := top["keys"]
	if !ok {
		if ks, ok := parseX509Set(top); ok {
			return ks
		}
		return &keySet{status: jwksNoKeys}
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return &keySet{status: jwksBadKeys}
	}
	ks := &keySet{}
	for _, item := range list {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(item); err != nil {
			continue
		}
		if _, oct := k.Key.([]byte); !oct && !k.IsPublic() {
			k = k.Public() // a private key published by mistake: its public half
		}
		if k.Key == nil || !usableKey(k.Key, item) {
			continue
		}
		switch k.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey, []byte:
			ks.keys = append(ks.keys, jwk{kid: k.KeyID, alg: k.Algorithm, key: k.Key})
		}
	}
	if len(ks.keys) == 0 {
		ks.status = jwksNoValidKeys
	}
	return ks
}

// parseX509Set reads {"kid": "<PEM certificate>"}: every member a non-empty
// string under a non-empty name, as Envoy's shouldCheckX509.
func parseX509Set(top map[string]json.RawMessage) (*keySet, bool) {
	if len(top) == 0 {
		return nil, false
	}
	// Every member is checked to be a string before any is parsed, so that
	// the answer does not depend on the map's order.
	pems := make(map[string]string, len(top))
	for kid, raw := range top {
		var s string
		if kid == "" || json.Unmarshal(raw, &s) != nil || s == "" {
			return nil, false
		}
		pems[kid] = s
	}
	ks := &keySet{}
	for kid, s := range pems {
		block, _ := pem.Decode([]byte(s))
		if block == nil {
			return &keySet{status: jwksNoValidKeys}, true
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return &keySet{status: jwksNoValidKeys}, true
		}
		switch pub := cert.PublicKey.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
			if usableKey(pub, nil) {
				ks.keys = append(ks.keys, jwk{kid: kid, key: pub})
			}
		}
	}
	if len(ks.keys) == 0 {
		ks.status = jwksNoValidKeys
	}
	return ks, true
}

// verify checks t's signature as Envoy's verifyJwtWithoutTimeChecking: a
// key whose kid differs from the token's (both set) or whose alg differs
// from the token's (the key's set) is not tried; with none tried the answer
// is "Jwks doesn't have key to match kid or alg from Jwt", with keys tried
// and none verifying "Jwt verification fails".
func (ks *keySet) verify(t *jwt) status {
	if ks.status != statusOK {
		return ks.status
	}
	sig, err := jose.ParseSignedCompact(t.raw, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(t.alg)})
	matched := false
	for _, k := range ks.keys {
		if t.kid != "" && k.kid != "" && k.kid != t.kid {
			continue
		}
		if k.alg != "" && k.alg != t.alg {
			continue
		}
		matched = true
		if err != nil || !keyFitsAlg(k.key, t.alg) {
			continue
		}
		if _, verr := sig.Verify(k.key); verr == nil {
			return statusOK
		}
	}
	if !matched {
		return jwksKidAlgMismatch
	}
	return jwtVerificationFail
}

// keyFitsAlg keeps each algorithm family to its key type: an RSA key never
// checks an HMAC signature (the classic confusion), nor an EC key an RSA one.
func keyFitsAlg(key any, alg string) bool {
	switch key.(type) {
	case *rsa.PublicKey:
		return alg[:2] == "RS" || alg[:2] == "PS"
	case *ecdsa.PublicKey:
		return alg[:2] == "ES"
	case ed25519.PublicKey:
		return alg == "EdDSA"
	case []byte:
		return alg[:2] == "HS"
	}
	return false
}

// usableKey drops keys that could only verify forgeries or nothing, as
// Envoy's JWKS parser refuses them: an RSA key Go will not verify with
// (modulus under 1024 bits, an even or tiny exponent), an Ed25519 key
// whose "x" is not 32 bytes (go-jose pads or cuts it) or is a point of
// small order (with which one signature verifies any message), an empty
// HMAC key. item is the key's JSON (nil for a certificate's key).
func usableKey(key any, item []byte) bool {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return k.N != nil && k.N.BitLen() >= 1024 && k.E >= 3 && k.E%2 == 1
	case ed25519.PublicKey:
		if item != nil {
			var okp struct {
				X string `json:"x"`
			}
			if json.Unmarshal(item, &okp) != nil {
				return false
			}
			x, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(okp.X, "="))
			if err != nil || len(x) != ed25519.PublicKeySize {
				return false
			}
		}
		return len(k) == ed25519.PublicKeySize && !smallOrder(k)
	case []byte:
		return len(k) > 0
	}
	return true
}

// smallOrderPoints are the encodings of Ed25519's points of small order
// (and their non-canonical forms), as libsodium's blocklist: compared
// without the sign bit.
var smallOrderPoints = [][32]byte{
	{},     // 0, order 4
	{0x01}, // 1, order 1
	{0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0,
		0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05}, // order 8
	{0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f,
		0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a}, // order 8
	{0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, // p-1, order 2
	{0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, // p = 0
	{0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, // p+1 = 1
}

func smallOrder(k ed25519.PublicKey) bool {
	for _, p := range smallOrderPoints {
		if [31]byte(k[:31]) == [31]byte(p[:31]) && k[31]&0x7f == p[31] {
			return true
		}
	}
	return false
}
