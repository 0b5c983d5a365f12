package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/google/go-cmp/cmp"
	"github.com/nacos-group/nacos-sdk-go/v2/model"

	"github.com/meshgate/meshgate/dubbo"
	"github.com/meshgate/meshgate/registry"
)

// dubboGoFixturesEnv, set to 1, makes TestDubboGoFixtures write what the
// dubbo-go providers published to dubboGoFixturesDir. Without it the test
// checks that what they publish still has the fixtures' shape.
const dubboGoFixturesEnv = "MESHGATE_CAPTURE_DUBBOGO_FIXTURES"

var dubboGoFixturesDir = filepath.Join("..", "registry", "testdata", "dubbogo")

// dubboGoFixtureFiles are the files TestDubboGoFixtures writes (and checks).
var dubboGoFixtureFiles = []string{
	"provider-dubbo.url", "provider-tri.url",
	"instance-all-dubbo.json", "instance-all-tri.json",
	"instance-remote-dubbo.json", "instance-remote-tri.json",
	"mapping.txt",
	"metadata-info-hessian2.json", "metadata-info-hessian2.types.txt",
	"metadata-info-remote.json",
	"zk-tree.txt",
	"nacos-providers.json", "nacos-app.json", "nacos-mapping.txt",
}

// TestDubboGoFixtures runs dubbo-go v3.3.2 providers against a real
// ZooKeeper and a real Nacos (rnacos), reads what they publish, checks it
// with the registry package's parsers, and compares its shape with the
// fixtures in registry/testdata/dubbogo (ports, pids, timestamps, hosts and
// revisions aside). With MESHGATE_CAPTURE_DUBBOGO_FIXTURES=1 it writes the
// fixtures instead of comparing.
func TestDubboGoFixtures(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ZooKeeper, rnacos and dubbo-go providers; skipped with -short")
	}
	got := map[string][]byte{}
	t.Run("zookeeper", func(t *testing.T) { dubboGoZKPayloads(t, got) })
	t.Run("nacos", func(t *testing.T) { dubboGoNacosPayloads(t, got) })
	if t.Failed() {
		return
	}
	var missing []string
	for _, name := range dubboGoFixtureFiles {
		if got[name] == nil {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		t.Skipf("not all payloads were captured (a registry was not available): %v", missing)
	}
	if os.Getenv(dubboGoFixturesEnv) == "1" {
		if err := os.MkdirAll(dubboGoFixturesDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, name := range dubboGoFixtureFiles {
			if err := os.WriteFile(filepath.Join(dubboGoFixturesDir, name), got[name], 0o644); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("wrote %d fixtures to %s", len(dubboGoFixtureFiles), dubboGoFixturesDir)
		return
	}
	for _, name := range dubboGoFixtureFiles {
		want, err := os.ReadFile(filepath.Join(dubboGoFixturesDir, name))
		if err != nil {
			t.Errorf("%v (capture with %s=1)", err, dubboGoFixturesEnv)
			continue
		}
		if diff := cmp.Diff(dubboGoShape(t, name, want), dubboGoShape(t, name, got[name])); diff != "" {
			t.Errorf("%s: what the providers publish now differs from the fixture (-fixture +now):\n%s\nnow:\n%s", name, diff, got[name])
		}
	}
}

// dubboGoZKPayloads runs two providers against ZooKeeper and reads what they
// publish: go-all (interface- and application-level, version 1.0.0, group
// g1, its metadata served by its MetadataService) and go-remote
// (application-level, 3.0.0, no group, its metadata in the registry).
func dubboGoZKPayloads(t *testing.T, got map[string][]byte) {
	zkServer := startZooKeeper(t)
	all := startProvider(t, providerSpec{App: "go-all", Registry: "zookeeper", RegistryAddr: zkServer.addr, Mode: "all", Version: "1.0.0", Group: "g1"})
	remote := startProvider(t, providerSpec{App: "go-remote", Registry: "zookeeper", RegistryAddr: zkServer.addr, Mode: "service", Version: "3.0.0", RemoteMetadata: true})
	conn, _, err := zk.Connect([]string{zkServer.addr}, 5*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)

	// Interface-level: one URL per protocol, the node names URL-encoded.
	urls := waitValue(t, "provider URLs of go-all", func() (map[string]string, error) {
		kids, _, err := conn.Children("/dubbo/" + greeter + "/providers")
		if err != nil {
			return nil, err
		}
		out := map[string]string{}
		for _, k := range kids {
			if p, err := registry.ParseURL(k); err == nil && p.Params["application"] == "go-all" {
				out[p.Protocol] = k
			}
		}
		if out["dubbo"] == "" || out["tri"] == "" {
			return nil, fmt.Errorf("want a dubbo and a tri URL of go-all, have %v", kids)
		}
		return out, nil
	})
	for proto, wantPort := range map[string]string{"dubbo": all.dubboPort, "tri": all.triPort} {
		p, err := registry.ParseURL(urls[proto])
		if err != nil {
			t.Fatalf("%s provider URL %s: %v", proto, urls[proto], err)
		}
		want := registry.ServiceKey{Interface: greeter, Version: "1.0.0", Group: "g1"}
		if p.Protocol != proto || fmt.Sprint(p.Port) != wantPort || p.Service != want || p.Params["serialization"] != "hessian2" {
			t.Errorf("%s provider URL parses as %s %s %+v serialization=%q, want port %s, %+v, hessian2",
				proto, p.Protocol, p.Address(), p.Service, p.Params["serialization"], wantPort, want)
		}
		// dubbo-go publishes weight=0 (unset) and both the Go and the
		// Java-style name of each method.
		if p.Params["weight"] != "0" || p.Weight() != 100 || !p.Enabled() {
			t.Errorf("%s provider URL: weight=%q reads as %d (enabled %v), want weight=0 read as Dubbo's default 100", proto, p.Params["weight"], p.Weight(), p.Enabled())
		}
		if got, want := p.Methods(), []string{"Add", "GetUser", "SayHello", "add", "getUser", "sayHello"}; !slices.Equal(got, want) {
			t.Errorf("%s provider URL methods %v, want %v", proto, got, want)
		}
		got["provider-"+proto+".url"] = []byte(urls[proto] + "\n")
	}

	// Application-level: dubbo-go registers one instance per protocol,
	// /services/<app>/<ip>:<port of that protocol>, with the same metadata.
	insts := map[string]*registry.Instance{}
	for _, c := range []struct {
		app, short string
		p          *provider
		storage    string
	}{{"go-all", "all", all, "local"}, {"go-remote", "remote", remote, "remote"}} {
		nodes := waitValue(t, "instances of "+c.app, func() (map[string][]byte, error) {
			kids, _, err := conn.Children("/services/" + c.app)
			if err != nil {
				return nil, err
			}
			if len(kids) != 2 {
				return nil, fmt.Errorf("want two instances (one per protocol), have %v", kids)
			}
			out := map[string][]byte{}
			for _, k := range kids {
				data, _, err := conn.Get("/services/" + c.app + "/" + k)
				if err != nil {
					return nil, err
				}
				out[k] = data
			}
			return out, nil
		})
		byPort := map[string]string{c.p.dubboPort: "dubbo", c.p.triPort: "tri"}
		for node, data := range nodes {
			inst, err := registry.ParseZKInstance(data)
			if err != nil {
				t.Fatalf("instance %s of %s: %v\n%s", node, c.app, err, data)
			}
			proto := byPort[fmt.Sprint(inst.Port)]
			if inst.App != c.app || proto == "" || node != inst.Host+":"+fmt.Sprint(inst.Port) {
				t.Errorf("instance %s of %s parses as %s %s:%d, want the app and one of its protocol ports %v", node, c.app, inst.App, inst.Host, inst.Port, byPort)
			}
			eps := inst.Endpoints()
			if fmt.Sprint(eps["dubbo"]) != c.p.dubboPort || fmt.Sprint(eps["tri"]) != c.p.triPort || len(eps) != 2 {
				t.Errorf("instance %s of %s: endpoints %v, want dubbo %s and tri %s", node, c.app, eps, c.p.dubboPort, c.p.triPort)
			}
			if inst.Revision() == "" || inst.Meta["dubbo.metadata.storage-type"] != c.storage {
				t.Errorf("instance %s of %s: revision %q storage-type %q, want a revision and %s", node, c.app, inst.Revision(), inst.Meta["dubbo.metadata.storage-type"], c.storage)
			}
			insts[c.app] = inst
			got["instance-"+c.short+"-"+proto+".json"] = data
		}
	}

	// go-all serves its metadata: MetadataService 1.0.0 over dubbo, on a
	// port of its own (-meta-port), group = the application.
	inst := insts["go-all"]
	proto, metaPort, ok := inst.MetadataService()
	if !ok || proto != "dubbo" || metaPort == 0 || fmt.Sprint(metaPort) == all.dubboPort || fmt.Sprint(metaPort) == all.triPort {
		t.Fatalf("go-all: MetadataService() = %s %d %v from url-params %s, want dubbo on the metadata port", proto, metaPort, ok, inst.Meta["dubbo.metadata-service.url-params"])
	}
	var urlParams map[string]string
	if err := json.Unmarshal([]byte(inst.Meta["dubbo.metadata-service.url-params"]), &urlParams); err != nil || urlParams["group"] != "go-all" || urlParams["version"] != "1.0.0" {
		t.Errorf("go-all: url-params %v (%v), want group go-all, version 1.0.0", urlParams, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := dubbo.Call(ctx, inst.Host+":"+strconv.Itoa(int(metaPort)), dubbo.Service{
		Interface: "org.apache.dubbo.metadata.MetadataService", Group: "go-all", Version: "1.0.0", Method: "getMetadataInfo",
	}, []any{inst.Revision()}, nil)
	if err != nil {
		t.Fatalf("MetadataService of go-all over dubbo: %v", err)
	}
	md, err := registry.MetadataFromHessian(v)
	if err != nil {
		t.Fatalf("MetadataFromHessian(%#v): %v", v, err)
	}
	dubboGoCheckProviders(t, "go-all over hessian2", md, inst, "go-all", registry.ServiceKey{Interface: greeter, Version: "1.0.0", Group: "g1"}, all)
	hessianJSON, err := json.MarshalIndent(javaJSONable(v), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got["metadata-info-hessian2.json"] = append(hessianJSON, '\n')
	var types []string
	dubboGoHessianTypes(v, "$", &types)
	got["metadata-info-hessian2.types.txt"] = []byte(strings.Join(types, "\n") + "\n")

	// go-remote keeps its metadata in the registry: no MetadataService,
	// and a node named after the revision somewhere in ZooKeeper.
	rinst := insts["go-remote"]
	if _, _, ok := rinst.MetadataService(); ok {
		t.Errorf("go-remote: MetadataService() ok although its metadata is remote: %v", rinst.Meta)
	}
	rev := rinst.Revision()
	revPaths := waitValue(t, "the remote metadata of go-remote", func() ([]string, error) {
		var out []string
		err := dubboGoWalk(conn, "/", func(p string, _ *zk.Stat) {
			if path.Base(p) == rev {
				out = append(out, p)
			}
		})
		if err == nil && len(out) == 0 {
			err = fmt.Errorf("no node named %s", rev)
		}
		return out, err
	})
	if want := "/dubbo/go-remote/" + rev; !slices.Equal(revPaths, []string{want}) {
		t.Errorf("go-remote's metadata is at %v, want %s (dubbo-go's metadata report: /<root>/<app>/<revision>)", revPaths, want)
	}
	remoteInfo, _, err := conn.Get(revPaths[0])
	if err != nil {
		t.Fatal(err)
	}
	rmd, err := registry.ParseMetadataJSON(remoteInfo)
	if err != nil {
		t.Fatalf("remote metadata: %v\n%s", err, remoteInfo)
	}
	dubboGoCheckProviders(t, "go-remote from "+revPaths[0], rmd, rinst, "go-remote", registry.ServiceKey{Interface: greeter, Version: "3.0.0"}, remote)
	got["metadata-info-remote.json"] = remoteInfo

	mapping := waitValue(t, "mapping of "+greeter, func() ([]byte, error) {
		data, _, err := conn.Get("/dubbo/mapping/" + greeter)
		if err == nil && !slices.Contains(strings.Split(string(data), ","), "go-remote") {
			err = fmt.Errorf("mapping %q lacks go-remote", data)
		}
		return data, err
	})
	if apps := strings.Split(string(mapping), ","); !slices.Contains(apps, "go-all") || len(apps) != 2 {
		t.Errorf("mapping %q, want go-all and go-remote", mapping)
	}
	got["mapping.txt"] = append(mapping, '\n')

	// Every node, to record where dubbo-go writes (and what it does not:
	// no service definitions under /dubbo/metadata).
	var tree []string
	if err := dubboGoWalk(conn, "/", func(p string, st *zk.Stat) {
		if st.EphemeralOwner != 0 {
			p += " (ephemeral)"
		}
		tree = append(tree, p)
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(tree)
	got["zk-tree.txt"] = []byte(strings.Join(tree, "\n") + "\n")
}

// dubboGoCheckProviders checks a MetadataInfo of the Greeter service of app:
// both protocols, with their ports, as Providers makes them.
func dubboGoCheckProviders(t *testing.T, where string, md *registry.MetadataInfo, inst *registry.Instance, app string, k registry.ServiceKey, p *provider) {
	t.Helper()
	if md.App != app || md.Revision != inst.Revision() || len(md.Services) != 2 {
		t.Errorf("%s: app %q revision %q and %d services, want %q %q and 2", where, md.App, md.Revision, len(md.Services), app, inst.Revision())
	}
	ports := map[string]string{}
	for _, pr := range md.Providers(inst) {
		if pr.Service != k || pr.Host != inst.Host || pr.Params["serialization"] != "hessian2" {
			t.Errorf("%s: provider %s %s %+v serialization %q, want %+v on %s, hessian2", where, pr.Protocol, pr.Address(), pr.Service, pr.Params["serialization"], k, inst.Host)
		}
		ports[pr.Protocol] = fmt.Sprint(pr.Port)
	}
	if want := map[string]string{"dubbo": p.dubboPort, "tri": p.triPort}; !cmp.Equal(ports, want) {
		t.Errorf("%s: providers on ports %v, want %v", where, ports, want)
	}
}

// dubboGoNacosPayloads runs a provider against rnacos (interface- and
// application-level, 1.0.0, g1) and reads its instances through Nacos's v1
// HTTP API, and the interface -> application mapping from its config.
func dubboGoNacosPayloads(t *testing.T, got map[string][]byte) {
	n := startNacos(t)
	p := startProvider(t, providerSpec{App: "go-nacos", Registry: "nacos", RegistryAddr: n.addr, Mode: "all", Version: "1.0.0", Group: "g1"})
	c := httpClient(t)
	get := func(path string, q url.Values) ([]byte, error) {
		resp, err := c.Get("http://" + n.addr + path + "?" + q.Encode())
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s: %s", resp.Status, b)
		}
		return b, err
	}
	// Both instances of a service: one per protocol.
	list := func(service string) ([]byte, []model.Instance) {
		var svc model.Service
		body := waitValue(t, "instances of "+service, func() ([]byte, error) {
			b, err := get("/nacos/v1/ns/instance/list", url.Values{"serviceName": {service}, "namespaceId": {""}})
			if err != nil {
				return nil, err
			}
			svc = model.Service{}
			if err := json.Unmarshal(b, &svc); err != nil {
				return nil, fmt.Errorf("%w: %s", err, b)
			}
			ports := map[string]bool{}
			for _, h := range svc.Hosts {
				ports[fmt.Sprint(h.Port)] = true
			}
			if len(svc.Hosts) != 2 || !ports[p.dubboPort] || !ports[p.triPort] {
				return nil, fmt.Errorf("want instances on %s and %s, have %s", p.dubboPort, p.triPort, b)
			}
			return b, nil
		})
		return body, svc.Hosts
	}

	body, hosts := list("providers:" + greeter + ":1.0.0:g1")
	for _, h := range hosts {
		md := h.Metadata
		proto := map[string]string{p.dubboPort: "dubbo", p.triPort: "tri"}[fmt.Sprint(h.Port)]
		if md["protocol"] != proto || md["interface"] != greeter || md["version"] != "1.0.0" || md["group"] != "g1" || md["serialization"] != "hessian2" || md["application"] != "go-nacos" {
			t.Errorf("interface-level instance %s:%d: metadata %v, want protocol %s, %s 1.0.0 g1, hessian2, application go-nacos", h.Ip, h.Port, md, proto, greeter)
		}
		// Nacos's own weight is its default; dubbo-go's weight param is 0.
		if h.Weight != 1 || md["weight"] != "0" || !h.Enable || !h.Healthy {
			t.Errorf("interface-level instance %s:%d: weight %v, weight param %q, enabled %v, healthy %v; want 1, \"0\", true, true", h.Ip, h.Port, h.Weight, md["weight"], h.Enable, h.Healthy)
		}
	}
	got["nacos-providers.json"] = body

	body, hosts = list("go-nacos")
	for _, h := range hosts {
		inst := &registry.Instance{App: "go-nacos", Host: h.Ip, Port: uint32(h.Port), Meta: h.Metadata, Healthy: h.Healthy}
		eps := inst.Endpoints()
		proto, metaPort, ok := inst.MetadataService()
		if fmt.Sprint(eps["dubbo"]) != p.dubboPort || fmt.Sprint(eps["tri"]) != p.triPort || inst.Revision() == "" || !ok || proto != "dubbo" || metaPort == 0 {
			t.Errorf("application instance %s:%d: endpoints %v, revision %q, MetadataService %s %d %v; want dubbo %s, tri %s, a revision, dubbo on a port",
				h.Ip, h.Port, eps, inst.Revision(), proto, metaPort, ok, p.dubboPort, p.triPort)
		}
	}
	got["nacos-app.json"] = body

	mapping := waitValue(t, "the mapping of "+greeter+" in Nacos", func() ([]byte, error) {
		return get("/nacos/v1/cs/configs", url.Values{"dataId": {greeter}, "group": {"mapping"}, "tenant": {""}})
	})
	if string(mapping) != "go-nacos" {
		t.Errorf("Nacos mapping config %q, want go-nacos", mapping)
	}
	got["nacos-mapping.txt"] = append(mapping, '\n')
}

// dubboGoWalk visits every ZooKeeper node under root (ZooKeeper's own
// /zookeeper aside).
func dubboGoWalk(conn *zk.Conn, root string, visit func(p string, st *zk.Stat)) error {
	if root == "/zookeeper" {
		return nil
	}
	ok, st, err := conn.Exists(root)
	if err != nil || !ok {
		return err // gone meanwhile: nothing to visit
	}
	visit(root, st)
	kids, _, err := conn.Children(root)
	if err != nil {
		return err
	}
	for _, k := range kids {
		if err := dubboGoWalk(conn, path.Join(root, k), visit); err != nil {
			return err
		}
	}
	return nil
}

// dubboGoHessianTypes lists the Go type of every value dubbo-go-hessian2
// decoded, by path: what registry.MetadataFromHessian is given.
func dubboGoHessianTypes(v any, at string, out *[]string) {
	*out = append(*out, fmt.Sprintf("%s %T", at, v))
	var keys []string
	kids := map[string]any{}
	switch m := v.(type) {
	case map[string]any:
		for k, v := range m {
			keys, kids[k] = append(keys, k), v
		}
	case map[any]any:
		for k, v := range m {
			ks := fmt.Sprintf("%v (%T)", k, k)
			keys, kids[ks] = append(keys, ks), v
		}
	case []any:
		for i, v := range m {
			ks := strconv.Itoa(i)
			keys, kids[ks] = append(keys, ks), v
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		dubboGoHessianTypes(kids[k], at+"["+k+"]", out)
	}
}

// What changes from run to run: addresses, ports, pids and timestamps
// (runs of 4 digits or more), revisions (long hex).
var (
	dubboGoIP  = regexp.MustCompile(`\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b`)
	dubboGoHex = regexp.MustCompile(`\b[0-9a-f]{32,}\b`)
	dubboGoNum = regexp.MustCompile(`\d{4,}`)
)

func dubboGoNormString(s string) string {
	s = dubboGoIP.ReplaceAllString(s, "<ip>")
	s = dubboGoHex.ReplaceAllString(s, "<rev>")
	return dubboGoNum.ReplaceAllString(s, "<n>")
}

// dubboGoShape is what must not change between two captures of a payload:
// its structure and every value that does not change from run to run. JSON
// inside JSON strings (dubbo.endpoints, url-params) is compared as JSON,
// arrays regardless of order (dubbo-go lists endpoints in either order).
func dubboGoShape(t *testing.T, name string, data []byte) any {
	t.Helper()
	switch {
	case strings.HasSuffix(name, ".json"):
		return dubboGoJSONShape(t, name, data)
	case strings.HasSuffix(name, ".url"):
		return dubboGoURLShape(t, strings.TrimSpace(string(data)))
	case name == "mapping.txt" || name == "nacos-mapping.txt":
		apps := strings.Split(strings.TrimSpace(string(data)), ",")
		sort.Strings(apps) // in registration order, which may vary
		return apps
	case name == "zk-tree.txt":
		var out []string
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			parts := strings.Split(line, "/")
			for i, p := range parts {
				if strings.Contains(p, "%3A%2F%2F") { // a provider URL
					parts[i] = fmt.Sprint(dubboGoURLShape(t, strings.TrimSuffix(p, " (ephemeral)")))
					if strings.HasSuffix(p, " (ephemeral)") {
						parts[i] += " (ephemeral)"
					}
				}
			}
			out = append(out, dubboGoNormString(strings.Join(parts, "/")))
		}
		sort.Strings(out)
		return out
	}
	return string(data)
}

func dubboGoJSONShape(t *testing.T, name string, data []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Errorf("%s: %v", name, err)
		return string(data)
	}
	return dubboGoNorm(v)
}

func dubboGoNorm(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, v := range x {
			m[dubboGoNormString(k)] = dubboGoNorm(v)
			if k == "pid" || k == "timestamp" {
				m[k] = "<n>" // a process id or a time may have fewer than 4 digits
			}
		}
		return m
	case []any:
		type elem struct {
			key string
			v   any
		}
		elems := make([]elem, len(x))
		for i, v := range x {
			n := dubboGoNorm(v)
			b, _ := json.Marshal(n)
			elems[i] = elem{string(b), n}
		}
		sort.SliceStable(elems, func(i, j int) bool { return elems[i].key < elems[j].key })
		out := make([]any, len(x))
		for i, e := range elems {
			out[i] = e.v
		}
		return out
	case json.Number:
		return dubboGoNormString(x.String())
	case string:
		if s := strings.TrimSpace(x); strings.HasPrefix(s, "{") || strings.HasPrefix(s, "[") {
			var inner any
			d := json.NewDecoder(strings.NewReader(s))
			d.UseNumber()
			if d.Decode(&inner) == nil {
				return map[string]any{"<json>": dubboGoNorm(inner)}
			}
		}
		return dubboGoNormString(x)
	}
	return v
}

// dubboGoURLShape is a provider URL (URL-encoded, as a node name) with its
// varying values replaced.
func dubboGoURLShape(t *testing.T, node string) map[string]string {
	t.Helper()
	raw, err := url.QueryUnescape(node)
	if err != nil {
		t.Errorf("node %q: %v", node, err)
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Errorf("node %q: %v", node, err)
		return nil
	}
	out := map[string]string{"<scheme>": u.Scheme, "<host>": dubboGoNormString(u.Host), "<path>": u.Path}
	for k, vs := range u.Query() {
		out[k] = dubboGoNormString(strings.Join(vs, "&"))
		if k == "pid" || k == "timestamp" {
			out[k] = "<n>" // a process id or a time may have fewer than 4 digits
		}
	}
	return out
}
