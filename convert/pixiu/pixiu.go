// Package pixiu converts an Apache Pixiu gateway config (conf.yaml and the
// api config its apiconfig filter reads) into meshgate's friendly YAML.
//
// What has a meshgate equivalent is converted; everything else becomes a
// one-line warning, so that nothing of the Pixiu config is lost silently.
// docs/pixiu.md lists what becomes of each Pixiu feature.
package pixiu

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"sigs.k8s.io/yaml"

	"github.com/meshgate/meshgate/config"
)

// Pixiu's filter names, as its conf.yaml writes them.
const (
	httpConnectionManager = "dgp.filter.httpconnectionmanager"
	filterHTTPProxy       = "dgp.filter.http.httpproxy"
	filterDubboProxy      = "dgp.filter.http.dubboproxy"
	filterGRPCProxy       = "dgp.filter.http.grpcproxy"
	filterAPIConfig       = "dgp.filter.http.apiconfig"
	filterCORS            = "dgp.filter.http.cors"
	filterRateLimit       = "dgp.filter.http.ratelimit"
	filterJWT             = "dgp.filter.http.auth.jwt"
	filterTimeout         = "dgp.filter.http.timeout"
	filterAccessLog       = "dgp.filter.http.accesslog"
	filterResponse        = "dgp.filter.http.response"
	filterRecovery        = "dgp.filter.http.recovery"
)

// Result is a converted config and what could not be converted.
type Result struct {
	File     *config.File
	Warnings []string
}

// YAML renders the converted config, the warnings first as comments.
func (r *Result) YAML() ([]byte, error) {
	body, err := toYAML(r.File)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("# Converted from an Apache Pixiu config by `meshgate convert pixiu`.\n")
	if len(r.Warnings) > 0 {
		b.WriteString("# Not converted (no meshgate equivalent, or needs a decision):\n")
		for _, w := range r.Warnings {
			b.WriteString("#   warning: " + escapeText(w) + "\n")
		}
	}
	b.Write(body)
	return b.Bytes(), nil
}

// ConvertFile reads conf.yaml and, when apiPath is not empty, that api
// config instead of the one the apiconfig filter names.
func ConvertFile(confPath, apiPath string) (*Result, error) {
	conf, err := os.ReadFile(confPath)
	if err != nil {
		return nil, fmt.Errorf("read pixiu config: %w", err)
	}
	var api []byte
	if apiPath != "" {
		if api, err = os.ReadFile(apiPath); err != nil {
			return nil, fmt.Errorf("read pixiu api config: %w", err)
		}
	}
	res, err := Convert(conf, api, filepath.Dir(confPath))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", confPath, err)
	}
	return res, nil
}

// Convert converts a Pixiu conf.yaml. api is the api config (nil: the file
// the apiconfig filter names, read relative to baseDir); baseDir also
// resolves the grpcproxy filter's proto folder.
func Convert(conf, api []byte, baseDir string) (*Result, error) {
	var root map[string]any
	if err := yaml.Unmarshal(conf, &root); err != nil {
		return nil, fmt.Errorf("not YAML: %w", err)
	}
	top := asNode("", root)
	if _, ok := top.get("static_resources").(map[string]any); !ok {
		return nil, fmt.Errorf("no static_resources: not a Pixiu conf.yaml")
	}
	c := &converter{baseDir: baseDir, api: api, clusters: map[string]*config.ClusterConfig{}}
	static := asNode("static_resources", top.get("static_resources"))
	c.timeouts(static.child("timeout_config"))
	c.convertClusters(static)
	// Registries first: the api config's Dubbo routes name their clusters.
	for i, a := range static.list("adapters") {
		c.convertAdapter(asNode(fmt.Sprintf("static_resources.adapters[%d]", i), a))
	}
	for i, l := range static.list("listeners") {
		c.convertListener(asNode(fmt.Sprintf("static_resources.listeners[%d]", i), l))
	}
	if sd := static.child("shutdown_config"); sd.has("timeout") {
		if d, ok := c.duration(sd.path+".timeout", sd.str("timeout")); ok {
			c.file.DrainTimeout = &config.Duration{Duration: d}
		}
	}
	c.leftovers(static.child("shutdown_config"))
	c.leftovers(static.child("timeout_config"))
	c.leftovers(static)
	c.leftovers(top)
	if len(c.file.Listeners) == 0 {
		return nil, fmt.Errorf("no listener could be converted:\n  %s", strings.Join(c.warnings, "\n  "))
	}
	for _, name := range c.clusterOrder {
		c.file.Clusters = append(c.file.Clusters, *c.clusters[name])
	}
	return &Result{File: &c.file, Warnings: c.warnings}, nil
}

type converter struct {
	baseDir string
	api     []byte

	file         config.File
	clusters     map[string]*config.ClusterConfig
	clusterOrder []string
	registries   map[string]bool // by kind and address, to list each once
	listenerIDs  map[string]bool

	connectTimeout *config.Duration
	requestTimeout *config.Duration
	warnings       []string
}

func (c *converter) warnf(path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	c.warnings = append(c.warnings, escapeText(msg))
}

// escapeText writes every character that is not printable (line breaks
// such as \r, U+0085, U+2028 and U+2029 included) as a Go escape, so that
// no key or value of the input can end a warning's comment line (in the
// YAML output or on a terminal) and start YAML of its own.
func escapeText(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == ' ' || unicode.IsPrint(r):
			b.WriteRune(r)
		default:
			q := strconv.QuoteRune(r) // '\u2028'
			b.WriteString(q[1 : len(q)-1])
		}
		i += size
	}
	return b.String()
}

// leftovers reports every key of n that nothing converted.
func (c *converter) leftovers(n *node) {
	for _, k := range n.unread() {
		c.warnf(join(n.path, k), "not converted (meshgate has no equivalent)")
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// duration reads Pixiu's durations: Go strings ("5s", "1000ms") or bare
// numbers of seconds.
func (c *converter) duration(path, s string) (time.Duration, bool) {
	s = strings.TrimSpace(s)
	if d, err := time.ParseDuration(s); err == nil {
		return d, true
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(f * float64(time.Second)), true
	}
	c.warnf(path, "%q is not a duration; left out", s)
	return 0, false
}

func (c *converter) timeouts(n *node) {
	if n.has("connect_timeout") {
		if d, ok := c.duration(n.path+".connect_timeout", n.str("connect_timeout")); ok {
			c.connectTimeout = &config.Duration{Duration: d}
		}
	}
	if n.has("request_timeout") {
		if d, ok := c.duration(n.path+".request_timeout", n.str("request_timeout")); ok {
			c.requestTimeout = &config.Duration{Duration: d}
		}
	}
}

// Pixiu's load balancer names (model.LbPolicyType, several spellings over
// its versions) and meshgate's.
var lbPolicies = map[string]string{
	"roundrobin": "round_robin", "lb": "round_robin", "weightrobin": "round_robin", "wightrobin": "round_robin",
	"rand": "random", "random": "random",
	"ringhashing": "ring_hash", "consistenthashing": "ring_hash", "iphash": "ring_hash",
	"maglevhashing": "maglev",
}

func (c *converter) convertClusters(static *node) {
	for i, raw := range static.list("clusters") {
		n := asNode(fmt.Sprintf("static_resources.clusters[%d]", i), raw)
		name := n.str("name")
		if name == "" {
			c.warnf(n.path, "cluster without a name; left out")
			continue
		}
		cl := &config.ClusterConfig{Name: name, ConnectTimeout: c.connectTimeout}
		if lb := n.str("lb_policy"); lb != "" {
			mg, ok := lbPolicies[strings.ToLower(lb)]
			switch {
			case !ok:
				c.warnf(n.path+".lb_policy", "%q has no meshgate equivalent; round_robin is used", lb)
			case mg == "ring_hash" || mg == "maglev":
				cl.LBPolicy = mg
				c.warnf(n.path+".lb_policy", "%s became %s: give the routes a hash_policy (header, cookie, query or source_ip), else every request hashes alike", lb, mg)
			case mg != "round_robin":
				cl.LBPolicy = mg
			}
		}
		n.get("consistent") // tuning of Pixiu's own hash rings: meshgate sizes its own
		switch t := strings.ToLower(n.str("type")); t {
		case "", "static":
		case "strictdns", "strict_dns":
			cl.Type = "strict_dns"
		case "logicaldns", "logical_dns":
			cl.Type = "logical_dns"
		default:
			c.warnf(n.path+".type", "cluster type %q is not converted; the cluster is static", n.str("type"))
		}
		for j, e := range n.list("endpoints") {
			en := asNode(fmt.Sprintf("%s.endpoints[%d]", n.path, j), e)
			sa := en.child("socket_address")
			addr := sa.str("address")
			if addr == "" {
				c.warnf(en.path, "endpoint without an address; left out")
				continue
			}
			port := sa.str("port")
			if port == "" {
				port = "80"
			}
			if p := strings.ToUpper(sa.str("protocol_type")); p == "GRPC" || p == "HTTP2" {
				cl.Protocol = map[string]string{"GRPC": "grpc", "HTTP2": "http2"}[p]
			}
			en.skip("id", "name") // identifiers only
			cl.Endpoints = append(cl.Endpoints, config.EndpointConfig{Address: hostPort(addr, port)})
			c.leftovers(sa)
			c.leftovers(en)
		}
		if n.has("health_checks") {
			c.warnf(n.path+".health_checks", "not converted: write the cluster's health_check (http, grpc or tcp) by hand")
		}
		c.leftovers(n)
		c.addCluster(cl)
	}
}

// hostPort joins a host (an IPv6 one in brackets or not) and a port.
func hostPort(host, port string) string {
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	return net.JoinHostPort(host, port)
}

func (c *converter) addCluster(cl *config.ClusterConfig) {
	if _, dup := c.clusters[cl.Name]; !dup {
		c.clusterOrder = append(c.clusterOrder, cl.Name)
	}
	c.clusters[cl.Name] = cl
}

// listener is one Pixiu listener on its way to meshgate.
type listener struct {
	path   string
	out    *config.ListenerConfig
	vhosts []*vhost
	// Set by the HTTP filters.
	proxies       map[string]bool // httpproxy, dubboproxy, grpcproxy, apiconfig
	cors          *config.CORSConfig
	timeout       *config.Duration
	grpcServices  []string
	rateLimits    []rateLimit
	apiConfigPath string
	// The dubboproxy filter's timeout_config, for this listener's Dubbo
	// routes only, and the clusters those routes call.
	dubboTimeout  *config.Duration
	dubboConnect  *config.Duration
	dubboConnPath string
	dubboStatic   map[string]bool
	dubboRegistry bool
}

type vhost struct {
	path    string
	domains []string
	routes  []config.RouteConfig
	// grpc is the cluster each gRPC service (or "" for every one) goes to.
	grpc map[string]string
}

var nameUnsafe = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

func (c *converter) convertListener(n *node) {
	name := strings.Trim(nameUnsafe.ReplaceAllString(n.str("name"), "-"), "-")
	if name == "" {
		name = "listener"
	}
	if c.listenerIDs == nil {
		c.listenerIDs = map[string]bool{}
	}
	for base, i := name, 2; c.listenerIDs[name]; i++ {
		name = fmt.Sprintf("%s-%d", base, i)
	}
	l := &listener{path: n.path, out: &config.ListenerConfig{Name: name}, proxies: map[string]bool{}, dubboStatic: map[string]bool{}}
	sa := n.child("address").child("socket_address")
	proto := strings.ToUpper(n.str("protocol_type"))
	if p := strings.ToUpper(sa.str("protocol_type")); proto == "" {
		proto = p
	}
	switch proto {
	case "", "HTTP", "HTTP2":
	case "HTTPS":
		c.warnf(n.path+".protocol_type", "HTTPS: give the listener tls.cert_file and tls.key_file (Pixiu's certs_dir and automatic certificates are not converted)")
	default:
		c.warnf(n.path, "%s listener not converted: meshgate's listeners serve HTTP/1.1, HTTP/2 and gRPC (Dubbo2 consumers: dubbo_listeners)", proto)
		return
	}
	host := sa.str("address")
	if host == "" {
		host = "0.0.0.0"
	}
	port := sa.str("port")
	if port == "" {
		port = "8881" // Pixiu's default
	}
	l.out.Address = hostPort(host, port)
	if sa.has("domains") || sa.has("certs_dir") {
		c.warnf(sa.path, "domains and certs_dir (automatic TLS certificates) are not converted")
	}
	sa.skip("domains", "certs_dir")
	c.leftovers(sa)
	c.leftovers(n.child("address"))

	cfg := n.child("config")
	c.listenerTimeouts(l, cfg)

	for i, fc := range n.list("filter_chains") {
		fcn := asNode(fmt.Sprintf("%s.filter_chains[%d]", n.path, i), fc)
		vh := &vhost{path: fcn.path, domains: fcn.child("filter_chain_match").strings("domains"), grpc: map[string]string{}}
		fcn.get("filter_chain_match")
		for j, f := range fcn.list("filters") {
			fn := asNode(fmt.Sprintf("%s.filters[%d]", fcn.path, j), f)
			switch fname := fn.str("name"); fname {
			case httpConnectionManager:
				c.convertHCM(l, vh, fn.child("config"))
			default:
				c.warnf(fn.path, "network filter %s not converted (only %s is)", fname, httpConnectionManager)
			}
			c.leftovers(fn)
		}
		c.leftovers(fcn)
		if len(vh.routes) > 0 && c.claimDomains(l, vh) {
			l.vhosts = append(l.vhosts, vh)
		}
	}
	c.leftovers(n)
	if len(l.vhosts) == 0 {
		c.warnf(n.path, "no route could be converted; listener %q left out", name)
		return
	}
	c.listenerIDs[name] = true
	c.applyRateLimits(l)
	for i, vh := range l.vhosts {
		out := config.VirtualHostConfig{Name: fmt.Sprintf("%s-%d", name, i), Domains: vh.domains, Routes: vh.routes, CORS: l.cors}
		l.out.VirtualHosts = append(l.out.VirtualHosts, out)
	}
	c.file.Listeners = append(c.file.Listeners, *l.out)
}

// claimDomains keeps each domain on the first filter chain that names it
// (no domains is "*"): meshgate refuses a domain in two virtual hosts. It
// reports false when the chain is left with no domain.
func (c *converter) claimDomains(l *listener, vh *vhost) bool {
	owner := func(d string) string {
		for _, o := range l.vhosts {
			ds := o.domains
			if len(ds) == 0 {
				ds = []string{"*"}
			}
			for _, od := range ds {
				if strings.EqualFold(od, d) {
					return o.path
				}
			}
		}
		return ""
	}
	ds := vh.domains
	if len(ds) == 0 {
		ds = []string{"*"}
	}
	var kept []string
	for _, d := range ds {
		if o := owner(d); o != "" {
			c.warnf(vh.path, "domain %q is served by %s already; this chain's routes for it are left out", d, strings.TrimPrefix(o, l.path+"."))
			continue
		}
		kept = append(kept, d)
	}
	if len(kept) == 0 {
		return false
	}
	if len(vh.domains) > 0 {
		vh.domains = kept
	}
	return true
}

// listenerTimeouts converts the listener's HTTP server settings.
func (c *converter) listenerTimeouts(l *listener, cfg *node) {
	if cfg.has("idle_timeout") {
		if d, ok := c.duration(cfg.path+".idle_timeout", cfg.str("idle_timeout")); ok {
			l.out.IdleTimeout = &config.Duration{Duration: d}
		}
	}
	if cfg.has("read_timeout") {
		if d, ok := c.duration(cfg.path+".read_timeout", cfg.str("read_timeout")); ok {
			l.out.RequestTimeout = &config.Duration{Duration: d}
		}
	}
	if cfg.has("write_timeout") {
		cfg.get("write_timeout")
		c.warnf(cfg.path+".write_timeout", "not converted: meshgate bounds a call by the route's timeout instead")
	}
	if cfg.has("max_header_bytes") {
		if n, err := strconv.Atoi(cfg.str("max_header_bytes")); err == nil && n > 0 {
			l.out.MaxRequestHeadersKB = uint32((n + 1023) / 1024)
		}
	}
	c.leftovers(cfg)
}

func (c *converter) convertHCM(l *listener, vh *vhost, hcm *node) {
	if hcm.has("timeout") {
		if d, ok := c.duration(hcm.path+".timeout", hcm.str("timeout")); ok {
			l.timeout = &config.Duration{Duration: d}
		}
	}
	if hcm.has("idle_timeout") {
		if d, ok := c.duration(hcm.path+".idle_timeout", hcm.str("idle_timeout")); ok {
			l.out.IdleTimeout = &config.Duration{Duration: d}
		}
	}
	if hcm.has("server_name") {
		c.warnf(hcm.path+".server_name", "not converted (meshgate sets no Server header of its own)")
	}
	hcm.get("server_name")
	if hcm.boolean("generate_request_id") {
		c.warnf(hcm.path+".generate_request_id", "not converted: meshgate keeps the caller's x-request-id and adds none")
	}
	hcm.get("generate_request_id")

	for i, f := range hcm.list("http_filters") {
		c.convertHTTPFilter(l, asNode(fmt.Sprintf("%s.http_filters[%d]", hcm.path, i), f))
	}
	rc := hcm.child("route_config")
	routes := rc.list("routes")
	if rc.boolean("dynamic") {
		c.warnf(rc.path+".dynamic", "dynamic routes (from Pixiu's admin) are not converted; only the listed ones are")
	}
	c.leftovers(rc)
	c.leftovers(hcm)

	if l.proxies[filterAPIConfig] {
		vh.routes = append(vh.routes, c.convertAPIConfig(l)...)
	}
	c.dubboConnectTimeout(l)
	for i, r := range routes {
		rn := asNode(fmt.Sprintf("%s.routes[%d]", rc.path, i), r)
		vh.routes = append(vh.routes, c.convertRoute(l, vh, rn)...)
	}
}

// dubboConnectTimeout gives the dubboproxy filter's connect_timeout to the
// static clusters this listener's Dubbo routes call; a registry's clusters
// have no connect timeout in meshgate's config.
func (c *converter) dubboConnectTimeout(l *listener) {
	if l.dubboConnect == nil {
		return
	}
	for name := range l.dubboStatic {
		c.clusters[name].ConnectTimeout = l.dubboConnect
	}
	if l.dubboRegistry {
		c.warnf(l.dubboConnPath, "%s not converted for the clusters a registry finds (meshgate's registries set no connect timeout)", l.dubboConnect.Duration)
	}
	l.dubboConnect, l.dubboStatic, l.dubboRegistry = nil, map[string]bool{}, false
}

// convertRoute turns one route_config route into meshgate routes: one
// forwarding route, or for a grpcproxy listener one gRPC route per service.
func (c *converter) convertRoute(l *listener, vh *vhost, rn *node) []config.RouteConfig {
	defer c.leftovers(rn)
	m := rn.child("match")
	act := rn.child("route")
	defer c.leftovers(m)
	defer c.leftovers(act)
	clusterName := act.str("cluster")
	if code := act.str("cluster_not_found_response_code"); code != "" && code != "503" {
		c.warnf(act.path+".cluster_not_found_response_code", "%s not converted: meshgate answers 503 when a cluster has no endpoint", code)
	}
	if !l.proxies[filterHTTPProxy] && !l.proxies[filterGRPCProxy] {
		// Without a proxy filter the route only lets requests reach the
		// apiconfig / dubboproxy filters, whose resources became routes.
		m.skip("prefix", "path", "methods")
		act.get("cluster")
		if l.proxies[filterAPIConfig] || l.proxies[filterDubboProxy] {
			return nil
		}
		c.warnf(rn.path, "no httpproxy, grpcproxy or apiconfig filter serves this route; left out")
		return nil
	}
	if clusterName == "" {
		c.warnf(rn.path, "route without a cluster; left out")
		m.skip("prefix", "path", "methods")
		return nil
	}
	if _, ok := c.clusters[clusterName]; !ok {
		c.warnf(act.path+".cluster", "cluster %q is not among static_resources.clusters; the route still names it", clusterName)
	}
	match := config.MatchConfig{}
	switch {
	case m.str("path") != "":
		match = pathMatch(m.str("path"))
	case m.str("prefix") != "" && m.str("prefix") != "*":
		match.Prefix = m.str("prefix")
	default:
		m.get("prefix")
		match.Prefix = "/"
	}
	if methods := m.strings("methods"); len(methods) > 0 {
		if h, ok := c.methodMatch(m.path+".methods", methods); ok {
			match.Headers = append(match.Headers, h)
		}
	}
	timeout := l.timeout
	if timeout == nil {
		timeout = c.requestTimeout
	}
	if l.proxies[filterGRPCProxy] {
		return c.grpcRoutes(l, vh, rn, match, clusterName)
	}
	return []config.RouteConfig{{Name: rn.str("id"), Match: match, Cluster: clusterName, Timeout: timeout}}
}

// grpcRoutes: Pixiu's grpcproxy takes JSON at <prefix>/<package.Service>/<Method>;
// meshgate's transcoder takes it at /<package.Service>/<Method>, and routes
// see the call as gRPC.
func (c *converter) grpcRoutes(l *listener, vh *vhost, rn *node, match config.MatchConfig, clusterName string) []config.RouteConfig {
	zero := &config.Duration{}
	if match.Prefix != "/" {
		c.warnf(rn.path+".match", "JSON callers of the gRPC proxy call POST /<package.Service>/<Method> on meshgate, without Pixiu's %q in front", match.Prefix+match.Path+match.Regex)
	}
	services := l.grpcServices
	if len(services) == 0 {
		services = []string{""} // every service: prefix "/"
	}
	// Every route_config route becomes the same service routes, so a
	// service goes to the first route's cluster; later ones never see it.
	var out []config.RouteConfig
	for _, s := range services {
		if first, taken := vh.grpc[s]; taken {
			what := "every gRPC service"
			if s != "" {
				what = s
			}
			c.warnf(rn.path, "cluster %q is unreachable for %s: meshgate routes gRPC calls by service, and %s goes to cluster %q (an earlier route)", clusterName, what, what, first)
			continue
		}
		vh.grpc[s] = clusterName
		r := config.RouteConfig{Match: config.MatchConfig{Prefix: "/" + s, GRPC: true}, Cluster: clusterName, Timeout: zero}
		if s != "" {
			r.Match.Prefix += "/"
		} else {
			r.Name = rn.str("id")
		}
		out = append(out, r)
	}
	if cl := c.clusters[clusterName]; cl != nil && len(out) > 0 {
		cl.Protocol = "grpc"
	}
	return out
}

// pathVariable is Pixiu's path parameter, /users/:id.
var pathVariable = regexp.MustCompile(`:[A-Za-z_][A-Za-z0-9_]*`)

// pathMatch matches a Pixiu path, its :variables one segment each.
func pathMatch(p string) config.MatchConfig {
	if !pathVariable.MatchString(p) {
		return config.MatchConfig{Path: p}
	}
	parts := pathVariable.Split(p, -1)
	for i, s := range parts {
		parts[i] = regexp.QuoteMeta(s)
	}
	return config.MatchConfig{Regex: strings.Join(parts, "[^/]+")}
}

// methodMatch matches the request's method against Pixiu's list. Pixiu
// compares the method with each entry as a string, so "*" is a method name
// no request has, not "any": it stays literal (warned), never widening the
// route. ok is false when there is nothing to match.
func (c *converter) methodMatch(path string, methods []string) (config.HeaderMatchConfig, bool) {
	var list []string
	for _, m := range methods {
		m = strings.ToUpper(strings.TrimSpace(m))
		if m == "" {
			continue
		}
		if m == "*" {
			c.warnf(path, "method \"*\" matches no request in Pixiu (it compares the method as a string); kept as the literal %q, which no request has: list the methods, or none for any", m)
		}
		list = append(list, m)
	}
	switch len(list) {
	case 0:
		return config.HeaderMatchConfig{}, false
	case 1:
		return config.HeaderMatchConfig{Name: ":method", Exact: &list[0]}, true
	}
	for i, m := range list {
		list[i] = regexp.QuoteMeta(m)
	}
	return config.HeaderMatchConfig{Name: ":method", Regex: strings.Join(list, "|")}, true
}
