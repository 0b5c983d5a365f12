package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// buildBinary builds cmd/meshgate once per test binary.
var buildBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "meshgate-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "meshgate")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/meshgate")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// handedOut remembers the ports freeAddr gave, so that it never gives one
// twice: the kernel may offer a freed port again at once, and of two peers
// told to listen on one port the second fails (dubbo-go then serves on,
// without that protocol), which a test sees as two peers being one.
var handedOut sync.Map

func freeAddr(t *testing.T) string {
	t.Helper()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if _, dup := handedOut.LoadOrStore(addr, true); !dup {
			return addr
		}
	}
}

// process is the meshgate binary running as a child process.
type process struct {
	cmd    *exec.Cmd
	logs   *syncBuffer
	done   chan struct{}
	exit   error
	config string
	admin  string
	addr   string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const binaryConfig = `
admin: { address: "{{.Admin}}" }
drain_timeout: {{.Drain}}
listeners:
  - name: main
    address: "{{.Addr}}"
    virtual_hosts:
      - routes:
          - match: { prefix: /echo }
            cluster: http
            timeout: 30s
            request_headers_to_set: { x-gateway: "{{.Tag}}" }
clusters:
  - { name: http, endpoints: [ "{{.HTTP}}" ] }
`

type binaryData struct{ Admin, Addr, HTTP, Tag, Drain string }

func startProcess(t *testing.T, data binaryData, args ...string) *process {
	t.Helper()
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "meshgate.yaml")
	if err := os.WriteFile(path, render(t, binaryConfig, data), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &process{logs: &syncBuffer{}, done: make(chan struct{}), config: path, admin: data.Admin, addr: data.Addr}
	p.cmd = exec.Command(bin, append([]string{"run", "-c", path}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exit = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("meshgate logs:\n%s", p.logs.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + data.Admin + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("meshgate not ready: %v\n%s", err, p.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tag asks the echo which x-gateway header the gateway set.
func (p *process) tag(t *testing.T, c *http.Client) string {
	t.Helper()
	resp, err := c.Get("http://" + p.addr + "/echo")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e echoed
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatal(err)
	}
	return e.Headers["x-gateway"]
}

func (p *process) waitTag(t *testing.T, c *http.Client, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for p.tag(t, c) != want {
		if time.Now().After(deadline) {
			t.Fatalf("x-gateway is still %q, want %q", p.tag(t, c), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The binary reloads its file when it changes and on SIGHUP.
func TestBinary_Reload(t *testing.T) {
	b := startBackend(t, "b1")
	c := httpClient(t)
	data := binaryData{Admin: freeAddr(t), Addr: freeAddr(t), HTTP: b.HTTPAddr, Tag: "v1", Drain: "5s"}

	t.Run("file change", func(t *testing.T) {
		d := data
		p := startProcess(t, d)
		if got := p.tag(t, c); got != "v1" {
			t.Fatalf("x-gateway = %q, want v1", got)
		}
		d.Tag = "v2"
		if err := os.WriteFile(p.config, render(t, binaryConfig, d), 0o600); err != nil {
			t.Fatal(err)
		}
		p.waitTag(t, c, "v2")
	})
	t.Run("SIGHUP", func(t *testing.T) {
		d := data
		d.Admin, d.Addr = freeAddr(t), freeAddr(t)
		p := startProcess(t, d, "-watch=false")
		d.Tag = "v3"
		if err := os.WriteFile(p.config, render(t, binaryConfig, d), 0o600); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond) // a watcher, were there one, would have reloaded by now
		if got := p.tag(t, c); got != "v1" {
			t.Fatalf("with -watch=false the file change was applied without SIGHUP (x-gateway %q)", got)
		}
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		p.waitTag(t, c, "v3")
		// A bad file on SIGHUP is rejected and v3 keeps serving.
		if err := os.WriteFile(p.config, []byte("listeners: [oops"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for !bytes.Contains([]byte(p.logs.String()), []byte("config reload rejected")) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if got := p.tag(t, c); got != "v3" {
			t.Errorf("after a rejected reload x-gateway = %q, want v3", got)
		}
	})
}

// SIGTERM drains: new connections are refused, the request in flight
// finishes, and the process exits 0. A request longer than the drain
// timeout is cut and the process still exits 0.
func TestBinary_Drain(t *testing.T) {
	b := startBackend(t, "b1")
	tests := []struct {
		name      string
		drain     string
		delay     time.Duration
		wantDone  bool
		maxExitIn time.Duration
	}{
		{"in-flight request finishes", "5s", 1500 * time.Millisecond, true, 4 * time.Second},
		{"drain timeout cuts a long request", "500ms", 10 * time.Second, false, 4 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := startProcess(t, binaryData{Admin: freeAddr(t), Addr: freeAddr(t), HTTP: b.HTTPAddr, Tag: "v1", Drain: tc.drain})
			c := httpClient(t)
			type result struct {
				code int
				err  error
			}
			inflight := make(chan result, 1)
			go func() {
				resp, err := c.Get(fmt.Sprintf("http://%s/echo?delay=%s", p.addr, tc.delay))
				if err != nil {
					inflight <- result{err: err}
					return
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				inflight <- result{code: resp.StatusCode, err: err}
			}()
			time.Sleep(300 * time.Millisecond) // the request is at the backend
			start := time.Now()
			if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			// New connections are refused once draining starts.
			deadline := time.Now().Add(2 * time.Second)
			for {
				conn, err := net.DialTimeout("tcp", p.addr, 100*time.Millisecond)
				if err != nil {
					break
				}
				conn.Close()
				if time.Now().After(deadline) {
					t.Fatal("the listener still accepts 2s after SIGTERM")
				}
				time.Sleep(20 * time.Millisecond)
			}
			select {
			case <-p.done:
			case <-time.After(tc.maxExitIn):
				t.Fatalf("meshgate did not exit within %v of SIGTERM", tc.maxExitIn)
			}
			var exitErr *exec.ExitError
			if errors.As(p.exit, &exitErr) || p.exit != nil {
				t.Fatalf("exit = %v, want 0", p.exit)
			}
			r := <-inflight
			if tc.wantDone && (r.err != nil || r.code != 200) {
				t.Errorf("in-flight request: %d %v, want 200 (it should finish during the drain)", r.code, r.err)
			}
			if !tc.wantDone && r.err == nil && r.code == 200 {
				t.Errorf("a request longer than the drain timeout completed; want it cut")
			}
			t.Logf("exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))
		})
	}
}
