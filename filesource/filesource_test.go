package filesource_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/filesource"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const good = `clusters: [ { name: %s, endpoints: ["127.0.0.1:9"] } ]`

func write(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// The file's resources go into the store under the source "file", with a
// version from the file's hash; the same bytes are not applied again; a
// bad file is refused whole and the store keeps the last good config;
// a changed file on disk is seen by Watch.
func TestSource(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meshgate.yaml")
	write(t, path, strings.Replace(good, "%s", "a", 1))
	store := config.NewStore(nil)
	loads := 0
	src := filesource.New(store, slog.New(slog.NewTextHandler(io.Discard, nil)), path, nil)
	src.OnLoad(func(*config.Loaded) { loads++ })
	ctx := context.Background()
	if _, err := src.Load(ctx); err != nil {
		t.Fatal(err)
	}
	r := store.Current().Get(config.ClusterType, "a")
	if r == nil || r.Source != filesource.Name || !strings.HasPrefix(r.Version, "file:") {
		t.Fatalf("cluster a = %+v, want it from the file with a file: version", r)
	}
	if _, err := src.Load(ctx); err != nil || loads != 1 {
		t.Errorf("the same bytes again: %v, %d loads; want no second load", err, loads)
	}
	write(t, path, "clusters: [ { name: b, endpoints: [\"not an address\"] } ]")
	if _, err := src.Load(ctx); err == nil {
		t.Fatal("a bad file was accepted")
	}
	if store.Current().Get(config.ClusterType, "a") == nil {
		t.Fatal("a refused file took the last good config away")
	}

	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- src.Watch(wctx) }()
	defer func() { cancel(); <-done }()
	// The watch may not have started when the file is first written:
	// write it again (alternating two equivalent bodies) until it is seen.
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; store.Current().Get(config.ClusterType, "c") == nil; i++ {
		if time.Now().After(deadline) {
			t.Fatal("a changed file was not reloaded within 5s")
		}
		if i%20 == 0 {
			write(t, path, strings.Replace(good, "%s", "c", 1)+strings.Repeat("\n", i/20%2))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if store.Current().Get(config.ClusterType, "a") != nil {
		t.Error("the reload kept a cluster the file no longer has")
	}
}
