package jwtauthn

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"

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
		if !k.IsPublic() {
			k = k.Public()
		}
		if k.Key == nil {
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
	ks := &keySet{}
	for kid, raw := range top {
		var s string
		if kid == "" || json.Unmarshal(raw, &s) != nil || s == "" {
			return nil, false
		}
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
			ks.keys = append(ks.keys, jwk{kid: kid, key: pub})
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
