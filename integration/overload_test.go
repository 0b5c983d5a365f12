package integration

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	demov1 "github.com/meshgate/meshgate/proto/demo/v1"
)

const overloadConfig = `
admin: { address: "{{.Admin}}" }
drain_period: 0s
overload:
  max_heap_bytes: 67108864          # 64 MiB
  stop_accepting_requests: 0.5      # from 32 MiB
  disable_http_keepalive: 0.45
  refresh_interval: 50ms
listeners:
  - name: main
    address: "{{.Addr}}"
    virtual_hosts:
      - routes:
          - match: { prefix: /demo.v1.DemoService/, grpc: true }
            cluster: grpc
            retries: { retry_on: "unavailable", num_retries: 1 }
clusters:
  - { name: grpc, protocol: grpc, endpoints: [ "{{.GRPC}}" ] }
`

// The overload manager against a real heap: client streams on a route
// that retries make the gateway hold each one's request (to replay it),
// ~900 KB apiece, until the heap passes stop_accepting_requests. New calls
// are then refused RESOURCE_EXHAUSTED without reaching the backend, while
// the held streams finish normally; the action shows in the metrics.
func TestOverload_HeldStreams(t *testing.T) {
	b := startBackend(t, "b1")
	data := map[string]string{"Admin": freeAddr(t), "Addr": freeAddr(t), "GRPC": b.GRPCAddr}
	p := startProcessWith(t, overloadConfig, data, data["Admin"], data["Addr"])
	client := demoClient(t, p.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := client.Echo(ctx, &demov1.EchoRequest{Message: "before"}); err != nil {
		t.Fatalf("a call before the load: %v", err)
	}

	// Each held stream on its own connection (a connection's flow-control
	// window would cap what one holds); after each, a unary call tells
	// whether the gateway still accepts.
	const most = 72 // 63 MB of requests
	payload := make([]byte, 900<<10)
	var streams []grpc.ClientStreamingClient[demov1.EchoRequest, demov1.ClientStreamResponse]
	var refused error
	for i := 0; i < most && refused == nil; i++ {
		s, err := demoClient(t, p.addr).ClientStream(ctx)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		_ = s.Send(&demov1.EchoRequest{Payload: payload}) // a refused stream's status comes with CloseAndRecv
		streams = append(streams, s)
		time.Sleep(60 * time.Millisecond) // the monitor reads the heap every 50ms
		if _, err := client.Echo(ctx, &demov1.EchoRequest{Message: "during"}); status.Code(err) == codes.ResourceExhausted {
			refused = err
		} else if err != nil {
			t.Fatalf("a unary call after %d streams: %v", i+1, err)
		}
	}
	if refused == nil {
		t.Fatalf("new calls still accepted with %d streams of 900 KB held\n%s", len(streams), metricsMatching(t, p.admin, "meshgate_overload"))
	}
	t.Logf("with %d streams held (%d MB of requests), a new call: %v", len(streams), len(streams)*900>>10, refused)
	if m := metricsMatching(t, p.admin, `meshgate_overload_action_active{action="envoy.overload_actions.stop_accepting_requests"}`); !strings.HasSuffix(strings.TrimSpace(m), " 1") {
		t.Errorf("the action's gauge: %q, want 1", m)
	}

	// The held streams finish: all but the last, which may have opened
	// after the action turned on (and been refused then).
	var wg sync.WaitGroup
	results := make([]error, len(streams))
	for i, s := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := s.CloseAndRecv()
			if err == nil && resp.GetCount() != 1 {
				err = status.Errorf(codes.Internal, "count %d, want 1", resp.GetCount())
			}
			results[i] = err
		}()
	}
	wg.Wait()
	failed := 0
	for i, err := range results {
		last := i == len(results)-1
		if err != nil && (!last || status.Code(err) != codes.ResourceExhausted) {
			failed++
			t.Errorf("held stream %d of %d: %v", i+1, len(results), err)
		}
	}
	t.Logf("%d of %d held streams failed (the last: %v); %s", failed, len(streams), results[len(results)-1],
		metricsMatching(t, p.admin, "meshgate_overload_rejected_requests_total"))
}

// metricsMatching is the admin's Prometheus lines that start with prefix.
func metricsMatching(t *testing.T, admin, prefix string) string {
	t.Helper()
	c := httpClient(t)
	resp, err := c.Get("http://" + admin + "/stats/prometheus")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
