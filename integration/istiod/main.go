// Command istiod runs Istio's own xDS generation (the pilot discovery
// server of istio.io/istio, with Kubernetes faked by Istio's test harness)
// on a real TCP port, for meshgate's integration tests. It is built in its
// own module because it pulls in Kubernetes client libraries.
//
//	istiod -addr 127.0.0.1:15010 -control 127.0.0.1:15099 -config istio.yaml
//
// It prints "READY <xds address>" when serving. POST /config on the control
// address replaces the Istio config with the YAML in the body (configs not
// in it are deleted, the others created or updated in place); GET
// /debug/syncz is istiod's own sync status of each proxy, with the last
// NACK's error detail per type.
//
// With -secure it also runs Istio's CA and istiod's secure port (15012 in a
// real istiod): a TLS gRPC server with IstioCertificateService and ADS,
// authenticated with Kubernetes service-account tokens (TokenReview against
// the fake cluster) or mesh client certificates. Its serving certificate is
// for istiod.istio-system.svc, signed by the mesh root. -ca-dir writes the
// mesh root (root-cert.pem), the CA's certificate and key (ca-cert.pem,
// ca-key.pem) and the minted tokens (tokens); all are reused if present,
// so an istiod restarted on the same directory keeps its root and accepts
// the old tokens. -cert-ttl is the workload certificate TTL the CA grants
// when the CSR asks for none, -max-cert-ttl the longest a CSR may ask for
// (default: -cert-ttl; longer requests fail with InvalidArgument, as in
// Istio). The control address then also serves POST /token
// ({"namespace","serviceAccount"} -> a token the cluster accepts) and POST
// /secret ({"namespace","name","cert","key","ca"} -> a kubernetes.io/tls
// Secret, pushed to proxies over SDS), and "SECURE <address>" is printed
// before READY.
//
// -mesh reads a MeshConfig (the istio ConfigMap's mesh key, e.g.
// extensionProviders) over Istio's defaults. Istio's feature flags are its
// environment variables, read at start (PILOT_JWT_ENABLE_REMOTE_JWKS=envoy
// makes istiod send RequestAuthentication's jwksUri as remote_jwks).
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"istio.io/istio/pilot/pkg/config/kube/crd"
	xdsfake "istio.io/istio/pilot/test/xds"
	"istio.io/istio/pkg/config"
	"istio.io/istio/pkg/config/mesh"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:15010", "xDS (gRPC) listen address")
	control := flag.String("control", "127.0.0.1:15099", "HTTP control address (POST /config)")
	cfgFile := flag.String("config", "", "Istio config YAML (ServiceEntry, DestinationRule, VirtualService, Gateway)")
	secure := flag.String("secure", "", "if set, serve Istio's CA and secure xDS (TLS) on this address, like istiod's 15012")
	caDir := flag.String("ca-dir", "", "with -secure: keep the mesh root (DIR/root-cert.pem), the CA key pair (ca-cert.pem, ca-key.pem) and the minted tokens (tokens) here; reused if present")
	certTTL := flag.Duration("cert-ttl", 24*time.Hour, "with -secure: TTL of workload certificates (when the CSR asks for none)")
	maxCertTTL := flag.Duration("max-cert-ttl", 0, "with -secure: the longest TTL a CSR may ask for (default and minimum: -cert-ttl)")
	meshFile := flag.String("mesh", "", "MeshConfig YAML (as in the istio ConfigMap's mesh key) applied over Istio's defaults, e.g. extensionProviders")
	flag.Parse()

	yaml := ""
	if *cfgFile != "" {
		b, err := os.ReadFile(*cfgFile)
		if err != nil {
			log.Fatal(err)
		}
		yaml = string(b)
	}
	f := &failer{}
	defer f.cleanup()
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	opts := xdsfake.FakeOptions{
		ConfigString:    yaml,
		ListenerBuilder: func() (net.Listener, error) { return lis, nil },
		DebounceTime:    20 * time.Millisecond,
	}
	if *meshFile != "" {
		m, err := mesh.ReadMeshConfig(*meshFile)
		if err != nil {
			log.Fatalf("mesh config: %v", err)
		}
		opts.MeshConfig = m
	}
	toks := &tokens{m: map[string]identity{}}
	if *secure != "" {
		if *caDir != "" {
			if err := os.MkdirAll(*caDir, 0o755); err != nil {
				log.Fatal(err)
			}
			if err := toks.load(filepath.Join(*caDir, "tokens")); err != nil {
				log.Fatal(err)
			}
		}
		// The fake cluster's kube-apiserver: TokenReview accepts the
		// tokens minted by POST /token, and SubjectAccessReview allows
		// every service account to read Secrets of its own namespace
		// (istiod checks that before serving a credentialName over SDS).
		opts.KubeClientModifier = toks.kubeClientModifier
		opts.DisableSecretAuthorization = true
	}
	s := xdsfake.NewFakeDiscoveryServer(f, opts)

	var mu sync.Mutex
	mux := http.NewServeMux()
	mux.HandleFunc("POST /config", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		configs, _, err := crd.ParseInputs(string(body))
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if err := replace(s, configs); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	// Istio's own debug view of each connected proxy: what was sent and
	// ACKed per type, and the error detail of the last NACK (istioctl
	// proxy-status reads the same).
	mux.HandleFunc("GET /debug/syncz", s.Discovery.Syncz)
	var secureAddr net.Addr
	if *secure != "" {
		sec, err := startSecure(s, secureOptions{addr: *secure, caDir: *caDir, certTTL: *certTTL, maxCertTTL: *maxCertTTL})
		if err != nil {
			log.Fatal(err)
		}
		secureAddr = sec.lis.Addr()
		secureHandlers(mux, s, toks, watchSecrets(s, make(chan struct{})))
	}
	cl, err := net.Listen("tcp", *control)
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = http.Serve(cl, mux) }()
	if secureAddr != nil {
		fmt.Printf("SECURE %s\n", secureAddr)
	}
	fmt.Printf("READY %s\n", lis.Addr())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}

// replace makes the store hold exactly configs.
func replace(s *xdsfake.FakeDiscoveryServer, configs []config.Config) error {
	store := s.Store()
	want := map[string]bool{}
	for _, c := range configs {
		if c.Namespace == "" {
			c.Namespace = "default"
		}
		want[key(c)] = true
		if existing := store.Get(c.GroupVersionKind, c.Name, c.Namespace); existing != nil {
			c.ResourceVersion = existing.ResourceVersion
			if _, err := store.Update(c); err != nil {
				return fmt.Errorf("update %s: %w", key(c), err)
			}
			continue
		}
		if _, err := store.Create(c); err != nil {
			return fmt.Errorf("create %s: %w", key(c), err)
		}
	}
	for _, schema := range store.Schemas().All() {
		for _, c := range store.List(schema.GroupVersionKind(), "") {
			if !want[key(c)] {
				if err := store.Delete(c.GroupVersionKind, c.Name, c.Namespace, nil); err != nil {
					return fmt.Errorf("delete %s: %w", key(c), err)
				}
			}
		}
	}
	return nil
}

func key(c config.Config) string {
	return c.GroupVersionKind.String() + "/" + c.Namespace + "/" + c.Name
}

// failer is the test.Failer Istio's harness wants, for a program.
type failer struct {
	mu       sync.Mutex
	cleanups []func()
}

func (f *failer) Fail()                          { log.Fatal("istiod harness failed") }
func (f *failer) FailNow()                       { log.Fatal("istiod harness failed") }
func (f *failer) Fatal(args ...any)              { log.Fatal(args...) }
func (f *failer) Fatalf(format string, a ...any) { log.Fatalf(format, a...) }
func (f *failer) Log(args ...any)                { log.Print(args...) }
func (f *failer) Logf(format string, a ...any)   { log.Printf(format, a...) }
func (f *failer) Helper()                        {}
func (f *failer) Skip(args ...any)               { log.Fatal(args...) }
func (f *failer) TempDir() string {
	d, err := os.MkdirTemp("", "istiod")
	if err != nil {
		log.Fatal(err)
	}
	f.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}
func (f *failer) Cleanup(fn func()) {
	f.mu.Lock()
	f.cleanups = append(f.cleanups, fn)
	f.mu.Unlock()
}
func (f *failer) cleanup() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}
