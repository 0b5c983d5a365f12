package pixiu

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/meshgate/meshgate/config"
)

// listenerYAML is a conf.yaml with one HTTP listener: the given http_filters
// and route_config routes (flow YAML), and the given clusters.
func listenerYAML(filters, routes, clusters string) string {
	return fmt.Sprintf(`static_resources:
  listeners:
    - name: l
      address: { socket_address: { address: 127.0.0.1, port: 8888 } }
      filter_chains:
        filters:
          - name: dgp.filter.httpconnectionmanager
            config:
              route_config: { routes: %s }
              http_filters: %s
  clusters: %s
`, routes, filters, clusters)
}

const (
	oneCluster  = `[ { name: c, endpoints: [ { socket_address: { address: 127.0.0.1, port: 1314 } } ] } ]`
	httpProxy   = `{ name: dgp.filter.http.httpproxy }`
	apiFilter   = `{ name: dgp.filter.http.apiconfig }`
	apiListener = `[ ` + apiFilter + ` ]`
)

// Review findings: each case failed before its fix.
func TestConvertFindings(t *testing.T) {
	tests := []struct {
		name     string
		conf     string
		api      string
		check    func(t *testing.T, f *config.File)
		warnings []string
	}{
		{
			name: "mapTo negative is refused, no panic",
			conf: listenerYAML(apiListener, `[]`, oneCluster),
			api: `resources: [ { path: /u, methods: [ { httpVerb: GET, enable: true, integrationRequest: { requestType: dubbo,
  interface: a.B, method: m, clusterName: c, mappingParams: [ { name: queryStrings.id, mapTo: "-1" } ] } } ] } ]`,
			check: func(t *testing.T, f *config.File) {
				r := f.Listeners[0].VirtualHosts[0].Routes[0]
				if r.Dubbo == nil || len(r.Dubbo.Params) != 0 {
					t.Errorf("route = %+v", r)
				}
			},
			warnings: []string{`mapTo "-1" is not an argument index`},
		},
		{
			name: "cors with an empty allow_origin allows nothing",
			conf: listenerYAML(`[ { name: dgp.filter.http.cors, config: { allow_origin: [], allow_methods: GET } }, `+httpProxy+` ]`,
				`[ { match: { prefix: / }, route: { cluster: c } } ]`, oneCluster),
			check: func(t *testing.T, f *config.File) {
				if cors := f.Listeners[0].VirtualHosts[0].CORS; cors != nil {
					t.Errorf("cors = %+v", cors)
				}
			},
			warnings: []string{"allow_origin is empty"},
		},
		{
			name: "cors says Pixiu compares Host and meshgate Origin",
			conf: listenerYAML(`[ { name: dgp.filter.http.cors, config: { allow_origin: [ a.example.com ] } }, `+httpProxy+` ]`,
				`[ { match: { prefix: / }, route: { cluster: c } } ]`, oneCluster),
			check: func(t *testing.T, f *config.File) {
				if cors := f.Listeners[0].VirtualHosts[0].CORS; cors == nil || cors.AllowOrigins[0] != `regex:https?://a\.example\.com` {
					t.Errorf("cors = %+v", cors)
				}
			},
			warnings: []string{"request's Host", "meshgate compares the Origin header"},
		},
		{
			name: "rate limit on every route its pattern covers",
			conf: listenerYAML(`[ { name: dgp.filter.http.ratelimit, config: {
    resources: [ { name: u, items: [ { matchStrategy: 1, pattern: "/user/*" } ] }, { name: e, items: [ { matchStrategy: 0, pattern: /docs } ] } ],
    rules: [ { enable: true, flowRule: { resource: u, threshold: 10 } }, { enable: true, flowRule: { resource: e, threshold: 5 } } ] } }, `+httpProxy+` ]`,
				`[ { match: { prefix: /health }, route: { cluster: c } }, { match: { path: "/user/:id" }, route: { cluster: c } },
   { match: { prefix: /user/admin }, route: { cluster: c } }, { match: { prefix: /user }, route: { cluster: c } },
   { match: { prefix: / }, route: { cluster: c } } ]`, oneCluster),
			check: func(t *testing.T, f *config.File) {
				r := f.Listeners[0].VirtualHosts[0].Routes
				if r[0].RateLimit != nil || r[4].RateLimit != nil {
					t.Errorf("/health or / got a limit: %+v %+v", r[0].RateLimit, r[4].RateLimit)
				}
				for _, i := range []int{1, 2, 3} {
					if r[i].RateLimit == nil || r[i].RateLimit.Requests != 10 {
						t.Errorf("route %d (%+v) rate limit = %+v", i, r[i].Match, r[i].RateLimit)
					}
				}
			},
			warnings: []string{`prefix "/" is only partly covered by resource "u" pattern "/user/*"`,
				`prefix "/" is only partly covered by resource "e" pattern "/docs"`},
		},
		{
			name: "http schema https gives TLS clusters; parameterTypes read",
			conf: listenerYAML(apiListener, `[]`, `[ { name: c, endpoints: [ { socket_address: { address: 127.0.0.1, port: 1314 } } ] },
  { name: dc, endpoints: [ { socket_address: { address: 127.0.0.1, port: 20880 } } ] } ]`),
			api: `resources:
  - path: /a
    methods: [ { httpVerb: GET, enable: true, integrationRequest: { requestType: http, host: "backend.example.com", schema: https } } ]
  - path: /b
    methods: [ { httpVerb: GET, enable: true, integrationRequest: { requestType: http, clusterName: c, schema: https } } ]
  - path: /d
    methods: [ { httpVerb: POST, enable: true, integrationRequest: { requestType: dubbo, interface: a.B, method: m, clusterName: dc,
      parameterTypes: [ java.lang.String ], mappingParams: [ { name: queryStrings.id, mapTo: 0 } ] } } ]`,
			check: func(t *testing.T, f *config.File) {
				r := f.Listeners[0].VirtualHosts[0].Routes
				byName := map[string]config.ClusterConfig{}
				for _, c := range f.Clusters {
					byName[c.Name] = c
				}
				if cl := byName[r[0].Cluster]; cl.TLS == nil || cl.TLS.SNI != "backend.example.com" || cl.Endpoints[0].Address != "backend.example.com:443" {
					t.Errorf("host cluster = %+v", cl)
				}
				if cl := byName[r[1].Cluster]; cl.TLS == nil || cl.Endpoints[0].Address != "127.0.0.1:1314" {
					t.Errorf("https cluster for c = %+v (route %+v)", cl, r[1])
				}
				if byName["c"].TLS != nil {
					t.Errorf("cluster c became TLS: %+v", byName["c"])
				}
				if d := r[2].Dubbo; d == nil || len(d.Params) != 1 || d.Params[0].Type != "java.lang.String" {
					t.Errorf("dubbo = %+v", d)
				}
			},
			warnings: []string{},
		},
		{
			name: "onAir true is online",
			conf: listenerYAML(apiListener, `[]`, oneCluster),
			api: `resources: [ { path: /a, methods: [ { httpVerb: GET, onAir: true, integrationRequest: { requestType: http, clusterName: c } },
  { httpVerb: POST, onAir: false, integrationRequest: { requestType: http, clusterName: c } } ] } ]`,
			check: func(t *testing.T, f *config.File) {
				r := f.Listeners[0].VirtualHosts[0].Routes
				if r[0].DirectResponse != nil || r[0].Cluster != "c" {
					t.Errorf("onAir route = %+v", r[0])
				}
				if r[1].DirectResponse == nil || r[1].DirectResponse.Status != 406 {
					t.Errorf("offline route = %+v", r[1])
				}
			},
			warnings: []string{},
		},
		{
			name: "access log console is stdout",
			conf: listenerYAML(`[ { name: dgp.filter.http.accesslog, config: { outPutPath: console } }, `+httpProxy+` ]`,
				`[ { match: { prefix: / }, route: { cluster: c } } ]`, oneCluster),
			check: func(t *testing.T, f *config.File) {
				if al := f.Listeners[0].AccessLog; len(al) != 1 || al[0].Path != "/dev/stdout" {
					t.Errorf("access_log = %+v", al)
				}
			},
			warnings: []string{},
		},
		{
			name: "warnings cannot break out of their comment",
			conf: listenerYAML(`[ `+httpProxy+` ]`, `[ { match: { prefix: / }, route: { cluster: c } } ]`, oneCluster) +
				"\"a\\rclusters: x\": 1\n\"b\\u2028listeners: y\": 1\n\"c\\u0085d\\u2029e\\u200bf\": 1\n",
			check:    func(t *testing.T, f *config.File) {},
			warnings: []string{`a\rclusters: x: not converted`, `b\u2028listeners: y`},
		},
		{
			name: "IPv6 addresses keep their brackets",
			conf: strings.Replace(listenerYAML(apiListener, `[]`, `[ { name: c, endpoints: [ { socket_address: { address: "::1", port: 1314 } } ] } ]`),
				"address: 127.0.0.1, port: 8888", `address: "::", port: 8888`, 1),
			api: `resources: [ { path: /a, methods: [ { httpVerb: GET, enable: true, integrationRequest: { requestType: http, host: "::1" } } ] },
  { path: /c, methods: [ { httpVerb: GET, enable: true, integrationRequest: { requestType: http, clusterName: c } } ] } ]`,
			check: func(t *testing.T, f *config.File) {
				if f.Listeners[0].Address != "[::]:8888" {
					t.Errorf("listener address = %q", f.Listeners[0].Address)
				}
				var addrs []string
				for _, c := range f.Clusters {
					addrs = append(addrs, c.Endpoints[0].Address)
				}
				if got := strings.Join(addrs, ","); got != "[::1]:1314,[::1]:80" {
					t.Errorf("endpoints = %s", got)
				}
			},
			warnings: []string{},
		},
		{
			name: "gRPC services go to the first cluster; shadowed ones warn",
			conf: listenerYAML(`[ { name: dgp.filter.http.grpcproxy, config: { path: proto } } ]`,
				`[ { match: { prefix: / }, route: { cluster: g1 } }, { match: { prefix: / }, route: { cluster: g2 } } ]`,
				`[ { name: g1, endpoints: [ { socket_address: { address: 127.0.0.1, port: 1 } } ] }, { name: g2, endpoints: [ { socket_address: { address: 127.0.0.1, port: 2 } } ] } ]`),
			check: func(t *testing.T, f *config.File) {
				r := f.Listeners[0].VirtualHosts[0].Routes
				if len(r) != 1 || r[0].Cluster != "g1" {
					t.Errorf("routes = %+v", r)
				}
			},
			warnings: []string{`cluster "g2" is unreachable for hello.v1.Greeter`},
		},
		{
			name: "methods are quoted; threshold NaN and Inf refused",
			conf: listenerYAML(`[ { name: dgp.filter.http.ratelimit, config: {
    resources: [ { name: u, items: [ { matchStrategy: 1, pattern: "/" } ] } ],
    rules: [ { enable: true, flowRule: { resource: u, threshold: "NaN" } }, { enable: true, flowRule: { resource: u, threshold: "+Inf" } } ] } }, `+httpProxy+` ]`,
				`[ { match: { prefix: /a, methods: [ GET, "*" ] }, route: { cluster: c } }, { match: { prefix: /b, methods: [ "*" ] }, route: { cluster: c } } ]`, oneCluster),
			check: func(t *testing.T, f *config.File) {
				l := f.Listeners[0]
				if l.RateLimit != nil {
					t.Errorf("listener rate limit = %+v", l.RateLimit)
				}
				r := l.VirtualHosts[0].Routes
				if h := r[0].Match.Headers; len(h) != 1 || h[0].Regex != `GET|\*` {
					t.Errorf("methods = %+v", h)
				}
			},
			warnings: []string{`threshold "NaN" is not a finite number`, `threshold "+Inf" is not a finite number`, `method "*"`},
		},
		{
			name: "two filter chains without domains keep the first",
			conf: `static_resources:
  listeners:
    - name: l
      address: { socket_address: { address: 127.0.0.1, port: 8888 } }
      filter_chains:
        - filters: [ { name: dgp.filter.httpconnectionmanager, config: { route_config: { routes: [ { match: { prefix: /a }, route: { cluster: c } } ] }, http_filters: [ ` + httpProxy + ` ] } } ]
        - filters: [ { name: dgp.filter.httpconnectionmanager, config: { route_config: { routes: [ { match: { prefix: /b }, route: { cluster: c } } ] }, http_filters: [ ` + httpProxy + ` ] } } ]
  clusters: ` + oneCluster + "\n",
			check: func(t *testing.T, f *config.File) {
				vh := f.Listeners[0].VirtualHosts
				if len(vh) != 1 || vh[0].Routes[0].Match.Prefix != "/a" {
					t.Errorf("virtual hosts = %+v", vh)
				}
			},
			warnings: []string{`filter_chains[1]: domain "*" is served by filter_chains[0] already`},
		},
		{
			name: "dubbo doubts: protocol, ZooKeeper group, resource timeout, per-listener dubbo timeouts",
			conf: `static_resources:
  listeners:
    - name: d
      address: { socket_address: { address: 127.0.0.1, port: 8881 } }
      filter_chains:
        filters:
          - name: dgp.filter.httpconnectionmanager
            config:
              route_config: { routes: [] }
              http_filters:
                - ` + apiFilter + `
                - name: dgp.filter.http.dubboproxy
                  config:
                    dubboProxyConfig:
                      registries: { zk: { protocol: zookeeper, address: "127.0.0.1:2181", group: g1, namespace: ns } }
                      timeout_config: { connect_timeout: 25s, request_timeout: 20s }
    - name: h
      address: { socket_address: { address: 127.0.0.1, port: 8882 } }
      filter_chains:
        filters:
          - name: dgp.filter.httpconnectionmanager
            config:
              route_config: { routes: [ { match: { prefix: / }, route: { cluster: c } } ] }
              http_filters: [ ` + httpProxy + ` ]
  clusters: ` + oneCluster + `
  timeout_config: { connect_timeout: 2s, request_timeout: 10s }
`,
			api: `resources:
  - path: /r
    timeout: 3s
    methods:
      - { httpVerb: GET, enable: true, integrationRequest: { requestType: dubbo, interface: a.B, method: m, protocol: rest } }
      - { httpVerb: PUT, enable: true, timeout: 4s, integrationRequest: { requestType: dubbo, interface: a.B, method: m } }
  - path: /s
    methods:
      - { httpVerb: GET, enable: true, integrationRequest: { requestType: dubbo, interface: a.B, method: m } }`,
			check: func(t *testing.T, f *config.File) {
				d := f.Listeners[0].VirtualHosts[0].Routes
				want := []string{"3s", "4s", "20s"}
				for i, w := range want {
					if d[i].Timeout == nil || d[i].Timeout.Duration.String() != w {
						t.Errorf("dubbo route %d timeout = %v, want %s", i, d[i].Timeout, w)
					}
				}
				if h := f.Listeners[1].VirtualHosts[0].Routes[0]; h.Timeout == nil || h.Timeout.Duration.String() != "10s" {
					t.Errorf("other listener's route timeout = %v, want 10s", h.Timeout)
				}
				if c := f.Clusters[0]; c.ConnectTimeout == nil || c.ConnectTimeout.Duration.String() != "2s" {
					t.Errorf("cluster c connect_timeout = %v", c.ConnectTimeout)
				}
			},
			warnings: []string{`protocol "rest" is not dubbo or tri`, "registries.zk.group", "registries.zk.namespace",
				"timeout_config.connect_timeout: 25s not converted"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var res *Result
			var err error
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("panic: %v", p)
					}
				}()
				var api []byte
				if tc.api != "" {
					api = []byte(tc.api)
				}
				res, err = Convert([]byte(tc.conf), api, "testdata")
			}()
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, res.File)
			all := strings.Join(res.Warnings, "\n")
			t.Logf("warnings:\n%s", all)
			for _, w := range tc.warnings {
				if !strings.Contains(all, w) {
					t.Errorf("no warning %q in:\n%s", w, all)
				}
			}
			if tc.warnings != nil && len(tc.warnings) == 0 && len(res.Warnings) > 0 {
				t.Errorf("unexpected warnings:\n%s", all)
			}
			text, err := res.YAML()
			if err != nil {
				t.Fatal(err)
			}
			for _, bad := range []string{"\r", "\u0085", "\u2028", "\u2029"} {
				if bytes.Contains(text, []byte(bad)) {
					t.Errorf("output holds a %q line break:\n%q", bad, text)
				}
			}
			for _, line := range strings.Split(string(text), "\n") {
				if strings.HasPrefix(line, "#") {
					continue
				}
				if strings.HasPrefix(line, "clusters: x") || strings.HasPrefix(line, "listeners: y") {
					t.Errorf("injected line %q", line)
				}
			}
			validate(t, text)
		})
	}
}
