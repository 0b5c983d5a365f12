package announce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
)

// ZooKeeper registers in a ZooKeeper ensemble, at the paths Dubbo 3
// providers write (see the package comment).
type ZooKeeper struct {
	conn    *zk.Conn
	servers []string
	root    string
	log     *slog.Logger

	mu sync.Mutex
	// ephemeral are the nodes that make the provider discoverable, with
	// the data last written: what Deregister deletes and Register repairs.
	ephemeral map[string][]byte
	// persisted are the persistent nodes written (mapping, definitions):
	// each written once per content.
	persisted map[string][]byte
}

// DialZooKeeper connects to servers (in the background: calls wait for
// the session). root is Dubbo's root node ("" for "dubbo").
func DialZooKeeper(servers []string, root string, sessionTimeout time.Duration, log *slog.Logger) (*ZooKeeper, error) {
	if len(servers) == 0 {
		return nil, errors.New("zookeeper: no servers")
	}
	if sessionTimeout <= 0 {
		sessionTimeout = 30 * time.Second
	}
	root = "/" + strings.Trim(root, "/")
	if root == "/" {
		root = "/dubbo"
	}
	conn, _, err := zk.Connect(servers, sessionTimeout, zk.WithLogger(zkQuiet{log}))
	if err != nil {
		return nil, fmt.Errorf("zookeeper %v: %w", servers, err)
	}
	return &ZooKeeper{conn: conn, servers: servers, root: root, log: log, ephemeral: map[string][]byte{}, persisted: map[string][]byte{}}, nil
}

// zkQuiet sends the client's chatter (each reconnect) to debug.
type zkQuiet struct{ log *slog.Logger }

func (l zkQuiet) Printf(format string, args ...any) { l.log.Debug(fmt.Sprintf(format, args...)) }

func (z *ZooKeeper) Name() string { return "zookeeper " + strings.Join(z.servers, ",") }

func (z *ZooKeeper) Close() { z.conn.Close() }

// Register writes, for each service, its provider URL (interface-level)
// and the interface -> application mapping, the instance (instance-level),
// and the definitions (the metadata report).
func (z *ZooKeeper) Register(ctx context.Context, p *Provider, m *MetadataInfo, mode Mode) error {
	z.mu.Lock()
	defer z.mu.Unlock()
	want := map[string][]byte{}
	for i := range p.Services {
		s := &p.Services[i]
		if mode.interfaceLevel() {
			for _, proto := range p.protocols() {
				want[path.Join(z.root, s.Interface, "providers", url.QueryEscape(p.URL(s, proto)))] = []byte(p.Host)
			}
		}
		if err := z.mapApp(ctx, s.Interface, p.App); err != nil {
			return err
		}
		def, err := p.Definition(s)
		if err != nil {
			return err
		}
		if err := z.persist(ctx, z.definitionPath(s, p.App), def); err != nil {
			return err
		}
	}
	if mode.instanceLevel() {
		inst, err := p.InstanceJSON(m.Revision)
		if err != nil {
			return err
		}
		want[path.Join("/services", p.App, p.Address())] = inst
	}
	// What is no longer wanted goes first (a service dropped, the
	// instance of an older address).
	for node := range z.ephemeral {
		if _, ok := want[node]; !ok {
			if err := z.delete(ctx, node); err != nil {
				return err
			}
		}
	}
	for node, data := range want {
		if err := z.ensureEphemeral(ctx, node, data); err != nil {
			return err
		}
	}
	return nil
}

// Deregister deletes the ephemeral nodes.
func (z *ZooKeeper) Deregister(ctx context.Context) error {
	z.mu.Lock()
	defer z.mu.Unlock()
	var errs []error
	for node := range z.ephemeral {
		if err := z.delete(ctx, node); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// definitionPath is where Java Dubbo's metadata report keeps a service's
// definition: /<root>/metadata/<interface>[/<version>][/<group>]/provider/<app>.
func (z *ZooKeeper) definitionPath(s *Service, app string) string {
	parts := []string{z.root, "metadata", s.Interface}
	if s.Version != "" {
		parts = append(parts, s.Version)
	}
	if s.Group != "" {
		parts = append(parts, s.Group)
	}
	return path.Join(append(parts, "provider", app)...)
}

// ensureEphemeral makes node exist with data: created when missing (an
// expired session took it), set when its data changed.
func (z *ZooKeeper) ensureEphemeral(ctx context.Context, node string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	cur, stat, err := z.conn.Get(node)
	switch {
	case errors.Is(err, zk.ErrNoNode):
		if err := z.ensureParent(node); err != nil {
			return err
		}
		if _, err := z.conn.Create(node, data, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("zookeeper: creating %s: %w", node, err)
		}
	case err != nil:
		return fmt.Errorf("zookeeper: reading %s: %w", node, err)
	case stat.EphemeralOwner != z.conn.SessionID():
		// Left by an earlier session of this address (a restart within
		// the session timeout): it would vanish when that session ends.
		if err := z.conn.Delete(node, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
			return fmt.Errorf("zookeeper: replacing %s: %w", node, err)
		}
		if _, err := z.conn.Create(node, data, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
			return fmt.Errorf("zookeeper: creating %s: %w", node, err)
		}
	case !slices.Equal(cur, data):
		if _, err := z.conn.Set(node, data, stat.Version); err != nil {
			return fmt.Errorf("zookeeper: writing %s: %w", node, err)
		}
	}
	z.ephemeral[node] = data
	return nil
}

// persist writes a persistent node once per content.
func (z *ZooKeeper) persist(ctx context.Context, node string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if slices.Equal(z.persisted[node], data) {
		return nil
	}
	if err := z.ensureParent(node); err != nil {
		return err
	}
	_, err := z.conn.Create(node, data, 0, zk.WorldACL(zk.PermAll))
	if errors.Is(err, zk.ErrNodeExists) {
		_, err = z.conn.Set(node, data, -1)
	}
	if err != nil {
		return fmt.Errorf("zookeeper: writing %s: %w", node, err)
	}
	z.persisted[node] = data
	return nil
}

// mapApp adds app to the interface's mapping node (comma-separated
// application names), keeping the others.
func (z *ZooKeeper) mapApp(ctx context.Context, iface, app string) error {
	node := path.Join(z.root, "mapping", iface)
	if _, done := z.persisted[node]; done {
		return nil
	}
	if err := z.ensureParent(node); err != nil {
		return err
	}
	for range 10 { // a concurrent writer: read again
		if err := ctx.Err(); err != nil {
			return err
		}
		cur, stat, err := z.conn.Get(node)
		if errors.Is(err, zk.ErrNoNode) {
			_, err = z.conn.Create(node, []byte(app), 0, zk.WorldACL(zk.PermAll))
			if errors.Is(err, zk.ErrNodeExists) {
				continue
			}
		} else if err == nil {
			apps := strings.Split(string(cur), ",")
			if slices.Contains(apps, app) {
				z.persisted[node] = cur
				return nil
			}
			if len(cur) == 0 {
				apps = nil
			}
			_, err = z.conn.Set(node, []byte(strings.Join(append(apps, app), ",")), stat.Version)
			if errors.Is(err, zk.ErrBadVersion) {
				continue
			}
		}
		if err != nil {
			return fmt.Errorf("zookeeper: mapping %s -> %s: %w", iface, app, err)
		}
		z.persisted[node] = []byte(app)
		return nil
	}
	return fmt.Errorf("zookeeper: mapping %s -> %s: the node kept changing", iface, app)
}

// delete removes an ephemeral node written here.
func (z *ZooKeeper) delete(ctx context.Context, node string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := z.conn.Delete(node, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("zookeeper: deleting %s: %w", node, err)
	}
	delete(z.ephemeral, node)
	return nil
}

// ensureParent creates the persistent nodes above node.
func (z *ZooKeeper) ensureParent(node string) error {
	dir := path.Dir(node)
	var p string
	for _, part := range strings.Split(strings.Trim(dir, "/"), "/") {
		p += "/" + part
		if _, err := z.conn.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("zookeeper: creating %s: %w", p, err)
		}
	}
	return nil
}
