package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/meshgate/meshgate/dubbo"
	dubbotestv1 "github.com/meshgate/meshgate/proto/dubbotest/v1"
	"github.com/meshgate/meshgate/registry"
)

// bridgeConfig fronts Dubbo2 providers (a static cluster of their dubbo
// ports) with routes that call them: the zero-config convention under
// /dubbo/, and routes that map path, query, headers and body.
const bridgeConfig = `
listeners:
  - name: main
    address: 127.0.0.1:0
    virtual_hosts:
      - routes:
          - match: { prefix: /users/ }
            cluster: greeter
            dubbo:
              interface: org.apache.dubbo.samples.GreeterService
              version: 1.0.0
              group: g1
              method: GetUser
              path_template: /users/{id}
              params:
                - { from: body, type: org.apache.dubbo.samples.User }
          - match: { prefix: /describe }
            cluster: greeter
            dubbo:
              interface: org.apache.dubbo.samples.BridgeService
              version: 1.0.0
              group: g1
              method: Describe
              params:
                - { from: query.i, type: int }
                - { from: query.l, type: long }
                - { from: body.d, type: double }
                - { from: body.b, type: boolean }
                - { from: header.x-name, type: java.lang.String }
          - match: { path: /later }
            cluster: greeter
            dubbo: { interface: org.apache.dubbo.samples.BridgeService, version: 1.0.0, group: g1, method: Later, types: [java.util.Date, int] }
          - match: { path: /double }
            cluster: greeter
            dubbo: { interface: org.apache.dubbo.samples.BridgeService, version: 1.0.0, group: g1, method: Double, types: [java.math.BigDecimal] }
          - match: { path: /add }
            cluster: greeter
            dubbo: { interface: org.apache.dubbo.samples.GreeterService, version: 1.0.0, group: g1, method: Add, types: [long, long] }
          - match: { prefix: /dubbo/ }
            cluster: greeter
            timeout: 1s
{{.Retries}}
            dubbo: { version: 1.0.0, group: g1, attachments: { headers: [x-user] } }
clusters:
  - name: greeter
    protocol: dubbo
{{.Extra}}
    endpoints: [ {{range $i, $a := .Providers}}{{if $i}}, {{end}}"{{$a}}"{{end}} ]
`

type bridgeData struct {
	Providers      []string
	Retries, Extra string
}

// post sends a JSON body and returns the status and the decoded answer.
func post(t *testing.T, c *http.Client, url, body string, hdr ...string) (int, any, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		t.Fatalf("POST %s: %d, not JSON: %q", url, resp.StatusCode, raw)
	}
	return resp.StatusCode, v, raw
}

// answer is a bridged call's expected result.
type answer struct {
	path, body string
	hdr        []string
	status     int
	check      func(t *testing.T, v any)
}

func equalJSON(want string) func(t *testing.T, v any) {
	return func(t *testing.T, v any) {
		t.Helper()
		var w any
		d := json.NewDecoder(strings.NewReader(want))
		d.UseNumber()
		if err := d.Decode(&w); err != nil {
			t.Fatalf("bad want %s: %v", want, err)
		}
		if !reflect.DeepEqual(v, w) {
			got, _ := json.Marshal(v)
			t.Errorf("answer %s, want %s", got, want)
		}
	}
}

// errorSays checks a JSON error answer's message (and exception).
func errorSays(status string, parts ...string) func(t *testing.T, v any) {
	return func(t *testing.T, v any) {
		t.Helper()
		e, _ := v.(map[string]any)["error"].(map[string]any)
		b, _ := json.Marshal(e)
		if e == nil || e["status"] != status {
			t.Errorf("error %s, want status %s", b, status)
		}
		for _, p := range parts {
			if !strings.Contains(string(b), p) {
				t.Errorf("error %s does not say %q", b, p)
			}
		}
	}
}

const (
	greeterPath = "/dubbo/org.apache.dubbo.samples.GreeterService/"
	bridgePath  = "/dubbo/org.apache.dubbo.samples.BridgeService/"
)

// A real dubbo-go v3.3.2 provider behind the bridge: every kind of
// argument and result, a method that throws, a provider slower than the
// route's timeout, unknown methods and services, wrong arguments.
func TestDubboBridge_DubboGoProvider(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ZooKeeper and a dubbo-go provider; skipped with -short")
	}
	zkServer := startZooKeeper(t) // the provider will not start without a registry
	p := startProvider(t, providerSpec{App: "bridge-a", Registry: "zookeeper", RegistryAddr: zkServer.addr, Mode: "interface", Version: "1.0.0", Group: "g1", Bridge: true})
	g := startGateway(t, render(t, bridgeConfig, bridgeData{Providers: []string{"127.0.0.1:" + p.dubboPort}}))
	c := httpClient(t)
	base := "http://" + g.addr("main")
	for _, tc := range []answer{
		// Primitives, by the convention and by mapping query, body and a header.
		{path: greeterPath + "SayHello", body: `["world"]`, status: 200, check: equalJSON(`"Hello world from bridge-a"`)},
		{path: greeterPath + "Add", body: `[40, 2]`, status: 200, check: equalJSON(`42`)},
		{path: "/describe?i=7&l=9007199254740993", body: `{"d": 2.5, "b": true}`, hdr: []string{"X-Name", "é"}, status: 200,
			check: equalJSON(`"int=7 long=9007199254740993 double=2.5 boolean=true string=é"`)},
		// A POJO in and out (dubbo-go names the Go field ID "iD").
		{path: "/users/u1", body: `{"id": "u1", "name": "Ann", "age": 30}`, status: 200, check: equalJSON(`{"iD": "u1", "name": "Ann", "age": 31}`)},
		{path: greeterPath + "GetUser", body: `[{"id": "u2", "name": "Bo", "age": 1}]`, status: 200, check: equalJSON(`{"iD": "u2", "name": "Bo", "age": 2}`)},
		// Nested collections: a map of lists, a list of POJOs.
		{path: bridgePath + "Totals", body: `[{"a": [1, 2], "b": [3]}]`, status: 200, check: equalJSON(`{"a": 3, "b": 3}`)},
		{path: bridgePath + "Oldest", body: `[[{"id": "a", "age": 3}, {"id": "b", "age": 9}]]`, status: 200, check: equalJSON(`{"iD": "b", "name": "", "age": 9}`)},
		// java.util.Date and java.math.BigDecimal, typed by the route.
		{path: "/later", body: `["2024-02-28T00:00:00Z", 2]`, status: 200, check: func(t *testing.T, v any) {
			s, _ := v.(string)
			if when, err := time.Parse(time.RFC3339Nano, s); err != nil || !when.Equal(time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)) {
				t.Errorf("Later answered %v, want 2024-03-01T00:00:00Z", v)
			}
		}},
		{path: "/later", body: `[1709078400000, 1]`, status: 200, check: func(t *testing.T, v any) {
			s, _ := v.(string)
			if when, err := time.Parse(time.RFC3339Nano, s); err != nil || !when.Equal(time.UnixMilli(1709078400000).AddDate(0, 0, 1)) {
				t.Errorf("Later from epoch millis answered %v", v)
			}
		}},
		{path: "/double", body: `["12345678901234567890.0123456789"]`, status: 200, check: equalJSON(`"24691357802469135780.0246913578"`)},
		// Headers become attachments: named ones, prefixed ones without the
		// prefix, and the W3C trace context.
		{path: bridgePath + "Attachment", body: `["x-user"]`, hdr: []string{"X-User", "ann"}, status: 200, check: equalJSON(`"ann"`)},
		{path: bridgePath + "Attachment", body: `["region"]`, hdr: []string{"X-Dubbo-Region", "eu"}, status: 200, check: equalJSON(`"eu"`)},
		{path: bridgePath + "Attachment", body: `["traceparent"]`, hdr: []string{"Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
			status: 200, check: equalJSON(`"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"`)},
		{path: bridgePath + "Attachment", body: `["x-other"]`, hdr: []string{"X-Other", "not mapped"}, status: 200, check: equalJSON(`"<none>"`)},
		// The request's id travels as an attachment: the client's, or one made up.
		{path: bridgePath + "Attachment", body: `["x-request-id"]`, hdr: []string{"X-Request-Id", "req-42"}, status: 200, check: equalJSON(`"req-42"`)},
		{path: bridgePath + "Attachment", body: `["x-request-id"]`, status: 200, check: func(t *testing.T, v any) {
			if s, _ := v.(string); !uuidV4.MatchString(s) {
				t.Errorf("the provider got x-request-id %v, want a version 4 UUID", v)
			}
		}},
		// The provider's own failures.
		{path: bridgePath + "Fail", body: `["no"]`, status: 500, check: errorSays("UNKNOWN", `"exception":{"class":"java.lang.Throwable","message":"refused: no"}`)},
		{path: bridgePath + "Sleep", body: `[3000]`, status: 504, check: errorSays("DEADLINE_EXCEEDED", "timeout")},
		{path: greeterPath + "Nope", body: `[]`, status: 500, check: errorSays("UNKNOWN", `\"Nope\" method is not found`)},
		{path: "/dubbo/org.apache.dubbo.samples.Missing/Add", body: `[1, 2]`, status: 500, check: errorSays("UNKNOWN", "org.apache.dubbo.samples.Missing")},
		// The caller's mistakes, caught before any call.
		{path: "/add", body: `["a", "b"]`, status: 400, check: errorSays("INVALID_ARGUMENT", `argument 0 (long): \"a\" is not an integer`)},
		{path: "/add", body: `[1]`, status: 400, check: errorSays("INVALID_ARGUMENT", "takes (long, long), not 1 arguments")},
		{path: "/later", body: `["yesterday", 1]`, status: 400, check: errorSays("INVALID_ARGUMENT", "neither ISO-8601 nor epoch milliseconds")},
		{path: greeterPath + "Add", body: `{"a": 1}`, status: 400, check: errorSays("INVALID_ARGUMENT", "JSON array")},
		{path: greeterPath + "Add", body: `[1, 2`, status: 400, check: errorSays("INVALID_ARGUMENT", "not JSON")},
		{path: "/describe?i=7", body: `{"d": 2.5, "b": true}`, status: 400, check: errorSays("INVALID_ARGUMENT", "argument 1 (query.l) is missing")},
		{path: "/describe?i=99999999999&l=1", body: `{"d": 2.5, "b": true}`, hdr: []string{"X-Name", "x"}, status: 400, check: errorSays("INVALID_ARGUMENT", "out of range")},
	} {
		t.Run(tc.path+" "+tc.body, func(t *testing.T) {
			status, v, raw := post(t, c, base+tc.path, tc.body, tc.hdr...)
			if status != tc.status {
				t.Errorf("status %d (%s), want %d", status, raw, tc.status)
			}
			tc.check(t, v)
		})
	}
}

// A provider killed mid-load: calls in flight on its connections and new
// calls to it fail over to the other provider by the route's retries, and
// outlier detection ejects it.
func TestDubboBridge_ProviderKilledMidLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ZooKeeper and dubbo-go providers; skipped with -short")
	}
	zkServer := startZooKeeper(t)
	spec := providerSpec{Registry: "zookeeper", RegistryAddr: zkServer.addr, Mode: "interface", Version: "1.0.0", Group: "g1", Bridge: true}
	spec.App = "bridge-a"
	a := startProvider(t, spec)
	spec.App = "bridge-b"
	b := startProvider(t, spec)
	g := startGateway(t, render(t, bridgeConfig, bridgeData{
		Providers: []string{"127.0.0.1:" + a.dubboPort, "127.0.0.1:" + b.dubboPort},
		Retries:   indent(`retries: { retry_on: "connect-failure,reset", num_retries: 2, skip_previous_hosts: true }`, 12),
		// Envoy's default of 3 concurrent retries is less than the calls in
		// flight on the provider when it dies.
		Extra: indent(`
outlier_detection: { consecutive_5xx: 2, interval: 100ms, base_ejection_time: 30s, max_ejection_percent: 50 }
circuit_breakers: { max_retries: 16 }`, 4),
	}))
	url := "http://" + g.addr("main") + bridgePath + "Sleep"
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	var ok, failed atomic.Int64
	var lastErr atomic.Value
	served := map[string]*atomic.Int64{"bridge-a": {}, "bridge-b": {}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				// Each call takes 20ms at the provider, so that some are in
				// flight when it dies.
				resp, err := c.Post(url, "application/json", strings.NewReader(`[20]`))
				if err != nil {
					failed.Add(1)
					lastErr.Store(err.Error())
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
					lastErr.Store(fmt.Sprintf("%d %s", resp.StatusCode, body))
					continue
				}
				ok.Add(1)
				for name, n := range served {
					if strings.Contains(string(body), name) {
						n.Add(1)
					}
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	beforeKill := served["bridge-a"].Load()
	a.kill()
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()

	if beforeKill == 0 || served["bridge-b"].Load() == 0 {
		t.Fatalf("served a:%d (before the kill) b:%d: the load did not reach both providers (%d failed, last: %v)", beforeKill, served["bridge-b"].Load(), failed.Load(), lastErr.Load())
	}
	if f := failed.Load(); f > 0 {
		t.Errorf("%d of %d calls failed after a provider was killed (last: %v); retries should have hidden it", f, f+ok.Load(), lastErr.Load())
	}
	cl := clusterNamed(t, g, "greeter")
	for _, h := range cl.Hosts() {
		if h.Address == "127.0.0.1:"+a.dubboPort && h.HealthFlags() != "/failed_outlier_check" {
			t.Errorf("the killed provider's health flags are %q, want /failed_outlier_check", h.HealthFlags())
		}
	}
	t.Logf("%d calls ok, %d failed; a served %d before its kill; %d retries", ok.Load(), failed.Load(), beforeKill, cl.Stats.RqRetry.Load())
}

const javaBridgeConfig = `
listeners:
  - name: main
    address: 127.0.0.1:0
    virtual_hosts:
      - routes:
          - match: { prefix: /java/ }
            cluster: "dubbo|org.apache.dubbo.samples.BridgeService|1.0.0|g1"
            timeout: 2s
            dubbo: {}
          # Triple's gRPC form from Dubbo consumers: passed through.
          - match: { prefix: /org.apache.dubbo.samples.GreeterService/, grpc: true }
            cluster: "tri|org.apache.dubbo.samples.GreeterService|1.0.0|g1"
          # The same service over its tri port (non-IDL Triple, hessian2).
          - match: { prefix: /java-tri/ }
            cluster: "tri|org.apache.dubbo.samples.BridgeService|1.0.0|g1"
            timeout: 2s
            dubbo: {}
# The test runs this registry's watcher itself (cmd/meshgate does it for
# the binary); the section lets routes name its clusters.
registries:
  - name: zk
    zookeeper: { servers: [ "{{.}}" ] }
`

// A real Java Dubbo 3.3 provider behind the bridge, found in ZooKeeper: its
// published signatures type every argument (no route config beyond the
// cluster), and every Java type JSON maps onto goes in and comes back.
func TestDubboBridge_JavaProvider(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ZooKeeper and a Java Dubbo provider; skipped with -short")
	}
	zkServer := startZooKeeper(t)
	jp := launchJavaProvider(t, javaProviderSpec{App: "java-bridge", Registry: "zookeeper://" + zkServer.addr,
		Mode: "interface", Version: "1.0.0", Group: "g1", Bridge: true})
	go func() { _, _ = consumerBinary() }() // built while Java starts
	g := startGateway(t, render(t, javaBridgeConfig, zkServer.addr))
	w, err := registry.NewZooKeeper(g.store, registry.ZooKeeperOptions{Metadata: dubbo.CallMetadataService, Name: "zk", Servers: []string{zkServer.addr},
		Mode: registry.ModeInterface, SessionTimeout: 4 * time.Second, Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	runWatcher(t, w)
	jp.wait()

	c := httpClient(t)
	base := "http://" + g.addr("main") + "/java/"
	// Until the metadata report's signatures have arrived, the bridge
	// would guess the types: wait for a call only they make work.
	waitFor(t, "the provider's signatures", func() bool {
		status, _, _ := post(t, c, base+"sum", `[[1, 2]]`)
		return status == http.StatusOK
	})
	for _, tc := range []answer{
		{path: "describe", body: `[7, 9007199254740993, 2.5, true, "é", "x", 3, 4, 1.5]`, status: 200,
			check: equalJSON(`"int=7 long=9007199254740993 double=2.5 boolean=true string=é char=x short=3 byte=4 float=1.5 from java-bridge"`)},
		{path: "totals", body: `[{"a": [1, 2], "b": [3]}]`, status: 200, check: equalJSON(`{"a": 3, "b": 3}`)},
		{path: "oldest", body: `[[{"id": 1, "name": "a", "age": 3}, {"id": 2, "name": "b", "age": 9}]]`, status: 200, check: equalJSON(`{"id": 2, "name": "b", "age": 9}`)},
		{path: "later", body: `["2024-02-28T00:00:00Z", 2]`, status: 200, check: func(t *testing.T, v any) {
			s, _ := v.(string)
			if when, err := time.Parse(time.RFC3339Nano, s); err != nil || !when.Equal(time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)) {
				t.Errorf("later answered %v, want 2024-03-01T00:00:00Z", v)
			}
		}},
		{path: "doubled", body: `["12345678901234567890.0123456789"]`, status: 200, check: equalJSON(`"24691357802469135780.0246913578"`)},
		{path: "square", body: `["123456789012345678901234567890"]`, status: 200,
			check: equalJSON(`"15241578753238836750495351562536198787501905199875019052100"`)},
		{path: "next", body: `["BLUE"]`, status: 200, check: equalJSON(`"RED"`)},
		{path: "reverse", body: `["AQID"]`, status: 200, check: equalJSON(`"AwIB"`)},
		{path: "sum", body: `[[1, 2, 3]]`, status: 200, check: equalJSON(`6`)},
		{path: "join", body: `[["a", "b"], null]`, status: 200, check: equalJSON(`"a,b"`)},
		{path: "join", body: `[["a", "b"], 7]`, status: 200, check: equalJSON(`"a7b"`)},
		{path: "fail", body: `["no"]`, status: 500, check: errorSays("UNKNOWN", `"class":"java.lang.IllegalArgumentException"`, `"message":"refused: no"`)},
		{path: "sleep", body: `[5000]`, status: 504, check: errorSays("DEADLINE_EXCEEDED")},
		{path: "nope", body: `[]`, status: 404, check: errorSays("UNIMPLEMENTED", `no method \"nope\"`)},
		{path: "sum", body: `[["x"]]`, status: 400, check: errorSays("INVALID_ARGUMENT", "argument 0 (int[])")},
		{path: "describe", body: `[1]`, status: 400, check: errorSays("INVALID_ARGUMENT", "takes (int, long, double, boolean, java.lang.String, char, short, byte, float), not 1 arguments")},
		// Java's generic filter cannot realize an enum from an object: it
		// answers SERVICE_ERROR, its stack trace left out of the answer.
		{path: "next", body: `[{"not": "an enum"}]`, status: 500, check: errorSays("INTERNAL", `"dubbo_status":"SERVICE_ERROR"`, "Cannot reflectively create enum objects")},
	} {
		t.Run(tc.path+" "+tc.body, func(t *testing.T) {
			status, v, raw := post(t, c, base+tc.path, tc.body, tc.hdr...)
			if status != tc.status {
				t.Errorf("status %d (%s), want %d", status, raw, tc.status)
			}
			tc.check(t, v)
		})
	}
}

// Dubbo's consistent hashing on an argument: on a ring_hash cluster with
// hash_arguments [0], calls with one first argument reach one provider,
// and the keys spread over both.
func TestDubboBridge_ConsistentHashOnArgument(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ZooKeeper and dubbo-go providers; skipped with -short")
	}
	zkServer := startZooKeeper(t)
	spec := providerSpec{Registry: "zookeeper", RegistryAddr: zkServer.addr, Mode: "interface", Version: "1.0.0", Group: "g1"}
	spec.App = "hash-a"
	a := startProvider(t, spec)
	spec.App = "hash-b"
	b := startProvider(t, spec)
	g := startGateway(t, []byte(fmt.Sprintf(`
listeners:
  - name: main
    address: 127.0.0.1:0
    virtual_hosts:
      - routes:
          - match: { prefix: /hello/ }
            cluster: greeter
            dubbo: { interface: %s, version: 1.0.0, group: g1, method: SayHello, hash_arguments: [0] }
clusters:
  - { name: greeter, protocol: dubbo, lb_policy: ring_hash, endpoints: [ "127.0.0.1:%s", "127.0.0.1:%s" ] }
`, greeter, a.dubboPort, b.dubboPort)))
	c := httpClient(t)
	byProvider := map[string]int{}
	for i := range 20 {
		key := fmt.Sprintf("user-%d", i)
		first := ""
		for range 5 {
			status, v, raw := post(t, c, "http://"+g.addr("main")+"/hello/", `["`+key+`"]`)
			if status != 200 {
				t.Fatalf("%s: %d %s", key, status, raw)
			}
			s, _ := v.(string)
			who := s[strings.LastIndex(s, " ")+1:]
			if first == "" {
				first = who
				byProvider[who]++
			} else if who != first {
				t.Fatalf("%s reached %s and then %s", key, first, who)
			}
		}
	}
	if byProvider["hash-a"] == 0 || byProvider["hash-b"] == 0 {
		t.Errorf("keys by provider %v: want both to hold some", byProvider)
	}
}

// descriptorFile writes the FileDescriptorSet of a compiled-in proto file
// (as `buf build -o` would) for a route's proto_descriptor.
func descriptorFile(t *testing.T, fd protoreflect.FileDescriptor) string {
	t.Helper()
	set := &descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{protodesc.ToFileDescriptorProto(fd)}}
	b, err := proto.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "greeter.pb")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// gRPC callers reach a real dubbo-go Dubbo2 provider through the bridge:
// each protobuf request becomes the method's arguments through its JSON
// form, and the answer fills the response message.
func TestDubboBridge_GRPCCallers(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ZooKeeper and a dubbo-go provider; skipped with -short")
	}
	zkServer := startZooKeeper(t)
	p := startProvider(t, providerSpec{App: "grpc-bridge", Registry: "zookeeper", RegistryAddr: zkServer.addr, Mode: "interface", Version: "1.0.0", Group: "g1", Bridge: true})
	desc := descriptorFile(t, dubbotestv1.File_dubbotest_v1_greeter_proto)
	g := startGateway(t, []byte(fmt.Sprintf(`
listeners:
  - name: main
    address: 127.0.0.1:0
    virtual_hosts:
      - routes:
          - match: { prefix: /dubbotest.v1.GreeterService/ }
            cluster: greeter
            dubbo: { interface: org.apache.dubbo.samples.GreeterService, version: 1.0.0, group: g1, proto_descriptor: %[1]q }
          - match: { prefix: /dubbotest.v1.BridgeService/ }
            cluster: greeter
            timeout: 5s
            dubbo: { interface: org.apache.dubbo.samples.BridgeService, version: 1.0.0, group: g1, proto_descriptor: %[1]q }
          - match: { prefix: /nodesc/ }
            cluster: greeter
            dubbo: { interface: org.apache.dubbo.samples.GreeterService, version: 1.0.0, group: g1 }
clusters:
  - { name: greeter, protocol: dubbo, endpoints: [ "127.0.0.1:%[2]s" ] }
`, desc, p.dubboPort)))
	cc := dialGRPC(t, g.addr("main"))
	greeterClient, bridgeClient := dubbotestv1.NewGreeterServiceClient(cc), dubbotestv1.NewBridgeServiceClient(cc)
	ctx := context.Background()

	hello, err := greeterClient.SayHello(ctx, &dubbotestv1.SayHelloRequest{Name: "grpc"})
	if err != nil || hello.GetMessage() != "Hello grpc from grpc-bridge" {
		t.Errorf("SayHello: %v, %v", hello, err)
	}
	sum, err := greeterClient.Add(ctx, &dubbotestv1.AddRequest{A: 1 << 40, B: 2})
	if err != nil || sum.GetSum() != 1<<40+2 {
		t.Errorf("Add: %v, %v", sum, err)
	}
	zero, err := greeterClient.Add(ctx, &dubbotestv1.AddRequest{A: 0, B: 0})
	if err != nil || zero.GetSum() != 0 {
		t.Errorf("Add of zeros (fields absent on the wire are arguments too): %v, %v", zero, err)
	}
	user, err := greeterClient.GetUser(ctx, &dubbotestv1.GetUserRequest{User: &dubbotestv1.User{Id: "u1", Name: "Ann", Age: 30}})
	if err != nil || user.GetID() != "u1" || user.GetName() != "Ann" || user.GetAge() != 31 {
		t.Errorf("GetUser: %v, %v", user, err)
	}

	for _, tc := range []struct {
		name string
		call func() error
		code codes.Code
		says string
	}{
		{"a method that throws", func() error {
			_, err := bridgeClient.Fail(ctx, &dubbotestv1.FailRequest{Msg: "no"})
			return err
		}, codes.Unknown, "refused: no"},
		{"grpc-timeout shorter than the provider", func() error {
			tctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			_, err := bridgeClient.Sleep(tctx, &dubbotestv1.SleepRequest{Ms: 3000})
			return err
		}, codes.DeadlineExceeded, ""},
		{"a method the descriptor does not have", func() error {
			return cc.Invoke(ctx, "/dubbotest.v1.GreeterService/Nope", &dubbotestv1.SayHelloRequest{}, &dubbotestv1.SayHelloResponse{})
		}, codes.Unimplemented, "unknown method Nope"},
		{"a route without a descriptor", func() error {
			return cc.Invoke(ctx, "/nodesc/SayHello", &dubbotestv1.SayHelloRequest{}, &dubbotestv1.SayHelloResponse{})
		}, codes.Unimplemented, "proto descriptor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if st, _ := status.FromError(err); st.Code() != tc.code || !strings.Contains(st.Message(), tc.says) {
				t.Errorf("got %v, want %v saying %q", err, tc.code, tc.says)
			}
		})
	}
}

// A Java provider stopped gracefully under load (SIGTERM: it sends its
// consumers the readonly event, finishes what is in flight, then closes):
// the bridge stops sending it calls and nothing fails.
func TestDubboBridge_JavaProviderStopsUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ZooKeeper and Java Dubbo providers; skipped with -short")
	}
	zkServer := startZooKeeper(t)
	spec := javaProviderSpec{Registry: "zookeeper://" + zkServer.addr, Mode: "interface", Version: "1.0.0", Group: "g1", Bridge: true}
	spec.App = "java-a"
	a := launchJavaProvider(t, spec)
	spec.App = "java-b"
	b := launchJavaProvider(t, spec)
	a.wait()
	b.wait()
	g := startGateway(t, []byte(fmt.Sprintf(`
listeners:
  - name: main
    address: 127.0.0.1:0
    virtual_hosts:
      - routes:
          - match: { prefix: /java/ }
            cluster: java
            timeout: 5s
            retries: { retry_on: "connect-failure,reset", num_retries: 2, skip_previous_hosts: true }
            dubbo: { interface: org.apache.dubbo.samples.BridgeService, version: 1.0.0, group: g1, types: [long] }
clusters:
  - { name: java, protocol: dubbo, endpoints: [ "127.0.0.1:%s", "127.0.0.1:%s" ], circuit_breakers: { max_retries: 16 } }
`, a.dubboPort, b.dubboPort)))
	url := "http://" + g.addr("main") + "/java/sleep"
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var ok, failed atomic.Int64
	var lastErr atomic.Value
	served := map[string]*atomic.Int64{"java-a": {}, "java-b": {}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Post(url, "application/json", strings.NewReader(`[20]`))
				if err != nil {
					failed.Add(1)
					lastErr.Store(err.Error())
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
					lastErr.Store(fmt.Sprintf("%d %s", resp.StatusCode, body))
					continue
				}
				ok.Add(1)
				for name, n := range served {
					if strings.Contains(string(body), name) {
						n.Add(1)
					}
				}
			}
		}()
	}
	time.Sleep(time.Second)
	start := time.Now()
	a.stop()
	stopped := time.Since(start)
	afterStop := served["java-a"].Load()
	// Java sent its readonly event before closing: the pool holds the
	// provider away rather than dialling it again.
	if !clusterNamed(t, g, "java").Dubbo.Away("127.0.0.1:" + a.dubboPort) {
		t.Error("the stopped Java provider's readonly event was not seen")
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	if afterStop == 0 || served["java-b"].Load() == 0 {
		t.Fatalf("served a:%d b:%d: the load did not reach both providers (%d failed, last %v)", afterStop, served["java-b"].Load(), failed.Load(), lastErr.Load())
	}
	if f := failed.Load(); f > 0 {
		t.Errorf("%d of %d calls failed while a provider stopped gracefully (last: %v)", f, f+ok.Load(), lastErr.Load())
	}
	if n := served["java-a"].Load(); n != afterStop {
		t.Errorf("the stopped provider answered %d calls after it exited", n-afterStop)
	}
	t.Logf("%d calls ok, %d failed; a served %d and took %v to stop; %d retries", ok.Load(), failed.Load(), afterStop,
		stopped.Round(time.Millisecond), clusterNamed(t, g, "java").Stats.RqRetry.Load())
}

// REST callers reach a dubbo-go provider's non-IDL Triple port (hessian2
// in Triple's wrapper messages) through the same dubbo route block, on a
// cluster of protocol tri.
func TestDubboBridge_NonIDLTripleProvider(t *testing.T) {
	if testing.Short() {
		t.Skip("runs ZooKeeper and a dubbo-go provider; skipped with -short")
	}
	zkServer := startZooKeeper(t)
	p := startProvider(t, providerSpec{App: "tri-bridge", Registry: "zookeeper", RegistryAddr: zkServer.addr, Mode: "interface", Version: "1.0.0", Group: "g1", Bridge: true})
	g := startGateway(t, []byte(fmt.Sprintf(`
listeners:
  - name: main
    address: 127.0.0.1:0
    virtual_hosts:
      - routes:
          - match: { prefix: /users/ }
            cluster: tri
            dubbo:
              interface: org.apache.dubbo.samples.GreeterService
              version: 1.0.0
              group: g1
              method: GetUser
              params: [ { from: body, type: org.apache.dubbo.samples.User } ]
          - match: { prefix: /tri/ }
            cluster: tri
            timeout: 1s
            dubbo: { version: 1.0.0, group: g1, attachments: { headers: [ x-user ] } }
clusters:
  - { name: tri, protocol: tri, endpoints: [ "127.0.0.1:%s" ] }
`, p.triPort)))
	c := httpClient(t)
	base := "http://" + g.addr("main")
	for _, tc := range []answer{
		{path: "/tri/org.apache.dubbo.samples.GreeterService/SayHello", body: `["triple"]`, status: 200, check: equalJSON(`"Hello triple from tri-bridge"`)},
		{path: "/tri/org.apache.dubbo.samples.GreeterService/Add", body: `[40, 2]`, status: 200, check: equalJSON(`42`)},
		// A POJO argument goes as an object of its class; the answer's
		// object (a class the gateway does not know) comes back without it.
		{path: "/users/", body: `{"id": "u1", "name": "Ann", "age": 30}`, status: 200, check: equalJSON(`{"id": "u1", "name": "Ann", "age": 31}`)},
		{path: "/tri/org.apache.dubbo.samples.BridgeService/Attachment", body: `["x-user"]`, hdr: []string{"X-User", "ann"}, status: 200, check: equalJSON(`"ann"`)},
		{path: "/tri/org.apache.dubbo.samples.BridgeService/Fail", body: `["no"]`, status: 500, check: errorSays("UNKNOWN", "refused: no")},
		{path: "/tri/org.apache.dubbo.samples.BridgeService/Sleep", body: `[3000]`, status: 504, check: errorSays("DEADLINE_EXCEEDED")},
		{path: "/tri/org.apache.dubbo.samples.GreeterService/Nope", body: `[]`, status: 404, check: errorSays("UNIMPLEMENTED")},
	} {
		t.Run(tc.path+" "+tc.body, func(t *testing.T) {
			status, v, raw := post(t, c, base+tc.path, tc.body, tc.hdr...)
			if status != tc.status {
				t.Errorf("status %d (%s), want %d", status, raw, tc.status)
			}
			tc.check(t, v)
		})
	}
}
