package jwtauthn

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"strings"
)

// status is the outcome of checking one JWT, as Envoy's JwtVerify::Status:
// the values are Envoy's (failed_status_in_metadata reports them as
// numbers) and the texts are the bodies Envoy answers with.
type status int

// The statuses in Envoy's order (source/common/jwt/status.h), up to the last
// one this filter raises; the ones it never raises keep their place so that
// the numbers stay Envoy's.
const (
	statusOK status = iota
	jwtMissed
	jwtNotYetValid
	jwtExpired
	jwtBadFormat
	jwtHeaderBadBase64
	jwtHeaderBadJSON
	jwtHeaderBadAlg
	jwtHeaderNotImplementedAlg
	jwtHeaderBadKid
	jwtPayloadBadBase64
	jwtPayloadBadJSON
	jwtIssNotString
	jwtSubNotString
	jwtIatNotInteger
	jwtIatOutOfRange
	jwtNbfNotInteger
	jwtNbfOutOfRange
	jwtExpNotInteger
	jwtExpOutOfRange
	jwtJtiNotString
	jwtAudNotString
	jwtSignatureBadBase64
	jwtEd25519SignatureWrongLength
	jwtUnknownIssuer
	jwtAudienceNotAllowed
	jwtVerificationFail
	jwtMultipleTokens
	jwksParseError
	jwksNoKeys
	jwksBadKeys
	jwksNoValidKeys
	jwksKidAlgMismatch
	jwksRsaParseError
	jwksEcCreateKeyFail
	jwksEcXorYBadBase64
	jwksEcParseError
	jwksOctBadBase64
	jwksOKPXBadBase64
	jwksOKPXWrongLength
	jwksFetchFail
)

// statusText are Envoy's getStatusString texts.
var statusText = map[status]string{
	statusOK:                       "OK",
	jwtMissed:                      "Jwt is missing",
	jwtNotYetValid:                 "Jwt not yet valid",
	jwtExpired:                     "Jwt is expired",
	jwtBadFormat:                   "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections",
	jwtHeaderBadBase64:             "Jwt header is an invalid Base64url encoded",
	jwtHeaderBadJSON:               "Jwt header is an invalid JSON",
	jwtHeaderBadAlg:                "Jwt header [alg] field is required and must be a string",
	jwtHeaderNotImplementedAlg:     "Jwt header [alg] is not supported",
	jwtHeaderBadKid:                "Jwt header [kid] field is not a string",
	jwtPayloadBadBase64:            "Jwt payload is an invalid Base64url encoded",
	jwtPayloadBadJSON:              "Jwt payload is an invalid JSON",
	jwtIssNotString:                "Jwt payload [iss] field is not a string",
	jwtSubNotString:                "Jwt payload [sub] field is not a string",
	jwtIatNotInteger:               "Jwt payload [iat] field is not an integer",
	jwtIatOutOfRange:               "Jwt payload [iat] field is not a positive 64 bit integer",
	jwtNbfNotInteger:               "Jwt payload [nbf] field is not an integer",
	jwtNbfOutOfRange:               "Jwt payload [nbf] field is not a positive 64 bit integer",
	jwtExpNotInteger:               "Jwt payload [exp] field is not an integer",
	jwtExpOutOfRange:               "Jwt payload [exp] field is not a positive 64 bit integer",
	jwtJtiNotString:                "Jwt payload [jti] field is not a string",
	jwtAudNotString:                "Jwt payload [aud] field is not a string or string list",
	jwtSignatureBadBase64:          "Jwt signature is an invalid Base64url encoded",
	jwtEd25519SignatureWrongLength: "Jwt ED25519 signature is wrong length",
	jwtUnknownIssuer:               "Jwt issuer is not configured",
	jwtAudienceNotAllowed:          "Audiences in Jwt are not allowed",
	jwtVerificationFail:            "Jwt verification fails",
	jwtMultipleTokens:              "Found multiple Jwt tokens",
	jwksParseError:                 "Jwks is an invalid JSON",
	jwksNoKeys:                     "Jwks does not have [keys] field",
	jwksBadKeys:                    "[keys] in Jwks is not an array",
	jwksNoValidKeys:                "Jwks doesn't have any valid public key",
	jwksKidAlgMismatch:             "Jwks doesn't have key to match kid or alg from Jwt",
	jwksFetchFail:                  "Jwks remote fetch is failed",
}

func (s status) String() string {
	if t, ok := statusText[s]; ok {
		return t
	}
	return "Jwt verification fails"
}

// implementedAlgs are the JWS algorithms Envoy verifies; "none" is not one.
var implementedAlgs = map[string]bool{
	"ES256": true, "ES384": true, "ES512": true,
	"HS256": true, "HS384": true, "HS512": true,
	"RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true,
	"EdDSA": true,
}

// jwt is a parsed (not yet verified) token, as Envoy's JwtVerify::Jwt.
type jwt struct {
	raw        string
	payloadB64 string // the payload as the token carries it (base64url)
	header     map[string]any
	payload    map[string]any
	alg, kid   string
	iss, sub   string
	nbf, exp   uint64 // 0 when absent
	aud        []string
}

// decodeSegment decodes a base64url segment, with or without padding.
func decodeSegment(s string) ([]byte, bool) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	return b, err == nil
}

// decodeObject decodes a JSON object (nothing else: an array, a string or
// trailing data are refused).
func decodeObject(b []byte) (map[string]any, bool) {
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, false
	}
	if dec.More() {
		return nil, false
	}
	return m, true
}

// parseJWT parses a compact JWS as Envoy's Jwt::parseFromString does,
// checking the shape and the types of the registered claims; the signature
// is not checked here.
func parseJWT(tok string) (*jwt, status) {
	if strings.Count(tok, ".") != 2 {
		return nil, jwtBadFormat
	}
	parts := strings.Split(tok, ".")
	if parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return nil, jwtBadFormat
	}
	t := &jwt{raw: tok, payloadB64: parts[1]}
	hb, ok := decodeSegment(parts[0])
	if !ok {
		return nil, jwtHeaderBadBase64
	}
	if t.header, ok = decodeObject(hb); !ok {
		return nil, jwtHeaderBadJSON
	}
	alg, ok := t.header["alg"].(string)
	if !ok {
		return nil, jwtHeaderBadAlg
	}
	if !implementedAlgs[alg] {
		return nil, jwtHeaderNotImplementedAlg
	}
	t.alg = alg
	if v, present := t.header["kid"]; present {
		if t.kid, ok = v.(string); !ok {
			return nil, jwtHeaderBadKid
		}
	}
	pb, ok := decodeSegment(parts[1])
	if !ok {
		return nil, jwtPayloadBadBase64
	}
	if t.payload, ok = decodeObject(pb); !ok {
		return nil, jwtPayloadBadJSON
	}
	var st status
	if t.iss, st = stringClaim(t.payload, "iss", jwtIssNotString); st != statusOK {
		return nil, st
	}
	if t.sub, st = stringClaim(t.payload, "sub", jwtSubNotString); st != statusOK {
		return nil, st
	}
	if _, st = intClaim(t.payload, "iat", jwtIatNotInteger, jwtIatOutOfRange); st != statusOK {
		return nil, st
	}
	if t.nbf, st = intClaim(t.payload, "nbf", jwtNbfNotInteger, jwtNbfOutOfRange); st != statusOK {
		return nil, st
	}
	if t.exp, st = intClaim(t.payload, "exp", jwtExpNotInteger, jwtExpOutOfRange); st != statusOK {
		return nil, st
	}
	if _, st = stringClaim(t.payload, "jti", jwtJtiNotString); st != statusOK {
		return nil, st
	}
	switch a := t.payload["aud"].(type) {
	case nil:
		if _, present := t.payload["aud"]; present {
			return nil, jwtAudNotString
		}
	case string:
		t.aud = []string{a}
	case []any:
		for _, v := range a {
			s, ok := v.(string)
			if !ok {
				return nil, jwtAudNotString
			}
			t.aud = append(t.aud, s)
		}
	default:
		return nil, jwtAudNotString
	}
	if _, ok := decodeSegment(parts[2]); !ok {
		return nil, jwtSignatureBadBase64
	}
	return t, statusOK
}

func stringClaim(m map[string]any, name string, wrong status) (string, status) {
	v, present := m[name]
	if !present {
		return "", statusOK
	}
	s, ok := v.(string)
	if !ok {
		return "", wrong
	}
	return s, statusOK
}

func intClaim(m map[string]any, name string, wrong, outOfRange status) (uint64, status) {
	v, present := m[name]
	if !present {
		return 0, statusOK
	}
	f, ok := v.(float64)
	if !ok {
		return 0, wrong
	}
	if f < 0 || f >= math.MaxInt64 || math.IsNaN(f) {
		return 0, outOfRange
	}
	return uint64(f), statusOK
}

// checkTime is Envoy's verifyTimeConstraint: nbf with the skew, then exp
// (when present) with the skew.
func (t *jwt) checkTime(now int64, skew uint64) status {
	n := uint64(max(now, 0))
	if n+skew < t.nbf {
		return jwtNotYetValid
	}
	if t.exp != 0 && n > t.exp+skew {
		return jwtExpired
	}
	return statusOK
}

// audiences are a provider's (or a requirement's) allowed audiences, as
// Envoy's CheckAudience keeps them: without an http:// or https:// scheme
// and a trailing slash, on both sides of the comparison. Empty allows any.
type audiences map[string]bool

func newAudiences(list []string) audiences {
	a := audiences{}
	for _, s := range list {
		a[sanitizeAudience(s)] = true
	}
	return a
}

func sanitizeAudience(s string) string {
	if s == "" {
		return s
	}
	if rest, ok := strings.CutPrefix(s, "http://"); ok {
		s = rest
	} else if rest, ok := strings.CutPrefix(s, "https://"); ok {
		s = rest
	}
	return strings.TrimSuffix(s, "/")
}

func (a audiences) allowed(jwtAud []string) bool {
	if len(a) == 0 {
		return true
	}
	for _, s := range jwtAud {
		if a[sanitizeAudience(s)] {
			return true
		}
	}
	return false
}
