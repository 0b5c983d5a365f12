// Command consumer is a dubbo-go v3.3.2 generic consumer that loads one
// provider directly: the "direct" side of meshgate's REST -> Dubbo2
// benchmark (bench/). It calls one method with one string argument from
// -c goroutines for -duration after -warmup and prints one JSON line:
// {"ops":N,"failures":N,"seconds":S,"p50_us":X,"p99_us":Y,"last_error":"..."}.
//
//	consumer -url dubbo://127.0.0.1:20880 -iface org.apache.dubbo.samples.GreeterService \
//	  -version 1.0.0 -group g1 -method SayHello -arg world -c 16 -duration 5s
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
	_ "dubbo.apache.org/dubbo-go/v3/imports"
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
	flag.Parse()

	ins, err := dubbo.NewInstance(dubbo.WithName("meshgate-bench-consumer"))
	if err != nil {
		log.Fatal(err)
	}
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
	call := func(ctx context.Context) error {
		_, err := gs.Invoke(ctx, *method, []string{"java.lang.String"}, []hessian.Object{*arg})
		return err
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
