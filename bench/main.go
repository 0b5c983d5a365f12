// Command bench measures meshgate against the direct call, side by side in
// one run: gRPC unary (also with mTLS to the upstream), gRPC server and
// bidi streaming, HTTP/1.1, and meshgate's protocol bridges. The gRPC and
// HTTP/1.1 paths also run through nginx and HAProxy (configs pinned in
// nginx.conf.tmpl and haproxy.cfg.tmpl) in front of the same backend. It
// starts the demo backend in this process, builds and starts the gateway
// binary and the other proxies as their own processes, drives load at each
// in turn, and writes a Markdown report with throughput ratios, added
// latency, and each proxy's CPU time per 10k calls or messages. The gRPC
// and HTTP/1.1 paths also run through a bare Go relay (relayfloor.go), the
// floor a Go proxy can reach on the machine.
//
//	go run ./bench -out bench/RESULTS.md
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/meshgate/meshgate/internal/demo"
	demov1 "github.com/meshgate/meshgate/proto/demo/v1"
)

func main() {
	out := flag.String("out", "", "write the Markdown report here (default: stdout only)")
	dur := flag.Duration("duration", 5*time.Second, "measuring time of each run")
	warm := flag.Duration("warmup", time.Second, "warm-up time before each run")
	conc := flag.Int("c", 16, "concurrent callers for the unary and HTTP runs")
	profile := flag.String("cpuprofile", "", "write CPU profiles of the gateway, one per scenario, to FILE-<n>.pprof")
	only := flag.String("only", "", "run only the scenarios whose name this regular expression matches (\"^gRPC unary$\": that one alone)")
	nginx := flag.String("nginx", "", "the nginx binary (default: nginx on PATH or in /usr/sbin; none: skip nginx)")
	haproxy := flag.String("haproxy", "", "the HAProxy binary (default: haproxy on PATH or in /usr/sbin; none: skip HAProxy)")
	floor := flag.String(relayFloorFlag, "", "LISTEN,BACKEND,HTTPLISTEN,HTTPBACKEND[,epoll]: run only the bare relays (the bench starts them so)")
	httpFloor := flag.String("http-floor", "copy", "the HTTP/1.1 floor: copy (two goroutines per connection pair on Go's netpoller) or epoll (one epoll loop on a locked thread, no goroutine per connection: how nginx runs)")
	gatewayEnv := flag.String("gateway-env", "", "extra environment of the gateway under test, comma-separated K=V (GOMAXPROCS=1, GOGC=400): tried against -baseline or an earlier run")
	rounds := flag.Int("rounds", 2, "rounds of the proxied paths (gRPC unary, streams, HTTP/1.1): every proxy once a round, the order reversed each round")
	echo := flag.Bool("backend-echo", false, "the backend echoes the request's headers (as a header and a trailer each on gRPC, in the JSON body on HTTP): its work then grows with what each proxy adds")
	baseline := flag.String("baseline", "", "a checkout of meshgate (another commit) whose gateway also runs the proxied paths, same run: an A/B comparison")
	flag.Parse()
	if *floor != "" {
		if err := runRelayFloor(strings.Split(*floor, ",")); err != nil {
			log.Fatal(err)
		}
		return
	}
	if *httpFloor != "copy" && *httpFloor != "epoll" {
		log.Fatalf("-http-floor %q: copy or epoll", *httpFloor)
	}
	if err := run(*out, *dur, *warm, *conc, *profile, *only, *nginx, *haproxy, *baseline, *gatewayEnv, *httpFloor, *echo, max(1, *rounds)); err != nil {
		log.Fatal(err)
	}
}

// pathRun is one proxy's runs of a proxied path, summed over the rounds.
type pathRun struct {
	name, addr, target string
	pid                int
	res                result
	cpu                cpuProbe // used and the flags summed over the rounds
	err                error    // the first run that failed
}

// add counts one more run of the proxy: its result and CPU probe.
func (e *pathRun) add(g result, p *cpuProbe, err error) {
	if e.err != nil {
		return
	}
	if err != nil {
		e.err = err
		return
	}
	first := e.res.ops == 0 && e.res.elapsed == 0
	e.res.ops += g.ops
	e.res.elapsed += g.elapsed
	e.res.failures += g.failures
	if g.lastErr != nil {
		e.res.lastErr = g.lastErr
	}
	e.res.lat = append(e.res.lat, g.lat...)
	slices.Sort(e.res.lat)
	e.res.p50, e.res.p99 = max(e.res.p50, g.p50), max(e.res.p99, g.p99)
	switch {
	case p.err != nil:
		e.cpu.err = p.err
	case first:
		e.cpu = cpuProbe{used: p.used, begun: p.begun, ended: p.ended, approx: p.approx}
	default:
		e.cpu.used += p.used
		e.cpu.ended = e.cpu.ended && p.ended
		e.cpu.approx = e.cpu.approx || p.approx
	}
}

// result is one measured run.
type result struct {
	ops      int64
	elapsed  time.Duration
	lat      []time.Duration // sorted; empty for streaming runs
	failures int64
	lastErr  error // the last failure's, for the log
	// p50 and p99 stand in for lat when another program measured
	// (the dubbo-go consumer).
	p50, p99 time.Duration
}

func (r result) hasLatency() bool { return len(r.lat) > 0 || r.p50 > 0 }

func (r result) rate() float64 { return float64(r.ops) / r.elapsed.Seconds() }

func (r result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		if p == 0.50 {
			return r.p50
		}
		return r.p99
	}
	return r.lat[min(len(r.lat)-1, int(p*float64(len(r.lat))))]
}

type scenario struct {
	name, unit, target string
	run                func(ctx context.Context, addr string) (result, error)
	// direct, when set, measures the direct side differently (another
	// client) at directAddr.
	direct     func(ctx context.Context, addr string) (result, error)
	directAddr string
	// gateway, when set, starts the gateway this scenario goes through
	// instead of the shared one; it is stopped after the scenario.
	gateway func() (*gateway, error)
	// http: the path is HTTP/1.1 (the backend's and proxies' HTTP
	// listeners); otherwise gRPC (their HTTP/2 ones).
	http bool
	// proxied: the path also runs through nginx and HAProxy.
	proxied bool
}

func run(out string, dur, warm time.Duration, conc int, profile, only, nginxBin, haproxyBin, baseline, gatewayEnv, httpFloor string, echo bool, rounds int) error {
	ctx := context.Background()
	backend, err := demo.Start(ctx, "bench", "127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer backend.Stop()
	// The demo backend echoes every x- header back twice (gRPC) or in its
	// body (HTTP): behind a proxy that adds x-request-id and
	// x-forwarded-proto as Envoy does, and not behind nginx or HAProxy, the
	// backend and the client did more work per call than direct, charged to
	// that proxy's rate.
	backend.Service.NoEcho.Store(!echo)

	// A dubbo-go provider for REST -> Dubbo2; without it (no module
	// proxy to build it) that row says why it is missing.
	provider, perr := startDubboProvider(ctx)
	dubboAddr, triAddr := "127.0.0.1:1", "127.0.0.1:1" // nothing listens: the routes answer 503
	if perr != nil {
		log.Printf("REST -> Dubbo2 skipped: %v", perr)
	} else {
		defer provider.stop()
		dubboAddr, triAddr = provider.addr, provider.triAddr
	}

	var env []string
	if gatewayEnv != "" {
		env = strings.Split(gatewayEnv, ",")
	}
	gw, err := startGateway(ctx, "", backend, dubboAddr, triAddr, profile != "", env...)
	if err != nil {
		return err
	}
	defer gw.stop()
	idleRSS := rssKiB(gw.cmd.Process.Pid)

	// The mTLS scenario's backend: the same demo service behind TLS that
	// requires a client certificate from a throwaway mesh CA.
	pki, err := newMeshPKI()
	if err != nil {
		return err
	}
	mtlsAddr, stopMTLS, err := startMTLSBackend(ctx, backend.Service, pki)
	if err != nil {
		return err
	}
	defer stopMTLS()
	// The tracing scenario's OTLP collector.
	sink, sinkAddr, err := startOTLPSink()
	if err != nil {
		return err
	}

	payload := bytes.Repeat([]byte{'x'}, 1024)
	scenarios := []scenario{
		{name: "gRPC unary", unit: "calls/s", target: "≥ 0.60 / ≤ 0.15 ms", proxied: true, run: func(ctx context.Context, addr string) (result, error) {
			return grpcUnary(ctx, addr, conc, warm, dur)
		}},
		{name: "gRPC unary, route with Istio's default retry policy", unit: "calls/s", target: "≥ 0.60", run: func(ctx context.Context, addr string) (result, error) {
			return grpcUnary(metadata.AppendToOutgoingContext(ctx, "x-bench-route", "istio-retry"), addr, conc, warm, dur)
		}},
		{name: "gRPC unary, mTLS upstream (ISTIO_MUTUAL-style)", unit: "calls/s", target: "≥ 0.60", run: func(ctx context.Context, addr string) (result, error) {
			return grpcUnary(ctx, addr, conc, warm, dur)
		}, direct: func(ctx context.Context, addr string) (result, error) {
			return grpcUnaryCreds(ctx, addr, pki.clientCreds(), conc, warm, dur)
		}, directAddr: mtlsAddr, gateway: func() (*gateway, error) {
			return startMTLSGateway(gw.bin, mtlsAddr, pki)
		}},
		{name: "gRPC unary, Istio AuthorizationPolicy (RBAC DENY policies the calls do not match)", unit: "calls/s", target: "≥ 0.60", run: func(ctx context.Context, addr string) (result, error) {
			return grpcUnary(ctx, addr, conc, warm, dur)
		}, gateway: func() (*gateway, error) {
			return startRBACGateway(gw.bin, backend.GRPCAddr)
		}},
		{name: "gRPC unary, access log on (Envoy's default format, to a file)", unit: "calls/s", target: "within 10% of gRPC unary", run: func(ctx context.Context, addr string) (result, error) {
			return grpcUnary(ctx, addr, conc, warm, dur)
		}, gateway: func() (*gateway, error) {
			return startAccessLogGateway(gw.bin, backend.GRPCAddr)
		}},
		{name: "gRPC unary, access log on and tracing at 1% (OTLP to a collector)", unit: "calls/s", target: "within 10% of gRPC unary", run: func(ctx context.Context, addr string) (result, error) {
			before := sink.spans.Load()
			r, err := grpcUnary(ctx, addr, conc, warm, dur)
			log.Printf("tracing at 1%%: the collector got %d spans during the run", sink.spans.Load()-before)
			return r, err
		}, direct: func(ctx context.Context, addr string) (result, error) {
			return grpcUnary(ctx, addr, conc, warm, dur) // (no spans to count)
		}, directAddr: backend.GRPCAddr, gateway: func() (*gateway, error) {
			return startObservedGateway(gw.bin, backend.GRPCAddr, sinkAddr)
		}},
		{name: "gRPC unary while another connection sends rapid resets (vs direct, unattacked)", unit: "calls/s", target: "no failures", run: func(ctx context.Context, addr string) (result, error) {
			actx, cancel := context.WithCancel(ctx)
			defer cancel()
			conns, streams := rapidReset(actx, addr)
			r, err := grpcUnary(ctx, addr, conc, warm, dur)
			log.Printf("rapid reset during the run: %d streams reset on %d connections (each cut off by the gateway)", streams.Load(), conns.Load())
			return r, err
		}, direct: func(ctx context.Context, addr string) (result, error) {
			return grpcUnary(ctx, addr, conc, warm, dur)
		}, directAddr: backend.GRPCAddr},
		{name: "gRPC server streaming", unit: "msgs/s", target: "≥ 0.70", proxied: true, run: func(ctx context.Context, addr string) (result, error) {
			return grpcServerStream(ctx, addr, warm, dur)
		}},
		{name: "gRPC bidi streaming", unit: "msgs/s", target: "≥ 0.70", proxied: true, run: func(ctx context.Context, addr string) (result, error) {
			return grpcBidi(ctx, addr, payload, warm, dur)
		}},
		{name: "HTTP/1.1 GET", unit: "req/s", target: "≥ 0.70 / ≤ 0.3 ms", http: true, proxied: true, run: func(ctx context.Context, addr string) (result, error) {
			return httpGet(ctx, addr, conc, warm, dur)
		}},
		{name: "REST (JSON, HTTP/1.1) → gRPC vs direct gRPC", unit: "calls/s", target: "≥ 0.60", run: func(ctx context.Context, addr string) (result, error) {
			return restToGRPC(ctx, addr, conc, warm, dur)
		}, direct: func(ctx context.Context, addr string) (result, error) {
			return grpcUnary(ctx, addr, conc, warm, dur)
		}, directAddr: backend.GRPCAddr},
		{name: "gRPC-Web unary (binary, HTTP/1.1) vs direct gRPC", unit: "calls/s", target: "≥ 0.60", run: func(ctx context.Context, addr string) (result, error) {
			return grpcWebUnary(ctx, addr, conc, warm, dur)
		}, direct: func(ctx context.Context, addr string) (result, error) {
			return grpcUnary(ctx, addr, conc, warm, dur)
		}, directAddr: backend.GRPCAddr},
	}
	if perr == nil {
		scenarios = append(scenarios, scenario{name: "REST → Dubbo2 (generic, vs a dubbo-go generic consumer)", unit: "calls/s", target: "≥ 0.85 / ≤ 0.5 ms",
			run: func(ctx context.Context, addr string) (result, error) {
				return restToDubbo(ctx, addr, conc, warm, dur)
			},
			direct: func(ctx context.Context, addr string) (result, error) {
				return dubboConsumer(ctx, "dubbo", addr, conc, warm, dur)
			},
			directAddr: dubboAddr,
		}, scenario{name: "Triple gRPC form, non-IDL (dubbo-go Triple consumer both sides)", unit: "calls/s", target: "≥ 0.60",
			run: func(ctx context.Context, addr string) (result, error) {
				return dubboConsumer(ctx, "tri", addr, conc, warm, dur)
			},
			direct: func(ctx context.Context, addr string) (result, error) {
				return dubboConsumer(ctx, "tri", addr, conc, warm, dur)
			},
			directAddr: provider.triAddr,
		}, scenario{name: "Triple unary HTTP form (JSON) → non-IDL Triple, vs a dubbo-go Triple consumer", unit: "calls/s", target: "≥ 0.60",
			run: func(ctx context.Context, addr string) (result, error) {
				return tripleUnary(ctx, addr, conc, warm, dur)
			},
			direct: func(ctx context.Context, addr string) (result, error) {
				return dubboConsumer(ctx, "tri", addr, conc, warm, dur)
			},
			directAddr: provider.triAddr,
		})
	}

	// nginx and HAProxy in front of the same backend, each started once
	// for the whole run; one that cannot be had is skipped with its reason.
	var others []*proxy
	for _, o := range []struct{ name, bin string }{{"nginx", nginxBin}, {"haproxy", haproxyBin}} {
		p := startOtherProxy(o.name, o.bin, backend.GRPCAddr, backend.HTTPAddr)
		if p.skip != "" {
			log.Printf("%s skipped: %s", p.name, p.skip)
		} else {
			defer p.stop()
			log.Printf("%s: gRPC on %s, HTTP/1.1 on %s", p.version, p.grpcAddr, p.httpAddr)
		}
		others = append(others, p)
	}
	if baseline != "" {
		base, err := startGateway(ctx, baseline, backend, dubboAddr, triAddr, false)
		if err != nil {
			return fmt.Errorf("the baseline gateway: %w", err)
		}
		defer base.stop()
		name := "meshgate baseline (" + filepath.Base(baseline) + ")"
		others = append(others, &proxy{name: name, version: name + ": the gateway built from " + baseline,
			grpcAddr: base.addr, httpAddr: base.addr, pid: base.cmd.Process.Pid})
	}
	if floor := startRelayFloor(backend.GRPCAddr, backend.HTTPAddr, httpFloor); floor.skip != "" {
		log.Printf("%s skipped: %s", floor.name, floor.skip)
	} else {
		defer floor.stop()
		others = append(others, floor)
	}

	var rows []string
	emit := func(row string) {
		fmt.Println(row)
		rows = append(rows, row)
	}
	onlyRE, err := regexp.Compile(only)
	if err != nil {
		return fmt.Errorf("-only: %w", err)
	}
	for i, s := range scenarios {
		if !onlyRE.MatchString(s.name) {
			continue
		}
		direct := backend.GRPCAddr
		if s.http {
			direct = backend.HTTPAddr
		}
		runDirect := s.run
		if s.direct != nil {
			runDirect, direct = s.direct, s.directAddr
		}
		d, err := runDirect(ctx, direct)
		if err != nil {
			return fmt.Errorf("%s direct: %w", s.name, err)
		}
		sgw := gw
		if s.gateway != nil {
			if sgw, err = s.gateway(); err != nil {
				return fmt.Errorf("%s: start its gateway: %w", s.name, err)
			}
		}
		var profDone chan error
		if profile != "" {
			profDone = make(chan error, 1)
			go func() { profDone <- sgw.cpuProfile(fmt.Sprintf("%s-%d.pprof", profile, i), warm, dur) }()
		}
		pctx, probe := withCPUProbe(ctx, sgw.cmd.Process.Pid)
		g, err := s.run(pctx, sgw.addr)
		if sgw != gw && !s.proxied { // a proxied path's rounds use it again
			sgw.stop()
		}
		if profDone != nil {
			if perr := <-profDone; perr != nil {
				log.Printf("profile: %v", perr)
			}
		}
		if err != nil {
			return fmt.Errorf("%s through meshgate: %w", s.name, err)
		}
		logFailures(s.name+" direct", d)
		logFailures(s.name+" through meshgate", g)
		if !s.proxied {
			emit(tableRow(s, "meshgate", d, g, probe.per10k(g.ops), s.target))
			continue
		}
		// A proxied path runs in rounds: direct, then every proxy, the
		// order reversed each round (meshgate first, then last, ...), and
		// direct once more at the end. Each proxy's row sums its rounds; the
		// best direct run stands for direct (one slow direct run made every
		// ratio of its path look good; the first proxy after direct tended
		// to come out lower).
		entries := []*pathRun{{name: "meshgate", addr: sgw.addr, target: s.target}}
		entries[0].add(g, probe, nil)
		for _, p := range others {
			if p.skip != "" {
				continue
			}
			addr := p.grpcAddr
			if s.http {
				addr = p.httpAddr
			}
			if addr == "" {
				continue // a proxy without a listener for this path
			}
			entries = append(entries, &pathRun{name: p.name, addr: addr, pid: p.pid, target: "—"})
		}
		entries[0].pid = sgw.cmd.Process.Pid
		directs := []result{d}
		for round := range rounds {
			order := slices.Clone(entries)
			if round%2 == 1 {
				slices.Reverse(order)
			}
			if round > 0 {
				dn, err := runDirect(ctx, direct)
				if err != nil {
					return fmt.Errorf("%s direct, round %d: %w", s.name, round+1, err)
				}
				directs = append(directs, dn)
			}
			for _, e := range order {
				if round == 0 && e == entries[0] {
					continue // measured above
				}
				pctx, probe := withCPUProbe(ctx, e.pid)
				g, err := s.run(pctx, e.addr)
				if err != nil {
					log.Printf("%s through %s: %v", s.name, e.name, err)
				} else {
					logFailures(s.name+" through "+e.name, g)
				}
				e.add(g, probe, err)
			}
		}
		if sgw != gw {
			sgw.stop()
		}
		dn, err := runDirect(ctx, direct)
		if err != nil {
			return fmt.Errorf("%s direct, last run: %w", s.name, err)
		}
		directs = append(directs, dn)
		rates := make([]string, len(directs))
		for k, r := range directs {
			rates[k] = fmt.Sprintf("%.0f", r.rate())
			if r.rate() > d.rate() {
				d = r
			}
		}
		log.Printf("%s direct runs: %s %s", s.name, strings.Join(rates, ", "), s.unit)
		for _, e := range entries {
			if e.err != nil {
				emit(fmt.Sprintf("| %s | %s | %.0f %s | error: %s | | | | | | |", s.name, e.name, d.rate(), s.unit,
					strings.ReplaceAll(e.err.Error(), "|", `\|`)))
				continue
			}
			emit(tableRow(s, e.name, d, e.res, e.cpu.per10k(e.res.ops), e.target))
		}
	}
	loadRSS := rssKiB(gw.cmd.Process.Pid)
	rss := []string{fmt.Sprintf("meshgate %d MiB idle after start, %d MiB after the runs (budget: idle ≤ 40 MB)", idleRSS>>10, loadRSS>>10)}
	for _, p := range others {
		if p.skip == "" {
			rss = append(rss, fmt.Sprintf("%s %d MiB after the runs", p.name, treeRSSKiB(p.pid)>>10))
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "# meshgate benchmark results\n\n")
	fmt.Fprintf(&b, "Written by `make bench` (`go run ./bench`) on %s: %d CPUs, %s, %s/%s.\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(&b, "The load generator and the grpc-go / net/http demo backend run in one process, each proxy in its own;\n")
	fmt.Fprintf(&b, "each path runs direct and then through meshgate, %s each after %s of warm-up, in the same run.\n", dur, warm)
	fmt.Fprintf(&b, "gRPC unary, server and bidi streaming and HTTP/1.1 GET then also run through nginx and HAProxy, in front of the same backend,\n")
	fmt.Fprintf(&b, "and through a bare Go relay, the floor: on the gRPC paths an HTTP/2 frame relay (what Go itself\n")
	fmt.Fprintf(&b, "allows here when no goroutine is handed a stream; no routing, nothing changed), on HTTP/1.1 a byte copy both ways, nothing parsed,\n")
	if httpFloor == "epoll" {
		fmt.Fprintf(&b, "by one epoll loop on a locked thread, no goroutine per connection (`-http-floor epoll`: how nginx runs, not Go's netpoller).")
	} else {
		fmt.Fprintf(&b, "two goroutines per connection pair (what the runtime's reads and writes alone cost; `-http-floor epoll` copies by an epoll loop instead).")
	}
	fmt.Fprintf(&b, " These paths run in %d rounds: direct, then every\n", rounds)
	fmt.Fprintf(&b, "proxy, the order reversed each round, and direct once more at the end; a proxy's figures sum its rounds, and the best direct run\n")
	fmt.Fprintf(&b, "is the direct figure of all the path's rows. The other paths run once, direct then through meshgate.\n")
	fmt.Fprintf(&b, "Unary and HTTP use %d concurrent callers (gRPC: one connection; HTTP: keep-alive pool); streams are one stream of 1 KiB messages.\n\n", conc)
	fmt.Fprintf(&b, "Proxies:\n\n")
	fmt.Fprintf(&b, "- meshgate: this tree's gateway (`go build ./cmd/meshgate`), one process, its Go runtime using both cores.\n")
	for _, p := range others {
		if p.skip != "" {
			fmt.Fprintf(&b, "- %s: **not measured**: %s\n", p.name, p.skip)
		} else {
			fmt.Fprintf(&b, "- %s.\n", p.version)
		}
	}
	fmt.Fprintf(&b, "\nThe CPU column is the proxy's own CPU time (user + system, from /proc/PID/stat, summed over the proxy's process and its\n")
	fmt.Fprintf(&b, "children: nginx's master and worker) over the measuring window, per 10,000 calls (unary, HTTP) or 10,000 messages (streams).\n")
	fmt.Fprintf(&b, "Unlike the rates, it does not depend much on how busy the machine is. ≈ marks a window timed from the start of the dubbo-go consumer\n")
	fmt.Fprintf(&b, "(its own process, which counts calls in its own window).\n\n")
	fmt.Fprintf(&b, "REST → Dubbo2 posts `[\"world\"]` to `/dubbo/<interface>/SayHello` (the bridge's generic call to a dubbo-go %s provider);\n", dubboGoVersion)
	fmt.Fprintf(&b, "its direct side is a dubbo-go generic consumer (its own process, %d callers) calling the same provider.\n", conc)
	fmt.Fprintf(&b, "The Triple rows call the same provider's tri port (SayHello, non-IDL hessian2): the dubbo-go Triple consumer direct,\n")
	fmt.Fprintf(&b, "and through meshgate either the same consumer (gRPC form, passed through) or JSON in Triple's unary HTTP form (converted).\n")
	fmt.Fprintf(&b, "The mTLS row calls the same demo service over TLS that requires a client certificate (a throwaway ECDSA P-256 mesh CA, SPIFFE URI SANs):\n")
	fmt.Fprintf(&b, "direct, grpc-go with a client certificate; through meshgate, plaintext gRPC to a second gateway (Envoy bootstrap, the friendly listener's filters\n")
	fmt.Fprintf(&b, "without the transcoder) whose cluster dials with an UpstreamTlsContext: client certificate, trusted CA, URI SAN matcher, ALPN h2;\n")
	fmt.Fprintf(&b, "its CPU is that of the gateway started for the row.\n\n")
	fmt.Fprintf(&b, "| path | through | direct | through the proxy | ratio | p50 direct → proxy (added) | p99 direct → proxy (added) | proxy CPU per 10k calls or msgs | failures direct / proxy | meshgate target (ratio / added p50) |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintln(&b, r)
	}
	fmt.Fprintf(&b, "\nRSS: %s.\n", strings.Join(rss, "; "))
	fmt.Fprintf(&b, "\nTimings on a shared 2-core machine are noisy: compare ratios from the same run, not absolute numbers across runs.\n")
	fmt.Print("\n", b.String())
	if out != "" {
		return os.WriteFile(out, []byte(b.String()), 0o644)
	}
	return nil
}

// logFailures says what the last failure of a run was, if it had any,
// and when a run completed nothing (a stream that stalled).
func logFailures(what string, r result) {
	if r.failures > 0 && r.lastErr != nil {
		log.Printf("%s: %d failures, the last: %v", what, r.failures, r.lastErr)
	}
	if r.ops == 0 {
		log.Printf("%s: nothing completed in the measuring window", what)
	}
}

// tableRow is one line of the report: path s through the proxy named via.
func tableRow(s scenario, via string, d, g result, cpu, target string) string {
	return fmt.Sprintf("| %s | %s | %.0f %s | %.0f %s | **%.2f** | %s | %s | %s | %d / %d | %s |",
		s.name, via, d.rate(), s.unit, g.rate(), s.unit, g.rate()/d.rate(),
		latency(d, g, 0.50), latency(d, g, 0.99), cpu, d.failures, g.failures, target)
}

func latency(d, g result, p float64) string {
	if !d.hasLatency() || !g.hasLatency() {
		return "n/a (streaming)"
	}
	dp, gp := d.pct(p), g.pct(p)
	return fmt.Sprintf("%s → %s (+%s)", ms(dp), ms(gp), ms(gp-dp))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d.Microseconds())/1000) }

// gateway is the meshgate binary running as a child process.
type gateway struct {
	cmd   *exec.Cmd
	bin   string
	addr  string
	admin string
	dir   string
}

// cpuProfile fetches a CPU profile of the measuring part of a run.
func (g *gateway) cpuProfile(path string, warm, dur time.Duration) error {
	time.Sleep(warm)
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", g.admin, max(1, int(dur.Seconds()))))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

const gatewayConfig = `
admin: { address: "%s" }
listeners:
  - name: bench
    address: %s
    grpc_json: { proto_descriptor: demo.pb, services: [ demo.v1.DemoService ] }
    virtual_hosts:
      - routes:
          # Istio's default route retry policy (what istiod sends for a
          # service without a VirtualService), picked by a header.
          - match: { prefix: /demo.v1.DemoService/, headers: [ { name: x-bench-route, exact: istio-retry } ] }
            cluster: grpc
            timeout: 0s
            retries: { retry_on: "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes", num_retries: 2, retriable_status_codes: [ 503 ], skip_previous_hosts: true }
          - match: { prefix: /demo.v1.DemoService/ }
            cluster: grpc
            timeout: 0s
          - match: { prefix: /dubbo/ }
            cluster: dubbo
            dubbo: { version: 1.0.0, group: g1 }
          - match: { prefix: /org.apache.dubbo.samples.GreeterService/, grpc: true }
            cluster: tri
            timeout: 0s
          - match: { prefix: /org.apache.dubbo.samples.GreeterService/ }
            cluster: tri
            dubbo: {}
          - match: { prefix: / }
            cluster: http
clusters:
  - { name: grpc, protocol: grpc, endpoints: [ "%s" ] }
  - { name: http, endpoints: [ "%s" ] }
  - { name: dubbo, protocol: dubbo, endpoints: [ "%s" ] }
  - { name: tri, protocol: tri, endpoints: [ "%s" ] }
`

// startGateway builds the gateway from the checkout in src ("": this one)
// and starts it in front of b and the Dubbo provider.
// env is added to the gateway's environment.
func startGateway(ctx context.Context, src string, b *demo.Backend, dubboAddr, triAddr string, withAdmin bool, env ...string) (*gateway, error) {
	dir, err := os.MkdirTemp("", "meshgate-bench")
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "meshgate")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/meshgate")
	build.Dir = src
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return nil, fmt.Errorf("build the gateway (run from the repository root): %w", err)
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	admin := ""
	if withAdmin {
		if admin, err = freeAddr(); err != nil {
			return nil, err
		}
	}
	desc, err := proto.Marshal(&descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{
		protodesc.ToFileDescriptorProto(demov1.File_demo_v1_demo_proto)}})
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "demo.pb"), desc, 0o600); err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "bench.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, gatewayConfig, admin, addr, b.GRPCAddr, b.HTTPAddr, dubboAddr, triAddr), 0o600); err != nil {
		return nil, err
	}
	return launchGateway(bin, cfg, dir, addr, admin, env...)
}

// launchGateway runs the gateway binary bin with config file cfg and
// waits until it listens on addr; its stop removes dir.
func launchGateway(bin, cfg, dir, addr, admin string, env ...string) (*gateway, error) {
	cmd := exec.Command(bin, "run", "-c", cfg, "-log-level", "warn", "-drain-period=0")
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	g := &gateway{cmd: cmd, bin: bin, addr: addr, admin: admin, dir: dir}
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return g, nil
		}
		if time.Now().After(deadline) {
			g.stop()
			return nil, fmt.Errorf("the gateway did not listen on %s: %w", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (g *gateway) stop() {
	_ = g.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = g.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = g.cmd.Process.Kill()
		<-done
	}
	_ = os.RemoveAll(g.dir)
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// rssKiB reads a process's resident set from /proc (0 if unknown).
func rssKiB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, "VmRSS:")), "%d", &kb)
			return kb
		}
	}
	return 0
}

// measure runs worker on n goroutines: first for warm, then for dur while
// counting. worker returns how many operations one step did and how long
// the step took (0 for streaming steps).
func measure(ctx context.Context, n int, warm, dur time.Duration, worker func(ctx context.Context) (int64, time.Duration, error)) result {
	var counting atomic.Bool
	var ops, fails atomic.Int64
	var lastErr atomic.Pointer[error]
	lats := make([][]time.Duration, n)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				k, lat, err := worker(ctx)
				if !counting.Load() {
					continue
				}
				if err != nil {
					if ctx.Err() == nil {
						fails.Add(1)
						lastErr.Store(&err)
					}
					continue
				}
				ops.Add(k)
				if lat > 0 {
					lats[i] = append(lats[i], lat)
				}
			}
		}()
	}
	probe := probeOf(ctx)
	time.Sleep(warm)
	counting.Store(true)
	probe.begin()
	start := time.Now()
	time.Sleep(dur)
	counting.Store(false)
	elapsed := time.Since(start)
	probe.end()
	cancel()
	wg.Wait()
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	slices.Sort(all)
	r := result{ops: ops.Load(), elapsed: elapsed, lat: all, failures: fails.Load()}
	if e := lastErr.Load(); e != nil {
		r.lastErr = *e
	}
	return r
}

func dial(addr string) (*grpc.ClientConn, error) {
	return dialCreds(addr, insecure.NewCredentials())
}

func dialCreds(addr string, creds credentials.TransportCredentials) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
}

func grpcUnary(ctx context.Context, addr string, n int, warm, dur time.Duration) (result, error) {
	return grpcUnaryCreds(ctx, addr, insecure.NewCredentials(), n, warm, dur)
}

// grpcUnaryCreds is grpcUnary over a connection dialled with creds.
func grpcUnaryCreds(ctx context.Context, addr string, creds credentials.TransportCredentials, n int, warm, dur time.Duration) (result, error) {
	cc, err := dialCreds(addr, creds)
	if err != nil {
		return result{}, err
	}
	defer cc.Close()
	c := demov1.NewDemoServiceClient(cc)
	req := &demov1.EchoRequest{Message: "hello meshgate"}
	if _, err := c.Echo(ctx, req); err != nil {
		return result{}, err
	}
	return measure(ctx, n, warm, dur, func(ctx context.Context) (int64, time.Duration, error) {
		start := time.Now()
		_, err := c.Echo(ctx, req)
		return 1, time.Since(start), err
	}), nil
}

func grpcServerStream(ctx context.Context, addr string, warm, dur time.Duration) (result, error) {
	cc, err := dial(addr)
	if err != nil {
		return result{}, err
	}
	defer cc.Close()
	c := demov1.NewDemoServiceClient(cc)
	return measure(ctx, 1, warm, dur, func(ctx context.Context) (int64, time.Duration, error) {
		s, err := c.ServerStream(ctx, &demov1.ServerStreamRequest{Count: 5000, PayloadSize: 1024})
		if err != nil {
			return 0, 0, err
		}
		n, err := countRecv(s.Recv)
		return n, 0, err
	}), nil
}

func grpcBidi(ctx context.Context, addr string, payload []byte, warm, dur time.Duration) (result, error) {
	cc, err := dial(addr)
	if err != nil {
		return result{}, err
	}
	defer cc.Close()
	c := demov1.NewDemoServiceClient(cc)
	return measure(ctx, 1, warm, dur, func(ctx context.Context) (int64, time.Duration, error) {
		s, err := c.BidiStream(ctx)
		if err != nil {
			return 0, 0, err
		}
		const batch = 5000
		go func() {
			req := &demov1.EchoRequest{Payload: payload}
			for range batch {
				if s.Send(req) != nil {
					return
				}
			}
			_ = s.CloseSend()
		}()
		n, err := countRecv(s.Recv)
		return n, 0, err
	}), nil
}

// countRecv receives until the stream ends and counts the messages.
func countRecv(recv func() (*demov1.EchoResponse, error)) (int64, error) {
	var n int64
	for {
		if _, err := recv(); err != nil {
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			return n, err
		}
		n++
	}
}

func httpGet(ctx context.Context, addr string, n int, warm, dur time.Duration) (result, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: n, DisableCompression: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	url := "http://" + addr + "/echo/bench"
	return measure(ctx, n, warm, dur, func(ctx context.Context) (int64, time.Duration, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		start := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			return 0, 0, err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != 200 {
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		return 1, time.Since(start), err
	}), nil
}
