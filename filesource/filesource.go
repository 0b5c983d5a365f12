// Package filesource is the config source of a file: it loads meshgate's
// YAML (or an Envoy bootstrap) into the config store, and again on SIGHUP
// or when the file changes. It sits beside the other sources (xds,
// registry): sources write resources into the store, config holds them.
package filesource

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/meshgate/meshgate/config"
)

// Name is the store source of resources read from a file.
const Name = "file"

// Source feeds a configuration file into a Store and reloads it on
// request or when the file changes. Identical bytes are not reloaded.
type Source struct {
	store *config.Store
	log   *slog.Logger
	path  string // "" for embedded data
	data  []byte

	mu       sync.Mutex // serialises loads
	lastHash string
	loaded   *config.Loaded
	onLoad   func(*config.Loaded)
}

// OnLoad calls fn with each config that loads (the first and every
// changed one), after its resources are live: the bootstrap settings that
// are not resources (registries) follow reloads through it.
func (f *Source) OnLoad(fn func(*config.Loaded)) {
	f.mu.Lock()
	f.onLoad = fn
	f.mu.Unlock()
}

// New reads path into store on Load. With path "", data (an
// embedded config) is used instead and never reloaded.
func New(store *config.Store, log *slog.Logger, path string, data []byte) *Source {
	return &Source{store: store, log: log, path: path, data: data}
}

// Load reads the file and applies it. On error the store keeps its
// current resources.
func (f *Source) Load(ctx context.Context) (*config.Loaded, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	data, dir := f.data, ""
	if f.path != "" {
		var err error
		if data, err = os.ReadFile(f.path); err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		dir = filepath.Dir(f.path)
	}
	sum := sha256.Sum256(data)
	hash := hex.EncodeToString(sum[:6])
	if hash == f.lastHash {
		return f.loaded, nil
	}
	l, err := config.Load(data, dir)
	if err != nil {
		return nil, err
	}
	err = f.store.Apply(ctx, config.Update{
		Source:    Name,
		Version:   "file:" + hash,
		Replace:   config.ResourceTypes,
		Resources: l.Resources,
	})
	if err != nil {
		return nil, err
	}
	f.lastHash, f.loaded = hash, l
	if f.onLoad != nil {
		f.onLoad(l)
	}
	return l, nil
}

// Watch reloads the file whenever it changes until ctx ends. It watches the
// directory, so editors that replace the file by renaming are seen too.
func (f *Source) Watch(ctx context.Context) error {
	if f.path == "" {
		<-ctx.Done()
		return nil
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch config: %w", err)
	}
	defer w.Close()
	abs, err := filepath.Abs(f.path)
	if err != nil {
		return fmt.Errorf("watch config: %w", err)
	}
	if err := w.Add(filepath.Dir(abs)); err != nil {
		return fmt.Errorf("watch config: %w", err)
	}
	// Editors write in bursts; settle for a moment before reading.
	const settle = 100 * time.Millisecond
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if filepath.Clean(ev.Name) == abs && ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename) != 0 {
				timer.Reset(settle)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			f.log.Warn("config watch error", "error", err)
		case <-timer.C:
			f.Reload(ctx, "file changed")
		}
	}
}

// Reload loads the file and logs the outcome.
func (f *Source) Reload(ctx context.Context, why string) {
	if f.path == "" {
		f.log.Info("the embedded config does not reload", "trigger", why)
		return
	}
	if _, err := f.Load(ctx); err != nil {
		f.log.Error("config reload rejected; the previous config stays", "trigger", why, "path", f.path, "error", err)
		return
	}
	f.log.Info("config reloaded", "trigger", why, "path", f.path, "version", "file:"+f.lastHash)
}
