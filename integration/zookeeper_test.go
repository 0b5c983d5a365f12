package integration

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// zkJar is where Debian's zookeeper package puts the server.
const zkJar = "/usr/share/java/zookeeper.jar"

// zkLogBinding gives the server's slf4j somewhere to log (Debian's jar
// names only slf4j-api, which alone logs nothing); the logs show in a
// failing test.
const zkLogBinding = "/usr/share/java/slf4j-simple.jar"

// zookeeper is a ZooKeeper server from Debian's package, run by the test.
type zookeeper struct {
	t       *testing.T
	addr    string
	dataDir string
	cmd     *exec.Cmd
	logs    *syncBuffer
}

// startZooKeeper runs a standalone ZooKeeper on a free port. It skips the
// test only when the package is not installed (make test installs it).
func startZooKeeper(t *testing.T) *zookeeper {
	t.Helper()
	if _, err := os.Stat(zkJar); err != nil {
		t.Skipf("ZooKeeper is not installed (%v): `make peers` installs Debian's zookeeper package", err)
	}
	if _, err := exec.LookPath("java"); err != nil {
		t.Skipf("no java to run ZooKeeper: %v", err)
	}
	z := &zookeeper{t: t, addr: freeAddr(t), dataDir: t.TempDir()}
	t.Cleanup(func() {
		z.stop()
		if t.Failed() && z.logs != nil {
			t.Logf("ZooKeeper logs (tail):\n%s", tail(z.logs.String(), 30))
		}
	})
	z.start()
	return z
}

func (z *zookeeper) start() {
	z.t.Helper()
	_, port, _ := net.SplitHostPort(z.addr)
	cfg := filepath.Join(z.dataDir, "zoo.cfg")
	conf := fmt.Sprintf("tickTime=500\ndataDir=%s\nclientPort=%s\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n"+
		"4lw.commands.whitelist=ruok,srvr,stat\nmaxSessionTimeout=60000\nminSessionTimeout=1000\nmaxClientCnxns=0\n", filepath.Join(z.dataDir, "data"), port)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		z.t.Fatal(err)
	}
	z.logs = &syncBuffer{}
	z.cmd = exec.Command("java", "-Xmx256m", "-cp", zkJar+":"+zkLogBinding, "org.apache.zookeeper.server.ZooKeeperServerMain", cfg)
	z.cmd.Stdout, z.cmd.Stderr = z.logs, z.logs
	if err := z.cmd.Start(); err != nil {
		z.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !z.ok() {
		if time.Now().After(deadline) {
			z.t.Fatalf("ZooKeeper did not serve within 30s:\n%s", tail(z.logs.String(), 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ok asks ZooKeeper for srvr and wants its Mode line: ruok answers imok
// while the server still refuses sessions, srvr only once it serves.
func (z *zookeeper) ok() bool {
	c, err := net.DialTimeout("tcp", z.addr, 500*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("srvr")); err != nil {
		return false
	}
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "Mode: ") {
			return true
		}
	}
	return false
}

func (z *zookeeper) stop() {
	if z.cmd == nil || z.cmd.Process == nil {
		return
	}
	_ = z.cmd.Process.Kill()
	_ = z.cmd.Wait()
	z.cmd = nil
}
