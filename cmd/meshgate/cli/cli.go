// Package cli is the meshgate command: `meshgate run`, `meshgate validate`
// and `meshgate version`. cmd/meshgate's main calls Main; a custom build
// does the same from a main of its own that also imports the packages of
// its HTTP filters (which register themselves), the way xcaddy builds
// Caddy with plugins:
//
//	package main
//
//	import (
//		"github.com/meshgate/meshgate/cmd/meshgate/cli"
//		_ "example.com/myfilter"
//	)
//
//	func main() { cli.Main() }
package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/dubbo"
	"github.com/meshgate/meshgate/filesource"
	"github.com/meshgate/meshgate/identity"
	"github.com/meshgate/meshgate/internal/demo"
	"github.com/meshgate/meshgate/registry"
	"github.com/meshgate/meshgate/server"
	"github.com/meshgate/meshgate/server/admin"
	"github.com/meshgate/meshgate/server/overload"
	"github.com/meshgate/meshgate/server/stats"
	"github.com/meshgate/meshgate/xds"
)

//go:embed demo.yaml
var demoConfig []byte

// version is set by the build (-ldflags "-X github.com/meshgate/meshgate/cmd/meshgate/cli.version=...").
var version = ""

// Main runs the command with the process's arguments and exits with its
// status.
func Main() {
	os.Exit(Run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `meshgate: a gRPC/Triple-first API and mesh gateway for the Dubbo ecosystem.

Usage:
  meshgate run [-c FILE] [flags]   serve; without -c, the embedded demo config and demo backend
  meshgate validate -c FILE        check a config file and exit (0: valid)
  meshgate convert pixiu -c FILE [-api FILE] [-o FILE]
                                   convert an Apache Pixiu config to meshgate's (warnings on stderr)
  meshgate version                 print the version, commit and Go version

Run 'meshgate run -h' for the flags of run.
`

// Run runs the command with args (without the program name) and returns
// its exit status.
func Run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return runCmd(args[1:], stdout, stderr)
	case "validate":
		return validateCmd(args[1:], stdout, stderr)
	case "convert":
		return convertCmd(args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, versionLine())
		return 0
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "meshgate: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

func buildVersion() string {
	bi, _ := debug.ReadBuildInfo()
	return describeBuild(version, bi, runtime.Version())
}

// versionLine is `meshgate version`'s answer.
func versionLine() string { return "meshgate " + buildVersion() }

// describeBuild says which meshgate this is: the -ldflags version, else the
// module version `go install ...@vX` records, else "dev"; then the commit
// (-dirty when the tree had changes) and the Go version, e.g.
// "v0.3.0 (commit 0123456789ab, go1.26.8)".
func describeBuild(ldflagsVersion string, bi *debug.BuildInfo, goVersion string) string {
	v, commit, dirty := ldflagsVersion, "", false
	if bi != nil {
		if v == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "dev"
	}
	details := []string{}
	if commit != "" {
		if len(commit) > 12 {
			commit = commit[:12]
		}
		if dirty {
			commit += "-dirty"
		}
		details = append(details, "commit "+commit)
	}
	details = append(details, goVersion)
	return v + " (" + strings.Join(details, ", ") + ")"
}

func validateCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "", "config file to check (meshgate YAML, or Envoy static_resources YAML/JSON)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path == "" {
		fmt.Fprintln(stderr, "meshgate validate: -c FILE is required")
		return 2
	}
	l, err := config.LoadFile(*path)
	var notDone []string
	if err == nil {
		notDone, err = check(l)
	}
	if err != nil {
		fmt.Fprintf(stderr, "invalid config:\n%v\n", err)
		return 1
	}
	for _, w := range l.Warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	for _, n := range notDone {
		fmt.Fprintln(stderr, "warning: accepted, but not done:", n)
	}
	fmt.Fprintf(stdout, "%s: valid (%s format, %d resources)\n", *path, l.Format, len(l.Resources))
	return 0
}

// check compiles the loaded resources as the data plane would, without
// binding any port, and lists what would be accepted but not done.
func check(l *config.Loaded) ([]string, error) {
	store := config.NewStore(nil)
	if err := store.Apply(context.Background(), config.Update{
		Source: filesource.Name, Replace: config.ResourceTypes, Resources: l.Resources,
	}); err != nil {
		return nil, err
	}
	return server.New(server.Options{}).Validate(store.Current())
}

func runCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "", "config file; without it, the embedded demo config (and -demo)")
	demoFlag := fs.Bool("demo", false, "also run the in-process demo backend (on by default without -c)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logJSON := fs.Bool("log-json", false, "log as JSON lines")
	var drain drainFlags
	fs.DurationVar(&drain.timeout, "drain-timeout", 0, "how long SIGTERM waits for in-flight requests once the listeners stopped accepting (default: the config's drain_timeout, else 15s)")
	fs.DurationVar(&drain.period, "drain-period", -1, "how long the listeners keep accepting after SIGTERM, telling clients to go, before they stop (default: the config's drain_period, else 5s; 0: stop at once)")
	watch := fs.Bool("watch", true, "reload when the config file changes (SIGHUP always reloads)")
	var xf xdsFlags
	fs.StringVar(&xf.address, "xds-address", "", "take config from this xDS control plane (host:port), besides the file's")
	fs.StringVar(&xf.nodeID, "node-id", "", "xDS node id (default: an Istio router id, router~<ip>~<pod>.<ns>~<ns>.svc.cluster.local)")
	fs.StringVar(&xf.nodeCluster, "node-cluster", "", "xDS node cluster")
	fs.Var(&xf.metadata, "node-metadata", "xDS node metadata KEY=VALUE (repeatable)")
	fs.StringVar(&xf.locality, "node-locality", "", "xDS node locality region/zone/sub_zone")
	fs.StringVar(&xf.readiness, "readiness-address", "", "also serve the readiness probe alone (GET /healthz/ready) on host:port, e.g. 0.0.0.0:15021 as Istio's gateways")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "meshgate: -log-level: %v\n", err)
		return 2
	}
	var handler slog.Handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})
	if *logJSON {
		handler = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})
	}
	log := slog.New(handler)
	if err := serve(log, *path, *path == "" || *demoFlag, drain, *watch, xf); err != nil {
		log.Error("meshgate stopped", "error", err)
		return 1
	}
	return 0
}

// drainFlags override the config's drain settings (period < 0 and
// timeout 0: not given).
type drainFlags struct{ period, timeout time.Duration }

// serve runs the gateway until SIGTERM or SIGINT, then drains.
func serve(log *slog.Logger, path string, withDemo bool, drainFlag drainFlags, watch bool, xf xdsFlags) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// First thing: Go's default for SIGUSR1 kills the process, and logrotate
	// may send it while the listeners are still coming up.
	usr1 := make(chan os.Signal, 1) // log rotation: reopen the access logs
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)

	var data []byte
	if path == "" {
		data = demoConfig
	}
	// Read once up front for the bootstrap settings (admin, drain).
	var boot *config.Loaded
	var err error
	if path == "" {
		boot, err = config.Load(data, "")
	} else {
		boot, err = config.LoadFile(path)
	}
	if err != nil {
		return err
	}
	for _, w := range boot.Warnings {
		log.Warn("config", "warning", w)
	}
	if err := xf.apply(&boot.Bootstrap); err != nil {
		return err
	}
	drain, period := boot.Bootstrap.DrainTimeout, boot.Bootstrap.DrainPeriod
	if drainFlag.timeout > 0 {
		drain = drainFlag.timeout
	}
	if drainFlag.period >= 0 {
		period = drainFlag.period
	}

	var backend *demo.Backend
	if withDemo {
		backend, err = demo.Start(ctx, "demo", "127.0.0.1:50051", "127.0.0.1:50052")
		if err != nil {
			return fmt.Errorf("demo backend: %w", err)
		}
		defer backend.Stop()
		log.Info("demo backend", "grpc", backend.GRPCAddr, "http", backend.HTTPAddr)
	}

	ov := boot.Bootstrap.Overload
	if ov.MaxHeapBytes == 0 {
		var from string
		if ov.MaxHeapBytes, from = overload.Limit(); from != "" {
			log.Info("overload: heap limit", "bytes", ov.MaxHeapBytes, "from", from)
		} else {
			log.Info("overload manager off: no heap limit given (overload.max_heap_bytes) nor known (GOMEMLIMIT, cgroup memory.max)")
		}
	}
	var istio *stats.Workload
	if w := boot.Bootstrap.IstioMetrics; w != nil {
		istio = &stats.Workload{Name: w.Workload, Namespace: w.Namespace, App: w.App, Version: w.Version, Principal: w.Principal, Cluster: w.Cluster}
	}
	srv := server.New(server.Options{Logger: log, DrainTimeout: drain, Overload: ov, IstioMetrics: istio})
	metrics := srv.Metrics()
	store := config.NewStore(srv, config.WithObserver(func(_ *config.Update, err error) {
		result := "accepted"
		if err != nil {
			result = "rejected"
		}
		metrics.ConfigUpdates.WithLabelValues(result).Inc()
	}))
	var wg sync.WaitGroup
	defer wg.Wait()
	// Registries follow the config: started, stopped or restarted when a
	// reload changes them.
	registries := registry.NewSupervisor(store, log, metrics.Registry, dubbo.CallMetadataService)
	defer registries.Wait()
	// Cancelled before the waits above run: an early return stops what
	// was started too.
	ctx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	source := filesource.New(store, log, path, data)
	var regErr error
	source.OnLoad(func(l *config.Loaded) {
		regErr = registries.Apply(ctx, l.Bootstrap.Registries)
		if regErr != nil {
			log.Error("registries", "error", regErr)
		}
	})
	if _, err := source.Load(ctx); err != nil {
		return err
	}
	if regErr != nil {
		_ = srv.Shutdown(context.Background())
		return regErr
	}

	// The workload identity writes its secrets into the same store,
	// before the control plane's listeners and clusters name them.
	var identityOpts []admin.Option
	if s := boot.Bootstrap.Identity; s != nil {
		id, err := newIdentity(s, store, log)
		if err != nil {
			_ = srv.Shutdown(context.Background())
			return err
		}
		identityOpts = append(identityOpts, identityGate(id))
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := id.Run(ctx); err != nil {
				log.Error("identity source stopped", "error", err)
			}
		}()
		go func() {
			defer wg.Done()
			reportIdentity(ctx, id, log, identityPatience)
		}()
	}

	var client *xds.Client
	if x := boot.Bootstrap.XDS; x != nil {
		if client, err = newXDSClient(x, store, log, metrics.Registry); err != nil {
			_ = srv.Shutdown(context.Background())
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := client.Run(ctx); err != nil {
				log.Error("xds client stopped", "error", err)
			}
		}()
		log.Info("taking config from the control plane", "address", x.Address, "node", x.Node.GetId())
	}
	adminOpts := identityOpts
	if client != nil {
		adminOpts = append(adminOpts, admin.WithXDS(client))
	}
	var servers []*http.Server
	serveOn := func(what, addr string, h http.Handler) error {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		servers = append(servers, hs)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error(what+" stopped", "error", err)
			}
		}()
		log.Info(what, "address", ln.Addr().String())
		return nil
	}
	if addr := boot.Bootstrap.AdminAddress; addr != "" {
		opts := append([]admin.Option{admin.WithDescriptors(srv.Descriptors), admin.WithRegistries(registryStatuses(registries)),
			admin.WithUnimplemented(srv.Unimplemented), admin.WithDrain(func(graceful, inboundOnly bool) {
				p := time.Duration(0)
				if graceful {
					p = period
				}
				srv.DrainListeners(p, inboundOnly)
			})}, adminOpts...)
		if err := serveOn("admin", addr, admin.Handler(srv, metrics.Registry, opts...)); err != nil {
			_ = srv.Shutdown(context.Background())
			return err
		}
	}
	if addr := boot.Bootstrap.ReadinessAddress; addr != "" {
		if err := serveOn("readiness probe", addr, admin.ReadinessHandler(srv, metrics.Registry, adminOpts...)); err != nil {
			for _, hs := range servers {
				_ = hs.Close()
			}
			_ = srv.Shutdown(context.Background())
			return err
		}
	}

	watchCtx, stopWatch := context.WithCancel(ctx)
	if watch {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := source.Watch(watchCtx); err != nil {
				log.Warn("config file is not watched; SIGHUP still reloads it", "error", err)
			}
		}()
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	log.Info("meshgate started", "version", buildVersion(), "config", configName(path))

	for running := true; running; {
		select {
		case <-hup:
			source.Reload(ctx, "SIGHUP")
		case <-usr1:
			if err := srv.ReopenAccessLogs(); err != nil {
				log.Error("reopening the access logs", "error", err)
			} else {
				log.Info("access logs reopened (SIGUSR1)")
			}
		case <-ctx.Done():
			running = false
		}
	}
	stopWatch()
	// The drain period: /ready fails, the listeners accept on and tell
	// each client to go; a second signal cuts it short.
	log.Info("draining", "period", period, "timeout", drain)
	again := make(chan os.Signal, 1)
	signal.Notify(again, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(again)
	select {
	case <-srv.DrainListeners(period, false):
	case <-again:
		log.Info("second signal: the drain period ends now")
	}
	dctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := srv.Shutdown(dctx); err != nil {
		log.Warn("drain timeout passed; open requests were cut", "error", err)
	}
	for _, hs := range servers {
		_ = hs.Close()
	}
	log.Info("meshgate stopped")
	return nil
}

// xdsFlags override the config file's xds settings.
type xdsFlags struct {
	address, nodeID, nodeCluster, locality string
	readiness                              string
	metadata                               keyValues
}

type keyValues map[string]string

func (kv *keyValues) String() string { return fmt.Sprint(map[string]string(*kv)) }

func (kv *keyValues) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", s)
	}
	if *kv == nil {
		*kv = keyValues{}
	}
	(*kv)[k] = v
	return nil
}

// apply puts the flags over the bootstrap's xds settings; -xds-address
// alone turns xDS on with Istio's router identity.
func (f xdsFlags) apply(b *config.Bootstrap) error {
	if f.readiness != "" {
		b.ReadinessAddress = f.readiness
	}
	if f.address == "" && b.XDS == nil {
		if f.nodeID != "" || f.nodeCluster != "" || len(f.metadata) > 0 || f.locality != "" {
			return errors.New("the -node-* flags need -xds-address or an xds section in the config")
		}
		return nil
	}
	if b.XDS == nil {
		node, err := config.IstioNode(config.IstioNodeConfig{})
		if err != nil {
			return err
		}
		b.XDS = &config.XDSSettings{Node: node}
	}
	x := b.XDS
	if f.address != "" {
		x.Address = f.address
	}
	node := proto.Clone(x.Node).(*corev3.Node)
	if f.nodeID != "" {
		node.Id = f.nodeID
	}
	if f.nodeCluster != "" {
		node.Cluster = f.nodeCluster
	}
	if len(f.metadata) > 0 {
		fields := map[string]any{}
		for k, v := range node.GetMetadata().AsMap() {
			fields[k] = v
		}
		for k, v := range f.metadata {
			fields[k] = v
		}
		md, err := structpb.NewStruct(fields)
		if err != nil {
			return err
		}
		node.Metadata = md
	}
	if f.locality != "" {
		parts := append(strings.SplitN(f.locality, "/", 3), "", "")
		node.Locality = &corev3.Locality{Region: parts[0], Zone: parts[1], SubZone: parts[2]}
	}
	x.Node = node
	return nil
}

// newXDSClient builds the ADS client of the bootstrap's xds settings.
func newXDSClient(x *config.XDSSettings, store *config.Store, log *slog.Logger, reg prometheus.Registerer) (*xds.Client, error) {
	var tlsConf *tls.Config
	if t := x.TLS; t != nil {
		tlsConf = &tls.Config{ServerName: t.SNI, MinVersion: tls.VersionTLS12}
		if t.CAFile != "" {
			pem, err := os.ReadFile(t.CAFile)
			if err != nil {
				return nil, fmt.Errorf("xds tls: %w", err)
			}
			tlsConf.RootCAs = x509.NewCertPool()
			if !tlsConf.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("xds tls: %s holds no PEM certificate", t.CAFile)
			}
		}
		if t.CertFile != "" {
			kp, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("xds tls: %w", err)
			}
			tlsConf.Certificates = []tls.Certificate{kp}
		}
	}
	opts := xds.Options{
		Address: x.Address, TLS: tlsConf, Node: x.Node, InitialFetchTimeout: x.InitialFetchTimeout,
		Delta: x.Delta, Logger: log, Registerer: reg,
	}
	if x.TokenFile != "" {
		if tlsConf == nil {
			return nil, errors.New("xds: token_file needs tls (the token must not travel in clear)")
		}
		opts.Token = identity.TokenCredentials(x.TokenFile)
	}
	return xds.New(store, opts), nil
}

func configName(path string) string {
	if path == "" {
		return "embedded demo"
	}
	return path
}

// registryStatuses gives the admin endpoints the registries' states.
func registryStatuses(s *registry.Supervisor) func() []admin.RegistryStatus {
	return func() []admin.RegistryStatus {
		var out []admin.RegistryStatus
		for _, st := range s.Statuses() {
			out = append(out, admin.RegistryStatus(st))
		}
		return out
	}
}
