// Command consumer is a dubbo-go v3.3.2 consumer for meshgate's tests and
// benchmarks. With -mode bench (the default) it is a generic consumer that
// loads one provider: the "direct" side of bench/'s REST -> Dubbo2 row. It
// calls one method with one string argument from -c goroutines for
// -duration after -warmup and prints one JSON line:
// {"ops":N,"failures":N,"seconds":S,"p50_us":X,"p99_us":Y,"last_error":"..."}.
// With -mode tri it makes one non-IDL Triple call (hessian2, the method
// itself, not generic), with -mode tri-health one IDL Triple call
// (grpc.health.v1.Health/Check) and with -mode dubbo one Dubbo2 call,
// printing {"result":...} or {"error":...}.
//
//	consumer -url dubbo://127.0.0.1:20880 -iface org.apache.dubbo.samples.GreeterService \
//	  -version 1.0.0 -group g1 -method SayHello -arg world -c 16 -duration 5s
//	consumer -mode tri -url tri://127.0.0.1:8080 -group g1 -method SayHello -arg world
//	consumer -mode tri -registry nacos -registry-addr 127.0.0.1:8848 -group g1 -method sayHello -arg world -wait 20s
//
// With -registry the provider is found by application-level discovery (the
// interface's mapping, the application's instances, their MetadataService)
// instead of -url.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"dubbo.apache.org/dubbo-go/v3"
	"dubbo.apache.org/dubbo-go/v3/client"
	"dubbo.apache.org/dubbo-go/v3/common/constant"
	_ "dubbo.apache.org/dubbo-go/v3/imports"
	"dubbo.apache.org/dubbo-go/v3/protocol/triple/health/triple_health"
	"dubbo.apache.org/dubbo-go/v3/registry"
	hessian "github.com/apache/dubbo-go-hessian2"
)

func main() {
	url := flag.String("url", "dubbo://127.0.0.1:20880", "provider URL")
	iface := flag.String("iface", "org.apache.dubbo.samples.GreeterService", "interface")
	version := flag.String("version", "1.0.0", "service version")
	group := flag.String("group", "", "service group")
	method := flag.String("method", "SayHello", "method (one java.lang.String argument)")
	arg := flag.String("arg", "world", "the argument")
	conc := flag.Int("c", 16, "concurrent callers")
	dur := flag.Duration("duration", 5*time.Second, "measuring time")
	warm := flag.Duration("warmup", time.Second, "warm-up time")
	protocol := flag.String("protocol", "dubbo", "bench: dubbo (generic Dubbo2 calls) or tri (non-IDL Triple calls)")
	mode := flag.String("mode", "bench", "bench, tri (one non-IDL Triple call), tri-health (one IDL Triple call) or dubbo (one Dubbo2 call)")
	reg := flag.String("registry", "", "tri and dubbo: find the provider in this registry (nacos or zookeeper) by application-level discovery instead of -url")
	regAddr := flag.String("registry-addr", "127.0.0.1:8848", "the registry's address")
	wait := flag.Duration("wait", 0, "tri and dubbo: retry the call until it works or this long passed (discovery is asynchronous)")
	flag.Parse()
	if *mode != "bench" {
		once(onceCall{mode: *mode, url: *url, iface: *iface, version: *version, group: *group, method: *method, arg: *arg,
			registry: *reg, registryAddr: *regAddr, wait: *wait})
		return
	}

	ins, err := dubbo.NewInstance(dubbo.WithName("meshgate-bench-consumer"))
	if err != nil {
		log.Fatal(err)
	}
	var call func(ctx context.Context) error
	switch *protocol {
	case "dubbo":
		cli, err := ins.NewClient(client.WithClientProtocolDubbo())
		if err != nil {
			log.Fatal(err)
		}
		opts := []client.ReferenceOption{client.WithURL(*url), client.WithVersion(*version), client.WithProtocolDubbo(),
			client.WithRequestTimeout(5 * time.Second), client.WithRetries(0)}
		if *group != "" {
			opts = append(opts, client.WithGroup(*group))
		}
		gs, err := cli.NewGenericService(*iface, opts...)
		if err != nil {
			log.Fatal(err)
		}
		call = func(ctx context.Context) error {
			_, err := gs.Invoke(ctx, *method, []string{"java.lang.String"}, []hessian.Object{*arg})
			return err
		}
	case "tri":
		// Non-IDL Triple (hessian2 in the wrapper), the method itself.
		cli, err := ins.NewClient(client.WithClientProtocolTriple())
		if err != nil {
			log.Fatal(err)
		}
		opts := []client.ReferenceOption{client.WithURL(*url), client.WithVersion(*version), client.WithProtocolTriple(),
			client.WithSerialization(constant.Hessian2Serialization), client.WithIDL(constant.NONIDL),
			client.WithRequestTimeout(5 * time.Second), client.WithRetries(0)}
		if *group != "" {
			opts = append(opts, client.WithGroup(*group))
		}
		conn, err := cli.Dial(*iface, opts...)
		if err != nil {
			log.Fatal(err)
		}
		call = func(ctx context.Context) error {
			var resp string
			return conn.CallUnary(ctx, []any{*arg}, &resp, *method)
		}
	default:
		log.Fatalf("unknown protocol %q", *protocol)
	}
	if err := call(context.Background()); err != nil {
		log.Fatalf("first call: %v", err)
	}

	var (
		measuring atomic.Bool
		ops, fail atomic.Int64
		lastErr   atomic.Value
		mu        sync.Mutex
		lat       []time.Duration
		wg        sync.WaitGroup
	)
	stop := make(chan struct{})
	for range *conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for {
				select {
				case <-stop:
					mu.Lock()
					lat = append(lat, mine...)
					mu.Unlock()
					return
				default:
				}
				start := time.Now()
				err := call(context.Background())
				if !measuring.Load() {
					continue
				}
				if err != nil {
					fail.Add(1)
					lastErr.Store(err.Error())
					continue
				}
				ops.Add(1)
				mine = append(mine, time.Since(start))
			}
		}()
	}
	time.Sleep(*warm)
	measuring.Store(true)
	begin := time.Now()
	time.Sleep(*dur)
	measuring.Store(false)
	elapsed := time.Since(begin)
	close(stop)
	wg.Wait()

	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds())
	}
	out := map[string]any{"ops": ops.Load(), "failures": fail.Load(), "seconds": elapsed.Seconds(), "p50_us": pct(0.50), "p99_us": pct(0.99)}
	if e, ok := lastErr.Load().(string); ok {
		out["last_error"] = e
	}
	b, _ := json.Marshal(out)
	fmt.Fprintln(os.Stdout, string(b))
	os.Exit(0) // dubbo-go keeps goroutines (registries, getty) that would hold the process
}

// onceCall is one call of -mode tri, tri-health or dubbo.
type onceCall struct {
	mode, url, iface, version, group, method, arg string
	// registry ("" none): find the provider there, application-level.
	registry, registryAddr string
	wait                   time.Duration
}

// once makes one call and prints its outcome as JSON.
func once(c onceCall) {
	mode, url, iface, version, group, method, arg := c.mode, c.url, c.iface, c.version, c.group, c.method, c.arg
	out := map[string]any{}
	defer func() {
		b, _ := json.Marshal(out)
		fmt.Fprintln(os.Stdout, string(b))
		os.Exit(0)
	}()
	insOpts := []dubbo.InstanceOption{dubbo.WithName("meshgate-test-consumer")}
	if c.registry != "" {
		regOpts := []registry.Option{registry.WithAddress(c.registryAddr), registry.WithRegisterService()}
		switch c.registry {
		case "nacos":
			regOpts = append(regOpts, registry.WithNacos())
		case "zookeeper":
			regOpts = append(regOpts, registry.WithZookeeper())
		default:
			out["error"] = "unknown registry " + c.registry
			return
		}
		insOpts = append(insOpts, dubbo.WithRegistry(regOpts...))
	}
	ins, err := dubbo.NewInstance(insOpts...)
	if err != nil {
		out["error"] = err.Error()
		return
	}
	proto := client.WithClientProtocolTriple()
	if mode == "dubbo" {
		proto = client.WithClientProtocolDubbo()
	}
	cli, err := ins.NewClient(proto)
	if err != nil {
		out["error"] = err.Error()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second+c.wait)
	defer cancel()
	var target []client.ReferenceOption // none: the instance's registries
	if c.registry == "" {
		target = append(target, client.WithURL(url))
	}
	// callUntil retries a call while the provider is not found yet.
	callUntil := func(call func() error) error {
		deadline := time.Now().Add(c.wait)
		for {
			err := call()
			if err == nil || time.Now().After(deadline) {
				return err
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	switch mode {
	case "dubbo":
		opts := append(target, client.WithVersion(version), client.WithProtocolDubbo(),
			client.WithSerialization(constant.Hessian2Serialization), client.WithRetries(0), client.WithRequestTimeout(5*time.Second))
		if group != "" {
			opts = append(opts, client.WithGroup(group))
		}
		conn, err := cli.Dial(iface, opts...)
		if err != nil {
			out["error"] = err.Error()
			return
		}
		var resp string
		if err := callUntil(func() error { return conn.CallUnary(ctx, []any{arg}, &resp, method) }); err != nil {
			out["error"] = err.Error()
			return
		}
		out["result"] = resp
	case "tri":
		opts := append(target, client.WithVersion(version), client.WithProtocolTriple(),
			client.WithSerialization(constant.Hessian2Serialization), client.WithIDL(constant.NONIDL), client.WithRetries(0))
		if group != "" {
			opts = append(opts, client.WithGroup(group))
		}
		conn, err := cli.Dial(iface, opts...)
		if err != nil {
			out["error"] = err.Error()
			return
		}
		var resp string
		if err := callUntil(func() error { return conn.CallUnary(ctx, []any{arg}, &resp, method) }); err != nil {
			out["error"] = err.Error()
			return
		}
		out["result"] = resp
	case "tri-health":
		h, err := triple_health.NewHealth(cli, client.WithURL(url), client.WithRetries(0))
		if err != nil {
			out["error"] = err.Error()
			return
		}
		resp, err := h.Check(ctx, &triple_health.HealthCheckRequest{Service: arg})
		if err != nil {
			out["error"] = err.Error()
			return
		}
		out["result"] = resp.GetStatus().String()
	default:
		out["error"] = "unknown mode " + mode
	}
}
