package cli

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/identity"
	"github.com/meshgate/meshgate/internal/testpki"
	"github.com/meshgate/meshgate/server"
	"github.com/meshgate/meshgate/server/admin"
	"github.com/meshgate/meshgate/server/cluster"
)

func TestNewIdentity(t *testing.T) {
	store := config.NewStore(nil)
	tests := []struct {
		name     string
		settings *config.IdentitySettings
		wantType string
		wantErr  string
	}{
		{"istio ca", &config.IdentitySettings{IstioCA: &config.IstioCASettings{Address: "istiod:15012", RootCertFile: "/r", TokenFile: "/t",
			TrustDomain: "example.org", Namespace: "gw", ServiceAccount: "edge", CertTTL: time.Hour}}, "*identity.IstioCA", ""},
		{"files", &config.IdentitySettings{Files: &config.IdentityFilesSettings{CertChain: "/c", PrivateKey: "/k", RootCert: "/r"}}, "*identity.Files", ""},
		{"bad istio ca", &config.IdentitySettings{IstioCA: &config.IstioCASettings{Address: "istiod"}}, "", "want host:port"},
		{"bad files", &config.IdentitySettings{Files: &config.IdentityFilesSettings{CertChain: "/c"}}, "", "all required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := newIdentity(tt.settings, store, slog.New(slog.DiscardHandler))
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("newIdentity() error = %v, want one about %q", err, tt.wantErr)
			}
			if err != nil {
				if src != nil {
					t.Errorf("newIdentity() = %#v with an error, want a nil Source", src)
				}
				return
			}
			if got := typeName(src); got != tt.wantType {
				t.Errorf("newIdentity() = %s, want %s", got, tt.wantType)
			}
			if ca, ok := src.(*identity.IstioCA); ok && ca.SPIFFEID() != "spiffe://example.org/ns/gw/sa/edge" {
				t.Errorf("SPIFFE ID %s", ca.SPIFFEID())
			}
		})
	}
}

func typeName(v any) string {
	switch v.(type) {
	case *identity.IstioCA:
		return "*identity.IstioCA"
	case *identity.Files:
		return "*identity.Files"
	}
	return "?"
}

// servingSource is a data plane that serves one listener.
type servingSource struct{}

func (servingSource) Ready() bool    { return true }
func (servingSource) Draining() bool { return false }
func (servingSource) Listeners() []server.ListenerStatus {
	return []server.ListenerStatus{{Name: "l", Address: "127.0.0.1:1"}}
}
func (servingSource) Config() *config.Set          { return nil }
func (servingSource) Clusters() []*cluster.Cluster { return nil }

// /ready is not LIVE until the workload certificate is in the store.
func TestIdentityGate_Readiness(t *testing.T) {
	ca := testpki.NewCA(t, "mesh")
	leaf := ca.Issue(t, testpki.LeafOptions{URIs: []string{"spiffe://cluster.local/ns/istio-system/sa/meshgate"}})
	dir := t.TempDir()
	files := &config.IdentityFilesSettings{CertChain: filepath.Join(dir, "tls.crt"), PrivateKey: filepath.Join(dir, "tls.key"), RootCert: filepath.Join(dir, "ca.crt")}
	id, err := newIdentity(&config.IdentitySettings{Files: files}, config.NewStore(nil), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	h := admin.ReadinessHandler(servingSource{}, nil, identityGate(id))
	var body string
	ready := func() int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz/ready", nil))
		body = rec.Body.String()
		return rec.Code
	}
	if code := ready(); code != http.StatusServiceUnavailable || !strings.Contains(body, "workload certificate has not been issued") {
		t.Errorf("/healthz/ready without a certificate = %d %s, want 503 naming the certificate", code, body)
	}
	for name, data := range map[string][]byte{files.CertChain: leaf.CertPEM, files.PrivateKey: leaf.KeyPEM, files.RootCert: ca.CertPEM} {
		if err := os.WriteFile(name, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := id.(*identity.Files).Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code := ready(); code != http.StatusOK {
		t.Errorf("/healthz/ready with the certificate = %d, want 200", code)
	}
}

// fakeIdentity becomes ready when its channel is closed.
type fakeIdentity struct {
	identity.Source
	ready chan struct{}
}

func (f fakeIdentity) WaitReady(ctx context.Context) error {
	select {
	case <-f.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f fakeIdentity) Current() (identity.Info, bool) {
	return identity.Info{SPIFFEID: "spiffe://cluster.local/ns/istio-system/sa/meshgate", Serial: "0a"}, true
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A slow certificate is reported once, then its arrival.
func TestReportIdentity(t *testing.T) {
	id := fakeIdentity{ready: make(chan struct{})}
	var logs lockedBuffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		reportIdentity(context.Background(), id, slog.New(slog.NewTextHandler(&logs, nil)), time.Millisecond)
	}()
	deadline := time.After(5 * time.Second)
	for !strings.Contains(logs.String(), "no workload certificate yet") {
		select {
		case <-deadline:
			t.Fatalf("no warning about the missing certificate:\n%s", logs.String())
		case <-time.After(time.Millisecond):
		}
	}
	close(id.ready)
	<-done
	if l := logs.String(); !strings.Contains(l, "workload identity ready") || !strings.Contains(l, "serial=0a") {
		t.Errorf("logs lack the ready identity:\n%s", l)
	}
	// It returns when its context ends.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	reportIdentity(ctx, fakeIdentity{ready: make(chan struct{})}, slog.New(slog.DiscardHandler), time.Hour)
}
