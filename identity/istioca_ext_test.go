package identity_test

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/identity"
)

func half() float64 { return 0.5 } // no jitter

type caTest struct {
	clock     *fakeClock
	ca        *testCA
	istiod    *fakeIstiod
	store     *config.Store
	src       *identity.IstioCA
	tokenFile string
	logs      *syncBuffer
}

// startIstioCA runs an IstioCA source against a fake istiod, on a fake
// clock, until the test ends.
// startIstioCA starts a source against a fake istiod; before runs first
// (to set how istiod answers before the first request).
func startIstioCA(t *testing.T, ttl time.Duration, before ...func(*caTest)) *caTest {
	t.Helper()
	ct := &caTest{clock: newFakeClock(), logs: &syncBuffer{}}
	ct.ca = newTestCA(t, "mesh", ct.clock.Now())
	var addr string
	ct.istiod, addr = startFakeIstiod(t, ct.ca, ct.clock)
	dir := t.TempDir()
	rootFile := filepath.Join(dir, "root-cert.pem")
	writeFile(t, rootFile, ct.ca.rootPEM)
	ct.tokenFile = filepath.Join(dir, "istio-token")
	writeFile(t, ct.tokenFile, []byte("token-1\n"))
	ct.store = config.NewStore(nil)
	var err error
	ct.src, err = identity.NewIstioCA(ct.store, identity.IstioCAConfig{
		Address: addr, RootCertFile: rootFile, TokenFile: ct.tokenFile,
		TrustDomain: "example.org", Namespace: "gw", ServiceAccount: "edge", ClusterID: "cluster-2", CertTTL: ttl,
	}, identity.WithClock(ct.clock), identity.WithRand(half), identity.WithBackoff(time.Second, 4*time.Second),
		identity.WithLogger(slog.New(slog.NewTextHandler(ct.logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range before {
		f(ct)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ct.src.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v, want nil when its context ends", err)
			}
		case <-time.After(waitFor):
			t.Error("Run did not return within 5s of its context's end")
		}
	})
	return ct
}

const wantID = "spiffe://example.org/ns/gw/sa/edge"

// The source asks istiod for the SPIFFE ID with the token and the cluster
// id, writes the answer into the store, renews at half life, re-reads a
// rotated token, and keeps the certificate when a renewal fails.
func TestIstioCA_Run(t *testing.T) {
	ct := startIstioCA(t, 20*time.Second)
	start := ct.clock.Now()

	call := ct.istiod.next(t)
	want := caCall{authorization: "Bearer token-1", clusterID: "cluster-2", uris: []string{wantID}, validity: 20}
	if diff := cmp.Diff(want, call, cmp.AllowUnexported(caCall{})); diff != "" {
		t.Errorf("CreateCertificate call (-want +got):\n%s", diff)
	}
	w := ct.clock.next(t)
	if w.d != 10*time.Second {
		t.Errorf("renewal in %v, want 10s (half the 20s lifetime)", w.d)
	}
	if err := ct.src.WaitReady(context.Background()); err != nil || !ct.src.Ready() {
		t.Fatalf("WaitReady = %v, Ready = %v after the first certificate", err, ct.src.Ready())
	}
	first, _ := ct.src.Current()
	if first.SPIFFEID != wantID || !first.NotAfter.Equal(start.Add(20*time.Second)) {
		t.Errorf("Current() = %+v, want %s expiring at %v", first, wantID, start.Add(20*time.Second))
	}
	chain, _, _, roots := storeSecrets(t, ct.store.Current())
	if len(chain) != 3 || !chain[1].Equal(ct.ca.inter) || !chain[2].Equal(ct.ca.root) {
		t.Errorf("default secret chain has %d certificates, want leaf, intermediate, root", len(chain))
	}
	if got := hex.EncodeToString(chain[0].SerialNumber.Bytes()); got != first.Serial {
		t.Errorf("the store's leaf has serial %s, Current() says %s", got, first.Serial)
	}
	if len(roots) != 1 || !roots[0].Equal(ct.ca.root) {
		t.Errorf("ROOTCA holds %d certificates, want the root once (from the file and the chain)", len(roots))
	}
	if logs := ct.logs.String(); !strings.Contains(logs, "workload certificate issued") || !strings.Contains(logs, "spiffe_id="+wantID) ||
		!strings.Contains(logs, "serial="+first.Serial) {
		t.Errorf("logs lack the issuance with SPIFFE ID and serial:\n%s", logs)
	}

	// Half life: the token has rotated meanwhile, and istiod fails twice.
	writeFile(t, ct.tokenFile, []byte("token-2"))
	ct.istiod.fail(2)
	ct.clock.fire(w)
	for i, wantWait := range []time.Duration{time.Second, 2 * time.Second} {
		if call := ct.istiod.next(t); call.authorization != "Bearer token-2" {
			t.Errorf("attempt %d: authorization %q, want the rotated token", i+1, call.authorization)
		}
		w = ct.clock.next(t)
		if w.d != wantWait {
			t.Errorf("retry %d in %v, want %v", i+1, w.d, wantWait)
		}
		if cur, ok := ct.src.Current(); !ok || cur != first {
			t.Errorf("after a failed renewal Current() = %+v, want the first certificate kept", cur)
		}
		if chain, _, _, _ := storeSecrets(t, ct.store.Current()); !chain[0].Equal(storeLeaf(t, ct, first)) {
			t.Error("a failed renewal changed the store's certificate")
		}
		ct.clock.fire(w)
	}
	if call := ct.istiod.next(t); call.authorization != "Bearer token-2" || call.clusterID != "cluster-2" {
		t.Errorf("renewal call %+v, want the rotated token and the cluster id", call)
	}
	w = ct.clock.next(t)
	if w.d != 10*time.Second {
		t.Errorf("after the renewal, next one in %v, want 10s", w.d)
	}
	second, _ := ct.src.Current()
	if second.Serial == first.Serial || !second.NotAfter.Equal(ct.clock.Now().Add(20*time.Second)) {
		t.Errorf("renewed Current() = %+v, want a new serial expiring 20s from now", second)
	}
	chain, _, _, _ = storeSecrets(t, ct.store.Current())
	if got := hex.EncodeToString(chain[0].SerialNumber.Bytes()); got != second.Serial {
		t.Errorf("the store holds serial %s after renewal, want %s", got, second.Serial)
	}
	if logs := ct.logs.String(); !strings.Contains(logs, "renewal failed; the certificate in use is still valid") ||
		!strings.Contains(logs, "injected failure") || !strings.Contains(logs, "serial="+second.Serial) {
		t.Errorf("logs lack the failed renewal or the new issuance:\n%s", logs)
	}
}

func storeLeaf(t *testing.T, ct *caTest, want identity.Info) *x509.Certificate {
	t.Helper()
	chain, _, _, _ := storeSecrets(t, ct.store.Current())
	if got := hex.EncodeToString(chain[0].SerialNumber.Bytes()); got != want.Serial {
		t.Errorf("store leaf serial %s, want %s", got, want.Serial)
	}
	return chain[0]
}

// A certificate that outlives a failing CA is logged as expired, and the
// source keeps trying.
func TestIstioCA_Run_Expired(t *testing.T) {
	ct := startIstioCA(t, 2*time.Second)
	ct.istiod.next(t)
	w := ct.clock.next(t)
	if w.d != time.Second {
		t.Errorf("renewal in %v, want 1s (half the 2s lifetime)", w.d)
	}
	ct.istiod.fail(100)
	for _, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second} {
		ct.clock.fire(w)
		ct.istiod.next(t)
		if w = ct.clock.next(t); w.d != want {
			t.Errorf("retry in %v, want %v", w.d, want)
		}
	}
	if !ct.src.Ready() {
		t.Error("an expired certificate made the source unready; it stays in the store until a new one comes")
	}
	if logs := ct.logs.String(); !strings.Contains(logs, "the certificate in use has EXPIRED") {
		t.Errorf("logs do not say the certificate expired:\n%s", logs)
	}
}

// Answers that are not a usable certificate are refused: nothing goes into
// the store and the request is retried.
func TestIstioCA_RefusesBadAnswers(t *testing.T) {
	tests := []struct {
		name    string
		answer  func(ct *caTest, chain []string) []string
		wantErr string
	}{
		{"leaf alone", func(_ *caTest, chain []string) []string { return chain[:1] }, "cert_chain has 1 certificates"},
		{"not PEM", func(_ *caTest, chain []string) []string { return []string{"junk", chain[2]} }, "cert_chain[0]: no PEM certificate"},
		{"another key's certificate", func(ct *caTest, chain []string) []string {
			_, other, _ := ct.ca.leafFiles(t, wantID)
			return []string{string(other), chain[2]}
		}, "private key does not match public key"},
		{"chain to another root", func(ct *caTest, chain []string) []string {
			return []string{chain[0], chain[1], string(newTestCA(t, "other", ct.clock.Now()).rootPEM)}
		}, "does not verify"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The bad answer is set before the source asks at all.
			ct := startIstioCA(t, 20*time.Second, func(ct *caTest) {
				ct.istiod.mu.Lock()
				ct.istiod.answer = func(chain []string) []string { return tt.answer(ct, chain) }
				ct.istiod.mu.Unlock()
			})
			ct.istiod.next(t)
			if w := ct.clock.next(t); w.d != time.Second {
				t.Errorf("next attempt in %v, want the 1s backoff", w.d)
			}
			if ct.src.Ready() || ct.store.Current().Len(config.SecretType) != 0 {
				t.Errorf("a refused answer made the source ready (%v) or wrote %d secrets", ct.src.Ready(), ct.store.Current().Len(config.SecretType))
			}
			if logs := ct.logs.String(); !strings.Contains(logs, tt.wantErr) {
				t.Errorf("logs lack %q:\n%s", tt.wantErr, logs)
			}
		})
	}
}

func TestNewIstioCA_Errors(t *testing.T) {
	ok := identity.IstioCAConfig{Address: "istiod:15012", RootCertFile: "root.pem", TokenFile: "token"}
	tests := []struct {
		name    string
		edit    func(*identity.IstioCAConfig)
		wantErr string
	}{
		{"valid", func(*identity.IstioCAConfig) {}, ""},
		{"no port", func(c *identity.IstioCAConfig) { c.Address = "istiod" }, "want host:port"},
		{"no root", func(c *identity.IstioCAConfig) { c.RootCertFile = "" }, "root certificate file is required"},
		{"no token", func(c *identity.IstioCAConfig) { c.TokenFile = "" }, "token file is required"},
		{"short ttl", func(c *identity.IstioCAConfig) { c.CertTTL = time.Millisecond }, "want at least 1s"},
		{"bad namespace", func(c *identity.IstioCAConfig) { c.Namespace = "a/b" }, "namespace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			src, err := identity.NewIstioCA(config.NewStore(nil), c)
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("NewIstioCA(%+v) error = %v, want one about %q", c, err, tt.wantErr)
			}
			if err == nil && src.SPIFFEID() != "spiffe://cluster.local/ns/istio-system/sa/meshgate" {
				t.Errorf("default SPIFFE ID %q", src.SPIFFEID())
			}
		})
	}
}
