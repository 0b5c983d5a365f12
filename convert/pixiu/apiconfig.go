package pixiu

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/meshgate/meshgate/config"
)

// convertAPIConfig turns the api config's resources into routes: requestType
// dubbo into routes with a dubbo block (meshgate's REST-to-Dubbo bridge),
// http into forwarding routes.
func (c *converter) convertAPIConfig(l *listener) []config.RouteConfig {
	data, where := c.api, "api config (-api)"
	if data == nil {
		if l.apiConfigPath == "" {
			c.warnf(l.path, "the apiconfig filter names no api config file: pass it with -api")
			return nil
		}
		where = l.apiConfigPath
		if !filepath.IsAbs(where) {
			where = filepath.Join(c.baseDir, where)
		}
		var err error
		if data, err = os.ReadFile(where); err != nil {
			c.warnf(l.path, "api config not read (%v): pass it with -api; its resources are not converted", err)
			return nil
		}
	}
	var root map[string]any
	if err := yaml.Unmarshal(data, &root); err != nil {
		c.warnf(where, "not YAML (%v); its resources are not converted", err)
		return nil
	}
	api := asNode("api_config", root)
	api.skip("name", "description")
	if api.has("definitions") {
		api.get("definitions")
		c.warnf(api.path+".definitions", "request body schemas are not checked by meshgate")
	}
	var routes []config.RouteConfig
	for i, r := range api.list("resources") {
		routes = append(routes, c.convertResource(l, asNode(fmt.Sprintf("%s.resources[%d]", api.path, i), r))...)
	}
	c.leftovers(api)
	return routes
}

func (c *converter) convertResource(l *listener, rn *node) []config.RouteConfig {
	defer c.leftovers(rn)
	path := rn.str("path")
	rn.skip("type", "description")
	if rn.has("filters") {
		c.warnf(rn.path+".filters", "per-resource filters are not converted")
	}
	if rn.has("resources") {
		c.warnf(rn.path+".resources", "nested resources are not converted; list them at the top level")
	}
	// The resource's timeout bounds each of its methods that sets none.
	var timeout *config.Duration
	if rn.has("timeout") {
		if d, ok := c.duration(rn.path+".timeout", rn.str("timeout")); ok {
			timeout = &config.Duration{Duration: d}
		}
	}
	var out []config.RouteConfig
	for i, m := range rn.list("methods") {
		mn := asNode(fmt.Sprintf("%s.methods[%d]", rn.path, i), m)
		if r, ok := c.convertMethod(l, path, timeout, mn); ok {
			out = append(out, r)
		}
		c.leftovers(mn)
	}
	return out
}

func (c *converter) convertMethod(l *listener, path string, resourceTimeout *config.Duration, mn *node) (config.RouteConfig, bool) {
	match := pathMatch(path)
	if verb := strings.ToUpper(mn.str("httpVerb")); verb != "" && verb != "ANY" {
		if h, ok := c.methodMatch(mn.path+".httpVerb", []string{verb}); ok {
			match.Headers = []config.HeaderMatchConfig{h}
		}
	}
	route := config.RouteConfig{Match: match, Timeout: l.timeout}
	if route.Timeout == nil {
		route.Timeout = c.requestTimeout
	}
	methodTimeout := mn.has("timeout")
	if resourceTimeout != nil && !methodTimeout {
		route.Timeout = resourceTimeout
	}
	if methodTimeout {
		if d, ok := c.duration(mn.path+".timeout", mn.str("timeout")); ok {
			route.Timeout = &config.Duration{Duration: d}
		}
	}
	// Older Pixiu names the switch onAir; either one puts the API online.
	online := mn.boolean("enable")
	if mn.get("enable") == nil {
		online = mn.boolean("onAir")
	}
	mn.get("onAir")
	if !online {
		// Pixiu answers an API that is offline with 406.
		mn.skip("inboundRequest", "integrationRequest", "mock", "filters")
		route.DirectResponse = &config.DirectResponseConfig{Status: 406, Body: "the API is offline\n"}
		route.Timeout = nil
		return route, true
	}
	if mn.boolean("mock") {
		c.warnf(mn.path+".mock", "mock answers are not converted; the route calls the backend")
	}
	if mn.has("filters") {
		c.warnf(mn.path+".filters", "per-method filters are not converted")
	}
	in := mn.child("inboundRequest")
	in.get("requestType")
	for _, part := range []string{"queryStrings", "headers"} {
		for _, q := range in.list(part) {
			if asNode("", q).boolean("required") {
				c.warnf(in.path+"."+part, "required parameters are not checked by meshgate; the backend sees requests without them")
				break
			}
		}
	}
	in.get("requestBody")
	c.leftovers(in)

	ir := mn.child("integrationRequest")
	defer c.leftovers(ir)
	switch t := strings.ToLower(ir.str("requestType")); t {
	case "dubbo":
		if l.dubboTimeout != nil && !methodTimeout && resourceTimeout == nil && l.timeout == nil {
			route.Timeout = l.dubboTimeout // the dubboproxy filter's request_timeout
		}
		return c.dubboRoute(l, route, path, ir)
	case "http":
		return c.httpRoute(route, path, ir)
	default:
		c.warnf(ir.path+".requestType", "%q is not converted (dubbo and http are)", t)
		return route, false
	}
}

// javaTypes are Pixiu's mapType shorthands.
var javaTypes = map[string]string{
	"string": "java.lang.String", "int": "int", "integer": "java.lang.Integer", "long": "long",
	"float": "float", "double": "double", "boolean": "boolean", "bool": "boolean",
	"object": "java.util.Map", "map": "java.util.Map", "list": "java.util.List", "slice": "java.util.List",
}

// paramSources are Pixiu's mappingParams name prefixes and meshgate's
// params.from prefixes.
var paramSources = []struct{ pixiu, meshgate string }{
	{"requestBody._all", "body"}, {"requestBody.", "body."}, {"queryStrings.", "query."},
	{"uri.", "path."}, {"headers.", "header."},
}

func (c *converter) dubboRoute(l *listener, route config.RouteConfig, path string, ir *node) (config.RouteConfig, bool) {
	iface, method := ir.str("interface"), ir.str("method")
	if iface == "" || method == "" {
		c.warnf(ir.path, "a dubbo integration request needs interface and method; left out")
		return route, false
	}
	version, group := ir.str("version"), ir.str("group")
	protocol := "dubbo"
	switch p := strings.ToLower(ir.str("protocol")); p {
	case "", "dubbo":
	case "tri", "triple":
		protocol = "tri"
	default:
		c.warnf(ir.path+".protocol", "protocol %q is not dubbo or tri (triple): meshgate calls the method over dubbo; check that the provider speaks it", p)
	}
	ir.get("applicationName") // meshgate finds providers by interface
	d := &config.DubboRouteConfig{Interface: iface, Version: version, Group: group, Method: method}
	if pathVariable.MatchString(path) {
		d.PathTemplate = pathVariable.ReplaceAllStringFunc(path, func(v string) string { return "{" + v[1:] + "}" })
	}
	// parameterTypes is the current spelling, paramTypes the older one.
	types := ir.strings("parameterTypes")
	if older := ir.strings("paramTypes"); len(types) == 0 {
		types = older
	}
	if ir.has("toParamTypes") {
		c.warnf(ir.path+".toParamTypes", "not converted: the provider's own parameter types are used")
	}
	type param struct {
		index int
		cfg   config.DubboParamConfig
	}
	var params []param
	for i, mp := range ir.list("mappingParams") {
		pn := asNode(fmt.Sprintf("%s.mappingParams[%d]", ir.path, i), mp)
		name, mapTo := pn.str("name"), pn.str("mapTo")
		idx, err := strconv.Atoi(mapTo)
		if err != nil {
			c.warnf(pn.path, "mapTo %q (Pixiu's generic-call options) is not converted", mapTo)
			pn.skip("mapType", "opt")
			continue
		}
		if idx < 0 {
			c.warnf(pn.path, "mapTo %q is not an argument index (0, 1, ...); parameter %q left out", mapTo, name)
			pn.skip("mapType", "opt")
			continue
		}
		from := ""
		for _, s := range paramSources {
			if rest, ok := strings.CutPrefix(name, s.pixiu); ok {
				from = s.meshgate + rest
				break
			}
		}
		if from == "" {
			c.warnf(pn.path, "parameter source %q is not converted", name)
			continue
		}
		p := config.DubboParamConfig{From: from}
		if idx < len(types) {
			p.Type = types[idx]
		} else if t := pn.str("mapType"); t != "" {
			if jt, ok := javaTypes[strings.ToLower(t)]; ok {
				p.Type = jt
			} else {
				p.Type = t
			}
		}
		pn.get("mapType")
		params = append(params, param{idx, p})
		c.leftovers(pn)
	}
	sort.SliceStable(params, func(i, j int) bool { return params[i].index < params[j].index })
	for i, p := range params {
		if p.index != i {
			c.warnf(ir.path+".mappingParams", "mapTo indexes are not 0..%d; the arguments keep their order", len(params)-1)
			break
		}
	}
	for _, p := range params {
		d.Params = append(d.Params, p.cfg)
	}
	if len(params) == 0 && len(types) > 0 {
		d.Types = types // the JSON-array convention, typed
	}
	if r := ir.str("retries"); r != "" && r != "0" {
		if n, err := strconv.Atoi(r); err == nil && n > 0 {
			num := uint32(n)
			route.Retries = &config.RetryConfig{RetryOn: "connect-failure,reset", NumRetries: &num}
		}
	}
	if ir.has("timeout") {
		if t, ok := c.duration(ir.path+".timeout", ir.str("timeout")); ok {
			route.Timeout = &config.Duration{Duration: t}
		}
	}
	route.Dubbo = d
	route.Cluster = c.dubboCluster(l, ir, protocol, iface, version, group)
	return route, true
}

// dubboCluster is the api config's clusterName when conf.yaml defines it
// with endpoints, else the registry's cluster of the service.
func (c *converter) dubboCluster(l *listener, ir *node, protocol, iface, version, group string) string {
	name := ir.str("clusterName")
	if cl := c.clusters[name]; cl != nil && len(cl.Endpoints) > 0 {
		cl.Protocol = protocol
		l.dubboStatic[name] = true
		return name
	}
	l.dubboRegistry = true
	registryName := protocol + "|" + iface + "|" + version + "|" + group
	if len(c.file.Registries) == 0 {
		c.warnf(ir.path, "no registry and no cluster %q with endpoints: the route names %q; add a registry (registries:) or that cluster", name, registryName)
	}
	return registryName
}

func (c *converter) httpRoute(route config.RouteConfig, path string, ir *node) (config.RouteConfig, bool) {
	// Pixiu's YAML key is schema (its JSON one scheme).
	host, target, scheme := ir.str("host"), ir.str("path"), strings.ToLower(ir.str("schema", "scheme"))
	ir.skip("schema", "scheme")
	if raw := ir.str("url"); raw != "" {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			c.warnf(ir.path+".url", "%q is not a URL; left out", raw)
			return route, false
		}
		host, scheme = u.Host, strings.ToLower(u.Scheme)
		if target == "" {
			target = u.Path
		}
	}
	switch scheme {
	case "", "http", "https":
	default:
		c.warnf(ir.path+".schema", "scheme %q is not converted (http and https are); the backend is called over http", scheme)
	}
	cluster := ir.str("clusterName")
	if cl := c.clusters[cluster]; cl == nil || len(cl.Endpoints) == 0 {
		if host == "" {
			c.warnf(ir.path, "an http integration request needs a host, a url or a cluster with endpoints; left out")
			return route, false
		}
		cluster = c.hostCluster(host, scheme)
	} else if scheme == "https" && cl.TLS == nil {
		cluster = c.tlsCluster(cl, host)
	}
	route.Cluster = cluster
	if target != "" && target != path {
		if route.Match.Regex != "" {
			route.RegexRewrite = rewriteVariables(path, target)
		} else {
			route.PrefixRewrite = target
		}
	}
	return route, true
}

// tlsCluster makes (once) a copy of cl that dials TLS, for an https
// integration request: cl itself keeps serving plain HTTP routes.
func (c *converter) tlsCluster(cl *config.ClusterConfig, host string) string {
	name := cl.Name + "-tls"
	if _, ok := c.clusters[name]; ok {
		return name
	}
	tls := *cl
	tls.Name = name
	tls.Endpoints = append([]config.EndpointConfig(nil), cl.Endpoints...)
	tls.TLS = &config.UpstreamTLSConfig{}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host = strings.Trim(host, "[]"); host != "" && net.ParseIP(host) == nil {
		tls.TLS.SNI = host
	}
	c.addCluster(&tls)
	return name
}

// hostCluster makes (once) a cluster for a backend named by host.
func (c *converter) hostCluster(host, scheme string) string {
	if _, _, err := net.SplitHostPort(host); err != nil {
		port := "80"
		if scheme == "https" {
			port = "443"
		}
		host = net.JoinHostPort(strings.Trim(host, "[]"), port)
	}
	name := "http-" + strings.Trim(nameUnsafe.ReplaceAllString(host, "-"), "-")
	if _, ok := c.clusters[name]; ok {
		return name
	}
	cl := &config.ClusterConfig{Name: name, ConnectTimeout: c.connectTimeout, Endpoints: []config.EndpointConfig{{Address: host}}}
	if h, _, _ := net.SplitHostPort(host); net.ParseIP(h) == nil {
		cl.Type = "strict_dns"
	}
	if scheme == "https" {
		h, _, _ := net.SplitHostPort(host)
		cl.TLS = &config.UpstreamTLSConfig{SNI: h}
	}
	c.addCluster(cl)
	return name
}

// rewriteVariables rewrites /users/:id to /v2/user/:id, the variables
// carried over by name.
func rewriteVariables(from, to string) *config.RegexRewriteConfig {
	names := pathVariable.FindAllString(from, -1)
	parts := pathVariable.Split(from, -1)
	for i, s := range parts {
		parts[i] = regexp.QuoteMeta(s)
	}
	sub := pathVariable.ReplaceAllStringFunc(to, func(v string) string {
		for i, n := range names {
			if n == v {
				return `\` + strconv.Itoa(i+1)
			}
		}
		return v
	})
	return &config.RegexRewriteConfig{Pattern: "^" + strings.Join(parts, "([^/]+)") + "$", Substitution: sub}
}
