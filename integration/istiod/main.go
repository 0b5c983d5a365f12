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
	"sync"
	"syscall"
	"time"

	"istio.io/istio/pilot/pkg/config/kube/crd"
	xdsfake "istio.io/istio/pilot/test/xds"
	"istio.io/istio/pkg/config"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:15010", "xDS (gRPC) listen address")
	control := flag.String("control", "127.0.0.1:15099", "HTTP control address (POST /config)")
	cfgFile := flag.String("config", "", "Istio config YAML (ServiceEntry, DestinationRule, VirtualService, Gateway)")
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
	s := xdsfake.NewFakeDiscoveryServer(f, xdsfake.FakeOptions{
		ConfigString:    yaml,
		ListenerBuilder: func() (net.Listener, error) { return lis, nil },
		DebounceTime:    20 * time.Millisecond,
	})

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
	cl, err := net.Listen("tcp", *control)
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = http.Serve(cl, mux) }()
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
