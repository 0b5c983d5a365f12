package integration

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/server/admin"
)

// istioPartialConfig: two Gateways (plain HTTP on Port; HTTPS on TLSPort,
// which an EnvoyFilter makes a virtual listener, bind_to_port: false, which
// meshgate refuses), ServiceEntries echo and secure, and, with SecureMTLS,
// an EnvoyFilter giving the secure cluster subset load balancing, which
// meshgate refuses too.
const istioPartialConfig = `
{{if .WithHTTP}}apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw, namespace: istio-system }
spec:
  selector: { istio: ingressgateway }
  servers:
  - port: { number: {{.Port}}, name: http, protocol: HTTP }
    hosts: ["*"]
---
{{end}}apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw-tls, namespace: istio-system }
spec:
  selector: { istio: ingressgateway }
  servers:
  - port: { number: {{.TLSPort}}, name: https, protocol: HTTPS }
    hosts: ["*"]
    tls: { mode: SIMPLE, credentialName: no-such-secret }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: echo, namespace: default }
spec:
  hosts: [echo.example.com]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [ { number: 80, name: http, protocol: HTTP } ]
  endpoints: [ { address: 127.0.0.1, ports: { http: {{.V1HTTP}} } } ]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: secure, namespace: default }
spec:
  hosts: [secure.example.com]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [ { number: 80, name: http, protocol: HTTP } ]
  endpoints: [ { address: 127.0.0.1, ports: { http: {{.V2HTTP}} } } ]
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: { name: virtual-tls-listener, namespace: istio-system }
spec:
  configPatches:
  - applyTo: LISTENER
    match: { context: GATEWAY, listener: { portNumber: {{.TLSPort}} } }
    patch: { operation: MERGE, value: { bind_to_port: false } }
{{if .SecureMTLS}}---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: { name: subset-lb, namespace: istio-system }
spec:
  configPatches:
  - applyTo: CLUSTER
    match: { context: GATEWAY, cluster: { service: secure.example.com } }
    patch: { operation: MERGE, value: { lb_subset_config: { fallback_policy: ANY_ENDPOINT } } }
{{end}}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: routes, namespace: default }
spec:
  hosts: ["*"]
  gateways: [istio-system/gw, istio-system/gw-tls]
  http:
  - match: [ { uri: { prefix: /secure } } ]
    route: [ { destination: { host: secure.example.com, port: { number: 80 } } } ]
  - match: [ { uri: { prefix: /echo } } ]
    route: [ { destination: { host: echo.example.com, port: { number: 80 } } } ]
`

type istioPartialData struct {
	Port, TLSPort        string
	V1HTTP, V2HTTP       string
	WithHTTP, SecureMTLS bool
}

const secureCluster = "outbound|80||secure.example.com"

// One resource meshgate cannot build does not take down the others, as
// in Envoy: a cluster with subset load balancing and an HTTPS Gateway
// listener that does not bind its port leave every other cluster and the other Gateway's listener
// serving, on a fresh gateway and on a running one; the NACKs name exactly
// the rejected resources; readiness follows the listeners.
func TestIstio_BadResourceLeavesOthersServing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs Istio's discovery server; skipped with -short")
	}
	forBothProtocols(t, testBadResourceLeavesOthersServing)
}

func testBadResourceLeavesOthersServing(t *testing.T, delta bool) {
	v1, v2 := startBackend(t, "v1"), startBackend(t, "v2")
	data := istioPartialData{Port: port(freeAddr(t)), TLSPort: port(freeAddr(t)), V1HTTP: port(v1.HTTPAddr), V2HTTP: port(v2.HTTPAddr),
		WithHTTP: true, SecureMTLS: true}
	ist := startIstiod(t, string(render(t, istioPartialConfig, data)))
	g := startIstioGateway(t, ist.xds, delta)
	hc := httpClient(t)
	listener, tlsListener := "0.0.0.0_"+data.Port, "0.0.0.0_"+data.TLSPort
	ready := readinessOf(g)

	addr := waitIstio(t, g, hc, listener)
	t.Run("fresh gateway", func(t *testing.T) {
		// Every cluster but the secure one, BlackHoleCluster included.
		set := g.srv.Config()
		for _, want := range []string{"outbound|80||echo.example.com", "BlackHoleCluster"} {
			if set.Cluster(want) == nil {
				t.Errorf("cluster %s is missing; have %v", want, names(set.All(config.ClusterType)))
			}
		}
		if set.Cluster(secureCluster) != nil {
			t.Errorf("cluster %s went live although it needs subset load balancing", secureCluster)
		}
		resp, body := do(t, hc, newReq(t, "GET", "http://"+addr+"/secure", nil))
		if resp.StatusCode != 503 || !strings.Contains(string(body), secureCluster) {
			t.Errorf("/secure = %d %s, want 503 naming %s", resp.StatusCode, body, secureCluster)
		}
		wantRejected(t, g.client.Failures(), config.ClusterType, []string{secureCluster}, "lb_subset_config")
		wantRejected(t, g.client.Failures(), config.ListenerType, []string{tlsListener}, "")
		if set.Listener(tlsListener) != nil {
			t.Errorf("listener %s went live without its certificate", tlsListener)
		}
		// istiod itself received NACKs naming exactly these, with why.
		var nacks map[string]string
		waitFor(t, "istiod to record the NACKs", func() bool {
			nacks = ist.lastNACKs(t)
			return nacks[config.ClusterType] != "" && nacks[config.ListenerType] != ""
		})
		t.Logf("istiod's record of the NACKs:\n CDS: %s\n LDS: %s", nacks[config.ClusterType], nacks[config.ListenerType])
		wantNamed(t, nacks[config.ClusterType], "cluster", []string{secureCluster}, "lb_subset_config")
		wantNamed(t, nacks[config.ListenerType], "listener", []string{tlsListener}, "bind_to_port")

		for _, u := range g.srv.Unimplemented() {
			t.Logf("accepted, not done: %s %s: %q", u.GetTypeUrl(), u.GetName(), u.GetUnimplemented())
		}
		code, st := ready()
		if code != 200 {
			t.Errorf("/ready = %d %+v with %s serving, want 200", code, st, listener)
		}
		if got := st.states(); got[listener] != "SERVING" || got[tlsListener] != "FAILED" {
			t.Errorf("/ready?verbose listeners %v, want %s SERVING and %s FAILED", got, listener, tlsListener)
		}
	})

	t.Run("running gateway", func(t *testing.T) {
		// Without the rule the secure cluster builds and serves.
		d := data
		d.SecureMTLS = false
		ist.apply(string(render(t, istioPartialConfig, d)))
		waitFor(t, "the secure cluster to serve", func() bool {
			e, err := getEcho(hc, "http://"+addr+"/secure")
			return err == nil && e.Server == "v2"
		})
		if f := g.client.Failures()[config.ClusterType]; len(f) != 0 {
			t.Errorf("cluster failures after the fix: %v", f)
		}
		// The rule again: the new version is NACKed, the previous one keeps
		// serving, and nothing else moves.
		ist.apply(string(render(t, istioPartialConfig, data)))
		waitFor(t, "the NACK of the secure cluster", func() bool {
			_, ok := g.client.Failures()[config.ClusterType][secureCluster]
			return ok
		})
		wantRejected(t, g.client.Failures(), config.ClusterType, []string{secureCluster}, "lb_subset_config")
		for range 20 {
			for path, server := range map[string]string{"/secure": "v2", "/echo": "v1"} {
				if e, err := getEcho(hc, "http://"+addr+path); err != nil || e.Server != server {
					t.Fatalf("%s after the NACK: %+v, %v; want %s serving", path, e, err, server)
				}
			}
		}
	})
}

// Readiness waits for a listener to serve: a gateway whose every listener
// is rejected is not ready, and turns ready when a good one arrives.
func TestIstio_ReadinessFollowsListeners(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs Istio's discovery server; skipped with -short")
	}
	forBothProtocols(t, func(t *testing.T, delta bool) {
		v1, v2 := startBackend(t, "v1"), startBackend(t, "v2")
		data := istioPartialData{Port: port(freeAddr(t)), TLSPort: port(freeAddr(t)), V1HTTP: port(v1.HTTPAddr), V2HTTP: port(v2.HTTPAddr)}
		// The gateway starts before its control plane: not ready, saying so.
		xdsAddr := freeAddr(t)
		g := startIstioGateway(t, xdsAddr, delta)
		ready := readinessOf(g)
		if code, st := ready(); code != 503 || !slices.ContainsFunc(st.Missing, func(m string) bool {
			return strings.Contains(m, "initial fetch from the control plane at "+xdsAddr+" has not finished")
		}) {
			t.Fatalf("/ready before the control plane answers = %d %+v, want 503 naming the initial fetch", code, st)
		}
		ist := startIstiodAt(t, string(render(t, istioPartialConfig, data)), xdsAddr)
		tlsListener := "0.0.0.0_" + data.TLSPort
		waitFor(t, "the HTTPS listener's rejection", func() bool {
			_, ok := g.client.Failures()[config.ListenerType][tlsListener]
			return ok && g.client.Synced()
		})
		code, st := ready()
		if code != 503 || !slices.ContainsFunc(st.Missing, func(m string) bool {
			return strings.Contains(m, "no listener is serving") && strings.Contains(m, tlsListener)
		}) {
			t.Fatalf("/ready with every listener rejected = %d %+v, want 503 saying no listener serves (%s rejected)", code, st, tlsListener)
		}

		d := data
		d.WithHTTP = true
		ist.apply(string(render(t, istioPartialConfig, d)))
		listener := "0.0.0.0_" + data.Port
		waitIstio(t, g, httpClient(t), listener)
		if code, st := ready(); code != 200 || st.states()[listener] != "SERVING" {
			t.Errorf("/ready with %s serving = %d %+v, want 200", listener, code, st)
		}
	})
}

type readyState struct {
	State     string   `json:"state"`
	Missing   []string `json:"missing"`
	Listeners []struct {
		Name  string `json:"name"`
		State string `json:"state"`
		Error string `json:"error"`
	} `json:"listeners"`
}

func (r readyState) states() map[string]string {
	out := map[string]string{}
	for _, l := range r.Listeners {
		out[l.Name] = l.State
	}
	return out
}

// readinessOf asks the gateway's admin /ready?verbose, as a probe would.
func readinessOf(g *xdsGateway) func() (int, readyState) {
	h := admin.Handler(g.srv, prometheus.NewRegistry(), admin.WithXDS(g.client))
	return func() (int, readyState) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ready?verbose", nil))
		var st readyState
		_ = json.Unmarshal(rec.Body.Bytes(), &st)
		return rec.Code, st
	}
}

// wantRejected checks that exactly names are rejected among a type's
// resources, each with a reason (containing why, if given).
func wantRejected(t *testing.T, failures map[string]map[string]config.Failure, typeURL string, want []string, why string) {
	t.Helper()
	var got []string
	for n, f := range failures[typeURL] {
		got = append(got, n)
		if f.Details == "" || !strings.Contains(f.Details, why) {
			t.Errorf("rejection of %s: %q, want a reason mentioning %q", n, f.Details, why)
		}
	}
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Errorf("rejected %s = %v, want exactly %v", typeURL, got, want)
	}
}

// wantNamed checks that a NACK's error detail names exactly the given
// resources (one `<kind> "<name>": reason` line each) and says why.
func wantNamed(t *testing.T, detail, kind string, want []string, why string) {
	t.Helper()
	var got []string
	for _, line := range strings.Split(detail, "\n") {
		rest, ok := strings.CutPrefix(line, kind+` "`)
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(rest, `"`)
		got = append(got, name)
	}
	sort.Strings(got)
	if !slices.Equal(got, want) || !strings.Contains(detail, why) {
		t.Errorf("NACK detail names %v, want exactly %v with a reason mentioning %q:\n%s", got, want, why, detail)
	}
}

func names(rs []*config.Resource) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Name
	}
	return out
}
