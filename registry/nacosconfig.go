package registry

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// nacosConfigReader reads configs over Nacos's open API (GET
// /nacos/v1/cs/configs), which answers 404 for a config that does not
// exist. Traffic rules are read with it rather than through nacos-sdk-go:
// the SDK rate-limits reads to 5 a second per config, process-wide, and
// after a config is deleted its own listen loop queries that config again
// and again (it never settles on a deleted config), using up the limit,
// so the watcher's reads would be refused for as long as the rule stays
// deleted.
type nacosConfigReader struct {
	servers   []string // host:port of Nacos's HTTP API
	namespace string
	username  string
	password  string
	client    *http.Client

	mu          sync.Mutex
	token       string
	tokenExpiry time.Time
	last        int // index of the server that answered last
}

func newNacosConfigReader(opts NacosOptions) *nacosConfigReader {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	namespace := opts.Namespace
	if namespace == "public" {
		// The public namespace's id is "" to Nacos 2's config store: a
		// listener keyed "public" would never match its configs.
		namespace = ""
	}
	return &nacosConfigReader{servers: opts.Servers, namespace: namespace, username: opts.Username, password: opts.Password,
		client: &http.Client{Timeout: timeout}}
}

// get returns a config's content; nil, nil when it does not exist.
func (r *nacosConfigReader) get(ctx context.Context, dataID, group string) ([]byte, error) {
	var errs []error
	for _, server := range r.order() {
		b, err := r.getFrom(ctx, server, dataID, group)
		if err == nil {
			r.answered(server)
			return b, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("reading config %s (group %s): %w", dataID, group, errors.Join(errs...))
}

// order lists the servers, the one that answered last first (a server that
// drops packets would otherwise cost every read its timeout).
func (r *nacosConfigReader) order() []string {
	r.mu.Lock()
	first := r.last
	r.mu.Unlock()
	out := make([]string, 0, len(r.servers))
	out = append(out, r.servers[first%len(r.servers)])
	for i, s := range r.servers {
		if i != first%len(r.servers) {
			out = append(out, s)
		}
	}
	return out
}

func (r *nacosConfigReader) answered(server string) {
	for i, s := range r.servers {
		if s == server {
			r.mu.Lock()
			r.last = i
			r.mu.Unlock()
			return
		}
	}
}

func (r *nacosConfigReader) getFrom(ctx context.Context, server, dataID, group string) ([]byte, error) {
	q := url.Values{"dataId": {dataID}, "group": {group}}
	if r.namespace != "" {
		q.Set("tenant", r.namespace)
	}
	for attempt := 0; ; attempt++ {
		tok, err := r.accessToken(ctx, server, attempt > 0)
		if err != nil {
			return nil, err
		}
		if tok != "" {
			q.Set("accessToken", tok)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+server+"/nacos/v1/cs/configs?"+q.Encode(), nil)
		if err != nil {
			return nil, err
		}
		resp, err := r.client.Do(req)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 10<<20))
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", server, err)
		}
		switch {
		case resp.StatusCode == http.StatusOK:
			if len(body) == 0 {
				return nil, nil
			}
			return body, nil
		case resp.StatusCode == http.StatusNotFound && strings.Contains(string(body), "config data not exist"):
			// Nacos's own answer for a missing config (Java Nacos and
			// rnacos alike), not any 404: a proxy's, or a Nacos 3 server
			// without its v1 API adapter, would delete every rule.
			return nil, nil
		case resp.StatusCode == http.StatusForbidden && r.username != "" && attempt == 0:
			continue // the token expired early (a restarted server): log in again
		}
		return nil, fmt.Errorf("%s: HTTP %d: %.200s", server, resp.StatusCode, body)
	}
}

// accessToken logs in when the registry has a user, keeping the token
// for most of its lifetime; fresh asks for a new one.
func (r *nacosConfigReader) accessToken(ctx context.Context, server string, fresh bool) (string, error) {
	if r.username == "" {
		return "", nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !fresh && r.token != "" && time.Now().Before(r.tokenExpiry) {
		return r.token, nil
	}
	form := url.Values{"username": {r.username}, "password": {r.password}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+server+"/nacos/v1/auth/users/login", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := r.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("%s: logging in: %w", server, err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"accessToken"`
		TokenTTL    int64  `json:"tokenTtl"` // seconds
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: logging in: HTTP %d", server, resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tok); err != nil || tok.AccessToken == "" {
		return "", fmt.Errorf("%s: logging in: no access token in the answer (%v)", server, err)
	}
	ttl := time.Duration(tok.TokenTTL) * time.Second
	if ttl <= 0 {
		ttl = 5 * time.Minute
	}
	r.token, r.tokenExpiry = tok.AccessToken, time.Now().Add(ttl*9/10)
	return r.token, nil
}

// longPoll is how long Nacos holds a listening request open when nothing
// changed (its clients' default is 30s; rnacos takes 10s to 120s).
const longPoll = 30 * time.Second

// changed long-polls Nacos (POST /nacos/v1/cs/configs/listener) with the
// MD5 of the content last read of each config ("" for none): it returns
// as soon as one of them differs on the server (a new, changed or deleted
// config) with their data IDs, or with none after longPoll.
func (r *nacosConfigReader) changed(ctx context.Context, group string, md5s map[string]string) ([]string, error) {
	var listening strings.Builder
	for dataID, sum := range md5s {
		listening.WriteString(dataID + "\x02" + group + "\x02" + sum)
		if r.namespace != "" {
			listening.WriteString("\x02" + r.namespace)
		}
		listening.WriteString("\x01")
	}
	var errs []error
	for _, server := range r.order() {
		ids, err := r.changedAt(ctx, server, listening.String())
		if err == nil {
			r.answered(server)
		}
		if err == nil || ctx.Err() != nil {
			return ids, err
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("listening to %d configs: %w", len(md5s), errors.Join(errs...))
}

func (r *nacosConfigReader) changedAt(ctx context.Context, server, listening string) ([]string, error) {
	tok, err := r.accessToken(ctx, server, false)
	if err != nil {
		return nil, err
	}
	form := url.Values{"Listening-Configs": {listening}}
	if tok != "" {
		form.Set("accessToken", tok)
	}
	ctx, cancel := context.WithTimeout(ctx, longPoll+r.client.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+server+"/nacos/v1/cs/configs/listener", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Long-Pulling-Timeout", strconv.FormatInt(longPoll.Milliseconds(), 10))
	// The request outlives the reads' timeout: its own bound is ctx's.
	resp, err := (&http.Client{Transport: r.client.Transport}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", server, err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", server, err)
	}
	if resp.StatusCode == http.StatusForbidden {
		r.forgetToken()
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: listening: HTTP %d: %.200s", server, resp.StatusCode, body)
	}
	ids, err := changedKeys(body)
	if err != nil {
		return nil, fmt.Errorf("%s: listening: %w", server, err)
	}
	return ids, nil
}

// changedKeys reads the long poll's answer: the changed keys, URL-encoded,
// dataId^2group[^2tenant]^1 each; it returns their data IDs.
func changedKeys(body []byte) ([]string, error) {
	text, err := url.QueryUnescape(strings.TrimSpace(string(body)))
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, key := range strings.Split(text, "\x01") {
		if dataID, _, ok := strings.Cut(key, "\x02"); ok && dataID != "" {
			ids = append(ids, dataID)
		}
	}
	return ids, nil
}

func (r *nacosConfigReader) forgetToken() {
	r.mu.Lock()
	r.token = ""
	r.mu.Unlock()
}

// contentMD5 is the MD5 Nacos keeps of a config's content ("" for none).
func contentMD5(b []byte) string {
	if b == nil {
		return ""
	}
	sum := md5.Sum(b)
	return hex.EncodeToString(sum[:])
}
