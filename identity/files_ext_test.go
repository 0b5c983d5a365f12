package identity_test

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/identity"
)

type pemFiles struct{ chain, key, root string }

func filesIn(dir string) pemFiles {
	return pemFiles{filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), filepath.Join(dir, "ca.crt")}
}

func (p pemFiles) config() identity.FilesConfig {
	return identity.FilesConfig{CertChain: p.chain, PrivateKey: p.key, RootCert: p.root}
}

func serialOf(c *x509.Certificate) string { return hex.EncodeToString(c.SerialNumber.Bytes()) }

// Each step writes some files and loads them: a new pair replaces the
// certificate; a pair caught half written (cert and key not matching), a
// bad root file or a missing file leave the previous one in the store.
func TestFiles_Load(t *testing.T) {
	ca := newTestCA(t, "spire", time.Now())
	leaf1, chain1, key1 := ca.leafFiles(t, wantID)
	leaf2, chain2, key2 := ca.leafFiles(t, wantID)
	leaf3, chain3, key3 := ca.leafFiles(t, "spiffe://example.org/ns/gw/sa/other")
	f := filesIn(t.TempDir())
	store := config.NewStore(nil)
	src, err := identity.NewFiles(store, f.config(), identity.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Load(context.Background()); err == nil || !strings.Contains(err.Error(), "no such file") || src.Ready() {
		t.Fatalf("Load() before the files exist = %v, ready %v; want a read error, not ready", err, src.Ready())
	}
	steps := []struct {
		name     string
		write    map[string][]byte
		wantErr  string
		wantLeaf *x509.Certificate
		wantID   string
	}{
		{"first pair", map[string][]byte{f.chain: chain1, f.key: key1, f.root: ca.rootPEM}, "", leaf1, wantID},
		{"unchanged", nil, "", leaf1, wantID},
		{"rotated pair", map[string][]byte{f.chain: chain2, f.key: key2}, "", leaf2, wantID},
		{"cert written, key not yet", map[string][]byte{f.chain: chain3}, "private key does not match public key", leaf2, wantID},
		{"key written too", map[string][]byte{f.key: key3}, "", leaf3, "spiffe://example.org/ns/gw/sa/other"},
		{"key of another cert", map[string][]byte{f.key: key1}, "private key does not match public key", leaf3, "spiffe://example.org/ns/gw/sa/other"},
		{"root not PEM", map[string][]byte{f.key: key3, f.root: []byte("junk")}, "root certificates", leaf3, "spiffe://example.org/ns/gw/sa/other"},
		{"root back", map[string][]byte{f.root: ca.rootPEM}, "", leaf3, "spiffe://example.org/ns/gw/sa/other"},
	}
	for _, st := range steps {
		for name, data := range st.write {
			writeFile(t, name, data)
		}
		before := store.Current().Version
		err := src.Load(context.Background())
		if (err == nil) != (st.wantErr == "") || (err != nil && !strings.Contains(err.Error(), st.wantErr)) {
			t.Fatalf("%s: Load() = %v, want an error about %q", st.name, err, st.wantErr)
		}
		if err != nil && store.Current().Version != before {
			t.Errorf("%s: a refused load changed the store", st.name)
		}
		chain, chainPEM, _, roots := storeSecrets(t, store.Current())
		if !chain[0].Equal(st.wantLeaf) {
			t.Errorf("%s: the store's leaf has serial %s, want %s", st.name, serialOf(chain[0]), serialOf(st.wantLeaf))
		}
		if len(roots) != 1 || !roots[0].Equal(ca.root) {
			t.Errorf("%s: ROOTCA holds %d certificates, want the root", st.name, len(roots))
		}
		if want, _ := os.ReadFile(f.chain); err == nil && string(chainPEM) != string(want) {
			t.Errorf("%s: the default secret's chain is not the file's", st.name)
		}
		info, ok := src.Current()
		if !ok || !src.Ready() || info.Serial != serialOf(st.wantLeaf) || info.SPIFFEID != st.wantID || !info.NotAfter.Equal(st.wantLeaf.NotAfter) {
			t.Errorf("%s: Current() = %+v, %v; want serial %s of %s", st.name, info, ok, serialOf(st.wantLeaf), st.wantID)
		}
	}
}

// Run follows a Kubernetes secret volume: the files are symlinks into a
// folder that ..data points to, swapped whole by renaming a new link.
func TestFiles_Run_Watch(t *testing.T) {
	ca := newTestCA(t, "cert-manager", time.Now())
	dir := t.TempDir()
	version := func(name string, chain, key []byte) {
		t.Helper()
		d := filepath.Join(dir, name)
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		for file, data := range map[string][]byte{"tls.crt": chain, "tls.key": key, "ca.crt": ca.rootPEM} {
			if err := os.WriteFile(filepath.Join(d, file), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Symlink(name, filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	leaf1, chain1, key1 := ca.leafFiles(t, wantID)
	version("..v1", chain1, key1)
	for _, file := range []string{"tls.crt", "tls.key", "ca.crt"} {
		if err := os.Symlink(filepath.Join("..data", file), filepath.Join(dir, file)); err != nil {
			t.Fatal(err)
		}
	}
	store, changed := changes()
	logs := &syncBuffer{}
	src, err := identity.NewFiles(store, filesIn(dir).config(), identity.WithPollInterval(time.Hour),
		identity.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()
	ready, cancelReady := context.WithTimeout(ctx, waitFor)
	defer cancelReady()
	if err := src.WaitReady(ready); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	if set, err := nextChange(changed); err != nil || !storeLeafIs(t, set, leaf1) {
		t.Fatalf("first change: %v", err)
	}
	leaf2, chain2, key2 := ca.leafFiles(t, wantID)
	version("..v2", chain2, key2)
	set, err := nextChange(changed)
	if err != nil {
		t.Fatalf("the swapped secret volume was not picked up within 5s: %v\n%s", err, logs.String())
	}
	if !storeLeafIs(t, set, leaf2) {
		t.Errorf("after the swap the store holds another certificate than the new one")
	}
	// Current follows the store update (it is set once Apply returns).
	for end := time.Now().Add(waitFor); ; time.Sleep(5 * time.Millisecond) {
		info, _ := src.Current()
		if info.Serial == serialOf(leaf2) {
			break
		}
		if time.Now().After(end) {
			t.Errorf("Current() = %+v, want serial %s", info, serialOf(leaf2))
			break
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	done <- nil // for the deferred stop
	if l := logs.String(); !strings.Contains(l, "workload certificate loaded") || !strings.Contains(l, "serial="+serialOf(leaf2)) {
		t.Errorf("logs lack the new certificate:\n%s", l)
	}
}

func storeLeafIs(t *testing.T, set *config.Set, want *x509.Certificate) bool {
	t.Helper()
	chain, _, _, _ := storeSecrets(t, set)
	return chain[0].Equal(want)
}

// Without file events, the timer re-reads the files: unchanged files
// change nothing; a rewritten pair goes in; a mismatched pair is logged
// once and kept out.
func TestFiles_Run_Poll(t *testing.T) {
	ca := newTestCA(t, "spire", time.Now())
	f := filesIn(t.TempDir())
	leaf1, chain1, key1 := ca.leafFiles(t, wantID)
	writeFile(t, f.chain, chain1)
	writeFile(t, f.key, key1)
	writeFile(t, f.root, ca.rootPEM)
	clock := newFakeClock()
	store, changed := changes()
	logs := &syncBuffer{}
	src, err := identity.NewFiles(store, f.config(), identity.WithClock(clock), identity.WithPollInterval(30*time.Second),
		identity.WithoutWatch(), identity.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()
	w := clock.next(t)
	if w.d != 30*time.Second {
		t.Errorf("re-read in %v, want the 30s poll interval", w.d)
	}
	if set, err := nextChange(changed); err != nil || !storeLeafIs(t, set, leaf1) {
		t.Fatalf("first load: %v", err)
	}
	// Each poll's load is done before it waits again (next returns).
	poll := func() {
		t.Helper()
		clock.fire(w)
		w = clock.next(t)
	}
	poll()
	select {
	case <-changed:
		t.Error("a poll of unchanged files changed the store")
	default:
	}
	_, chain3, _ := ca.leafFiles(t, wantID)
	writeFile(t, f.chain, chain3)
	poll()
	poll()
	select {
	case <-changed:
		t.Error("a mismatched pair changed the store")
	default:
	}
	if n := strings.Count(logs.String(), "identity files rejected; the certificate in use stays"); n != 1 {
		t.Errorf("the mismatched pair was logged %d times over two polls, want once:\n%s", n, logs.String())
	}
	leaf2, chain2, key2 := ca.leafFiles(t, wantID)
	writeFile(t, f.chain, chain2)
	writeFile(t, f.key, key2)
	poll()
	if set, err := nextChange(changed); err != nil || !storeLeafIs(t, set, leaf2) {
		t.Errorf("the rewritten pair did not go in on the next poll: %v", err)
	}
}

func TestNewFiles_Errors(t *testing.T) {
	tests := []struct {
		name    string
		cfg     identity.FilesConfig
		opts    []identity.Option
		wantErr string
	}{
		{"valid", identity.FilesConfig{CertChain: "a", PrivateKey: "b", RootCert: "c"}, nil, ""},
		{"no root", identity.FilesConfig{CertChain: "a", PrivateKey: "b"}, nil, "all required"},
		{"bad poll", identity.FilesConfig{CertChain: "a", PrivateKey: "b", RootCert: "c"}, []identity.Option{identity.WithPollInterval(0)}, "poll interval"},
	}
	for _, tt := range tests {
		_, err := identity.NewFiles(config.NewStore(nil), tt.cfg, tt.opts...)
		if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s: NewFiles() error = %v, want one about %q", tt.name, err, tt.wantErr)
		}
	}
}
