package jwtauthn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"

	"github.com/meshgate/meshgate/governance"
	"github.com/meshgate/meshgate/server/cluster"
	"github.com/meshgate/meshgate/server/httpfilter"
)

// Defaults of remote JWKS, as Envoy's.
const (
	defaultCacheDuration   = 10 * time.Minute
	defaultFailedRefetch   = time.Second
	defaultBackoffBase     = time.Second
	unboundedFetchTimeout  = time.Minute // for http_uri.timeout 0
	maxJWKSBytes           = 4 << 20
	remoteJWKSKeyNamespace = "jwt_authn/remote_jwks\x00"
)

// retryOn are the failures a JWKS fetch is retried on.
type retryOn uint8

const (
	retry5xx retryOn = 1 << iota
	retryGatewayError
	retryConnectFailure
	retryReset
)

var retryOnNames = map[string]retryOn{
	"5xx": retry5xx, "gateway-error": retryGatewayError, "connect-failure": retryConnectFailure, "reset": retryReset,
}

// remoteJWKS fetches a provider's JWKS through its cluster and caches it
// for cache_duration. Requests that find it missing or expired wait for one
// shared fetch; a failed fetch fails them (closed), as Envoy. With
// async_fetch the keys are fetched when the config loads and, once
// expired, refreshed in the background while the last good keys stay in
// use (Envoy's async fetcher keeps them too).
type remoteJWKS struct {
	cluster       string
	uri           string
	host          string // the URI's host: the fetch's Host header
	path          string // the URI's path and query
	timeout       time.Duration
	cacheDur      time.Duration
	async         bool
	failedRefetch time.Duration
	retries       int
	backoffBase   time.Duration
	backoffMax    time.Duration
	retryOn       retryOn

	clusters func(string) (*cluster.Cluster, bool)
	goBg     func(func())
	log      *slog.Logger
	now      func() time.Time
	st       *jwksState
}

// jwksState is the cache of one JWKS (one cluster and URI of a listener),
// kept across recompiles (httpfilter.Build.Keep).
type jwksState struct {
	mu       sync.Mutex
	keys     *keySet
	fetched  time.Time
	lastFail time.Time
	call     *fetchCall // the fetch under way, nil when none
}

// fetchCall is one fetch that requests wait on together.
type fetchCall struct {
	done chan struct{}
	keys *keySet
	err  error
}

func compileRemote(name string, rj *jwtv3.RemoteJwks, b httpfilter.Build, now func() time.Time) (*remoteJWKS, []string, error) {
	var notes []string
	hu := rj.GetHttpUri()
	u, err := url.Parse(hu.GetUri())
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, nil, fmt.Errorf("provider '%s' has an invalid URI: '%s'", name, hu.GetUri())
	}
	out := &remoteJWKS{
		cluster:       hu.GetCluster(),
		uri:           hu.GetUri(),
		host:          u.Host,
		path:          u.EscapedPath(),
		timeout:       hu.GetTimeout().AsDuration(),
		cacheDur:      defaultCacheDuration,
		failedRefetch: defaultFailedRefetch,
		clusters:      b.Cluster,
		goBg:          b.Go,
		log:           b.Log,
		now:           now,
	}
	if out.cluster == "" {
		return nil, nil, fmt.Errorf("providers[%s].remote_jwks.http_uri: needs a cluster", name)
	}
	if out.path == "" {
		out.path = "/"
	}
	if u.RawQuery != "" {
		out.path += "?" + u.RawQuery
	}
	if out.timeout <= 0 {
		out.timeout = unboundedFetchTimeout
		notes = append(notes, fmt.Sprintf("providers[%s].remote_jwks.http_uri.timeout: 0: fetches are bounded at %s", name, unboundedFetchTimeout))
	}
	if d := rj.GetCacheDuration(); d != nil {
		out.cacheDur = d.AsDuration()
	}
	if af := rj.GetAsyncFetch(); af != nil {
		out.async = true
		if d := af.GetFailedRefetchDuration(); d != nil && d.AsDuration() > 0 {
			out.failedRefetch = d.AsDuration()
		}
		if !af.GetFastListener() {
			notes = append(notes, fmt.Sprintf("providers[%s].remote_jwks.async_fetch.fast_listener: false: the listener is not held until the first fetch; requests before it fetch on demand", name))
		}
	}
	if rp := rj.GetRetryPolicy(); rp != nil {
		more, err := out.retryPolicy(rp)
		if err != nil {
			return nil, nil, fmt.Errorf("providers[%s].remote_jwks.retry_policy.%w", name, err)
		}
		notes = append(notes, more...)
	}
	if out.log == nil {
		out.log = slog.New(slog.DiscardHandler)
	}
	if out.goBg == nil {
		out.goBg = func(f func()) { go f() }
	}
	if out.clusters == nil {
		out.clusters = func(string) (*cluster.Cluster, bool) { return nil, false }
	}
	if _, ok := out.clusters(out.cluster); !ok {
		// As Envoy: the config loads; fetching fails, and so do the tokens.
		notes = append(notes, fmt.Sprintf("providers[%s].remote_jwks: cluster %q is not configured: its tokens fail until it is", name, out.cluster))
	}
	fresh := func() any { return &jwksState{} }
	if b.Keep != nil {
		out.st = b.Keep(remoteJWKSKeyNamespace+out.cluster+"\x00"+out.uri, fresh).(*jwksState)
	} else {
		out.st = fresh().(*jwksState)
	}
	return out, notes, nil
}

// retryPolicy reads the core RetryPolicy of remote_jwks.
func (rj *remoteJWKS) retryPolicy(rp *corev3.RetryPolicy) ([]string, error) {
	var notes []string
	rj.retries = 1 // Envoy: one retry when num_retries is not set
	if n := rp.GetNumRetries(); n != nil {
		rj.retries = int(min(n.GetValue(), 10))
		if n.GetValue() > 10 {
			notes = append(notes, fmt.Sprintf("num_retries: %d: capped at 10", n.GetValue()))
		}
	}
	rj.backoffBase = defaultBackoffBase
	if bo := rp.GetRetryBackOff(); bo != nil {
		rj.backoffBase = bo.GetBaseInterval().AsDuration()
		if rj.backoffBase <= 0 {
			return nil, errors.New("retry_back_off.base_interval: must be above 0")
		}
	}
	rj.backoffMax = 10 * rj.backoffBase
	if mi := rp.GetRetryBackOff().GetMaxInterval(); mi != nil {
		rj.backoffMax = mi.AsDuration()
		if rj.backoffMax < rj.backoffBase {
			return nil, errors.New("retry_back_off.max_interval: must not be below base_interval")
		}
	}
	rj.retryOn = retry5xx | retryGatewayError | retryConnectFailure | retryReset
	if s := rp.GetRetryOn(); s != "" {
		rj.retryOn = 0
		for _, name := range strings.Split(s, ",") {
			bit, ok := retryOnNames[strings.TrimSpace(name)]
			if !ok {
				return nil, fmt.Errorf("retry_on: %q is not supported (want 5xx, gateway-error, connect-failure or reset)", strings.TrimSpace(name))
			}
			rj.retryOn |= bit
		}
	}
	switch {
	case rp.GetRetryPriority() != nil:
		return nil, errors.New("retry_priority: not supported")
	case len(rp.GetRetryHostPredicate()) > 0:
		return nil, errors.New("retry_host_predicate: not supported")
	case rp.GetHostSelectionRetryMaxAttempts() != 0:
		notes = append(notes, "host_selection_retry_max_attempts: ignored; a retry avoids the hosts tried when it can")
	}
	return notes, nil
}

// get returns the keys to verify with, fetching them when they are missing
// or expired. ctx is the waiting request's: a caller that leaves stops
// waiting (the fetch goes on for the others).
func (rj *remoteJWKS) get(ctx context.Context) (*keySet, status) {
	st := rj.st
	now := rj.now()
	st.mu.Lock()
	if st.keys != nil {
		if now.Sub(st.fetched) < rj.cacheDur {
			ks := st.keys
			st.mu.Unlock()
			return ks, statusOK
		}
		if rj.async {
			if st.call == nil && now.Sub(st.lastFail) >= rj.failedRefetch {
				rj.startLocked()
			}
			ks := st.keys
			st.mu.Unlock()
			return ks, statusOK
		}
	}
	call := st.call
	if call == nil {
		call = rj.startLocked()
	}
	st.mu.Unlock()
	select {
	case <-call.done:
	case <-ctx.Done():
		return nil, jwksFetchFail
	}
	if call.err != nil {
		return nil, jwksFetchFail
	}
	return call.keys, statusOK
}

// prefetch starts a fetch unless one is under way (async_fetch).
func (rj *remoteJWKS) prefetch() {
	rj.st.mu.Lock()
	if rj.st.call == nil && (rj.st.keys == nil || rj.now().Sub(rj.st.fetched) >= rj.cacheDur) {
		rj.startLocked()
	}
	rj.st.mu.Unlock()
}

// startLocked starts a fetch in the background; st.mu is held.
func (rj *remoteJWKS) startLocked() *fetchCall {
	c := &fetchCall{done: make(chan struct{})}
	rj.st.call = c
	rj.goBg(func() {
		keys, err := rj.fetch()
		rj.st.mu.Lock()
		if err == nil {
			rj.st.keys, rj.st.fetched = keys, rj.now()
		} else {
			rj.st.lastFail = rj.now()
		}
		c.keys, c.err = keys, err
		rj.st.call = nil
		rj.st.mu.Unlock()
		close(c.done)
		if err != nil {
			rj.log.Warn("jwt_authn: fetching the JWKS failed", "uri", rj.uri, "cluster", rj.cluster, "error", err)
		}
	})
	return c
}

// fetch gets the JWKS from a host of the cluster, retrying as the retry
// policy says, all within http_uri.timeout.
func (rj *remoteJWKS) fetch() (*keySet, error) {
	ctx, cancel := context.WithTimeout(context.Background(), rj.timeout)
	defer cancel()
	cl, ok := rj.clusters(rj.cluster)
	if !ok || cl == nil {
		return nil, fmt.Errorf("cluster %q is not configured", rj.cluster)
	}
	var tried []*cluster.Host
	var lastErr error
	for attempt := 0; attempt <= rj.retries; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(rj.backoff(attempt))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, lastErr
			}
		}
		ks, retry, err := rj.try(ctx, cl, &tried)
		if err == nil {
			return ks, nil
		}
		lastErr = err
		if !retry || ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

// backoff is Envoy's jittered exponential back-off before retry n (1...).
func (rj *remoteJWKS) backoff(n int) time.Duration {
	ceiling := rj.backoffBase << min(n-1, 30)
	if ceiling > rj.backoffMax || ceiling <= 0 {
		ceiling = rj.backoffMax
	}
	return time.Duration(rand.Int64N(int64(ceiling) + 1))
}

// try is one attempt at one host; retry says whether the failure is one
// the policy retries.
func (rj *remoteJWKS) try(ctx context.Context, cl *cluster.Cluster, tried *[]*cluster.Host) (*keySet, bool, error) {
	rt := cl.Transport(false)
	if rt == nil {
		return nil, false, fmt.Errorf("cluster %q does not speak HTTP", rj.cluster)
	}
	a, err := cl.Begin(governance.PickInfo{}, *tried)
	if err != nil {
		return nil, rj.retryOn&retry5xx != 0, err
	}
	*tried = append(*tried, a.Host)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cl.Scheme()+"://"+a.Host.Address+rj.path, nil)
	if err != nil {
		a.End(governance.Outcome{Status: 200}, false)
		return nil, false, err
	}
	req.Host = rj.host
	resp, err := rt.RoundTrip(req)
	if err != nil {
		local := governance.Reset
		var op *net.OpError
		switch {
		case ctx.Err() != nil:
			local = governance.Timeout
		case errors.As(err, &op) && op.Op == "dial":
			local = governance.ConnectFailure
		}
		a.End(governance.Outcome{Local: local}, true)
		retry := false
		switch local {
		case governance.ConnectFailure:
			retry = rj.retryOn&(retryConnectFailure|retry5xx|retryGatewayError) != 0
		case governance.Reset:
			retry = rj.retryOn&(retryReset|retry5xx|retryGatewayError) != 0
		}
		return nil, retry, fmt.Errorf("fetching %s from %s: %w", rj.uri, a.Host.Address, err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	_ = resp.Body.Close()
	a.End(governance.Outcome{Status: resp.StatusCode}, true)
	switch {
	case resp.StatusCode != http.StatusOK:
		c := resp.StatusCode
		retry := c >= 500 && rj.retryOn&retry5xx != 0 ||
			(c == 502 || c == 503 || c == 504) && rj.retryOn&retryGatewayError != 0
		return nil, retry, fmt.Errorf("fetching %s from %s: status %d", rj.uri, a.Host.Address, c)
	case err != nil:
		return nil, rj.retryOn&retryReset != 0, fmt.Errorf("reading %s from %s: %w", rj.uri, a.Host.Address, err)
	case len(body) > maxJWKSBytes:
		return nil, false, fmt.Errorf("%s: the JWKS is over %d bytes", rj.uri, maxJWKSBytes)
	}
	ks := parseJWKS(body)
	if ks.status != statusOK {
		return nil, false, fmt.Errorf("%s: invalid JWKS: %s", rj.uri, ks.status)
	}
	return ks, false, nil
}
