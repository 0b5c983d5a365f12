package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/config_client"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client"
	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshgate/meshgate/config"
)

// NacosOptions configure a Nacos watcher.
type NacosOptions struct {
	// Name names the registry (the store source is "registry/<name>").
	Name string
	// Servers are Nacos HTTP addresses (host:port); the gRPC port that
	// Nacos 2 clients use is GRPCPort, or the HTTP port + 1000.
	Servers   []string
	GRPCPort  uint64
	Namespace string // namespace id ("" is public)
	Group     string // default DEFAULT_GROUP
	Username  string
	Password  string
	Mode      Mode
	// Services limits discovery to these services (default: all found).
	Services []ServiceKey
	// Resync re-lists the services and re-reads every subscription this
	// often, besides the pushes (default 10s). Without Services, a
	// service never seen before is found at the next resync; with them,
	// the watcher subscribes to each service (and listens to its
	// interface -> application mapping) as a Dubbo consumer does, and
	// finds it as soon as Nacos pushes.
	Resync   time.Duration
	LBPolicy string
	// WorkDir holds the Nacos client's logs and cache (default: a
	// directory under the system temp dir).
	WorkDir    string
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Timeout bounds each request to Nacos (default 5s).
	Timeout time.Duration
	// Metadata asks Dubbo2 MetadataServices (application-level discovery);
	// nil: only those served over Triple are asked.
	Metadata MetadataCaller
}

// rulePushed is the event of a traffic rule's change: the rule is already
// set, so only a publish follows (no Nacos service name holds a NUL).
const rulePushed = "\x00rule"

// Nacos watches a Nacos registry: interface-level services named
// providers:<interface>:<version>:<group>, and application-level services
// (named after the application) whose instances carry Dubbo's metadata
// revision.
type Nacos struct {
	opts NacosOptions
	v    *view
	log  *slog.Logger
	m    *metrics

	naming  naming_client.INamingClient
	configs config_client.IConfigClient
	rules   *nacosConfigReader // traffic rules, read past the SDK's rate limit

	events chan string // services whose push arrived; "" for a resync, rulePushed for a rule

	mu        sync.Mutex
	subs      map[string]*vo.SubscribeParam // by service name
	instances map[string][]model.Instance   // last push, by service name
	mappings  map[string]bool               // interfaces whose mapping is listened to
	ruleMD5s  map[string]string             // rule data IDs watched (group dubbo): the MD5 of the content last read
	// ruleReads numbers the rule reads; ruleApplied is, per data ID, the
	// number of the read whose content is in force.
	ruleReads   uint64
	ruleApplied map[string]uint64
	// pollFailing: the rule watch's last long poll failed (the resync
	// then reads every rule itself).
	pollFailing atomic.Bool
	// rulesAdded wakes the rule watch when a data ID is added (its long
	// poll started without it).
	rulesAdded chan struct{}
}

// NewNacos returns a watcher writing into store; Run starts it.
func NewNacos(store *config.Store, opts NacosOptions) (*Nacos, error) {
	if len(opts.Servers) == 0 {
		return nil, fmt.Errorf("registry %s: no Nacos servers", opts.Name)
	}
	if opts.Group == "" {
		opts.Group = constant.DEFAULT_GROUP
	}
	if opts.Mode == "" {
		opts.Mode = ModeAll
	}
	if opts.Resync <= 0 {
		opts.Resync = 10 * time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.WorkDir == "" {
		opts.WorkDir = filepath.Join(os.TempDir(), "meshgate-nacos", fmt.Sprintf("%s-%d", opts.Name, os.Getpid()))
	}
	m := newMetrics(opts.Registerer)
	cat, err := newCatalog(store, "registry/"+opts.Name, opts.Logger, opts.Services, opts.LBPolicy, m)
	if err != nil {
		return nil, err
	}
	log := opts.Logger.With("registry", opts.Name)
	return &Nacos{opts: opts, v: newView(opts.Name, cat, log, m, opts.Metadata), log: log, m: m,
		events: make(chan string, 256), subs: map[string]*vo.SubscribeParam{}, instances: map[string][]model.Instance{}, mappings: map[string]bool{},
		ruleMD5s: map[string]string{}, ruleApplied: map[string]uint64{}, rulesAdded: make(chan struct{}, 1), rules: newNacosConfigReader(opts)}, nil
}

func (n *Nacos) clientParam() (vo.NacosClientParam, error) { return NacosClientParam(n.opts) }

// NacosClientParam is how a Nacos client (naming or config) is made for
// opts: its servers, namespace, credentials, timeout, and the client's
// files under opts.WorkDir.
func NacosClientParam(opts NacosOptions) (vo.NacosClientParam, error) {
	var servers []constant.ServerConfig
	for _, s := range opts.Servers {
		host, portStr, err := net.SplitHostPort(s)
		if err != nil {
			return vo.NacosClientParam{}, fmt.Errorf("registry %s: server %q: %w", opts.Name, s, err)
		}
		port, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil {
			return vo.NacosClientParam{}, fmt.Errorf("registry %s: server %q: bad port", opts.Name, s)
		}
		servers = append(servers, constant.ServerConfig{IpAddr: host, Port: port, GrpcPort: opts.GRPCPort, ContextPath: "/nacos", Scheme: "http"})
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	workDir := opts.WorkDir
	if workDir == "" {
		workDir = filepath.Join(os.TempDir(), "meshgate-nacos", fmt.Sprintf("%s-%d", opts.Name, os.Getpid()))
	}
	return vo.NacosClientParam{
		ClientConfig: &constant.ClientConfig{
			NamespaceId: opts.Namespace, TimeoutMs: uint64(timeout.Milliseconds()),
			Username: opts.Username, Password: opts.Password,
			// Without it the client ignores a push of zero instances, and
			// the last provider of a service would never go away.
			UpdateCacheWhenEmpty: true,
			NotLoadCacheAtStart:  true,
			DisableUseSnapShot:   true,
			LogDir:               filepath.Join(workDir, "log"),
			CacheDir:             filepath.Join(workDir, "cache"),
			LogLevel:             "error",
		},
		ServerConfigs: servers,
	}, nil
}

// Run connects and watches until ctx ends.
func (n *Nacos) Run(ctx context.Context) error {
	param, err := n.clientParam()
	if err != nil {
		return err
	}
	if n.naming, err = clients.NewNamingClient(param); err != nil {
		return fmt.Errorf("registry %s: naming client: %w", n.opts.Name, err)
	}
	defer n.naming.CloseClient()
	if n.configs, err = clients.NewConfigClient(param); err != nil {
		return fmt.Errorf("registry %s: config client: %w", n.opts.Name, err)
	}
	defer n.configs.CloseClient()
	defer n.unsubscribeAll()
	watchCtx, stopWatch := context.WithCancel(ctx)
	var watching sync.WaitGroup
	watching.Add(1)
	go func() {
		defer watching.Done()
		n.watchRules(watchCtx)
	}()
	defer watching.Wait()
	defer stopWatch()

	ticker := time.NewTicker(n.opts.Resync)
	defer ticker.Stop()
	// A resync that failed in part (Nacos down, a subscription refused)
	// is tried again with backoff, not only at the next tick.
	const firstRetry = 500 * time.Millisecond
	backoff := firstRetry
	var retry <-chan time.Time
	resync := func() {
		if n.resync(ctx) {
			backoff, retry = firstRetry, nil
			return
		}
		retry = time.After(backoff)
		backoff = min(2*backoff, n.opts.Resync, 30*time.Second)
	}
	resync()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			n.v.noteResync()
			resync()
		case <-retry:
			resync()
		case s := <-n.events:
			n.v.noteEvent()
			batch := map[string]bool{s: true}
		drain:
			for {
				select {
				case q := <-n.events:
					batch[q] = true
				default:
					break drain
				}
			}
			if batch[""] {
				resync()
				continue
			}
			for q := range batch {
				if q != rulePushed {
					n.apply(ctx, q)
				}
			}
			n.publish(ctx)
		}
	}
}

// kind sorts a Nacos service name: interface-level providers, some other
// Dubbo category (consumers, configurators, routers: not read), or an
// application.
func kind(service string) string {
	switch {
	case strings.HasPrefix(service, "providers:"):
		return "interface"
	case strings.HasPrefix(service, "consumers:"), strings.HasPrefix(service, "configurators:"), strings.HasPrefix(service, "routers:"):
		return ""
	}
	return "application"
}

// resync lists the services, subscribes to new ones, drops the ones gone,
// and re-reads every subscription. It reports whether all of it worked.
func (n *Nacos) resync(ctx context.Context) bool {
	n.v.setConnected(n.naming.ServerHealthy())
	names, err := n.serviceNames(ctx)
	if err != nil {
		n.v.noteError("read", err)
		n.log.Warn("listing the Nacos services", "error", err.Error())
		return false // keep what is known
	}
	want := map[string]bool{}
	for _, s := range names {
		switch kind(s) {
		case "interface":
			if n.opts.Mode != ModeApplication {
				want[s] = true
			}
		case "application":
			if n.opts.Mode != ModeInterface {
				want[s] = true
			}
		}
	}
	n.mu.Lock()
	var gone []*vo.SubscribeParam
	for s, p := range n.subs {
		if !want[s] {
			gone = append(gone, p)
			delete(n.subs, s)
			delete(n.instances, s)
		}
	}
	n.mu.Unlock()
	for _, p := range gone {
		if err := n.naming.Unsubscribe(p); err != nil {
			n.log.Debug("unsubscribing", "service", p.ServiceName, "error", err)
		}
	}
	ok := true
	for s := range want {
		if err := n.subscribe(ctx, s); err != nil {
			ok = false
			n.v.noteError("read", err)
			n.log.Warn("subscribing to a Nacos service", "service", s, "error", err.Error())
		}
	}
	n.v.retryDefinitions()
	keepKeys, keepApps := map[string]bool{}, map[string]bool{}
	for s := range want {
		// The subscription's cache, which the client keeps fresh.
		insts, err := n.naming.SelectAllInstances(vo.SelectAllInstancesParam{ServiceName: s, GroupName: n.opts.Group})
		if err != nil {
			n.v.noteError("read", err)
			n.log.Warn("reading a Nacos service", "service", s, "error", err.Error())
			keepKeys[s], keepApps[s] = true, true // keep the last known
			ok = false
			continue
		}
		n.mu.Lock()
		n.instances[s] = insts
		n.mu.Unlock()
		n.apply(ctx, s)
		keepKeys[s], keepApps[s] = true, true
	}
	n.v.keepProviders(keepKeys)
	n.v.keepApps(keepApps)
	ruleNames := n.v.ruleNames()
	seenRules := map[string]bool{}
	for _, name := range ruleNames {
		seenRules[name] = true
	}
	n.v.keepRules(seenRules)
	n.forgetRules(seenRules)
	// A rule read once is the long poll's (watchRules): only new ones are
	// read here, unless the poll is failing. One that cannot be read is
	// tried again at the next resync; it does not make the resync retry
	// sooner.
	pollFailing := n.pollFailing.Load()
	for _, name := range ruleNames {
		n.mu.Lock()
		_, watched := n.ruleMD5s[name]
		n.mu.Unlock()
		if watched && !pollFailing {
			continue
		}
		if err := n.readRule(ctx, name); err != nil {
			n.v.noteError("read", err)
			n.log.Warn("reading a traffic rule", "data_id", name, "error", err.Error())
		}
	}
	n.publish(ctx)
	return ok
}

// readRule reads a traffic rule (data ID <key>.<kind>, group dubbo) and
// watches it from then on (watchRules).
// The resync and the watch may read one rule at once: a read that started
// before another one already applied is dropped, so that an older content
// never replaces a newer one (nor its MD5, which the long poll compares).
func (n *Nacos) readRule(ctx context.Context, name string) error {
	n.mu.Lock()
	n.ruleReads++
	seq := n.ruleReads
	n.mu.Unlock()
	b, err := n.rules.get(ctx, name, "dubbo")
	if err != nil {
		return err
	}
	n.mu.Lock()
	if seq < n.ruleApplied[name] {
		n.mu.Unlock()
		return nil
	}
	n.ruleApplied[name] = seq
	_, known := n.ruleMD5s[name]
	n.ruleMD5s[name] = contentMD5(b)
	n.v.setRule(name, b) // (under n.mu: the rule and its MD5 change together)
	n.mu.Unlock()
	if !known {
		select {
		case n.rulesAdded <- struct{}{}:
		default:
		}
	}
	return nil
}

// forgetRules stops watching the rules not in keep (their services are gone).
func (n *Nacos) forgetRules(keep map[string]bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for name := range n.ruleMD5s {
		if !keep[name] {
			delete(n.ruleMD5s, name)
			delete(n.ruleApplied, name)
		}
	}
}

// watchRules long-polls Nacos for changes of the rules read so far, and
// reads each one that changed (new, edited or deleted) at once. The rules
// are watched over Nacos's open API, not nacos-sdk-go's listeners: the SDK
// calls no listener when a config is deleted.
func (n *Nacos) watchRules(ctx context.Context) {
	const (
		settle  = 100 * time.Millisecond // new data IDs coming in a burst (a resync) wake the poll once
		quick   = time.Second            // a poll that answers sooner, with nothing new, is not held by the server
		backoff = 30 * time.Second       // the most a failing or unheld poll waits
	)
	wait := func(d time.Duration) {
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
	}
	pause := time.Duration(0) // grows while polls fail or come back at once with nothing new
	slower := func() {
		pause = min(max(2*pause, time.Second), backoff)
		wait(pause)
	}
	for ctx.Err() == nil {
		n.mu.Lock()
		md5s := maps.Clone(n.ruleMD5s)
		n.mu.Unlock()
		if len(md5s) == 0 {
			select {
			case <-n.rulesAdded:
			case <-ctx.Done():
			}
			continue
		}
		pollCtx, cancel := context.WithCancel(ctx)
		wakerDone := make(chan struct{})
		go func() {
			defer close(wakerDone)
			select {
			case <-n.rulesAdded:
				select {
				case <-time.After(settle):
				case <-pollCtx.Done():
				}
				cancel() // poll again with the new data IDs
			case <-pollCtx.Done():
			}
		}()
		start := time.Now()
		changed, err := n.rules.changed(pollCtx, "dubbo", md5s)
		woken := pollCtx.Err() != nil && ctx.Err() == nil
		cancel()
		<-wakerDone // no wake-up may be taken by a poll that is over
		switch {
		case ctx.Err() != nil:
			return
		case woken:
			continue
		case err != nil:
			n.pollFailing.Store(true)
			n.v.noteError("read", err)
			n.log.Warn("watching the traffic rules", "error", err.Error())
			slower()
			continue
		}
		n.pollFailing.Store(false)
		fresh := false // a read brought a content the watcher did not have
		for _, name := range changed {
			if err := n.readRule(ctx, name); err != nil {
				n.v.noteError("read", err)
				n.log.Warn("reading a traffic rule", "data_id", name, "error", err.Error())
				continue
			}
			n.mu.Lock()
			fresh = fresh || n.ruleMD5s[name] != md5s[name]
			n.mu.Unlock()
		}
		if fresh {
			select {
			case n.events <- rulePushed:
			case <-ctx.Done():
			}
		}
		if !fresh && time.Since(start) < quick {
			// Nothing new, yet the server answered at once: a server or
			// proxy that does not hold the poll, a rule it keeps calling
			// changed, a read that failed. Not a busy loop.
			slower()
			continue
		}
		pause = 0
	}
}

// serviceNames are the Nacos services to watch: every service of the
// namespace and group, or, when Services are configured, their
// providers:<interface>:<version>:<group> names and the applications
// their interfaces map to.
func (n *Nacos) serviceNames(ctx context.Context) ([]string, error) {
	if len(n.opts.Services) == 0 {
		return n.listServices()
	}
	var names []string
	ifaces := map[string]bool{}
	for _, k := range n.opts.Services {
		names = append(names, "providers:"+k.Interface+":"+k.Version+":"+k.Group)
		ifaces[k.Interface] = true
	}
	if n.opts.Mode == ModeInterface {
		return names, nil
	}
	for iface := range ifaces {
		n.listenMapping(ctx, iface)
		b, err := n.getConfig(iface, "mapping")
		if err != nil {
			return nil, fmt.Errorf("mapping of %s: %w", iface, err)
		}
		for _, app := range strings.Split(string(b), ",") {
			if app = strings.TrimSpace(app); app != "" {
				names = append(names, app)
			}
		}
	}
	return names, nil
}

// listenMapping asks Nacos to push changes of an interface's mapping
// (config dataId <interface>, group mapping), which start a resync.
func (n *Nacos) listenMapping(ctx context.Context, iface string) {
	n.mu.Lock()
	listening := n.mappings[iface]
	n.mappings[iface] = true
	n.mu.Unlock()
	if listening {
		return
	}
	err := n.configs.ListenConfig(vo.ConfigParam{DataId: iface, Group: "mapping", OnChange: func(_, _, _, _ string) {
		select {
		case n.events <- "":
		case <-ctx.Done():
		}
	}})
	if err != nil {
		n.mu.Lock()
		delete(n.mappings, iface)
		n.mu.Unlock()
		n.log.Warn("listening to an interface mapping", "interface", iface, "error", err.Error())
	}
}

// listServices pages through the services of the namespace and group.
func (n *Nacos) listServices() ([]string, error) {
	const pageSize = 500
	var out []string
	for page := uint32(1); ; page++ {
		l, err := n.naming.GetAllServicesInfo(vo.GetAllServiceInfoParam{
			NameSpace: n.opts.Namespace, GroupName: n.opts.Group, PageNo: page, PageSize: pageSize,
		})
		if err != nil {
			return nil, err
		}
		out = append(out, l.Doms...)
		if len(l.Doms) < pageSize || int64(len(out)) >= l.Count {
			return out, nil
		}
	}
}

// subscribe asks Nacos to push the service's instances (once per service).
func (n *Nacos) subscribe(ctx context.Context, service string) error {
	n.mu.Lock()
	if n.subs[service] != nil {
		n.mu.Unlock()
		return nil
	}
	p := &vo.SubscribeParam{ServiceName: service, GroupName: n.opts.Group}
	p.SubscribeCallback = func(insts []model.Instance, err error) {
		if err != nil {
			n.v.noteError("read", err)
			n.log.Warn("a Nacos push", "service", service, "error", err.Error())
			return
		}
		n.mu.Lock()
		if n.subs[service] == nil {
			n.mu.Unlock()
			return // unsubscribed meanwhile
		}
		n.instances[service] = insts
		n.mu.Unlock()
		select {
		case n.events <- service:
		case <-ctx.Done():
		}
	}
	n.subs[service] = p
	n.mu.Unlock()
	if err := n.naming.Subscribe(p); err != nil {
		n.mu.Lock()
		delete(n.subs, service)
		n.mu.Unlock()
		return err
	}
	return nil
}

func (n *Nacos) unsubscribeAll() {
	n.mu.Lock()
	subs := n.subs
	n.subs = map[string]*vo.SubscribeParam{}
	n.mu.Unlock()
	for _, p := range subs {
		_ = n.naming.Unsubscribe(p)
	}
}

// apply turns the last instances of a service into the view.
func (n *Nacos) apply(ctx context.Context, service string) {
	n.mu.Lock()
	insts, known := n.instances[service], n.subs[service] != nil
	n.mu.Unlock()
	switch kind(service) {
	case "interface":
		if !known {
			n.v.setProviders(service, nil)
			return
		}
		provs := []*Provider{}
		for _, in := range insts {
			if p := nacosProvider(service, in); p != nil {
				provs = append(provs, p)
			}
		}
		n.v.setProviders(service, provs)
	case "application":
		if !known {
			n.v.setInstances(service, nil)
			return
		}
		byID := map[string]*Instance{}
		for _, in := range insts {
			if !in.Enable || !in.Healthy || in.Metadata["dubbo.metadata.revision"] == "" {
				continue // not serving, or not a Dubbo application
			}
			inst := &Instance{App: service, Host: in.Ip, Port: uint32(in.Port), Meta: in.Metadata, Healthy: in.Healthy}
			if err := n.v.fetchMetadata(ctx, inst, n.remoteMetadata); err != nil {
				n.v.noteError("metadata", err)
				n.log.Warn("no metadata for an instance yet", "app", service, "instance", inst.Host, "revision", inst.Revision(), "error", err.Error())
			}
			byID[net.JoinHostPort(in.Ip, strconv.FormatUint(in.Port, 10))] = inst
		}
		n.v.setInstances(service, byID)
	}
}

// nacosProvider reads an interface-level instance: its metadata holds the
// provider URL's parameters. Disabled or unhealthy instances and weight 0
// take no traffic (as a Nacos client selects).
func nacosProvider(service string, in model.Instance) *Provider {
	if !in.Enable || !in.Healthy || in.Weight <= 0 {
		return nil
	}
	params := make(map[string]string, len(in.Metadata)+1)
	for k, v := range in.Metadata {
		params[k] = v
	}
	k := ServiceKey{Interface: params["interface"], Version: params["version"], Group: params["group"]}
	if k.Interface == "" {
		// providers:<interface>:<version>:<group>
		parts := strings.SplitN(service, ":", 4)
		if len(parts) < 2 || parts[1] == "" {
			return nil
		}
		k.Interface = parts[1]
		if len(parts) > 2 {
			k.Version = parts[2]
		}
		if len(parts) > 3 {
			k.Group = parts[3]
		}
	}
	proto := params["protocol"]
	if proto == "" {
		proto = "dubbo"
	}
	// Nacos's own weight (1.0 by default, edited in its console) scales
	// Dubbo's, unless the provider set one.
	if w, _ := strconv.ParseUint(params["weight"], 10, 32); w == 0 {
		params["weight"] = strconv.FormatUint(uint64(math.Max(1, math.Round(in.Weight*100))), 10)
	}
	return &Provider{Service: k, Protocol: proto, Host: in.Ip, Port: uint32(in.Port), Params: params}
}

// getConfig reads a config; nil, nil when there is none.
func (n *Nacos) getConfig(dataID, group string) ([]byte, error) {
	content, err := n.configs.GetConfig(vo.ConfigParam{DataId: dataID, Group: group})
	switch {
	case content != "":
		return []byte(content), nil
	case err == nil || ConfigMissing(err):
		return nil, nil
	}
	return nil, fmt.Errorf("reading config %s (group %s): %w", dataID, group, err)
}

// ConfigMissing reports whether a GetConfig error of nacos-sdk-go is Nacos saying the
// config does not exist (CONFIG_NOT_FOUND, 300: "config data not exist", the
// text of Java Nacos and rnacos alike), not a read that failed: the server
// unreachable, the SDK's own rate limit of 5 reads a second per config
// ("ConfigQueryRequest is limited"), an auth refusal ("user not found!").
// Only the first may delete what was read; on the others the last known
// value stays.
func ConfigMissing(err error) bool {
	return strings.Contains(strings.ToLower(err.Error()), "config data not exist")
}

// remoteMetadata reads an application revision's MetadataInfo from the
// metadata report: config dataId <app>, group <revision>.
func (n *Nacos) remoteMetadata(_ context.Context, app, revision string) ([]byte, error) {
	b, err := n.getConfig(app, revision)
	if err == nil && b == nil {
		err = errors.New("not in the metadata report")
	}
	return b, err
}

// readDefinition reads a service definition from the metadata report:
// config dataId <interface>:<version>:<group>:provider:<app>, group dubbo.
func (n *Nacos) readDefinition(_ context.Context, k ServiceKey, app string) ([]byte, error) {
	return n.getConfig(k.Interface+":"+k.Version+":"+k.Group+":provider:"+app, "dubbo")
}

func (n *Nacos) publish(ctx context.Context) {
	n.v.fetchDefinitions(ctx, n.readDefinition)
	n.v.publish(ctx)
}
