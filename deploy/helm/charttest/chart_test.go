package charttest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// flagLine is a flag in Go's flag usage: "  -name type" (no type: a bool).
var flagLine = regexp.MustCompile(`^  -([\w-]+)(?: ([\w.]+))?(?:\t|$)`)

var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// valueSet is one way to install the chart, and what the render must show.
type valueSet struct {
	name       string
	values     string // YAML over values.yaml
	kind       string // Deployment or DaemonSet
	hpa        bool
	istiod     string // the xDS (and CA) address
	secure     bool
	serverName string // istiod's certificate name (secure)
	svcType    corev1.ServiceType
}

var valueSets = []valueSet{
	{name: "defaults", kind: "Deployment", istiod: "istiod.istio-system.svc:15012", secure: true,
		serverName: "istiod.istio-system.svc", svcType: corev1.ServiceTypeLoadBalancer},
	{name: "hpa", values: `
autoscaling: { enabled: true, minReplicas: 3, maxReplicas: 12, targetMemoryUtilizationPercentage: 85 }
`, kind: "Deployment", hpa: true, istiod: "istiod.istio-system.svc:15012", secure: true,
		serverName: "istiod.istio-system.svc", svcType: corev1.ServiceTypeLoadBalancer},
	{name: "custom-istiod", values: `
istiod: { address: "istiod-canary.istio-system.svc:15012", clusterID: east, trustDomain: corp.example }
`, kind: "Deployment", istiod: "istiod-canary.istio-system.svc:15012", secure: true,
		serverName: "istiod-canary.istio-system.svc", svcType: corev1.ServiceTypeLoadBalancer},
	{name: "plaintext-istiod", values: `
istiod: { address: "istiod.istio-system.svc:15010", secure: false }
`, kind: "Deployment", istiod: "istiod.istio-system.svc:15010", secure: false, svcType: corev1.ServiceTypeLoadBalancer},
	{name: "daemonset-nodeport", values: `
kind: DaemonSet
labels: { istio: ingressgateway, app: istio-ingressgateway }
drain: { periodSeconds: 30, timeoutSeconds: 60, marginSeconds: 5 }
service:
  type: NodePort
  statusNodePort: 31021
  ports:
    - { name: http2, port: 80, targetPort: 8080, nodePort: 31080 }
    - { name: https, port: 443, targetPort: 8443, nodePort: 31443 }
    - { name: tcp-dubbo, port: 20880, targetPort: 20880 }
extraArgs: [-watch=false]
extraConfig: { overload: { max_active_downstream_connections: 50000 } }
`, kind: "DaemonSet", istiod: "istiod.istio-system.svc:15012", secure: true,
		serverName: "istiod.istio-system.svc", svcType: corev1.ServiceTypeNodePort},
}

// rendered is one render, decoded.
type rendered struct {
	objs     []Object
	deploy   *appsv1.Deployment
	ds       *appsv1.DaemonSet
	pod      *corev1.PodTemplateSpec
	svc      *corev1.Service
	cm       *corev1.ConfigMap
	sa       *corev1.ServiceAccount
	pdb      *policyv1.PodDisruptionBudget
	hpa      *autoscalingv2.HorizontalPodAutoscaler
	role     *rbacv1.Role
	binding  *rbacv1.RoleBinding
	config   map[string]any // the bootstrap YAML of the ConfigMap
	cfgFile  string         // -c
	ctr      corev1.Container
	args     map[string][]string // the flags of run, by name
	argOrder []string
}

func parseValues(t *testing.T, s string) map[string]any {
	t.Helper()
	v := map[string]any{}
	if err := yaml.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("values: %v", err)
	}
	return v
}

func render(t *testing.T, vs valueSet) *rendered {
	t.Helper()
	objs, err := Render(chartDir, DefaultRelease, parseValues(t, vs.values))
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	r := &rendered{objs: objs}
	seen := map[string]bool{}
	for _, o := range objs {
		key := o.Kind + "/" + o.Name
		if seen[key] {
			t.Errorf("%s rendered twice", key)
		}
		seen[key] = true
		v, err := Decode(o)
		if err != nil {
			t.Fatal(err)
		}
		switch v := v.(type) {
		case *appsv1.Deployment:
			r.deploy, r.pod = v, &v.Spec.Template
		case *appsv1.DaemonSet:
			r.ds, r.pod = v, &v.Spec.Template
		case *corev1.Service:
			r.svc = v
		case *corev1.ConfigMap:
			r.cm = v
		case *corev1.ServiceAccount:
			r.sa = v
		case *policyv1.PodDisruptionBudget:
			r.pdb = v
		case *autoscalingv2.HorizontalPodAutoscaler:
			r.hpa = v
		case *rbacv1.Role:
			r.role = v
		case *rbacv1.RoleBinding:
			r.binding = v
		}
	}
	if r.pod == nil || r.cm == nil {
		t.Fatalf("no workload or no ConfigMap rendered: %v", seen)
	}
	if n := len(r.pod.Spec.Containers); n != 1 {
		t.Fatalf("%d containers, want 1", n)
	}
	r.ctr = r.pod.Spec.Containers[0]
	return r
}

// parseArgs reads the container's args as `meshgate run` parses them,
// against the flags `meshgate run -h` lists.
func (r *rendered) parseArgs(known map[string]bool) error {
	args := r.ctr.Args
	if len(r.ctr.Command) != 0 {
		return fmt.Errorf("command %q set: the image's ENTRYPOINT (/meshgate) must run", r.ctr.Command)
	}
	if len(args) == 0 || args[0] != "run" {
		return fmt.Errorf("args %q: want the run command first", args)
	}
	r.args = map[string][]string{}
	for i := 1; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" || a == "--" {
			return fmt.Errorf("args[%d] %q: not a flag (meshgate run takes no positional arguments)", i, a)
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		takesValue, ok := known[name]
		if !ok {
			return fmt.Errorf("args[%d]: -%s is not a flag of meshgate run", i, name)
		}
		if takesValue && !hasValue {
			if i+1 >= len(args) {
				return fmt.Errorf("-%s has no value", name)
			}
			i++
			value = args[i]
		} else if !takesValue && !hasValue {
			value = "true"
		}
		r.args[name] = append(r.args[name], value)
		r.argOrder = append(r.argOrder, name)
	}
	r.cfgFile = r.arg("c")
	if r.cfgFile == "" {
		return fmt.Errorf("no -c: meshgate would run its embedded demo")
	}
	cfg := r.cm.Data[path.Base(r.cfgFile)]
	if cfg == "" {
		return fmt.Errorf("ConfigMap %s has no key %s (-c %s)", r.cm.Name, path.Base(r.cfgFile), r.cfgFile)
	}
	r.config = map[string]any{}
	return yaml.Unmarshal([]byte(cfg), &r.config)
}

func (r *rendered) arg(name string) string {
	if v := r.args[name]; len(v) > 0 {
		return v[len(v)-1]
	}
	return ""
}

// cfg digs a string out of the bootstrap config ("xds.tls.sni").
func (r *rendered) cfg(key string) string {
	var v any = r.config
	for _, k := range strings.Split(key, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[k]
	}
	s, _ := v.(string)
	return s
}

// mountedAt is the path where the container sees file of the volume named vol.
func (r *rendered) mountedAt(vol, file string) string {
	for _, m := range r.ctr.VolumeMounts {
		if m.Name == vol && m.SubPath == "" {
			return path.Join(m.MountPath, file)
		}
	}
	return ""
}

func (r *rendered) volume(pred func(corev1.Volume) bool) *corev1.Volume {
	for i, v := range r.pod.Spec.Volumes {
		if pred(v) {
			return &r.pod.Spec.Volumes[i]
		}
	}
	return nil
}

// portNumber resolves a probe's or Service's port (a number or a container
// port's name).
func (r *rendered) portNumber(p intstr.IntOrString) int {
	if p.Type == intstr.Int {
		return p.IntValue()
	}
	for _, cp := range r.ctr.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort)
		}
	}
	return -1
}

func hostPort(t *testing.T, what, addr string) (string, int) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s %q: %v", what, addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("%s %q: %v", what, addr, err)
	}
	return h, n
}

func isSubset(sub, of map[string]string) bool {
	for k, v := range sub {
		if of[k] != v {
			return false
		}
	}
	return len(sub) > 0
}

func TestChart(t *testing.T) {
	known := runFlags(t)
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			r := render(t, vs)
			if err := r.parseArgs(known); err != nil {
				t.Fatal(err)
			}
			checks := []struct {
				name  string
				check func(t *testing.T)
			}{
				{"objects", func(t *testing.T) { checkObjects(t, r, vs) }},
				{"args are flags the binary accepts", func(t *testing.T) { checkArgsRun(t, r) }},
				{"config is valid for meshgate validate", func(t *testing.T) { checkConfigValid(t, r) }},
				{"probes point at meshgate's endpoints", func(t *testing.T) { checkProbes(t, r) }},
				{"probes answer on the real binary", func(t *testing.T) { checkProbesLive(t, r) }},
				{"istio labels", func(t *testing.T) { checkLabels(t, r, vs) }},
				{"istiod and identity", func(t *testing.T) { checkIstiod(t, r, vs) }},
				{"drain fits the grace period", func(t *testing.T) { checkDrain(t, r) }},
				{"hpa", func(t *testing.T) { checkHPA(t, r, vs) }},
				{"service", func(t *testing.T) { checkService(t, r, vs) }},
				{"security", func(t *testing.T) { checkSecurity(t, r) }},
			}
			for _, c := range checks {
				t.Run(c.name, c.check)
			}
		})
	}
}

func checkObjects(t *testing.T, r *rendered, vs valueSet) {
	for _, o := range r.objs {
		if !strings.Contains(o.YAML, "namespace: "+DefaultRelease.Namespace+"\n") {
			t.Errorf("%s %s is not placed in the release's namespace", o.Kind, o.Name)
		}
	}
	switch vs.kind {
	case "Deployment":
		if r.deploy == nil || r.ds != nil {
			t.Errorf("want a Deployment only")
		} else if !isSubset(r.deploy.Spec.Selector.MatchLabels, r.pod.Labels) {
			t.Errorf("the Deployment's selector %v does not select its pods %v", r.deploy.Spec.Selector.MatchLabels, r.pod.Labels)
		}
	case "DaemonSet":
		if r.ds == nil || r.deploy != nil {
			t.Errorf("want a DaemonSet only")
		} else if !isSubset(r.ds.Spec.Selector.MatchLabels, r.pod.Labels) {
			t.Errorf("the DaemonSet's selector does not select its pods")
		}
	}
	if r.sa == nil || r.pod.Spec.ServiceAccountName != r.sa.Name {
		t.Errorf("the pods do not run as the chart's ServiceAccount")
	}
	if r.pdb == nil {
		t.Errorf("no PodDisruptionBudget")
	} else if !isSubset(r.pdb.Spec.Selector.MatchLabels, r.pod.Labels) {
		t.Errorf("the PDB's selector does not select the pods")
	}
	if r.role == nil || r.binding == nil {
		t.Errorf("no Role/RoleBinding for istiod's credentialName check")
	} else if r.binding.RoleRef.Name != r.role.Name || len(r.binding.Subjects) != 1 || r.binding.Subjects[0].Name != r.sa.Name {
		t.Errorf("the RoleBinding does not bind the Role to the ServiceAccount")
	}
}

// checkArgsRun runs the binary with the rendered flags (the kubelet's
// $(VAR)s expanded) and -h last: every flag and value must parse.
func checkArgsRun(t *testing.T, r *rendered) {
	env := map[string]bool{}
	for _, e := range r.ctr.Env {
		env[e.Name] = true
	}
	sample := map[string]string{"POD_IP": "10.1.2.3", "POD_NAME": "meshgate-abc", "POD_NAMESPACE": "istio-system"}
	var args []string
	for _, a := range r.ctr.Args {
		for _, m := range envRef.FindAllStringSubmatch(a, -1) {
			if !env[m[1]] {
				t.Errorf("arg %q refers to $(%s), which the container's env does not define", a, m[1])
			}
		}
		args = append(args, envRef.ReplaceAllStringFunc(a, func(m string) string {
			if v, ok := sample[m[2:len(m)-1]]; ok {
				return v
			}
			return "x"
		}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, meshgate(t), append(args, "-h")...)
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(string(out), "Usage of run") ||
		strings.Contains(string(out), "flag provided but not defined") || strings.Contains(string(out), "invalid") {
		t.Errorf("meshgate %q -h: exit %d (%v), want the usage alone:\n%s", args, code, err, out)
	}
	if id := r.arg("node-id"); !strings.HasPrefix(id, "router~$(POD_IP)~$(POD_NAME).") {
		t.Errorf("-node-id %q: want an Istio router id with the pod's IP and name", id)
	}
	md := strings.Join(r.args["node-metadata"], " ")
	for _, want := range []string{"NAME=$(POD_NAME)", "INSTANCE_IPS=$(POD_IP)"} {
		if !strings.Contains(md, want) {
			t.Errorf("-node-metadata %q: want %s (istiod finds the gateway's Services by its IP)", md, want)
		}
	}
}

func checkConfigValid(t *testing.T, r *rendered) {
	f := filepath.Join(t.TempDir(), path.Base(r.cfgFile))
	if err := os.WriteFile(f, []byte(r.cm.Data[path.Base(r.cfgFile)]), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(meshgate(t), "validate", "-c", f).CombinedOutput()
	if err != nil {
		t.Errorf("meshgate validate: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "warning") {
		t.Errorf("meshgate validate warns:\n%s", out)
	}
	// The ConfigMap is mounted where -c reads it.
	cmVol := r.volume(func(v corev1.Volume) bool { return v.ConfigMap != nil && v.ConfigMap.Name == r.cm.Name })
	if cmVol == nil || r.mountedAt(cmVol.Name, path.Base(r.cfgFile)) != r.cfgFile {
		t.Errorf("-c %s: the ConfigMap %s is not mounted there", r.cfgFile, r.cm.Name)
	}
}

func checkProbes(t *testing.T, r *rendered) {
	rp := r.ctr.ReadinessProbe
	if rp == nil || rp.HTTPGet == nil {
		t.Fatal("no HTTP readiness probe")
	}
	_, readyPort := hostPort(t, "-readiness-address", r.arg("readiness-address"))
	if got := r.portNumber(rp.HTTPGet.Port); got != readyPort || rp.HTTPGet.Path != "/healthz/ready" {
		t.Errorf("readiness probe GET :%d%s, want :%d/healthz/ready (-readiness-address %s)", got, rp.HTTPGet.Path, readyPort, r.arg("readiness-address"))
	}
	lp := r.ctr.LivenessProbe
	if lp == nil || lp.HTTPGet == nil {
		t.Fatal("no HTTP liveness probe")
	}
	if got := r.portNumber(lp.HTTPGet.Port); got != readyPort || lp.HTTPGet.Path != "/healthz/live" {
		t.Errorf("liveness probe GET :%d%s, want :%d/healthz/live (the status port)", got, lp.HTTPGet.Path, readyPort)
	}
	// The admin endpoint drains the gateway on a POST: it must not be
	// reachable from the pod network.
	if adminHost, _ := hostPort(t, "admin.address", r.cfg("admin.address")); adminHost != "localhost" {
		if ip := net.ParseIP(adminHost); ip == nil || !ip.IsLoopback() {
			t.Errorf("admin on %s: reachable from the pod network (POST /drain_listeners takes the gateway out of service)", adminHost)
		}
	}
	if lp.HTTPGet.Path == "/ready" || lp.HTTPGet.Path == "/healthz/ready" {
		t.Errorf("liveness on %s would restart a draining or still-initializing gateway", lp.HTTPGet.Path)
	}
	if rp.HTTPGet.Host != "" || lp.HTTPGet.Host != "" {
		t.Errorf("probes must go to the pod's IP (no host)")
	}
	if scrape := r.pod.Annotations["prometheus.io/port"]; scrape != "" && scrape != strconv.Itoa(readyPort) {
		t.Errorf("prometheus.io/port %s, the status port (/stats/prometheus) is %d", scrape, readyPort)
	}
}

// freePorts gives n distinct loopback ports free a moment ago (all held
// open until all are picked, so that none is handed out twice).
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// startForProbes runs the binary with an admin endpoint, a readiness
// address and a listener on free loopback ports (again on new ports if
// another process took one first), stopped by SIGTERM when t ends.
func startForProbes(t *testing.T) (admin, ready int) {
	t.Helper()
retry:
	for attempt := 1; ; attempt++ {
		ports := freePorts(t, 3)
		admin, ready = ports[0], ports[1]
		cfg := fmt.Sprintf(`admin: { address: 127.0.0.1:%d }
listeners:
  - name: probe
    address: 127.0.0.1:%d
    virtual_hosts: [ { routes: [ { match: { prefix: / }, direct_response: { status: 200, body: "ok" } } ] } ]
`, admin, ports[2])
		f := filepath.Join(t.TempDir(), "meshgate.yaml")
		if err := os.WriteFile(f, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		logs := &syncBuffer{}
		cmd := exec.Command(meshgate(t), "run", "-c", f, "-readiness-address", fmt.Sprintf("127.0.0.1:%d", ready),
			"-drain-period", "0s", "-drain-timeout", "2s")
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		// Up when the admin endpoint answers; an early exit is a port taken
		// meanwhile, or a failure.
		deadline := time.Now().Add(15 * time.Second)
		up := false
		for !up && time.Now().Before(deadline) {
			select {
			case err := <-done:
				if attempt < 3 && strings.Contains(logs.String(), "address already in use") {
					continue retry
				}
				t.Fatalf("meshgate exited at start: %v\n%s", err, logs.String())
			case <-time.After(50 * time.Millisecond):
			}
			if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", admin)); err == nil {
				c.Close()
				up = true
			}
		}
		if !up {
			_ = cmd.Process.Kill()
			t.Fatalf("meshgate's admin endpoint did not come up in 15s\n%s", logs.String())
		}
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("meshgate exited with %v after SIGTERM\n%s", err, logs.String())
				}
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				t.Errorf("meshgate did not exit 10s after SIGTERM\n%s", logs.String())
			}
		})
		return admin, ready
	}
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

// checkProbesLive starts the binary with the rendered admin endpoint and
// readiness address (moved to loopback and free ports) and a listener of
// its own, then asks the probes' paths as the kubelet would.
func checkProbesLive(t *testing.T, r *rendered) {
	admin, ready := startForProbes(t)
	get := func(port int, p string) (int, string) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, p))
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	rp, lp := r.ctr.ReadinessProbe.HTTPGet, r.ctr.LivenessProbe.HTTPGet
	deadline := time.Now().Add(15 * time.Second)
	var code int
	var body string
	for time.Now().Before(deadline) {
		if code, body = get(ready, rp.Path); code == http.StatusOK {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code != http.StatusOK {
		t.Fatalf("readiness GET %s: %d %s", rp.Path, code, body)
	}
	if code, body = get(ready, lp.Path); code != http.StatusOK {
		t.Errorf("liveness GET %s on the status port: %d %s", lp.Path, code, body)
	}
	scrape := r.pod.Annotations["prometheus.io/path"]
	if scrape == "" {
		scrape = "/stats/prometheus"
	}
	if code, _ = get(ready, scrape); code != http.StatusOK {
		t.Errorf("GET %s (the metrics) on the status port: %d", scrape, code)
	}
	if code, _ = get(admin, "/ready"); code != http.StatusOK {
		t.Errorf("GET /ready on the admin endpoint: %d", code)
	}
}

func checkLabels(t *testing.T, r *rendered, vs valueSet) {
	if r.pod.Labels["istio"] != "ingressgateway" {
		t.Errorf("pod labels %v: want istio=ingressgateway (what Istio Gateways select)", r.pod.Labels)
	}
	labels, _ := r.config["xds"].(map[string]any)["istio"].(map[string]any)["labels"].(map[string]any)
	if labels["istio"] != "ingressgateway" {
		t.Errorf("xds.istio.labels %v: want istio=ingressgateway in the node's LABELS", labels)
	}
	for k, v := range labels {
		if r.pod.Labels[k] != v {
			t.Errorf("node label %s=%v is not a pod label", k, v)
		}
	}
	if r.pod.Labels["sidecar.istio.io/inject"] != "false" {
		t.Errorf("no sidecar.istio.io/inject=false: an injecting namespace would add an Envoy beside the gateway")
	}
}

func checkIstiod(t *testing.T, r *rendered, vs valueSet) {
	if got := r.cfg("xds.address"); got != vs.istiod {
		t.Errorf("xds.address %q, want %q", got, vs.istiod)
	}
	if got := r.cfg("xds.istio.namespace"); got != DefaultRelease.Namespace {
		t.Errorf("xds.istio.namespace %q, want the release's namespace", got)
	}
	tokenVol := r.volume(func(v corev1.Volume) bool {
		if v.Projected == nil {
			return false
		}
		for _, s := range v.Projected.Sources {
			if s.ServiceAccountToken != nil {
				return true
			}
		}
		return false
	})
	if !vs.secure {
		if _, ok := r.config["identity"]; ok {
			t.Errorf("an identity section with a plaintext istiod: its CA needs the secure port")
		}
		if r.cfg("xds.token_file") != "" || r.config["xds"].(map[string]any)["tls"] != nil {
			t.Errorf("xds tls/token with a plaintext istiod")
		}
		if tokenVol != nil {
			t.Errorf("a token volume no one reads")
		}
		return
	}
	if tokenVol == nil {
		t.Fatal("no projected service-account token")
	}
	var tok *corev1.ServiceAccountTokenProjection
	for _, s := range tokenVol.Projected.Sources {
		if s.ServiceAccountToken != nil {
			tok = s.ServiceAccountToken
		}
	}
	if tok.Audience != "istio-ca" {
		t.Errorf("token audience %q, want istio-ca", tok.Audience)
	}
	tokenPath := r.mountedAt(tokenVol.Name, tok.Path)
	if tokenPath != "/var/run/secrets/tokens/istio-token" {
		t.Errorf("token at %q, want /var/run/secrets/tokens/istio-token (where Istio's agents read it)", tokenPath)
	}
	rootVol := r.volume(func(v corev1.Volume) bool { return v.ConfigMap != nil && v.ConfigMap.Name == "istio-ca-root-cert" })
	if rootVol == nil {
		t.Fatal("the istio-ca-root-cert config map is not mounted")
	}
	rootPath := r.mountedAt(rootVol.Name, "root-cert.pem")
	for key, want := range map[string]string{
		"xds.token_file":                    tokenPath,
		"xds.tls.ca_file":                   rootPath,
		"xds.tls.sni":                       vs.serverName,
		"identity.istio_ca.address":         vs.istiod,
		"identity.istio_ca.token_file":      tokenPath,
		"identity.istio_ca.root_cert_file":  rootPath,
		"identity.istio_ca.server_name":     vs.serverName,
		"identity.istio_ca.namespace":       DefaultRelease.Namespace,
		"identity.istio_ca.service_account": r.sa.Name,
	} {
		if got := r.cfg(key); got != want || want == "" {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	for _, m := range r.ctr.VolumeMounts {
		if (m.Name == tokenVol.Name || m.Name == rootVol.Name) && !m.ReadOnly {
			t.Errorf("volume %s mounted writable", m.Name)
		}
	}
}

func checkDrain(t *testing.T, r *rendered) {
	period, err := time.ParseDuration(r.arg("drain-period"))
	if err != nil {
		t.Fatalf("-drain-period: %v", err)
	}
	timeout, err := time.ParseDuration(r.arg("drain-timeout"))
	if err != nil || timeout <= 0 {
		t.Fatalf("-drain-timeout %q: must be set (0 keeps the config's default, which the grace period does not know)", r.arg("drain-timeout"))
	}
	g := r.pod.Spec.TerminationGracePeriodSeconds
	if g == nil {
		t.Fatal("no terminationGracePeriodSeconds (the default 30s knows nothing of the drain)")
	}
	const margin = 5 * time.Second
	if grace := time.Duration(*g) * time.Second; grace < period+timeout+margin {
		t.Errorf("terminationGracePeriodSeconds %v < drain period %v + timeout %v + %v: the kubelet kills mid-drain", grace, period, timeout, margin)
	}
	if lc := r.ctr.Lifecycle; lc != nil && lc.PreStop != nil && lc.PreStop.Exec != nil {
		t.Errorf("a preStop exec hook: the image has no shell or sleep")
	}
}

func checkHPA(t *testing.T, r *rendered, vs valueSet) {
	if (r.hpa != nil) != vs.hpa {
		t.Fatalf("HPA rendered: %v, want %v", r.hpa != nil, vs.hpa)
	}
	if !vs.hpa {
		return
	}
	ref := r.hpa.Spec.ScaleTargetRef
	if ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" || r.deploy == nil || ref.Name != r.deploy.Name {
		t.Errorf("HPA scales %+v, not the Deployment", ref)
	}
	if r.deploy != nil && r.deploy.Spec.Replicas != nil {
		t.Errorf("the Deployment sets replicas beside an HPA (each upgrade would reset the count)")
	}
	if r.hpa.Spec.MinReplicas == nil || *r.hpa.Spec.MinReplicas != 3 || r.hpa.Spec.MaxReplicas != 12 {
		t.Errorf("HPA min/max %v/%d, want 3/12", r.hpa.Spec.MinReplicas, r.hpa.Spec.MaxReplicas)
	}
	var metrics []string
	for _, m := range r.hpa.Spec.Metrics {
		if m.Resource != nil && m.Resource.Target.AverageUtilization != nil {
			metrics = append(metrics, fmt.Sprintf("%s=%d", m.Resource.Name, *m.Resource.Target.AverageUtilization))
		}
	}
	if want := []string{"cpu=80", "memory=85"}; !slices.Equal(metrics, want) {
		t.Errorf("HPA metrics %v, want %v", metrics, want)
	}
	if len(r.ctr.Resources.Requests) == 0 {
		t.Errorf("no resource requests: an HPA on utilization needs them")
	}
}

func checkService(t *testing.T, r *rendered, vs valueSet) {
	if r.svc == nil {
		t.Fatal("no Service")
	}
	if r.svc.Spec.Type != vs.svcType {
		t.Errorf("Service type %s, want %s", r.svc.Spec.Type, vs.svcType)
	}
	if !isSubset(r.svc.Spec.Selector, r.pod.Labels) {
		t.Errorf("the Service's selector %v does not select the pods %v", r.svc.Spec.Selector, r.pod.Labels)
	}
	if _, ok := r.svc.Spec.Selector["istio"]; ok {
		t.Errorf("the Service selects by istio=...: it would send traffic to an istio-ingressgateway beside meshgate")
	}
	ports := map[string]corev1.ServicePort{}
	for _, p := range r.svc.Spec.Ports {
		ports[p.Name] = p
		if n := r.portNumber(p.TargetPort); n <= 0 || !slices.ContainsFunc(r.ctr.Ports, func(cp corev1.ContainerPort) bool { return int(cp.ContainerPort) == n }) {
			t.Errorf("Service port %s targets %s, which the container does not declare", p.Name, p.TargetPort.String())
		}
		if p.NodePort != 0 && vs.svcType == corev1.ServiceTypeClusterIP {
			t.Errorf("nodePort on a ClusterIP Service")
		}
	}
	_, readyPort := hostPort(t, "-readiness-address", r.arg("readiness-address"))
	if sp, ok := ports["status-port"]; !ok || sp.Port != 15021 || r.portNumber(sp.TargetPort) != readyPort {
		t.Errorf("status-port %+v: want 15021 -> the readiness port %d", sp, readyPort)
	}
	for name, want := range map[string][2]int{"http2": {80, 8080}, "https": {443, 8443}} {
		if p, ok := ports[name]; !ok || int(p.Port) != want[0] || r.portNumber(p.TargetPort) != want[1] {
			t.Errorf("Service port %s %+v: want %d -> %d (istio-ingressgateway's)", name, p, want[0], want[1])
		}
	}
	_, adminPort := hostPort(t, "admin.address", r.cfg("admin.address"))
	for _, p := range r.svc.Spec.Ports {
		if r.portNumber(p.TargetPort) == adminPort {
			t.Errorf("the admin endpoint is exposed by the Service (port %s)", p.Name)
		}
	}
	if vs.svcType == corev1.ServiceTypeNodePort {
		got := map[string]int32{}
		for _, p := range r.svc.Spec.Ports {
			got[p.Name] = p.NodePort
		}
		if want := map[string]int32{"status-port": 31021, "http2": 31080, "https": 31443, "tcp-dubbo": 0}; !maps.Equal(got, want) {
			t.Errorf("nodePorts %v, want %v", got, want)
		}
	}
}

func checkSecurity(t *testing.T, r *rendered) {
	ps, cs := r.pod.Spec.SecurityContext, r.ctr.SecurityContext
	if ps == nil || cs == nil {
		t.Fatal("no security contexts")
	}
	if ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || cs.RunAsNonRoot == nil || !*cs.RunAsNonRoot {
		t.Errorf("runAsNonRoot not set")
	}
	if cs.RunAsUser == nil || *cs.RunAsUser == 0 {
		t.Errorf("runAsUser %v: want the image's non-root uid", cs.RunAsUser)
	}
	if cs.ReadOnlyRootFilesystem == nil || !*cs.ReadOnlyRootFilesystem {
		t.Errorf("readOnlyRootFilesystem not set")
	}
	if cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation {
		t.Errorf("allowPrivilegeEscalation not false")
	}
	if cs.Capabilities == nil || !slices.Equal(cs.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(cs.Capabilities.Add) > 0 {
		t.Errorf("capabilities %+v: want drop ALL, add none", cs.Capabilities)
	}
	tmp := r.volume(func(v corev1.Volume) bool { return v.EmptyDir != nil })
	if tmp == nil || r.mountedAt(tmp.Name, "") != "/tmp" {
		t.Errorf("no emptyDir at /tmp (the Nacos client's work dir is under the temp dir)")
	}
	if r.pod.Spec.AutomountServiceAccountToken == nil || *r.pod.Spec.AutomountServiceAccountToken {
		t.Errorf("the Kubernetes API token is mounted; meshgate never uses it")
	}
	if r.ctr.Image == "" || !strings.Contains(r.ctr.Image, ":") {
		t.Errorf("image %q has no tag", r.ctr.Image)
	}
}

// TestChart_RejectsBadValues: values that would break the gateway fail the
// render with a message, rather than render something that does not work.
func TestChart_RejectsBadValues(t *testing.T) {
	for _, c := range []struct{ name, values, want string }{
		{"grace shorter than the drain", "terminationGracePeriodSeconds: 10\ndrain: { periodSeconds: 5, timeoutSeconds: 15 }", "shorter than drain"},
		{"hpa on a daemonset", "kind: DaemonSet\nautoscaling: { enabled: true }", "autoscaling.enabled needs kind: Deployment"},
		{"unknown kind", "kind: StatefulSet", "kind must be Deployment or DaemonSet"},
		{"istiod without a port", "istiod: { address: istiod.istio-system.svc }", "istiod.address must be host:port"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Render(chartDir, DefaultRelease, parseValues(t, c.values))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("render error %v, want one saying %q", err, c.want)
			}
		})
	}
	// A long enough grace period of one's own is kept.
	objs, err := Render(chartDir, DefaultRelease, parseValues(t, "terminationGracePeriodSeconds: 120"))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.Kind == "Deployment" && !strings.Contains(o.YAML, "terminationGracePeriodSeconds: 120\n") {
			t.Errorf("terminationGracePeriodSeconds: 120 not kept")
		}
	}
}

// TestManifests_Current: deploy/kubernetes is the chart's fresh render
// (run `make manifests` after changing the chart).
func TestManifests_Current(t *testing.T) {
	objs, err := Render(chartDir, DefaultRelease, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Manifest(ManifestHeader, objs)
	got, err := os.ReadFile(manifestsFile)
	if err != nil {
		t.Fatalf("%v (run make manifests)", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) || i < len(wl); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("%s is stale (run make manifests): line %d is %q, the chart renders %q", manifestsFile, i+1, g, w)
			}
		}
	}
}
