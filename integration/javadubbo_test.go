package integration

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/meshgate/meshgate/dubbo"
)

// javaDubboVersion is the Java Dubbo integration/javadubbo/pom.xml pins
// (org.apache.dubbo:dubbo, the newest 3.3.x on Maven Central).
const javaDubboVersion = "3.3.6"

// javaDubboDir is the Maven project of the Java provider.
const javaDubboDir = "javadubbo"

// errNoJavaToolchain says the Java provider cannot be built here.
var errNoJavaToolchain = errors.New("no Java toolchain")

// javaProviderBinary builds the Java provider once and returns the
// directory holding provider.jar and lib/ (its dependencies). The build is
// cached in $HOME/.cache/meshgate/java-dubbo-<version>-<hash>, the hash
// covering pom.xml and src/, so an edit rebuilds and an unchanged project
// builds nothing. Maven uses its default local repository (~/.m2).
var javaProviderBinary = sync.OnceValues(func() (string, error) {
	if _, err := exec.LookPath("java"); err != nil {
		return "", fmt.Errorf("%w: java is not on PATH (install openjdk-17-jre-headless)", errNoJavaToolchain)
	}
	pom, err := os.ReadFile(filepath.Join(javaDubboDir, "pom.xml"))
	if err != nil {
		return "", err
	}
	if pin := "<dubbo.version>" + javaDubboVersion + "</dubbo.version>"; !strings.Contains(string(pom), pin) {
		return "", fmt.Errorf("%s/pom.xml does not pin %s: keep javaDubboVersion in step", javaDubboDir, pin)
	}
	sum, err := javaProjectHash(javaDubboDir)
	if err != nil {
		return "", err
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	parent := filepath.Join(home, ".cache", "meshgate")
	dir := filepath.Join(parent, "java-dubbo-"+javaDubboVersion+"-"+sum[:12])
	if _, err := os.Stat(filepath.Join(dir, "provider.jar")); err == nil {
		return dir, nil
	}
	if _, err := exec.LookPath("mvn"); err != nil {
		return "", fmt.Errorf("%w: mvn is not on PATH and %s is not built (install maven)", errNoJavaToolchain, dir)
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", err
	}
	// Build beside the cache and rename into place, so that an interrupted
	// build never leaves a directory that looks complete.
	stage, err := os.MkdirTemp(parent, "java-dubbo-build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(stage)
	out := filepath.Join(stage, "build")
	abs, err := filepath.Abs(javaDubboDir)
	if err != nil {
		return "", err
	}
	start := time.Now()
	cmd := exec.Command("mvn", "-B", "-q", "-Dout="+out, "package")
	cmd.Dir = abs
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the Java provider (mvn package in %s): %v\n%s", abs, err, b)
	}
	done := filepath.Join(stage, "done")
	if err := os.Mkdir(done, 0o755); err != nil {
		return "", err
	}
	for _, name := range []string{"provider.jar", "lib"} {
		if err := os.Rename(filepath.Join(out, name), filepath.Join(done, name)); err != nil {
			return "", err
		}
	}
	if err := os.Rename(done, dir); err != nil {
		if _, serr := os.Stat(filepath.Join(dir, "provider.jar")); serr != nil {
			return "", err
		}
		// Another test binary built it meanwhile.
	}
	fmt.Fprintf(os.Stderr, "built the Java Dubbo %s provider in %v (cached at %s)\n", javaDubboVersion, time.Since(start).Round(time.Second), dir)
	return dir, nil
})

// javaProjectHash hashes the files that make the provider: pom.xml and
// everything under src/, by path and content.
func javaProjectHash(root string) (string, error) {
	files := []string{"pom.xml"}
	err := filepath.WalkDir(filepath.Join(root, "src"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f)))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", f, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// javaProviderSpec is how to run the Java provider (see Main.java).
type javaProviderSpec struct {
	App      string
	Registry string // zookeeper://host:port or nacos://host:port?namespace=..
	Mode     string // interface, instance or all (dubbo.application.register-mode)
	Version  string
	Group    string
	// MetadataType is local (default: a MetadataService serves the
	// application's metadata) or remote (the metadata report keeps it).
	MetadataType string
	// MetaProtocol is the MetadataService's protocol, dubbo or tri;
	// empty leaves Dubbo's choice (tri, with the protocols configured here).
	MetaProtocol string
	// Bridge exports BridgeService too (the Dubbo2 bridge's tests).
	Bridge bool
	// Instance is the name its answers give (default: App).
	Instance string
}

// javaProvider is a Java Dubbo provider process.
type javaProvider struct {
	t         *testing.T
	spec      javaProviderSpec
	cmd       *exec.Cmd
	logs      *syncBuffer
	dubboPort string
	triPort   string
	serving   chan struct{}
	done      chan struct{}
	started   time.Time
	ready     time.Duration // from the process start to SERVING
}

// startJavaProvider runs the Java provider and waits until it serves. It
// skips the test only when neither a cached build nor java and mvn are
// there to run one.
func startJavaProvider(t *testing.T, s javaProviderSpec) *javaProvider {
	t.Helper()
	p := launchJavaProvider(t, s)
	p.wait()
	return p
}

// launchJavaProvider starts the provider without waiting for it (wait
// does), so several can start at once.
func launchJavaProvider(t *testing.T, s javaProviderSpec) *javaProvider {
	t.Helper()
	dir, err := javaProviderBinary()
	if errors.Is(err, errNoJavaToolchain) {
		t.Skipf("cannot run the Java Dubbo provider: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	p := &javaProvider{t: t, spec: s, logs: &syncBuffer{}, dubboPort: port(freeAddr(t)), triPort: port(freeAddr(t)),
		serving: make(chan struct{}), done: make(chan struct{})}
	args := []string{
		// A small, quickly started JVM: the provider does little work.
		"-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.net.preferIPv4Stack=true",
		// Dubbo keeps caches under ~/.dubbo (file caches are off, but keep
		// anything else it writes out of the real home).
		"-Duser.home=" + t.TempDir(),
		"-cp", filepath.Join(dir, "provider.jar") + string(os.PathListSeparator) + filepath.Join(dir, "lib", "*"),
		"org.apache.dubbo.samples.Main",
		"-app", s.App, "-registry", s.Registry, "-mode", s.Mode, "-version", s.Version, "-group", s.Group,
		"-dubbo-port", p.dubboPort, "-tri-port", p.triPort,
	}
	if s.MetadataType != "" {
		args = append(args, "-metadata-type", s.MetadataType)
	}
	if s.MetaProtocol != "" {
		args = append(args, "-meta-protocol", s.MetaProtocol)
	}
	if s.Bridge {
		args = append(args, "-bridge", "true")
	}
	if s.Instance != "" {
		args = append(args, "-instance", s.Instance)
	}
	p.cmd = exec.Command("java", args...)
	p.cmd.Dir = t.TempDir()
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = p.logs
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.logs.Write([]byte(sc.Text() + "\n"))
			if sc.Text() == "SERVING" {
				p.ready = time.Since(p.started)
				close(p.serving)
			}
		}
		_ = p.cmd.Wait()
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("Java provider %s logs (tail):\n%s", s.App, tail(p.logs.String(), 40))
		}
	})
	return p
}

// wait waits until the provider prints SERVING: its services are exported
// and registered.
func (p *javaProvider) wait() {
	p.t.Helper()
	select {
	case <-p.serving:
	case <-p.done:
		p.t.Fatalf("the Java provider %s exited:\n%s", p.spec.App, tail(p.logs.String(), 40))
	case <-time.After(90 * time.Second):
		p.t.Fatalf("the Java provider %s did not start within 90s:\n%s", p.spec.App, tail(p.logs.String(), 40))
	}
}

// stop shuts the provider down gracefully: Dubbo's shutdown hook
// unregisters, then waits for requests in flight (shutwait, 2s).
func (p *javaProvider) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.kill()
	}
}

// kill ends the provider at once (its registration stays until ZooKeeper
// expires its session).
func (p *javaProvider) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// javaFixturesEnv, set to 1, makes TestJavaDubbo_PublishesSignatures
// write what the providers published to javaFixturesDir.
const javaFixturesEnv = "MESHGATE_CAPTURE_JAVA_FIXTURES"

var javaFixturesDir = filepath.Join("..", "registry", "testdata", "java")

// waitValue polls until get succeeds or 20s pass.
func waitValue[T any](t *testing.T, what string, get func() (T, error)) T {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		v, err := get()
		if err == nil {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// javaServiceDefinition is the JSON Java Dubbo's metadata report keeps
// per service and providing application
// (org.apache.dubbo.metadata.definition.model.FullServiceDefinition).
type javaServiceDefinition struct {
	CanonicalName string `json:"canonicalName"`
	CodeSource    string `json:"codeSource"`
	Methods       []struct {
		Name           string   `json:"name"`
		ParameterTypes []string `json:"parameterTypes"`
		ReturnType     string   `json:"returnType"`
	} `json:"methods"`
	Types []struct {
		Type       string            `json:"type"`
		Items      []string          `json:"items"`
		Properties map[string]string `json:"properties"`
	} `json:"types"`
	Parameters map[string]string `json:"parameters"`
}

// javaZKInstance is a /services/<app>/<id> node: Curator's ServiceInstance
// with Dubbo's payload.
type javaZKInstance struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Port    int    `json:"port"`
	Payload struct {
		Metadata map[string]string `json:"metadata"`
	} `json:"payload"`
}

func TestJavaDubbo_PublishesSignatures(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ZooKeeper and Java Dubbo providers; skipped with -short")
	}
	zkServer := startZooKeeper(t)
	reg := "zookeeper://" + zkServer.addr
	const iface = "org.apache.dubbo.samples.GreeterService"

	// Three providers, started together: the defaults (interface- and
	// application-level registration, MetadataService on tri), a
	// MetadataService on dubbo, and metadata kept in the registry.
	dubboMeta := launchJavaProvider(t, javaProviderSpec{App: "java-dubbometa", Registry: reg, Mode: "instance", Version: "2.0.0", Group: "g2", MetaProtocol: "dubbo"})
	remote := launchJavaProvider(t, javaProviderSpec{App: "java-remote", Registry: reg, Mode: "instance", Version: "3.0.0", MetadataType: "remote"})
	all := startJavaProvider(t, javaProviderSpec{App: "java-all", Registry: reg, Mode: "all", Version: "1.0.0", Group: "g1"})
	for _, p := range []*javaProvider{all, dubboMeta, remote} {
		p.wait()
		t.Logf("Java provider %s served %v after its start (three JVMs starting at once)", p.spec.App, p.ready.Round(time.Millisecond))
	}

	conn, _, err := zk.Connect([]string{zkServer.addr}, 5*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	fixtures := map[string][]byte{}

	// Interface-level: one URL per protocol under /dubbo/<iface>/providers,
	// the node names URL-encoded.
	urls := waitValue(t, "provider URLs of java-all", func() (map[string]string, error) {
		kids, _, err := conn.Children("/dubbo/" + iface + "/providers")
		if err != nil {
			return nil, err
		}
		out := map[string]string{}
		for _, k := range kids {
			u, err := url.QueryUnescape(k)
			if err != nil {
				return nil, err
			}
			pu, err := url.Parse(u)
			if err != nil {
				return nil, err
			}
			if pu.Query().Get("application") == "java-all" {
				out[pu.Scheme] = k
			}
		}
		if out["dubbo"] == "" || out["tri"] == "" {
			return nil, fmt.Errorf("want a dubbo and a tri URL of java-all, have %v", kids)
		}
		return out, nil
	})
	for proto, wantPort := range map[string]string{"dubbo": all.dubboPort, "tri": all.triPort} {
		raw, _ := url.QueryUnescape(urls[proto])
		u, _ := url.Parse(raw)
		q := u.Query()
		if u.Port() != wantPort || u.Path != "/"+iface || q.Get("interface") != iface || q.Get("version") != "1.0.0" || q.Get("group") != "g1" ||
			q.Get("serialization") != "hessian2" || q.Get("prefer.serialization") != "hessian2" || q.Get("side") != "provider" || q.Get("release") != javaDubboVersion {
			t.Errorf("%s provider URL %s: want port %s, interface, version 1.0.0, group g1, hessian2, release %s", proto, raw, wantPort, javaDubboVersion)
		}
		if got, want := q.Get("methods"), "add,findUsers,getUser,greet,ping,sayHello,updateUser"; got != want {
			t.Errorf("%s provider URL methods=%s, want %s (names only: the types are in the service definition)", proto, got, want)
		}
		fixtures["provider-"+proto+".url"] = []byte(urls[proto] + "\n")
	}

	// Application-level: an instance under /services/<app>, named
	// <ip>:<first protocol's port>, with every protocol's port.
	instances := map[string]*javaZKInstance{}
	for _, p := range []*javaProvider{all, dubboMeta, remote} {
		inst := waitValue(t, "instance of "+p.spec.App, func() (*javaZKInstance, error) {
			kids, _, err := conn.Children("/services/" + p.spec.App)
			if err != nil {
				return nil, err
			}
			if len(kids) != 1 {
				return nil, fmt.Errorf("want one instance, have %v", kids)
			}
			data, _, err := conn.Get("/services/" + p.spec.App + "/" + kids[0])
			if err != nil {
				return nil, err
			}
			var inst javaZKInstance
			if err := json.Unmarshal(data, &inst); err != nil {
				return nil, fmt.Errorf("%w: %s", err, data)
			}
			fixtures["instance-"+strings.TrimPrefix(p.spec.App, "java-")+".json"] = data
			return &inst, nil
		})
		instances[p.spec.App] = inst
		md := inst.Payload.Metadata
		if inst.Name != p.spec.App || md["dubbo.metadata.revision"] == "" {
			t.Errorf("instance of %s: %+v, want its name and a revision", p.spec.App, inst)
		}
		var eps []struct {
			Port     int    `json:"port"`
			Protocol string `json:"protocol"`
		}
		if err := json.Unmarshal([]byte(md["dubbo.endpoints"]), &eps); err != nil {
			t.Errorf("instance of %s: dubbo.endpoints %q: %v", p.spec.App, md["dubbo.endpoints"], err)
		}
		gotEps := map[string]string{}
		for _, e := range eps {
			gotEps[e.Protocol] = fmt.Sprint(e.Port)
		}
		if gotEps["dubbo"] != p.dubboPort || gotEps["tri"] != p.triPort {
			t.Errorf("instance of %s: endpoints %v, want dubbo %s and tri %s", p.spec.App, gotEps, p.dubboPort, p.triPort)
		}
		wantStorage := map[string]string{"java-all": "local", "java-dubbometa": "local", "java-remote": "remote"}[p.spec.App]
		if md["dubbo.metadata.storage-type"] != wantStorage {
			t.Errorf("instance of %s: storage-type %q, want %q", p.spec.App, md["dubbo.metadata.storage-type"], wantStorage)
		}
	}
	// Where each local instance serves its MetadataService.
	for app, want := range map[string]map[string]string{
		"java-all":       {"protocol": "tri", "port": all.triPort, "version": "2.0.0"},
		"java-dubbometa": {"protocol": "dubbo", "port": dubboMeta.dubboPort, "version": "1.0.0"},
	} {
		var params map[string]string
		raw := instances[app].Payload.Metadata["dubbo.metadata-service.url-params"]
		if err := json.Unmarshal([]byte(raw), &params); err != nil {
			t.Errorf("%s: dubbo.metadata-service.url-params %q: %v", app, raw, err)
			continue
		}
		for k, v := range want {
			if params[k] != v {
				t.Errorf("%s: MetadataService url-params %v, want %s=%s", app, params, k, v)
			}
		}
	}
	if _, ok := instances["java-remote"].Payload.Metadata["dubbo.metadata-service.url-params"]; ok {
		t.Errorf("java-remote publishes a MetadataService although its metadata is remote: %v", instances["java-remote"].Payload.Metadata)
	}

	// The mapping from interface to applications, for consumers that
	// discover by application.
	mapping := waitValue(t, "mapping of "+iface, func() ([]byte, error) {
		data, _, err := conn.Get("/dubbo/mapping/" + iface)
		if err != nil {
			return nil, err
		}
		for _, app := range []string{"java-all", "java-dubbometa", "java-remote"} {
			if !slices.Contains(strings.Split(string(data), ","), app) {
				return nil, fmt.Errorf("mapping %q lacks %s", data, app)
			}
		}
		return data, nil
	})
	fixtures["mapping.txt"] = append(mapping, '\n')

	// The service definitions: full signatures, in the metadata report
	// (the registry itself), at /dubbo/metadata/<iface>/<version>[/<group>]/provider/<app>.
	for _, c := range []struct{ app, path string }{
		{"java-all", "/dubbo/metadata/" + iface + "/1.0.0/g1/provider/java-all"},
		{"java-dubbometa", "/dubbo/metadata/" + iface + "/2.0.0/g2/provider/java-dubbometa"},
		{"java-remote", "/dubbo/metadata/" + iface + "/3.0.0/provider/java-remote"},
	} {
		data := waitValue(t, "service definition at "+c.path, func() ([]byte, error) {
			data, _, err := conn.Get(c.path)
			return data, err
		})
		if c.app == "java-all" {
			fixtures["service-definition.json"] = data
		}
		var def javaServiceDefinition
		if err := json.Unmarshal(data, &def); err != nil {
			t.Fatalf("service definition at %s: %v\n%s", c.path, err, data)
		}
		checkJavaGreeterDefinition(t, c.path, &def)
	}

	// The application's metadata (MetadataInfo), three ways.
	// Remote: in the metadata report at /dubbo/metadata/<app>/<revision>.
	rev := instances["java-remote"].Payload.Metadata["dubbo.metadata.revision"]
	remoteInfo := waitValue(t, "remote metadata of java-remote", func() ([]byte, error) {
		data, _, err := conn.Get("/dubbo/metadata/java-remote/" + rev)
		return data, err
	})
	fixtures["metadata-info-remote.json"] = remoteInfo
	checkJavaMetadataInfo(t, "remote metadata", remoteInfo, "java-remote", rev, "org.apache.dubbo.samples.GreeterService:3.0.0", remote)

	// Local on tri (Dubbo's default here): MetadataService answers JSON
	// over plain HTTP/1.1 at /<interface>/<method> with Triple's group and
	// version headers. (MetadataServiceV2, version 2.0.0 as url-params
	// say, answers gRPC protobuf only.)
	rev = instances["java-all"].Payload.Metadata["dubbo.metadata.revision"]
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:"+all.triPort+"/org.apache.dubbo.metadata.MetadataService/getMetadataInfo",
		strings.NewReader(`["`+rev+`"]`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("tri-service-group", "java-all")
	req.Header.Set("tri-service-version", "1.0.0")
	req.Close = true // no idle connection left for goleak
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	triInfo, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("MetadataService over tri (HTTP/JSON): %s\n%s", resp.Status, triInfo)
	}
	fixtures["metadata-info-tri.json"] = triInfo
	checkJavaMetadataInfo(t, "MetadataService over tri", triInfo, "java-all", rev, "g1/org.apache.dubbo.samples.GreeterService:1.0.0", all)

	// Local on dubbo: MetadataService.getMetadataInfo(revision) over
	// hessian2, a MetadataInfo object (a map with "_class" once decoded).
	rev = instances["java-dubbometa"].Payload.Metadata["dubbo.metadata.revision"]
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := dubbo.Call(ctx, "127.0.0.1:"+dubboMeta.dubboPort, dubbo.Service{
		Interface: "org.apache.dubbo.metadata.MetadataService", Group: "java-dubbometa", Version: "1.0.0", Method: "getMetadataInfo",
	}, []any{rev}, nil)
	if err != nil {
		t.Fatalf("MetadataService over dubbo: %v", err)
	}
	hessianInfo, err := json.MarshalIndent(javaJSONable(v), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	fixtures["metadata-info-hessian2.json"] = append(hessianInfo, '\n')
	checkJavaMetadataInfo(t, "MetadataService over dubbo", hessianInfo, "java-dubbometa", rev, "g2/org.apache.dubbo.samples.GreeterService:2.0.0", dubboMeta)
	if m, _ := v.(map[string]any); m["_class"] != "org.apache.dubbo.metadata.MetadataInfo" {
		t.Errorf("MetadataService over dubbo answered %T %v, want a MetadataInfo object", v, v)
	}

	if os.Getenv(javaFixturesEnv) == "1" {
		writeJavaFixtures(t, fixtures)
	}

	// A graceful stop unregisters before the shutdown wait.
	start := time.Now()
	_ = all.cmd.Process.Signal(syscall.SIGTERM)
	waitValue(t, "java-all unregistered", func() (bool, error) {
		kids, _, err := conn.Children("/dubbo/" + iface + "/providers")
		if err != nil {
			return false, err
		}
		for _, k := range kids {
			if strings.Contains(k, "java-all") {
				return false, fmt.Errorf("still registered: %s", k)
			}
		}
		if kids, _, _ := conn.Children("/services/java-all"); len(kids) > 0 {
			return false, fmt.Errorf("instance still registered: %v", kids)
		}
		return true, nil
	})
	unregistered := time.Since(start)
	all.stop()
	t.Logf("java-all unregistered %v after SIGTERM and exited after %v", unregistered.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// checkJavaGreeterDefinition checks a FullServiceDefinition of GreeterService.
func checkJavaGreeterDefinition(t *testing.T, where string, def *javaServiceDefinition) {
	t.Helper()
	if def.CanonicalName != "org.apache.dubbo.samples.GreeterService" {
		t.Errorf("%s: canonicalName %q", where, def.CanonicalName)
	}
	got := map[string]string{}
	for _, m := range def.Methods {
		got[m.Name+"("+strings.Join(m.ParameterTypes, ",")+")"] = m.ReturnType
	}
	want := map[string]string{
		"sayHello(java.lang.String)": "java.lang.String",
		"add(int,int)":               "int",
		"getUser(long)":              "org.apache.dubbo.samples.User",
		"findUsers(java.lang.String,java.util.Map<java.lang.String,java.lang.String>)": "java.util.List<org.apache.dubbo.samples.User>",
		"updateUser(org.apache.dubbo.samples.User)":                                    "org.apache.dubbo.samples.User",
		"ping()":                      "void",
		"greet(java.lang.String)":     "java.lang.String",
		"greet(java.lang.String,int)": "java.lang.String",
	}
	for sig, ret := range want {
		if got[sig] != ret {
			t.Errorf("%s: method %s returns %q, want %q (methods: %v)", where, sig, got[sig], ret, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%s: methods %v, want %v", where, got, want)
	}
	var user map[string]string
	for _, ty := range def.Types {
		if ty.Type == "org.apache.dubbo.samples.User" {
			user = ty.Properties
		}
	}
	if user["id"] != "long" || user["name"] != "java.lang.String" || user["age"] != "int" {
		t.Errorf("%s: type User has properties %v, want id long, name java.lang.String, age int", where, user)
	}
}

// checkJavaMetadataInfo checks a MetadataInfo in JSON: both protocols of the
// service, with their ports.
func checkJavaMetadataInfo(t *testing.T, where string, data []byte, app, rev, serviceKey string, p *javaProvider) {
	t.Helper()
	var info struct {
		App      string `json:"app"`
		Revision string `json:"revision"`
		Services map[string]struct {
			Name     string            `json:"name"`
			Protocol string            `json:"protocol"`
			Port     int               `json:"port"`
			Params   map[string]string `json:"params"`
		} `json:"services"`
	}
	if err := json.Unmarshal(data, &info); err != nil {
		t.Errorf("%s: %v\n%s", where, err, data)
		return
	}
	if info.App != app || info.Revision != rev {
		t.Errorf("%s: app %q revision %q, want %q %q", where, info.App, info.Revision, app, rev)
	}
	for proto, port := range map[string]string{"dubbo": p.dubboPort, "tri": p.triPort} {
		s, ok := info.Services[serviceKey+":"+proto]
		if !ok || s.Protocol != proto || fmt.Sprint(s.Port) != port || s.Params["serialization"] != "hessian2" || s.Params["methods"] == "" {
			t.Errorf("%s: service %s:%s is %+v, want protocol %s port %s, hessian2 and methods", where, serviceKey, proto, s, proto, port)
		}
	}
}

// javaJSONable turns what dubbo-go-hessian2 decodes (maps keyed by any) into
// values encoding/json takes.
func javaJSONable(v any) any {
	switch x := v.(type) {
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, v := range x {
			m[fmt.Sprint(k)] = javaJSONable(v)
		}
		return m
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, v := range x {
			m[k] = javaJSONable(v)
		}
		return m
	case []any:
		out := make([]any, len(x))
		for i, v := range x {
			out[i] = javaJSONable(v)
		}
		return out
	}
	return v
}

// writeJavaFixtures saves what the providers published, byte for byte
// as ZooKeeper or the provider gave it (compact JSON: `jq .` shows it).
func writeJavaFixtures(t *testing.T, fixtures map[string][]byte) {
	t.Helper()
	if err := os.MkdirAll(javaFixturesDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range fixtures {
		if err := os.WriteFile(filepath.Join(javaFixturesDir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("wrote %d fixtures to %s", len(fixtures), javaFixturesDir)
}

// javaConsumerCall runs the Java consumer (org.apache.dubbo.samples.Consumer:
// one GreeterService.sayHello call to a URL) and returns what it printed.
func javaConsumerCall(t *testing.T, url, version, group, arg string) map[string]any {
	t.Helper()
	return javaConsumer(t, "-url", url, "-version", version, "-group", group, "-arg", arg)
}

// javaConsumerCmd is the Java consumer's command with flags (skipping
// the test when no Java toolchain can build it).
func javaConsumerCmd(t *testing.T, flags ...string) *exec.Cmd {
	t.Helper()
	dir, err := javaProviderBinary()
	if errors.Is(err, errNoJavaToolchain) {
		t.Skipf("cannot run the Java Dubbo consumer: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("java", append([]string{"-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.net.preferIPv4Stack=true",
		"-Duser.home=" + t.TempDir(),
		"-cp", filepath.Join(dir, "provider.jar") + string(os.PathListSeparator) + filepath.Join(dir, "lib", "*"),
		"org.apache.dubbo.samples.Consumer"}, flags...)...)
	cmd.Dir = t.TempDir()
	return cmd
}

// javaConsumer runs the Java consumer with flags and returns what it
// printed.
func javaConsumer(t *testing.T, flags ...string) map[string]any {
	t.Helper()
	cmd := javaConsumerCmd(t, flags...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("Java consumer: %v\n%s", err, tail(stderr.String(), 30))
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var v map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &v); err != nil {
		t.Fatalf("Java consumer printed %q\n%s", out, tail(stderr.String(), 30))
	}
	if v["error"] != nil {
		t.Logf("Java consumer logs (tail):\n%s", tail(stderr.String(), 40))
	}
	return v
}
