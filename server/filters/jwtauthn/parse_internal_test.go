package jwtauthn

import (
	"strings"
	"testing"
)

// FuzzParseJWT: parsing never panics, and what it accepts has the shape
// and types Envoy requires.
func FuzzParseJWT(f *testing.F) {
	for _, seed := range []string{
		"", ".", "..", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln",
		"eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOlsiYSIsMV19.c2ln",
		"eyJhbGciOiJSUzI1NiJ9.eyJleHAiOi0xfQ.c2ln",
		"eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjFlMzAwfQ.c2ln",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		j, st := parseJWT(tok)
		if st != statusOK {
			if j != nil {
				t.Fatalf("%q: a token with status %v", tok, st)
			}
			return
		}
		if strings.Count(tok, ".") != 2 || !implementedAlgs[j.alg] || j.payload == nil || j.header == nil {
			t.Fatalf("%q accepted: %+v", tok, j)
		}
	})
}

func TestParseJWT(t *testing.T) {
	for _, tt := range []struct {
		tok  string
		want status
	}{
		{"a.b", jwtBadFormat},
		{"a.b.c.d", jwtBadFormat},
		{"eyJhbGciOiJSUzI1NiJ9..c2ln", jwtBadFormat},
		{"!!.e30.c2ln", jwtHeaderBadBase64},
		{"bm90IGpzb24.e30.c2ln", jwtHeaderBadJSON},                                 // "not json"
		{"e30.e30.c2ln", jwtHeaderBadAlg},                                          // {}
		{"eyJhbGciOiJub25lIn0.e30.c2ln", jwtHeaderNotImplementedAlg},               // alg none
		{"eyJhbGciOiJSUzI1NiIsImtpZCI6MX0.e30.c2ln", jwtHeaderBadKid},              // kid 1
		{"eyJhbGciOiJSUzI1NiJ9.!!.c2ln", jwtPayloadBadBase64},                      //
		{"eyJhbGciOiJSUzI1NiJ9.W10.c2ln", jwtPayloadBadJSON},                       // []
		{"eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOjF9.c2ln", jwtIssNotString},                // iss 1
		{"eyJhbGciOiJSUzI1NiJ9.eyJleHAiOiIxIn0.c2ln", jwtExpNotInteger},            // exp "1"
		{"eyJhbGciOiJSUzI1NiJ9.eyJleHAiOi0xfQ.c2ln", jwtExpOutOfRange},             // exp -1
		{"eyJhbGciOiJSUzI1NiJ9.eyJuYmYiOnRydWV9.c2ln", jwtNbfNotInteger},           // nbf true
		{"eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOlsiYSIsMV19.c2ln", jwtAudNotString},        // aud ["a",1]
		{"eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOlsiYSIsImIiXX0.!!", jwtSignatureBadBase64}, // aud [a b]
		{"eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOlsiYSIsImIiXX0.c2ln", statusOK},            //
		{"eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOlsiYSIsImIiXX0=.c2ln", statusOK},           // padded
	} {
		if _, got := parseJWT(tt.tok); got != tt.want {
			t.Errorf("parseJWT(%q) = %v (%d), want %v (%d)", tt.tok, got, got, tt.want, tt.want)
		}
	}
}

func TestCheckTimeAndAudiences(t *testing.T) {
	const now = 1_000_000
	for _, tt := range []struct {
		nbf, exp uint64
		want     status
	}{
		{0, 0, statusOK},
		{now + 60, 0, statusOK},
		{now + 61, 0, jwtNotYetValid},
		{0, now - 60, statusOK},
		{0, now - 61, jwtExpired},
	} {
		j := &jwt{nbf: tt.nbf, exp: tt.exp}
		if got := j.checkTime(now, 60); got != tt.want {
			t.Errorf("nbf %d exp %d: %v, want %v", tt.nbf, tt.exp, got, tt.want)
		}
	}
	a := newAudiences([]string{"https://api.example.com/", "bookstore"})
	for _, tt := range []struct {
		aud  []string
		want bool
	}{
		{[]string{"api.example.com"}, true},
		{[]string{"http://api.example.com"}, true},
		{[]string{"x", "bookstore/"}, true},
		{[]string{"api.example.org"}, false},
		{nil, false},
	} {
		if got := a.allowed(tt.aud); got != tt.want {
			t.Errorf("audiences %q: %v, want %v", tt.aud, got, tt.want)
		}
	}
	if !newAudiences(nil).allowed(nil) {
		t.Error("no audiences configured must allow any")
	}
}

// The failure numbers are Envoy's (failed_status_in_metadata reports
// them).
func TestStatusNumbers(t *testing.T) {
	for st, want := range map[status]int{jwtMissed: 1, jwtExpired: 3, jwtUnknownIssuer: 24, jwtAudienceNotAllowed: 25,
		jwtVerificationFail: 26, jwksNoValidKeys: 31, jwksKidAlgMismatch: 32, jwksFetchFail: 40} {
		if int(st) != want {
			t.Errorf("%s = %d, want Envoy's %d", st, st, want)
		}
	}
}

// Keys that would accept forged tokens or verify nothing are dropped, so
// their set fails as Envoy's ("Jwks doesn't have any valid public key"):
// the forged token below (R = identity, S = 0) verifies any message
// under an Ed25519 key of small order, which go-jose builds from a short
// or empty "x".
func TestParseJWKS_DropsWeakKeys(t *testing.T) {
	const forged = "eyJhbGciOiJFZERTQSJ9.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlIiwic3ViIjoiYWRtaW4iLCJuIjoxfQ." +
		"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	tok, st := parseJWT(forged)
	if st != statusOK {
		t.Fatalf("forged token: %v", st)
	}
	for _, doc := range []string{
		`{"keys":[{"kty":"OKP","crv":"Ed25519","x":""}]}`,
		`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AQ"}]}`,
		`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}`,     // the identity, 32 bytes
		`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"7P___________________________________________38"}]}`, // order 2
		`{"keys":[{"kty":"RSA","n":"","e":""}]}`,
		`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`,
		`{"keys":[{"kty":"oct","k":""}]}`,
	} {
		ks := parseJWKS([]byte(doc))
		if ks.status != jwksNoValidKeys {
			t.Errorf("%s: status %v with %d keys, want jwksNoValidKeys", doc, ks.status, len(ks.keys))
		}
		if got := ks.verify(tok); got == statusOK {
			t.Errorf("%s: the forged token verifies", doc)
		}
	}
}
