package identity

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/meshgate/meshgate/config"
)

// FilesConfig names the PEM files that another agent (cert-manager's csi
// driver, SPIRE's helper, a Kubernetes TLS secret) keeps up to date.
type FilesConfig struct {
	// CertChain is the certificate chain, leaf first.
	CertChain string
	// PrivateKey is the leaf's key.
	PrivateKey string
	// RootCert holds the trust anchors of the mesh.
	RootCert string
}

// settleDelay lets an agent finish writing several files before they are
// read (writes come in bursts).
const settleDelay = 100 * time.Millisecond

// Files writes the certificate of files into the store and follows their
// changes: it watches their folders (Kubernetes swaps a mounted secret's
// files through a symlink) and re-reads them on a timer as well. A chain
// and key that do not match (a pair caught half written) are not applied:
// the previous certificate stays and the error is logged.
type Files struct {
	publisher
	cfg  FilesConfig
	opts options

	mu        sync.Mutex // serialises loads
	applied   string     // hash of the files in the store
	lastError string     // hash and error last logged, to log each once
}

// NewFiles checks c and returns a source that writes into store.
func NewFiles(store *config.Store, c FilesConfig, opts ...Option) (*Files, error) {
	if c.CertChain == "" || c.PrivateKey == "" || c.RootCert == "" {
		return nil, errors.New("identity: files: cert_chain, private_key and root_cert are all required")
	}
	o := newOptions(opts)
	if o.poll <= 0 {
		return nil, fmt.Errorf("identity: files: poll interval %v: want a positive duration", o.poll)
	}
	return &Files{publisher: newPublisher(store), cfg: c, opts: o}, nil
}

// Load reads the files and writes them into the store if they changed
// since the last load. On error the store keeps what it has.
func (f *Files) Load(ctx context.Context) error {
	_, _, _, err := f.load(ctx)
	return err
}

// load returns the hash of what it read and whether the store changed.
func (f *Files) load(ctx context.Context) (info Info, changed bool, hash string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := sha256.New()
	var data [3][]byte
	var readErr error
	for i, name := range []string{f.cfg.CertChain, f.cfg.PrivateKey, f.cfg.RootCert} {
		b, err := os.ReadFile(name)
		if err != nil {
			readErr = errors.Join(readErr, fmt.Errorf("identity: files: %w", err))
		}
		data[i] = b
		h.Write(b)
		h.Write([]byte{0})
	}
	hash = hex.EncodeToString(h.Sum(nil))
	if readErr != nil {
		return Info{}, false, hash, readErr
	}
	if hash == f.applied {
		return Info{}, false, hash, nil
	}
	roots, err := parseCerts(data[2])
	if err != nil {
		return Info{}, false, hash, fmt.Errorf("identity: files: root certificates %s: %w", f.cfg.RootCert, err)
	}
	b, err := newBundle(data[0], data[1], roots)
	if err != nil {
		return Info{}, false, hash, fmt.Errorf("identity: files %s and %s: %w", f.cfg.CertChain, f.cfg.PrivateKey, err)
	}
	if info, err = f.publish(ctx, b); err != nil {
		return Info{}, false, hash, err
	}
	f.applied = hash
	return info, true, hash, nil
}

// Run loads the files, then reloads them when they change or every poll
// interval, until ctx ends. Errors are logged, never returned: the files
// may appear later.
func (f *Files) Run(ctx context.Context) error {
	log := f.opts.log.With("source", "identity-files", "cert_chain", f.cfg.CertChain)
	var events <-chan fsnotify.Event
	var watchErrs <-chan error
	if f.opts.watch {
		w, err := f.watch()
		if err != nil {
			log.Warn("identity files are not watched; they are re-read on the timer only", "every", f.opts.poll, "error", err)
		} else {
			defer w.Close()
			events, watchErrs = w.Events, w.Errors
		}
	}
	// Watching first, then reading: a change in between is not missed.
	f.reload(ctx, log, "start")
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	defer settle.Stop()
	poll := f.opts.clock.After(f.opts.poll)
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			settle.Reset(settleDelay)
		case err, ok := <-watchErrs:
			if !ok {
				watchErrs = nil
				continue
			}
			log.Warn("identity files watch error", "error", err)
		case <-settle.C:
			f.reload(ctx, log, "files changed")
		case <-poll:
			f.reload(ctx, log, "timer")
			poll = f.opts.clock.After(f.opts.poll)
		}
	}
}

// reload loads and logs what happened: each new certificate, and each
// new error once.
func (f *Files) reload(ctx context.Context, log *slog.Logger, why string) {
	info, changed, hash, err := f.load(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		key := hash + err.Error()
		f.mu.Lock()
		repeated := key == f.lastError
		f.lastError = key
		f.mu.Unlock()
		if repeated {
			return
		}
		if cur, ok := f.Current(); ok {
			log.Error("identity files rejected; the certificate in use stays", "trigger", why, "in_use", cur, "error", err)
		} else {
			log.Error("identity files rejected; no certificate yet", "trigger", why, "error", err)
		}
		return
	}
	f.mu.Lock()
	f.lastError = ""
	f.mu.Unlock()
	if !changed {
		return
	}
	args := []any{"trigger", why, "spiffe_id", info.SPIFFEID, "serial", info.Serial, "expires", info.NotAfter}
	if !f.opts.clock.Now().Before(info.NotAfter) {
		log.Error("workload certificate loaded, but it has EXPIRED", args...)
		return
	}
	log.Info("workload certificate loaded", args...)
}

// watch watches the folders of the three files.
func (f *Files) watch() (*fsnotify.Watcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	dirs := map[string]bool{}
	for _, name := range []string{f.cfg.CertChain, f.cfg.PrivateKey, f.cfg.RootCert} {
		abs, err := filepath.Abs(name)
		if err != nil {
			_ = w.Close()
			return nil, err
		}
		dir := filepath.Dir(abs)
		if dirs[dir] {
			continue
		}
		dirs[dir] = true
		if err := w.Add(dir); err != nil {
			_ = w.Close()
			return nil, err
		}
	}
	return w, nil
}
