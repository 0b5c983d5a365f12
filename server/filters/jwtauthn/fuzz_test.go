package jwtauthn_test

import (
	"net/http"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/meshgate/meshgate/server/httpfilter"
)

// FuzzAuthorization passes arbitrary Authorization values through the
// filter's extraction, parsing and verification. No value can carry a
// token the JWKS verifies (the seeds are signed by a key it has not), so
// every request must be refused (401, or 403 for an audience checked before
// the signature), with nothing of a token forwarded; and nothing panics.
func FuzzAuthorization(f *testing.F) {
	k := keys(f)
	cfg := parseConfig(f, `
providers:
  p:
    issuer: `+mainIss+`
    audiences: [api.example.com]
    local_jwks: { inline_string: `+quoted(k.jwks)+` }
    payload_in_metadata: payload
    forward_payload_header: x-payload
    claim_to_headers: [ { header_name: x-sub, claim_name: sub } ]
rules: [ { match: { prefix: / }, requires: { provider_name: p } } ]
`)
	flt, _ := newFilter(f, cfg, httpfilter.Build{})
	forged := sign(f, k.attacker, jose.RS256, "rsa1", claims(mainIss, "api.example.com", nil))
	forgedEC := sign(f, k.attacker, jose.RS256, "ec1", claims(mainIss, "api.example.com", nil))
	parts := strings.Split(forged, ".")
	for _, seed := range []string{
		"", "Bearer ", "Bearer", "bearer " + forged, "Bearer " + forged, "Bearer  " + forgedEC,
		"Bearer " + parts[0] + "." + parts[1] + ".", "Bearer " + parts[0] + ".." + parts[2],
		"Bearer ...", "Bearer a.b.c", "Bearer " + b64(`{"alg":"none"}`) + "." + parts[1] + ".c2ln",
		"Bearer " + b64(`{"alg":"HS256","kid":"rsa1"}`) + "." + parts[1] + "." + parts[2],
		"Bearer " + b64(`{"alg":"RS256","kid":7}`) + "." + b64(`{"exp":"soon"}`) + "." + parts[2],
		"Bearer " + b64(`[]`) + "." + b64(`null`) + ".x", "Basic YWxpY2U6cHc=", "Bearer \x00\xff" + forged,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, auth string) {
		r := request(http.MethodGet, "/x")
		r.Header["Authorization"] = []string{auth}
		res := run(flt, nil, r)
		if res.status != httpfilter.Stop || (res.rec.Code != 401 && res.rec.Code != 403) {
			t.Fatalf("Authorization %q: %v %d %q, want refused", auth, res.status, res.rec.Code, res.rec.Body.String())
		}
		if len(res.metadata) != 0 || r.Header.Get("X-Sub") != "" || r.Header.Get("X-Payload") != "" {
			t.Fatalf("Authorization %q: forwarded %v %v", auth, res.metadata, r.Header)
		}
	})
}
