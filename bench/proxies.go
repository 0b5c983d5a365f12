package main

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"
)

// The other proxies the gRPC and HTTP/1.1 paths also run through, each
// configured by a pinned template in this folder (see their comments).
var (
	//go:embed nginx.conf.tmpl
	nginxConfTmpl string
	//go:embed haproxy.cfg.tmpl
	haproxyCfgTmpl string
)

// proxy is one process the paths run through: meshgate, nginx or HAProxy.
type proxy struct {
	name     string // the table's label: "meshgate", "nginx 1.22.1", ...
	version  string // what the report says of its version and origin
	grpcAddr string // its HTTP/2 cleartext listener for the gRPC paths
	httpAddr string // its HTTP/1.1 listener
	pid      int    // the process whose tree's CPU time counts
	// skip says why this proxy is not measured; the rest is then unset.
	skip string
	stop func()
}

// proxyConf fills a proxy's config template.
type proxyConf struct {
	Dir                      string // the run's temp dir: pid, logs, temp files
	GRPCListen, HTTPListen   string
	GRPCBackend, HTTPBackend string
	HTTP2On                  bool // nginx ≥ 1.25.1: `http2 on;` rather than `listen ... http2`
}

// findProxyBinary resolves the -nginx / -haproxy flag: "none" skips, a path
// is used as it is, empty looks on PATH and then in the sbin folders a
// non-root PATH lacks.
func findProxyBinary(flagValue, name string) (string, error) {
	switch flagValue {
	case "none":
		return "", fmt.Errorf("skipped with -%s none", name)
	case "":
	default:
		return exec.LookPath(flagValue)
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not installed (not on PATH nor in /usr/sbin); `make bench` installs Debian's %s package (bench/install-proxies.sh), see its output for why it could not", name, name)
}

// startOtherProxy starts nginx or HAProxy (name) in front of the backend's
// two listeners; on any failure it returns a proxy whose skip says why.
func startOtherProxy(name, flagValue, grpcBackend, httpBackend string) *proxy {
	label := map[string]string{"nginx": "nginx", "haproxy": "HAProxy"}[name]
	bin, err := findProxyBinary(flagValue, name)
	if err != nil {
		return &proxy{name: label, skip: err.Error()}
	}
	var p *proxy
	if name == "nginx" {
		p, err = startNginx(bin, grpcBackend, httpBackend)
	} else {
		p, err = startHAProxy(bin, grpcBackend, httpBackend)
	}
	if err != nil {
		return &proxy{name: label, skip: err.Error()}
	}
	return p
}

var (
	nginxVersionRE   = regexp.MustCompile(`nginx/(\d+)\.(\d+)\.(\d+)`)
	haproxyVersionRE = regexp.MustCompile(`(?i)HAProxy version (\d+\.\d+\.\d+)(\S*)`)
)

func startNginx(bin, grpcBackend, httpBackend string) (*proxy, error) {
	out, err := exec.Command(bin, "-v").CombinedOutput()
	m := nginxVersionRE.FindStringSubmatch(string(out))
	if err != nil || m == nil {
		return nil, fmt.Errorf("%s -v: %v %q", bin, err, out)
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	patch, _ := strconv.Atoi(m[3])
	version := fmt.Sprintf("%s.%s.%s", m[1], m[2], m[3])
	conf := proxyConf{GRPCBackend: grpcBackend, HTTPBackend: httpBackend,
		HTTP2On: major > 1 || major == 1 && (minor > 25 || minor == 25 && patch >= 1)}
	p, err := launchProxy(bin, "nginx", "nginx.conf", nginxConfTmpl, &conf, func(dir, cfg string) []string {
		return []string{"-p", dir + "/", "-c", cfg, "-e", filepath.Join(dir, "error.log")}
	})
	if err != nil {
		return nil, err
	}
	p.name = "nginx " + version
	p.version = "nginx " + version + debianVersion("nginx") + ", one worker (`worker_processes 1`), config bench/nginx.conf.tmpl"
	return p, nil
}

func startHAProxy(bin, grpcBackend, httpBackend string) (*proxy, error) {
	out, err := exec.Command(bin, "-v").CombinedOutput()
	m := haproxyVersionRE.FindStringSubmatch(string(out))
	if err != nil || m == nil {
		return nil, fmt.Errorf("%s -v: %v %q", bin, err, out)
	}
	conf := proxyConf{GRPCBackend: grpcBackend, HTTPBackend: httpBackend}
	p, err := launchProxy(bin, "haproxy", "haproxy.cfg", haproxyCfgTmpl, &conf, func(_, cfg string) []string {
		return []string{"-db", "-f", cfg}
	})
	if err != nil {
		return nil, err
	}
	p.name = "HAProxy " + m[1]
	p.version = "HAProxy " + m[1] + m[2] + debianVersion("haproxy") + ", one thread (`nbthread 1`), config bench/haproxy.cfg.tmpl"
	return p, nil
}

// debianVersion names the Debian package a proxy came from, if it did.
func debianVersion(pkg string) string {
	out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", pkg).Output()
	if err != nil || len(out) == 0 {
		return ""
	}
	return " (Debian package " + pkg + " " + string(out) + ")"
}

// launchProxy writes the config (tmpl filled with conf and two free ports)
// into a temp dir, starts bin with args(dir, config) in the foreground and
// waits until both listeners accept.
func launchProxy(bin, name, file, tmpl string, conf *proxyConf, args func(dir, cfg string) []string) (*proxy, error) {
	dir, err := os.MkdirTemp("", "meshgate-bench-"+name)
	if err != nil {
		return nil, err
	}
	// nginx as root runs its worker as nobody, which must reach its temp paths.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	conf.Dir = dir
	if conf.GRPCListen, err = freeAddr(); err != nil {
		return nil, err
	}
	if conf.HTTPListen, err = freeAddr(); err != nil {
		return nil, err
	}
	t, err := template.New(file).Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var body bytes.Buffer
	if err := t.Execute(&body, conf); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	cfg := filepath.Join(dir, file)
	if err := os.WriteFile(cfg, body.Bytes(), 0o644); err != nil {
		return nil, err
	}
	var output bytes.Buffer
	cmd := exec.Command(bin, args(dir, cfg)...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = &output, &output
	// Ends with the bench even if the bench is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	// exited is closed when the process has ended, with its error in waitErr.
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		_ = os.RemoveAll(dir)
	}
	failed := func(why string) error {
		stop()
		msg := strings.TrimSpace(output.String())
		if b, err := os.ReadFile(filepath.Join(dir, "error.log")); err == nil && len(b) > 0 {
			msg += " " + strings.TrimSpace(string(b))
		}
		return fmt.Errorf("%s %s: %s", bin, why, strings.Join(strings.Fields(msg), " "))
	}
	for _, addr := range []string{conf.GRPCListen, conf.HTTPListen} {
		if err := waitListening(addr, exited, &waitErr); err != nil {
			return nil, failed(err.Error())
		}
	}
	return &proxy{grpcAddr: conf.GRPCListen, httpAddr: conf.HTTPListen, pid: cmd.Process.Pid, stop: stop}, nil
}

// waitListening dials addr until it accepts, the process exits or 10s pass.
func waitListening(addr string, exited <-chan struct{}, waitErr *error) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			_ = c.Close()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("exited (%v) before listening on %s", *waitErr, addr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("did not listen on %s within 10s", addr)
		}
	}
}

// userHZ is the unit of utime and stime in /proc/PID/stat: USER_HZ, which
// Linux fixes at 100 for user space on every architecture Go runs on.
const userHZ = 100

// treeCPU is the user+system CPU time that pid and its descendants (an
// nginx master's workers) have used so far, from /proc/PID/stat.
func treeCPU(pid int) (time.Duration, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	children := map[int][]int{}
	ticks := map[int]int64{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		// The command name (field 2) is in parentheses and may hold
		// spaces; the fields after it start with the state (field 3).
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		utime, _ := strconv.ParseInt(f[11], 10, 64) // field 14
		stime, _ := strconv.ParseInt(f[12], 10, 64) // field 15
		children[ppid] = append(children[ppid], p)
		ticks[p] = utime + stime
	}
	if _, ok := ticks[pid]; !ok {
		return 0, fmt.Errorf("process %d is gone", pid)
	}
	var sum int64
	for queue := []int{pid}; len(queue) > 0; queue = queue[1:] {
		sum += ticks[queue[0]]
		queue = append(queue, children[queue[0]]...)
	}
	return time.Duration(sum) * time.Second / userHZ, nil
}

// treeRSSKiB is the resident set of pid and its descendants.
func treeRSSKiB(pid int) int64 {
	sum := rssKiB(pid)
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if b, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil {
			if i := bytes.LastIndexByte(b, ')'); i >= 0 {
				if f := strings.Fields(string(b[i+1:])); len(f) > 1 && f[1] == strconv.Itoa(pid) {
					p, _ := strconv.Atoi(e.Name())
					sum += treeRSSKiB(p)
				}
			}
		}
	}
	return sum
}

// cpuProbe measures a proxy's CPU time over a run's measuring window:
// measure calls begin and end around the window it counts operations in.
type cpuProbe struct {
	pid    int
	t0     time.Duration
	used   time.Duration
	err    error
	begun  bool
	ended  bool
	approx bool // the window was timed, not the one the counting program used
}

type cpuProbeKey struct{}

// withCPUProbe returns a context carrying a probe of pid for measure.
func withCPUProbe(ctx context.Context, pid int) (context.Context, *cpuProbe) {
	p := &cpuProbe{pid: pid}
	return context.WithValue(ctx, cpuProbeKey{}, p), p
}

func probeOf(ctx context.Context) *cpuProbe {
	p, _ := ctx.Value(cpuProbeKey{}).(*cpuProbe)
	return p
}

func (p *cpuProbe) begin() {
	if p == nil {
		return
	}
	p.t0, p.err = treeCPU(p.pid)
	p.begun = true
}

func (p *cpuProbe) end() {
	if p == nil || !p.begun || p.err != nil {
		return
	}
	t1, err := treeCPU(p.pid)
	p.used, p.err, p.ended = t1-p.t0, err, err == nil
}

// per10k is the cell of the CPU column: CPU seconds per 10,000 operations.
func (p *cpuProbe) per10k(ops int64) string {
	switch {
	case p == nil:
		return "—"
	case p.err != nil:
		return "n/a (" + p.err.Error() + ")"
	case !p.ended || ops == 0:
		return "n/a"
	}
	per := p.used.Seconds() / float64(ops) * 1e4
	s := fmt.Sprintf("%.3f s", per)
	if per < 0.1 { // streams: 0.007 s could be 0.0065 or 0.0074
		s = fmt.Sprintf("%.4f s", per)
	}
	if p.approx {
		s = "≈" + s
	}
	return s
}

var errWindowCut = errors.New("the run ended before its measuring window did")

// timedWindow runs the probe over [warm, warm+dur) from now, for a run
// whose counting another program does; wait for the returned channel.
func (p *cpuProbe) timedWindow(ctx context.Context, warm, dur time.Duration) <-chan struct{} {
	done := make(chan struct{})
	if p == nil {
		close(done)
		return done
	}
	p.approx = true
	go func() {
		defer close(done)
		select {
		case <-time.After(warm):
		case <-ctx.Done():
			p.err = errWindowCut
			return
		}
		p.begin()
		select {
		case <-time.After(dur):
		case <-ctx.Done():
			p.err = errWindowCut
			return
		}
		p.end()
	}()
	return done
}
