package jwtauthn_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/meshgate/meshgate/server/cluster"
	"github.com/meshgate/meshgate/server/filters/jwtauthn"
	"github.com/meshgate/meshgate/server/httpfilter"
)

const remoteIss = "https://auth.example.com"

// jwksServer serves a JWKS, counting fetches; it can be made to fail.
type jwksServer struct {
	*httptest.Server
	hits atomic.Int64

	mu       sync.Mutex
	body     string
	failWith int // a status to answer with instead of the JWKS (0: none)
	failN    int // how many fetches fail (-1: all)
	host     string
	path     string
	delay    time.Duration
}

func newJWKSServer(t *testing.T, body string) *jwksServer {
	s := &jwksServer{body: body}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		s.host, s.path = r.Host, r.URL.RequestURI()
		body, delay, fail := s.body, s.delay, 0
		if s.failN != 0 {
			fail = s.failWith
			if s.failN > 0 {
				s.failN--
			}
		}
		s.mu.Unlock()
		time.Sleep(delay)
		if fail != 0 {
			http.Error(w, "unavailable", fail)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) failing(status, n int) {
	s.mu.Lock()
	s.failWith, s.failN = status, n
	s.mu.Unlock()
}

// newCluster builds a STATIC cluster of the hosts at addrs.
func newCluster(t *testing.T, name string, addrs ...string) *cluster.Cluster {
	t.Helper()
	spec := &clusterv3.Cluster{Name: name, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{}}}}
	for _, a := range addrs {
		host, port, _ := net.SplitHostPort(a)
		var p uint32
		_, _ = fmt.Sscan(port, &p)
		spec.LoadAssignment.Endpoints[0].LbEndpoints = append(spec.LoadAssignment.Endpoints[0].LbEndpoints, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{
				Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: host,
					PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: p}}}}}}})
	}
	c, err := cluster.New(spec, cluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// env is what a listener's compile gives the filter: its clusters, the
// state kept across compiles, background work the test waits for.
type env struct {
	clusters map[string]*cluster.Cluster
	mu       sync.Mutex
	kept     map[string]any
	wg       sync.WaitGroup
}

func newEnv(t *testing.T, clusters ...*cluster.Cluster) *env {
	e := &env{clusters: map[string]*cluster.Cluster{}, kept: map[string]any{}}
	for _, c := range clusters {
		e.clusters[c.Name] = c
	}
	t.Cleanup(e.wg.Wait) // before the clusters and servers close
	return e
}

func (e *env) build() httpfilter.Build {
	return httpfilter.Build{
		Cluster: func(name string) (*cluster.Cluster, bool) { c, ok := e.clusters[name]; return c, ok },
		Keep: func(key string, fresh func() any) any {
			e.mu.Lock()
			defer e.mu.Unlock()
			v, ok := e.kept[key]
			if !ok {
				v = fresh()
				e.kept[key] = v
			}
			return v
		},
		Go: func(f func()) {
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				f()
			}()
		},
	}
}

func remoteConfig(extra string) string {
	return `
providers:
  remote:
    issuer: ` + remoteIss + `
    remote_jwks:
      http_uri: { uri: "https://auth.example.com/.well-known/jwks.json?v=1", cluster: jwks, timeout: 2s }
      cache_duration: 600s
` + extra + `
rules: [ { match: { prefix: / }, requires: { provider_name: remote } } ]
`
}

// useClock makes the filters built in the test read c.
func useClock(t *testing.T) *fakeClock {
	c := &fakeClock{now: time.Now()}
	t.Cleanup(jwtauthn.SetClock(c.Now))
	return c
}

func remoteToken(t *testing.T) string {
	return sign(t, keys(t).rsa, jose.RS256, "rsa1", claims(remoteIss, "", nil))
}

func expectPass(t *testing.T, f httpfilter.Filter, tok string) {
	t.Helper()
	res := run(f, nil, request(http.MethodGet, "/x", "Authorization: Bearer "+tok))
	if res.status != httpfilter.Continue {
		t.Fatalf("Decode = %v (%d %q), want Continue", res.status, res.rec.Code, res.rec.Body.String())
	}
}

func expectFetchFail(t *testing.T, f httpfilter.Filter, tok string) {
	t.Helper()
	res := run(f, nil, request(http.MethodGet, "/x", "Authorization: Bearer "+tok))
	if res.status != httpfilter.Stop || res.rec.Code != 401 || res.rec.Body.String() != "Jwks remote fetch is failed" {
		t.Fatalf("got %v %d %q, want Stop 401 %q", res.status, res.rec.Code, res.rec.Body.String(), "Jwks remote fetch is failed")
	}
	if got := res.rec.Header().Get("WWW-Authenticate"); got != `Bearer realm="http://example.com/x", error="invalid_token"` {
		t.Errorf("WWW-Authenticate %q", got)
	}
}

// Concurrent requests share one fetch through the cluster; the keys serve
// until cache_duration has passed, then are fetched again.
func TestRemoteJWKS_FetchedOnceAndCached(t *testing.T) {
	clock := useClock(t)
	srv := newJWKSServer(t, keys(t).jwks)
	srv.delay = 50 * time.Millisecond
	e := newEnv(t, newCluster(t, "jwks", srv.Listener.Addr().String()))
	f, _ := newFilter(t, parseConfig(t, remoteConfig("")), e.build())
	tok := remoteToken(t)

	var wg sync.WaitGroup
	fails := atomic.Int64{}
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if res := run(f, nil, request(http.MethodGet, "/x", "Authorization: Bearer "+tok)); res.status != httpfilter.Continue {
				fails.Add(1)
			}
		}()
	}
	wg.Wait()
	if fails.Load() != 0 {
		t.Fatalf("%d of 20 concurrent requests failed", fails.Load())
	}
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("%d fetches for 20 concurrent requests, want 1", got)
	}
	srv.mu.Lock()
	host, path := srv.host, srv.path
	srv.mu.Unlock()
	if host != "auth.example.com" || path != "/.well-known/jwks.json?v=1" {
		t.Errorf("fetched Host %q path %q, want the URI's", host, path)
	}

	clock.Advance(9 * time.Minute)
	expectPass(t, f, tok)
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("%d fetches before cache_duration, want 1", got)
	}
	clock.Advance(2 * time.Minute)
	expectPass(t, f, tok)
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("%d fetches after cache_duration, want 2", got)
	}
}

// Keys that cannot be had fail the token: closed, as Envoy.
func TestRemoteJWKS_FailClosed(t *testing.T) {
	tok := remoteToken(t)
	t.Run("unreachable", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		_ = ln.Close()
		e := newEnv(t, newCluster(t, "jwks", addr))
		f, _ := newFilter(t, parseConfig(t, remoteConfig("")), e.build())
		expectFetchFail(t, f, tok)
	})
	t.Run("no such cluster", func(t *testing.T) {
		e := newEnv(t)
		f, notes := newFilter(t, parseConfig(t, remoteConfig("")), e.build())
		if len(notes) == 0 {
			t.Error("no note about the missing cluster")
		}
		expectFetchFail(t, f, tok)
	})
	t.Run("an error status, then recovered", func(t *testing.T) {
		srv := newJWKSServer(t, keys(t).jwks)
		srv.failing(http.StatusServiceUnavailable, 1)
		e := newEnv(t, newCluster(t, "jwks", srv.Listener.Addr().String()))
		f, _ := newFilter(t, parseConfig(t, remoteConfig("")), e.build())
		expectFetchFail(t, f, tok)
		expectPass(t, f, tok) // a failure is not kept
		if got := srv.hits.Load(); got != 2 {
			t.Errorf("%d fetches, want 2", got)
		}
	})
	t.Run("not a JWKS", func(t *testing.T) {
		srv := newJWKSServer(t, `{"keys": "no"}`)
		e := newEnv(t, newCluster(t, "jwks", srv.Listener.Addr().String()))
		f, _ := newFilter(t, parseConfig(t, remoteConfig("")), e.build())
		expectFetchFail(t, f, tok)
	})
	t.Run("expired keys are not used when the refetch fails", func(t *testing.T) {
		clock := useClock(t)
		srv := newJWKSServer(t, keys(t).jwks)
		e := newEnv(t, newCluster(t, "jwks", srv.Listener.Addr().String()))
		f, _ := newFilter(t, parseConfig(t, remoteConfig("")), e.build())
		expectPass(t, f, tok)
		srv.failing(http.StatusInternalServerError, -1)
		clock.Advance(11 * time.Minute)
		expectFetchFail(t, f, tok)
	})
	t.Run("a token signed by a key the JWKS has not", func(t *testing.T) {
		srv := newJWKSServer(t, keys(t).jwks)
		e := newEnv(t, newCluster(t, "jwks", srv.Listener.Addr().String()))
		f, _ := newFilter(t, parseConfig(t, remoteConfig("")), e.build())
		res := run(f, nil, request(http.MethodGet, "/x", "Authorization: Bearer "+
			sign(t, keys(t).attacker, jose.RS256, "rsa1", claims(remoteIss, "", nil))))
		if res.status != httpfilter.Stop || res.rec.Code != 401 || res.rec.Body.String() != "Jwt verification fails" {
			t.Errorf("got %v %d %q", res.status, res.rec.Code, res.rec.Body.String())
		}
	})
}

// retry_policy retries a failed fetch at another try.
func TestRemoteJWKS_Retry(t *testing.T) {
	srv := newJWKSServer(t, keys(t).jwks)
	srv.failing(http.StatusServiceUnavailable, 1)
	e := newEnv(t, newCluster(t, "jwks", srv.Listener.Addr().String()))
	f, _ := newFilter(t, parseConfig(t, remoteConfig(`      retry_policy: { num_retries: 2, retry_back_off: { base_interval: 0.01s } }`)), e.build())
	expectPass(t, f, remoteToken(t))
	if got := srv.hits.Load(); got != 2 {
		t.Errorf("%d fetches, want 2 (one failed, one retried)", got)
	}
}

// A recompiled listener keeps the fetched keys (Build.Keep).
func TestRemoteJWKS_KeptAcrossRecompiles(t *testing.T) {
	srv := newJWKSServer(t, keys(t).jwks)
	c := newCluster(t, "jwks", srv.Listener.Addr().String())
	e := newEnv(t, c)
	tok := remoteToken(t)
	f1, _ := newFilter(t, parseConfig(t, remoteConfig("")), e.build())
	expectPass(t, f1, tok)
	f2, _ := newFilter(t, parseConfig(t, remoteConfig("")), e.build())
	expectPass(t, f2, tok)
	if got := srv.hits.Load(); got != 1 {
		t.Errorf("%d fetches across a recompile, want 1", got)
	}
	other := newEnv(t, c) // another listener: its own cache
	f3, _ := newFilter(t, parseConfig(t, remoteConfig("")), other.build())
	expectPass(t, f3, tok)
	if got := srv.hits.Load(); got != 2 {
		t.Errorf("%d fetches, want 2", got)
	}
}

// async_fetch fetches when the config loads and, once expired, refreshes
// in the background, keeping the last keys while refreshes fail (retried
// after failed_refetch_duration).
func TestRemoteJWKS_AsyncFetch(t *testing.T) {
	clock := useClock(t)
	srv := newJWKSServer(t, keys(t).jwks)
	e := newEnv(t, newCluster(t, "jwks", srv.Listener.Addr().String()))
	f, notes := newFilter(t, parseConfig(t, remoteConfig(`      async_fetch: { failed_refetch_duration: 2s }`)), e.build())
	if len(notes) == 0 {
		t.Error("no note on fast_listener")
	}
	e.wg.Wait()
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("%d fetches when the config loaded, want 1", got)
	}
	tok := remoteToken(t)
	expectPass(t, f, tok)

	srv.failing(http.StatusServiceUnavailable, -1)
	clock.Advance(11 * time.Minute)
	expectPass(t, f, tok) // the last keys, a refresh started
	e.wg.Wait()
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("%d fetches after expiry, want 2", got)
	}
	clock.Advance(time.Second)
	expectPass(t, f, tok)
	e.wg.Wait()
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("%d fetches within failed_refetch_duration, want 2", got)
	}
	clock.Advance(2 * time.Second)
	expectPass(t, f, tok)
	e.wg.Wait()
	if got := srv.hits.Load(); got != 3 {
		t.Fatalf("%d fetches after failed_refetch_duration, want 3", got)
	}
}
