package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// rnacosVersion is the Nacos 2.x-compatible server the tests run
// (crates.io's rnacos; `make peers` installs it).
const rnacosVersion = "0.8.8"

// nacosServer is a Nacos 2.x server: rnacos run by the test, or the one
// NACOS_ADDR names (host:port of its HTTP API; gRPC on port + 1000).
type nacosServer struct {
	t        *testing.T
	addr     string // HTTP host:port
	external bool
	dataDir  string
	env      []string
	login    url.Values // with auth on: a login that must work before the server counts as up
	cmd      *exec.Cmd
	logs     *syncBuffer
}

// rnacosBinary is where `make peers` installs rnacos.
func rnacosBinary() string {
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "meshgate", "rnacos-"+rnacosVersion, "bin", "rnacos")
}

// startNacos runs rnacos on free ports (HTTP p, gRPC p+1000, as Nacos
// clients assume), or uses NACOS_ADDR.
func startNacos(t *testing.T) *nacosServer { return startNacosAuth(t, "", "") }

// startNacosAuth runs rnacos with auth on for its API when user is set:
// user and password are its admin.
func startNacosAuth(t *testing.T, user, password string) *nacosServer {
	t.Helper()
	if a := os.Getenv("NACOS_ADDR"); a != "" {
		if user != "" {
			t.Skipf("NACOS_ADDR=%s is set and this test needs a server with auth it configures itself", a)
		}
		return &nacosServer{t: t, addr: a, external: true}
	}
	bin := rnacosBinary()
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("rnacos %s is not installed (%v): `make peers` installs it with cargo", rnacosVersion, err)
	}
	httpPort := freePortPair(t, 1000)
	n := &nacosServer{t: t, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort)), dataDir: t.TempDir()}
	n.env = []string{
		"RNACOS_HTTP_PORT=" + strconv.Itoa(httpPort),
		"RNACOS_GRPC_PORT=" + strconv.Itoa(httpPort+1000),
		"RNACOS_HTTP_CONSOLE_PORT=0",
		"RNACOS_DATA_DIR=" + filepath.Join(n.dataDir, "db"),
		"RUST_LOG=warn",
	}
	if user != "" {
		n.env = append(n.env, "RNACOS_ENABLE_OPEN_API_AUTH=true", "RNACOS_INIT_ADMIN_USERNAME="+user, "RNACOS_INIT_ADMIN_PASSWORD="+password)
		n.login = url.Values{"username": {user}, "password": {password}}
	}
	t.Cleanup(func() {
		n.stop()
		if t.Failed() && n.logs != nil {
			t.Logf("rnacos logs (tail):\n%s", tail(n.logs.String(), 30))
		}
	})
	n.start()
	return n
}

// freePortPair finds a port p with p+offset also free.
func freePortPair(t *testing.T, offset int) int {
	t.Helper()
	for range 50 {
		p, _ := strconv.Atoi(port(freeAddr(t)))
		if p+offset > 65535 {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p+offset)))
		if err != nil {
			continue
		}
		l.Close()
		return p
	}
	t.Fatal("no free port pair")
	return 0
}

func (n *nacosServer) start() {
	n.t.Helper()
	// rnacos 0.8.8 now and then panics while starting (raftapply.rs, an
	// unwrap on None) and never serves: try again on fresh data.
	for attempt := 1; ; attempt++ {
		n.logs = &syncBuffer{}
		n.cmd = exec.Command(rnacosBinary())
		n.cmd.Dir = n.dataDir
		n.cmd.Env = append(os.Environ(), n.env...)
		n.cmd.Stdout, n.cmd.Stderr = n.logs, n.logs
		if err := n.cmd.Start(); err != nil {
			n.t.Fatal(err)
		}
		deadline := time.Now().Add(15 * time.Second)
		for !n.ok() && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if n.ok() {
			return
		}
		n.stop()
		if attempt == 3 {
			n.t.Fatalf("rnacos did not serve in 3 tries:\n%s", tail(n.logs.String(), 30))
		}
		n.t.Logf("rnacos did not serve within 15s (try %d), starting it again on fresh data:\n%s", attempt, tail(n.logs.String(), 10))
		_ = os.RemoveAll(filepath.Join(n.dataDir, "db"))
	}
}

// ok asks the naming API for the service list, after logging in when
// auth is on (rnacos serves HTTP before its users are loaded, and a
// client that logs in too early is refused until it logs in again).
func (n *nacosServer) ok() bool {
	c := http.Client{Timeout: time.Second}
	q := url.Values{"pageNo": {"1"}, "pageSize": {"1"}}
	if n.login != nil {
		resp, err := c.PostForm(fmt.Sprintf("http://%s/nacos/v1/auth/users/login", n.addr), n.login)
		if err != nil {
			return false
		}
		var tok struct {
			AccessToken string `json:"accessToken"`
		}
		err = json.NewDecoder(resp.Body).Decode(&tok)
		resp.Body.Close()
		if err != nil || tok.AccessToken == "" {
			return false
		}
		q.Set("accessToken", tok.AccessToken)
	}
	resp, err := c.Get(fmt.Sprintf("http://%s/nacos/v1/ns/service/list?%s", n.addr, q.Encode()))
	if err != nil {
		return false
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	// Config writes go through rnacos's raft, which elects its leader
	// after HTTP serves: a provider publishing its metadata before that
	// loses it for good. Write and read back a probe.
	probe := url.Values{"dataId": {"meshgate-probe"}, "group": {"meshgate"}, "content": {"ok"}}
	if tok := q.Get("accessToken"); tok != "" {
		probe.Set("accessToken", tok)
	}
	resp, err = c.PostForm(fmt.Sprintf("http://%s/nacos/v1/cs/configs", n.addr), probe)
	if err != nil {
		return false
	}
	resp.Body.Close()
	probe.Del("content")
	resp, err = c.Get(fmt.Sprintf("http://%s/nacos/v1/cs/configs?%s", n.addr, probe.Encode()))
	if err != nil {
		return false
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK && string(body) == "ok"
}

func (n *nacosServer) stop() {
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	_ = n.cmd.Process.Kill()
	_ = n.cmd.Wait()
	n.cmd = nil
}

// restart stops rnacos and starts it again on the same ports and data.
func (n *nacosServer) restart() {
	if n.external {
		n.t.Skip("NACOS_ADDR names a server this test cannot restart")
	}
	n.stop()
	n.start()
}
