package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshgate/meshgate/config"
)

// Mode says which registration model to read.
type Mode string

// The registration models.
const (
	ModeAll         Mode = "all"
	ModeInterface   Mode = "interface"
	ModeApplication Mode = "application"
)

// ZooKeeperOptions configure a ZooKeeper watcher.
type ZooKeeperOptions struct {
	// Name names the registry (the store source is "registry/<name>").
	Name    string
	Servers []string
	// Root is the Dubbo root (default "dubbo"): interface-level nodes live
	// under /<root>, application-level ones under /services.
	Root           string
	SessionTimeout time.Duration
	Mode           Mode
	// Services limits discovery to these services (default: all found).
	Services []ServiceKey
	// Resync re-reads everything this often, besides watching (default 30s).
	Resync   time.Duration
	LBPolicy string
	Logger   *slog.Logger
	// Registerer receives the registry metrics (nil: not registered).
	Registerer prometheus.Registerer
	// Metadata asks Dubbo2 MetadataServices (application-level discovery);
	// nil: only those served over Triple are asked.
	Metadata MetadataCaller
}

// ZooKeeper watches a ZooKeeper registry.
type ZooKeeper struct {
	opts ZooKeeperOptions
	v    *view
	log  *slog.Logger
	m    *metrics

	events chan string // paths whose watch fired; "" for a full resync

	mu    sync.Mutex
	armed map[watchKey]*struct{} // watches set, each with the token of its waiter
	conn  *zk.Conn
}

// NewZooKeeper returns a watcher writing into store; Run starts it.
func NewZooKeeper(store *config.Store, opts ZooKeeperOptions) (*ZooKeeper, error) {
	if opts.Root == "" {
		opts.Root = "dubbo"
	}
	opts.Root = strings.Trim(opts.Root, "/")
	if opts.SessionTimeout <= 0 {
		opts.SessionTimeout = 10 * time.Second
	}
	if opts.Mode == "" {
		opts.Mode = ModeAll
	}
	if opts.Resync <= 0 {
		opts.Resync = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	m := newMetrics(opts.Registerer)
	cat, err := newCatalog(store, "registry/"+opts.Name, opts.Logger, opts.Services, opts.LBPolicy, m)
	if err != nil {
		return nil, err
	}
	log := opts.Logger.With("registry", opts.Name)
	return &ZooKeeper{opts: opts, v: newView(opts.Name, cat, log, m, opts.Metadata), log: log, m: m,
		events: make(chan string, 256), armed: map[watchKey]*struct{}{}}, nil
}

// Run connects and watches until ctx ends. While ZooKeeper is unreachable
// the last known providers keep serving.
func (z *ZooKeeper) Run(ctx context.Context) error {
	conn, sessions, err := zk.Connect(z.opts.Servers, z.opts.SessionTimeout, zk.WithLogger(zkLogger{z.log}))
	if err != nil {
		return fmt.Errorf("registry %s: %w", z.opts.Name, err)
	}
	z.mu.Lock()
	z.conn = conn
	z.mu.Unlock()
	var wg sync.WaitGroup
	defer func() {
		conn.Close()
		wg.Wait()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		z.watchSessions(ctx, sessions)
	}()
	ticker := time.NewTicker(z.opts.Resync)
	defer ticker.Stop()
	z.events <- ""
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			z.v.noteResync()
			z.sync(ctx, "")
		case p := <-z.events:
			if p != "" {
				z.v.noteEvent()
			}
			// Take whatever else fired meanwhile in the same pass.
			batch := map[string]bool{p: true}
		drain:
			for {
				select {
				case q := <-z.events:
					batch[q] = true
				default:
					break drain
				}
			}
			if batch[""] {
				z.sync(ctx, "")
				continue
			}
			for q := range batch {
				z.sync(ctx, q)
			}
		}
	}
}

// watchSessions follows the session: a new session (after expiry) has lost
// every watch, so everything is read again.
func (z *ZooKeeper) watchSessions(ctx context.Context, sessions <-chan zk.Event) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-sessions:
			if !ok {
				return
			}
			switch ev.State {
			case zk.StateHasSession:
				z.v.setConnected(true)
				z.mu.Lock()
				z.armed = map[watchKey]*struct{}{}
				z.mu.Unlock()
				z.send(ctx, "")
			case zk.StateDisconnected, zk.StateExpired:
				z.v.setConnected(false)
				z.log.Warn("ZooKeeper session", "state", ev.State.String())
			}
		}
	}
}

func (z *ZooKeeper) send(ctx context.Context, p string) {
	select {
	case z.events <- p:
	case <-ctx.Done():
	}
}

// watchKind tells ZooKeeper's three watches apart: an exists watch on a
// node that is there fires on its deletion only, never on new children,
// so it must not stand in for a children watch on the same path.
type watchKind uint8

const (
	watchChildren watchKind = iota
	watchData
	watchExists
)

type watchKey struct {
	kind watchKind
	path string
}

// arm hands a watch's firing to the event loop, once per path and kind
// (a second channel for a watch already set is dropped: ZooKeeper fires
// the same event on both).
func (z *ZooKeeper) arm(ctx context.Context, k watchKey, ch <-chan zk.Event) {
	token := &struct{}{}
	z.mu.Lock()
	if z.armed[k] != nil {
		z.mu.Unlock()
		return
	}
	z.armed[k] = token
	z.mu.Unlock()
	go func() {
		select {
		case ev := <-ch:
			z.mu.Lock()
			// A new session may have set this watch again meanwhile.
			if z.armed[k] == token {
				delete(z.armed, k)
			}
			z.mu.Unlock()
			if ev.Type != zk.EventNotWatching {
				z.send(ctx, k.path)
			}
		case <-ctx.Done():
		}
	}()
}

func (z *ZooKeeper) isArmed(k watchKey) bool {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.armed[k] != nil
}

func (z *ZooKeeper) children(ctx context.Context, p string) ([]string, error) {
	k := watchKey{watchChildren, p}
	if z.isArmed(k) {
		kids, _, err := z.conn.Children(p)
		return kids, err
	}
	kids, _, ch, err := z.conn.ChildrenW(p)
	if err != nil {
		return nil, err
	}
	z.arm(ctx, k, ch)
	return kids, nil
}

func (z *ZooKeeper) data(ctx context.Context, p string) ([]byte, error) {
	k := watchKey{watchData, p}
	if z.isArmed(k) {
		b, _, err := z.conn.Get(p)
		return b, err
	}
	b, _, ch, err := z.conn.GetW(p)
	if err != nil {
		return nil, err
	}
	z.arm(ctx, k, ch)
	return b, nil
}

// watchCreation watches for a node found missing. When it was created
// between the read that missed it and this call, the exists watch would
// only fire on its deletion, so the path is read again now instead.
func (z *ZooKeeper) watchCreation(ctx context.Context, p string) {
	exists, _, ch, err := z.conn.ExistsW(p)
	if err != nil {
		return // the session event that follows a lost connection reads everything
	}
	z.arm(ctx, watchKey{watchExists, p}, ch)
	if exists {
		// Not from the event loop's own goroutine: the queue may be full.
		go z.send(ctx, p)
	}
}

// sync re-reads what a fired path covers ("" for everything) and
// publishes the result.
func (z *ZooKeeper) sync(ctx context.Context, p string) {
	root := "/" + z.opts.Root
	var err error
	switch {
	case p == "":
		z.v.retryDefinitions()
		err = z.readRules(ctx, root)
		if z.opts.Mode != ModeApplication {
			err = errors.Join(err, z.readInterfaces(ctx, root))
		}
		if z.opts.Mode != ModeInterface {
			err = errors.Join(err, z.readApps(ctx))
		}
	case p == root:
		err = z.readInterfaces(ctx, root)
	case strings.HasPrefix(p, root+"/metadata/"):
		z.v.retryDefinitions() // a service definition appeared or changed
	case p == root+"/config" || p == root+"/config/dubbo":
		err = z.readRules(ctx, root)
	case strings.HasPrefix(p, root+"/config/dubbo/"):
		err = z.readRule(ctx, p)
	case strings.HasPrefix(p, root+"/"):
		parts := strings.Split(strings.TrimPrefix(p, root+"/"), "/")
		err = z.readInterface(ctx, root, parts[0])
	case p == "/services":
		err = z.readApps(ctx)
	case strings.HasPrefix(p, "/services/"):
		err = z.readApp(ctx, strings.Split(strings.TrimPrefix(p, "/services/"), "/")[0])
	}
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		z.v.noteError("read", err)
		z.log.Warn("reading the registry", "path", p, "error", err)
	}
	z.publish(ctx)
}

// readRules reads the traffic rules of the config center (Dubbo's
// /<root>/config/dubbo/<key>.<kind> nodes) and watches them.
func (z *ZooKeeper) readRules(ctx context.Context, root string) error {
	dir := root + "/config/dubbo"
	names, err := z.children(ctx, dir)
	if errors.Is(err, zk.ErrNoNode) {
		z.v.keepRules(nil)
		z.watchCreation(ctx, dir)
		return nil
	}
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	var errs []error
	for _, n := range names {
		if _, _, ok := ParseRuleName(n); !ok {
			continue
		}
		seen[n] = true
		if err := z.readRule(ctx, dir+"/"+n); err != nil {
			errs = append(errs, err)
		}
	}
	z.v.keepRules(seen)
	return errors.Join(errs...)
}

// readRule reads one rule node (and watches it).
func (z *ZooKeeper) readRule(ctx context.Context, p string) error {
	b, err := z.data(ctx, p)
	if errors.Is(err, zk.ErrNoNode) {
		z.v.setRule(path.Base(p), nil)
		return nil
	}
	if err != nil {
		return err
	}
	if b == nil {
		b = []byte{}
	}
	z.v.setRule(path.Base(p), b)
	return nil
}

func (z *ZooKeeper) readInterfaces(ctx context.Context, root string) error {
	ifaces, err := z.children(ctx, root)
	if err != nil {
		if errors.Is(err, zk.ErrNoNode) {
			// Gone (a new ensemble) or not created yet: nothing is
			// registered; watch for it.
			z.v.keepProviders(nil)
			z.watchCreation(ctx, root)
		}
		return err
	}
	var errs []error
	seen := map[string]bool{}
	for _, iface := range ifaces {
		if iface == "mapping" || iface == "metadata" || iface == "config" {
			continue
		}
		seen[iface] = true
		if err := z.readInterface(ctx, root, iface); err != nil && !errors.Is(err, zk.ErrNoNode) {
			errs = append(errs, err)
		}
	}
	z.v.keepProviders(seen)
	return errors.Join(errs...)
}

// readInterface reads an interface's providers, its configurators
// (override URLs that disable or re-weight providers) and its routers
// (older URL-style condition routers).
func (z *ZooKeeper) readInterface(ctx context.Context, root, iface string) error {
	base := path.Join(root, iface)
	nodes, err := z.children(ctx, base+"/providers")
	if err != nil {
		if errors.Is(err, zk.ErrNoNode) {
			z.v.setProviders(iface, nil)
			z.watchCreation(ctx, base+"/providers")
		}
		return err
	}
	var provs []*Provider
	for _, n := range nodes {
		p, err := ParseURL(n)
		if err != nil {
			z.log.Debug("skipping a provider URL", "node", n, "error", err)
			continue
		}
		provs = append(provs, p)
	}
	overrides, err := z.children(ctx, base+"/configurators")
	switch {
	case err == nil:
		applyOverrides(provs, overrides)
	case errors.Is(err, zk.ErrNoNode):
		// None yet: watch for the first one.
		z.watchCreation(ctx, base+"/configurators")
	default:
		return err
	}
	routers, err := z.children(ctx, base+"/routers")
	switch {
	case err == nil:
		z.v.setURLRouters(iface, routers)
	case errors.Is(err, zk.ErrNoNode):
		z.v.setURLRouters(iface, nil)
		z.watchCreation(ctx, base+"/routers")
	default:
		return err
	}
	if provs == nil {
		provs = []*Provider{}
	}
	z.v.setProviders(iface, provs)
	return nil
}

// applyOverrides applies configurator URLs (override://host:port/iface?
// disabled=true&weight=N) to matching providers (host 0.0.0.0: all).
func applyOverrides(provs []*Provider, nodes []string) {
	for _, n := range nodes {
		o, err := ParseURL(n)
		if err != nil || (o.Params["enabled"] == "false") {
			continue
		}
		if o.Port == 0 && o.Host != "0.0.0.0" && o.Host != "" {
			continue // a host without a port names a consumer: not for providers
		}
		for _, p := range provs {
			if o.Host != "0.0.0.0" && o.Host != "" && (o.Host != p.Host || (o.Port != 0 && o.Port != p.Port)) {
				continue
			}
			if (o.Service.Version != "" && o.Service.Version != p.Service.Version) || (o.Service.Group != "" && o.Service.Group != p.Service.Group) {
				continue
			}
			for _, k := range []string{"disabled", "weight"} {
				if v, ok := o.Params[k]; ok {
					p.Params[k] = v
				}
			}
		}
	}
}

func (z *ZooKeeper) readApps(ctx context.Context) error {
	apps, err := z.children(ctx, "/services")
	if err != nil {
		if errors.Is(err, zk.ErrNoNode) {
			z.v.keepApps(nil)
			z.watchCreation(ctx, "/services")
		}
		return err
	}
	var errs []error
	seen := map[string]bool{}
	for _, app := range apps {
		seen[app] = true
		if err := z.readApp(ctx, app); err != nil && !errors.Is(err, zk.ErrNoNode) {
			errs = append(errs, err)
		}
	}
	z.v.keepApps(seen)
	return errors.Join(errs...)
}

// readApp reads an application's instances (one node per protocol port)
// and fetches the metadata of any revision it has not seen.
func (z *ZooKeeper) readApp(ctx context.Context, app string) error {
	base := "/services/" + app
	nodes, err := z.children(ctx, base)
	if err != nil {
		if errors.Is(err, zk.ErrNoNode) {
			z.v.setInstances(app, nil)
		}
		return err
	}
	insts := map[string]*Instance{}
	for _, n := range nodes {
		b, err := z.data(ctx, base+"/"+n)
		if err != nil {
			continue
		}
		inst, err := ParseZKInstance(b)
		if err != nil {
			z.log.Debug("skipping an instance", "node", base+"/"+n, "error", err)
			continue
		}
		insts[n] = inst
		if err := z.v.fetchMetadata(ctx, inst, z.remoteMetadata); err != nil {
			z.v.noteError("metadata", err)
			z.log.Warn("no metadata for an instance yet", "app", app, "instance", n, "revision", inst.Revision(), "error", err)
		}
	}
	z.v.setInstances(app, insts)
	return nil
}

// remoteMetadata reads an application revision's MetadataInfo from the
// metadata report: /<root>/metadata/<app>/<revision> (Java Dubbo), or
// /<root>/<app>/<revision> (dubbo-go).
func (z *ZooKeeper) remoteMetadata(_ context.Context, app, revision string) ([]byte, error) {
	b, _, err := z.conn.Get(path.Join("/", z.opts.Root, "metadata", app, revision))
	if errors.Is(err, zk.ErrNoNode) {
		b, _, err = z.conn.Get(path.Join("/", z.opts.Root, app, revision))
	}
	return b, err
}

// readDefinition reads a service definition from the metadata report,
// /<root>/metadata/<interface>[/<version>][/<group>]/provider/<app>, and
// watches for it when it is not there yet.
func (z *ZooKeeper) readDefinition(ctx context.Context, k ServiceKey, app string) ([]byte, error) {
	parts := []string{"/", z.opts.Root, "metadata", k.Interface}
	if k.Version != "" {
		parts = append(parts, k.Version)
	}
	if k.Group != "" {
		parts = append(parts, k.Group)
	}
	p := path.Join(append(parts, "provider", app)...)
	b, err := z.data(ctx, p)
	if errors.Is(err, zk.ErrNoNode) {
		z.watchCreation(ctx, p)
		return nil, nil
	}
	return b, err
}

// publish writes the current view into the store.
func (z *ZooKeeper) publish(ctx context.Context) {
	z.v.fetchDefinitions(ctx, z.readDefinition)
	z.v.publish(ctx)
}

// zkLogger sends go-zookeeper's log lines to slog at debug level.
type zkLogger struct{ log *slog.Logger }

func (l zkLogger) Printf(format string, args ...any) { l.log.Debug(fmt.Sprintf(format, args...)) }
