package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/meshgate/meshgate/internal/peers"
)

// The REST -> Dubbo2 scenario's peers live in integration/dubbogo (their
// own module, so that this one does not import dubbo-go): a dubbo-go
// v3.3.2 provider and a dubbo-go generic consumer, the direct side.
const dubboGoVersion = peers.DubboGoVersion

const greeter = "org.apache.dubbo.samples.GreeterService"

// dubboGoBinary builds one program of integration/dubbogo (cached; the
// provider shares the integration tests' cache entry).
func dubboGoBinary(_ context.Context, name, pkg string, sources ...string) (string, error) {
	return peers.BuildDubboGo(filepath.Join("integration", "dubbogo"), name, pkg, sources...)
}

// dubboProvider is a dubbo-go provider serving without a registry.
type dubboProvider struct {
	cmd     *exec.Cmd
	addr    string // its dubbo protocol's address
	triAddr string // its tri protocol's
}

func startDubboProvider(ctx context.Context) (*dubboProvider, error) {
	bin, err := dubboGoBinary(ctx, "provider", ".", "main.go", "go.mod", "go.sum")
	if err != nil {
		return nil, err
	}
	var ports [3]string
	for i := range ports {
		a, err := freeAddr()
		if err != nil {
			return nil, err
		}
		ports[i] = a[strings.LastIndexByte(a, ':')+1:]
	}
	dir, err := os.MkdirTemp("", "meshgate-bench-provider")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-registry", "none", "-app", "bench-provider", "-mode", "interface",
		"-version", "1.0.0", "-group", "g1", "-dubbo-port", ports[0], "-tri-port", ports[1], "-meta-port", ports[2])
	cmd.Dir = dir
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &dubboProvider{cmd: cmd, addr: "127.0.0.1:" + ports[0], triAddr: "127.0.0.1:" + ports[1]}
	serving := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "SERVING" {
				close(serving)
			}
		}
	}()
	select {
	case <-serving:
		return p, nil
	case <-time.After(60 * time.Second):
		p.stop()
		return nil, errors.New("the dubbo-go provider did not serve within 60s")
	}
}

func (p *dubboProvider) stop() {
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
}

// dubboConsumer runs the dubbo-go consumer (protocol dubbo: generic calls;
// tri: non-IDL Triple calls) against addr, a provider or the gateway.
func dubboConsumer(ctx context.Context, protocol, addr string, n int, warm, dur time.Duration) (result, error) {
	bin, err := dubboGoBinary(ctx, "consumer", "./consumer", "consumer/main.go", "go.mod", "go.sum")
	if err != nil {
		return result{}, err
	}
	cmd := exec.CommandContext(ctx, bin, "-protocol", protocol, "-url", protocol+"://"+addr, "-iface", greeter, "-version", "1.0.0", "-group", "g1",
		"-method", "SayHello", "-arg", "world", "-c", fmt.Sprint(n), "-duration", dur.String(), "-warmup", warm.String())
	// The consumer counts in its own window, warm after its start; the
	// proxy's CPU is taken over the same span timed from here.
	wctx, cancel := context.WithCancel(ctx)
	windowDone := probeOf(ctx).timedWindow(wctx, warm, dur)
	out, err := cmd.Output()
	cancel()
	<-windowDone
	if err != nil {
		return result{}, fmt.Errorf("the dubbo-go consumer: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var r struct {
		Ops       int64   `json:"ops"`
		Failures  int64   `json:"failures"`
		Seconds   float64 `json:"seconds"`
		P50us     float64 `json:"p50_us"`
		P99us     float64 `json:"p99_us"`
		LastError string  `json:"last_error"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		return result{}, fmt.Errorf("the dubbo-go consumer's report %q: %w", lines[len(lines)-1], err)
	}
	if r.Failures > 0 {
		log.Printf("the dubbo-go consumer: %d failures, last: %s", r.Failures, r.LastError)
	}
	return result{ops: r.Ops, failures: r.Failures, elapsed: time.Duration(r.Seconds * float64(time.Second)),
		p50: time.Duration(r.P50us) * time.Microsecond, p99: time.Duration(r.P99us) * time.Microsecond}, nil
}

// tripleUnary posts the call in Triple's unary HTTP form (JSON) to the
// gateway, which converts it for the non-IDL Triple provider.
func tripleUnary(ctx context.Context, addr string, n int, warm, dur time.Duration) (result, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: n, DisableCompression: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	url := "http://" + addr + "/" + greeter + "/SayHello"
	return measure(ctx, n, warm, dur, func(ctx context.Context) (int64, time.Duration, error) {
		req, _ := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(`["world"]`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Triple-Protocol-Version", "0.1.0")
		req.Header.Set("Tri-Service-Version", "1.0.0")
		req.Header.Set("Tri-Service-Group", "g1")
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

// restToDubbo posts the same call as JSON to the gateway's bridge.
func restToDubbo(ctx context.Context, addr string, n int, warm, dur time.Duration) (result, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: n, DisableCompression: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	url := "http://" + addr + "/dubbo/" + greeter + "/SayHello"
	return measure(ctx, n, warm, dur, func(ctx context.Context) (int64, time.Duration, error) {
		req, _ := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(`["world"]`))
		req.Header.Set("Content-Type", "application/json")
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
