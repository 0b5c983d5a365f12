package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshgate/meshgate/internal/demo"
	demov1 "github.com/meshgate/meshgate/proto/demo/v1"
)

// Reloading the config while requests flow fails none of them, and each
// reload takes effect: a stream that spans every reload completes too.
// Every reload moves the clusters to the other backend, so clusters are
// rebuilt and retired under load, not only route tables.
func TestReload_UnderLoadNoFailures(t *testing.T) {
	backends := []*demo.Backend{startBackend(t, "b1"), startBackend(t, "b2")}
	cfg := func(i int) []byte {
		b := backends[i%2]
		return render(t, baseConfig, baseData{GRPC: b.GRPCAddr, HTTP: b.HTTPAddr, Tag: fmt.Sprint("v", i)})
	}
	g := startGateway(t, cfg(0))
	addr := g.addr("main")
	grpcClient := demoClient(t, addr)
	hc := httpClient(t)

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	var lastTag atomic.Value
	lastTag.Store("")
	fail := func(format string, args ...any) {
		if failed.Add(1) <= 5 {
			t.Errorf(format, args...)
		}
	}
	for range 2 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := grpcClient.Echo(cctx, &demov1.EchoRequest{Message: "x"})
				cancel()
				if err != nil {
					fail("gRPC call during reloads: %v", err)
					continue
				}
				ok.Add(1)
			}
		}()
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				resp, err := hc.Get("http://" + addr + "/echo")
				if err != nil {
					fail("HTTP call during reloads: %v", err)
					continue
				}
				var e echoed
				err = json.NewDecoder(resp.Body).Decode(&e)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 {
					fail("HTTP call during reloads: status %d, %v", resp.StatusCode, err)
					continue
				}
				lastTag.Store(e.Headers["x-gateway"])
				ok.Add(1)
			}
		}()
	}
	// A stream open across all reloads.
	streamDone := make(chan error, 1)
	go func() {
		s, err := grpcClient.ServerStream(context.Background(), &demov1.ServerStreamRequest{Count: 40, IntervalMs: 25})
		if err == nil {
			var got []*demov1.EchoResponse
			got, err = drain(s)
			if err == nil && len(got) != 40 {
				err = fmt.Errorf("got %d messages, want 40", len(got))
			}
		}
		streamDone <- err
	}()

	const reloads = 30
	for i := 1; i <= reloads; i++ {
		time.Sleep(20 * time.Millisecond)
		if err := g.reload(cfg(i)); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	// The last config must be the one serving.
	deadline := time.Now().Add(5 * time.Second)
	for lastTag.Load() != fmt.Sprint("v", reloads) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	wg.Wait()
	if err := <-streamDone; err != nil {
		t.Errorf("stream across reloads: %v", err)
	}
	if got := lastTag.Load(); got != fmt.Sprint("v", reloads) {
		t.Errorf("after %d reloads the backend sees x-gateway %q, want v%d", reloads, got, reloads)
	}
	if failed.Load() > 0 || ok.Load() < 100 {
		t.Errorf("%d requests failed and %d succeeded during %d reloads; want 0 failed and at least 100", failed.Load(), ok.Load(), reloads)
	}
	t.Logf("%d requests, 0 failed, across %d reloads", ok.Load(), reloads)
}

// A bad config is rejected whole and the running one keeps serving.
func TestReload_BadConfigKeepsLastGood(t *testing.T) {
	b := startBackend(t, "b1")
	good := render(t, baseConfig, baseData{GRPC: b.GRPCAddr, HTTP: b.HTTPAddr, Tag: "good"})
	g := startGateway(t, good)
	addr := g.addr("main")
	hc := httpClient(t)
	bad := []struct{ name, cfg string }{
		{"unknown cluster", `
listeners:
  - name: main
    address: 127.0.0.1:0
    virtual_hosts: [ { routes: [ { match: { prefix: / }, cluster: missing } ] } ]
`},
		{"syntax", "listeners: [ { name: main, address: "},
		{"port in use", string(render(t, `
listeners:
  - name: main
    address: 127.0.0.1:0
    virtual_hosts: [ { routes: [ { match: { prefix: / }, cluster: http } ] } ]
  - name: second
    address: "{{.}}"
    virtual_hosts: [ { routes: [ { match: { prefix: / }, cluster: http } ] } ]
clusters: [ { name: http, endpoints: [ "127.0.0.1:1" ] } ]
`, b.HTTPAddr))},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if err := g.reload([]byte(tc.cfg)); err == nil {
				t.Fatal("reload accepted a bad config")
			}
			resp, err := hc.Get("http://" + addr + "/echo")
			if err != nil {
				t.Fatal(err)
			}
			var e echoed
			_ = json.NewDecoder(resp.Body).Decode(&e)
			resp.Body.Close()
			if e.Headers["x-gateway"] != "good" {
				t.Errorf("after a rejected reload the backend sees x-gateway %q, want the last good config's", e.Headers["x-gateway"])
			}
		})
	}
}
