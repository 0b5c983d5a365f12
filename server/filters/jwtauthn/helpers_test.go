package jwtauthn_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	"github.com/meshgate/meshgate/server/filters/jwtauthn"
	"github.com/meshgate/meshgate/server/httpfilter"
)

// testKeys are the issuers' signing keys, made once (RSA keys are slow to
// make under -race), and the attacker's, which no JWKS holds.
type testKeys struct {
	rsa, rsa2, attacker *rsa.PrivateKey
	ec                  *ecdsa.PrivateKey
	ed                  ed25519.PrivateKey
	jwks                string // the public keys: rsa1 (RS256), rsa2 (PS256), ec1 (ES256), ed1 (EdDSA)
}

var (
	keysOnce sync.Once
	keysVal  *testKeys
)

func keys(t testing.TB) *testKeys {
	t.Helper()
	keysOnce.Do(func() {
		k := &testKeys{}
		must := func(e error) {
			if e != nil {
				panic(e)
			}
		}
		var e error
		k.rsa, e = rsa.GenerateKey(rand.Reader, 2048)
		must(e)
		k.rsa2, e = rsa.GenerateKey(rand.Reader, 2048)
		must(e)
		k.attacker, e = rsa.GenerateKey(rand.Reader, 2048)
		must(e)
		k.ec, e = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(e)
		_, k.ed, e = ed25519.GenerateKey(rand.Reader)
		must(e)
		set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: &k.rsa.PublicKey, KeyID: "rsa1", Algorithm: "RS256", Use: "sig"},
			{Key: &k.rsa2.PublicKey, KeyID: "rsa2", Algorithm: "PS256", Use: "sig"},
			{Key: &k.ec.PublicKey, KeyID: "ec1", Algorithm: "ES256", Use: "sig"},
			{Key: k.ed.Public(), KeyID: "ed1", Algorithm: "EdDSA", Use: "sig"},
		}}
		b, e := json.Marshal(set)
		must(e)
		k.jwks = string(b)
		keysVal = k
	})
	return keysVal
}

// sign makes a compact JWS of claims with key, alg and kid ("" for none).
func sign(t testing.TB, key any, alg jose.SignatureAlgorithm, kid string, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// claims are a token's claims: iss, aud, sub and a one-hour exp, with more
// added or (nil) removed.
func claims(iss, aud string, more map[string]any) map[string]any {
	now := time.Now().Unix()
	c := map[string]any{"iss": iss, "sub": "alice", "iat": now, "exp": now + 3600}
	if aud != "" {
		c["aud"] = aud
	}
	for k, v := range more {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// quoted writes s as a YAML (JSON) string.
func quoted(s string) string { return strconv.Quote(s) }

// parseConfig reads a JwtAuthentication written as Envoy YAML.
func parseConfig(t testing.TB, y string) *jwtv3.JwtAuthentication {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &jwtv3.JwtAuthentication{}
	if err := protojson.Unmarshal(js, cfg); err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// newFilter builds the filter from cfg with b (its name set), failing the
// test on an error.
func newFilter(t testing.TB, cfg *jwtv3.JwtAuthentication, b httpfilter.Build) (httpfilter.Filter, []string) {
	t.Helper()
	f, notes, err := buildFilter(cfg, b)
	if err != nil {
		t.Fatal(err)
	}
	return f, notes
}

func buildFilter(cfg *jwtv3.JwtAuthentication, b httpfilter.Build) (httpfilter.Filter, []string, error) {
	a, err := anypb.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	if b.Name == "" {
		b.Name = jwtauthn.Name
	}
	return httpfilter.New(httpfilter.Lookup(jwtauthn.Name, a), a, b)
}

// result is what one request through the filter came to.
type result struct {
	status   httpfilter.Status
	rec      *httptest.ResponseRecorder
	metadata map[string]any    // the filter's namespace
	route    *httpfilter.Route // the route the request goes to after the filter
}

// run passes r through f (with table, nil for none).
func run(f httpfilter.Filter, table *httpfilter.Table, r *http.Request) result {
	rec := httptest.NewRecorder()
	var s httpfilter.Stream
	s.Reset(rec, nil, r, table)
	s.Route() // an earlier filter (or the router) matched already
	st := f.Decode(&s)
	s.Finish()
	return result{status: st, rec: rec, metadata: s.Metadata(jwtauthn.MetadataNamespace), route: s.Route()}
}

// request makes a request to target with headers ("Name: value" each).
func request(method, target string, headers ...string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		r.Header.Add(k, v)
	}
	return r
}

// fakeClock is a clock tests move.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
