package pixiu

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/meshgate/meshgate/config"
)

// convertHTTPFilter records what one of the HCM's http_filters asks of
// the listener's routes.
func (c *converter) convertHTTPFilter(l *listener, fn *node) {
	name := fn.str("name")
	cfg := fn.child("config")
	defer c.leftovers(fn)
	switch name {
	case filterHTTPProxy:
		l.proxies[name] = true
		c.leftovers(cfg)
		return
	case filterResponse, filterRecovery:
		// meshgate writes the upstream's answer and recovers from panics
		// (500 / INTERNAL) on its own.
		c.leftovers(cfg)
		return
	case filterCORS:
		l.cors = c.convertCORS(cfg)
		if l.cors == nil {
			cfg.skip("allow_methods", "allow_headers", "expose_headers", "max_age", "allow_credentials")
		}
	case filterRateLimit:
		l.rateLimits = append(l.rateLimits, c.readRateLimits(cfg)...)
	case filterJWT:
		c.warnJWT(cfg)
		return
	case filterTimeout:
		if cfg.has("timeout") {
			if d, ok := c.duration(cfg.path+".timeout", cfg.str("timeout")); ok {
				l.timeout = &config.Duration{Duration: d}
			}
		}
	case filterAccessLog:
		// Pixiu's outPutPath defaults to "console", its logger: stdout.
		path := cfg.str("outputpath", "output_path")
		if path == "" || strings.EqualFold(path, "console") {
			path = "/dev/stdout"
		}
		l.out.AccessLog = append(l.out.AccessLog, config.AccessLogConfig{Path: path})
	case filterGRPCProxy:
		l.proxies[name] = true
		c.convertGRPCProxy(l, cfg)
	case filterDubboProxy:
		l.proxies[name] = true
		c.convertDubboProxy(l, cfg)
	case filterAPIConfig:
		l.proxies[name] = true
		l.apiConfigPath = cfg.str("path")
		if cfg.child("api_meta_config").has("address") {
			c.warnf(cfg.path+".api_meta_config", "api config from etcd is not converted: pass the api config file with -api")
		}
		cfg.get("api_meta_config")
	default:
		c.warnf(fn.path, "HTTP filter %s has no meshgate equivalent; not converted", name)
		fn.get("config")
		return
	}
	c.leftovers(cfg)
}

// convertCORS: Pixiu lists the origins it allows by host name; meshgate
// compares the Origin header, so a bare host allows it over http and https.
// Pixiu sends Access-Control-Allow-Origin only for a listed entry, so an
// empty list allows no origin: then no cors block is written (meshgate
// adds no CORS headers), never one that allows every origin.
func (c *converter) convertCORS(cfg *node) *config.CORSConfig {
	out := &config.CORSConfig{}
	origins := cfg.strings("allow_origin")
	for _, o := range origins {
		switch {
		case o == "*" || strings.Contains(o, "://"):
			out.AllowOrigins = append(out.AllowOrigins, o)
		default:
			out.AllowOrigins = append(out.AllowOrigins, "regex:https?://"+regexp.QuoteMeta(o))
		}
	}
	if len(out.AllowOrigins) == 0 {
		c.warnf(cfg.path+".allow_origin", "allow_origin is empty: Pixiu allows no origin then, so no cors block is written (meshgate adds no CORS headers); list the origins to allow")
		return nil
	}
	c.warnf(cfg.path+".allow_origin", "Pixiu compares each allow_origin entry with the request's Host header (and answers with the entry itself); meshgate compares the Origin header with allow_origins %q and answers with that origin: check that these are the browser origins to allow", out.AllowOrigins)
	out.AllowMethods = cfg.strings("allow_methods")
	out.AllowHeaders = cfg.strings("allow_headers")
	out.ExposeHeaders = cfg.strings("expose_headers")
	if cfg.has("max_age") {
		if d, ok := c.duration(cfg.path+".max_age", cfg.str("max_age")); ok {
			out.MaxAge = &config.Duration{Duration: d}
		}
	}
	out.AllowCredentials = cfg.boolean("allow_credentials")
	return out
}

// warnJWT: the friendly format has no JWT authentication (the Envoy form's
// jwt_authn has), so the filter is one warning naming what it guarded.
func (c *converter) warnJWT(cfg *node) {
	var providers, rules []string
	for i, p := range cfg.list("providers") {
		pn := asNode(fmt.Sprintf("%s.providers[%d]", cfg.path, i), p)
		providers = append(providers, pn.str("name"))
	}
	for i, r := range cfg.list("rules") {
		rn := asNode(fmt.Sprintf("%s.rules[%d]", cfg.path, i), r)
		if prefix := rn.child("match").str("prefix"); prefix != "" {
			rules = append(rules, prefix)
		}
	}
	c.warnf(cfg.path, "JWT authentication (%s) is NOT converted: meshgate's friendly format has no JWT filter; the routes %s are open until you add Envoy's jwt_authn (Envoy config form) or authenticate upstream",
		"providers "+strings.Join(providers, ", "), "under "+strings.Join(rules, ", "))
}

// rateLimit is one enabled Pixiu flow rule and the paths it covers.
type rateLimit struct {
	path     string
	resource string
	items    []rateLimitItem
	limit    config.RateLimitConfig
}

type rateLimitItem struct {
	strategy int // 0 exact, 1 regex, 2 Ant path
	pattern  string
}

func (c *converter) readRateLimits(cfg *node) []rateLimit {
	items := map[string][]rateLimitItem{}
	for i, r := range cfg.list("resources") {
		rn := asNode(fmt.Sprintf("%s.resources[%d]", cfg.path, i), r)
		for j, it := range rn.list("items") {
			in := asNode(fmt.Sprintf("%s.items[%d]", rn.path, j), it)
			s, _ := strconv.Atoi(in.str("matchStrategy", "match_strategy"))
			items[rn.str("name")] = append(items[rn.str("name")], rateLimitItem{strategy: s, pattern: in.str("pattern")})
			c.leftovers(in)
		}
		c.leftovers(rn)
	}
	var out []rateLimit
	for i, r := range cfg.list("rules") {
		rn := asNode(fmt.Sprintf("%s.rules[%d]", cfg.path, i), r)
		if !rn.boolean("enable") {
			rn.skip("flowRule", "resource", "threshold", "statintervalinms")
			continue // Pixiu skips disabled rules too
		}
		fr := rn
		if _, nested := rn.get("flowRule", "flow_rule").(map[string]any); nested {
			fr = rn.child("flowRule")
		}
		resource := fr.str("resource")
		threshold, err := strconv.ParseFloat(fr.str("threshold"), 64)
		if err == nil && (math.IsNaN(threshold) || math.IsInf(threshold, 0) || threshold > math.MaxUint32) {
			c.warnf(fr.path+".threshold", "threshold %q is not a finite number of requests; the rule is not converted", fr.str("threshold"))
			continue
		}
		if err != nil || threshold <= 0 {
			c.warnf(fr.path, "flow rule without a threshold; not converted")
			continue
		}
		interval := time.Second
		if ms, err := strconv.Atoi(fr.str("statintervalinms", "statIntervalInMs", "stat_interval_in_ms")); err == nil && ms > 0 {
			interval = time.Duration(ms) * time.Millisecond
		}
		// Sentinel's rule options other than a plain reject-over-threshold
		// have no token-bucket equivalent.
		for _, k := range []string{"tokenCalculateStrategy", "controlBehavior", "relationStrategy", "refResource", "warmUpPeriodSec", "maxQueueingTimeMs"} {
			if v := fr.str(k); v != "" && v != "0" {
				c.warnf(fr.path+"."+k, "Sentinel's %s is not converted: meshgate limits with a token bucket that rejects (429)", k)
			}
		}
		if len(items[resource]) == 0 {
			c.warnf(fr.path, "rule for resource %q, which lists no paths; not converted", resource)
			continue
		}
		out = append(out, rateLimit{
			path: fr.path, resource: resource, items: items[resource],
			limit: config.RateLimitConfig{Requests: uint32(math.Ceil(threshold)), Per: config.Duration{Duration: interval}},
		})
		c.leftovers(fr)
		if fr != rn {
			c.leftovers(rn)
		}
	}
	cfg.get("logPath")
	return out
}

// applyRateLimits puts each rule on every route its patterns cover, read
// as Pixiu reads them: exact (strategy 0) compares the path, regex (1) is an
// unanchored regexp.MatchString, Ant (2) a path pattern. A pattern that
// covers every path limits the listener. A route a pattern covers only in
// part (a catch-all under /user/*, say) keeps no limit, with a warning:
// limiting it whole would limit paths Pixiu does not. Pixiu shares one
// bucket among a resource's paths; meshgate's buckets are per route, which
// the warning says.
func (c *converter) applyRateLimits(l *listener) {
	for _, rl := range l.rateLimits {
		limit := rl.limit
		var hit int
		for _, it := range rl.items {
			m, named, ok := patternMatcher(it)
			if !ok {
				c.warnf(rl.path, "resource %q: pattern %q cannot be read; not converted", rl.resource, it.pattern)
				continue
			}
			if it.strategy == 2 {
				c.warnf(rl.path, "resource %q: pattern %q is an Ant path, which Pixiu's rate limit filter does not match (it limits nothing there); converted as the Ant pattern reads", rl.resource, it.pattern)
			}
			if covers(m, named, config.MatchConfig{Prefix: "/"}) == coverFull {
				l.out.RateLimit = &limit
				hit++
				continue
			}
			touched := false
			for _, vh := range l.vhosts {
				for i := range vh.routes {
					r := &vh.routes[i]
					switch covers(m, named, r.Match) {
					case coverFull:
						r.RateLimit = &limit
						touched = true
						hit++
					case coverPart:
						touched = true
						c.warnf(rl.path, "route %s is only partly covered by resource %q pattern %q: Pixiu limits only the paths the pattern matches; the route is left without a limit (split it to limit those paths)", describeMatch(r), rl.resource, it.pattern)
					}
				}
			}
			if !touched {
				c.warnf(rl.path, "resource %q: no route has the path %q; its limit is not converted", rl.resource, it.pattern)
			}
		}
		if hit > 1 {
			c.warnf(rl.path, "resource %q: Pixiu shares one budget among its paths; meshgate gives each of the %d routes its own %d per %s", rl.resource, hit, limit.Requests, limit.Per.Duration)
		}
	}
}

// patternMatcher is Pixiu's reading of a rate limit pattern, and sample
// paths the pattern matches.
func patternMatcher(it rateLimitItem) (match func(string) bool, named []string, ok bool) {
	p := it.pattern
	switch it.strategy {
	case 0:
		return func(s string) bool { return s == p }, []string{p}, p != ""
	case 1:
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, nil, false
		}
		prefix, _ := re.LiteralPrefix()
		return re.MatchString, []string{prefix, prefix + "/zz-sample", strings.TrimSuffix(prefix, "/")}, true
	case 2:
		re, err := regexp.Compile("^" + antRegex(p) + "$")
		if err != nil || p == "" {
			return nil, nil, false
		}
		sample := strings.NewReplacer("**", "zz", "*", "zz", "?", "z").Replace(p)
		return re.MatchString, []string{sample, strings.TrimSuffix(strings.TrimSuffix(p, "/**"), "/*")}, true
	}
	return nil, nil, false
}

// antRegex: ** any depth (/a/** also /a), * within a segment, ? one
// character.
func antRegex(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		switch {
		case strings.HasPrefix(p[i:], "/**"):
			b.WriteString("(/.*)?")
			i += 2
		case strings.HasPrefix(p[i:], "**"):
			b.WriteString(".*")
			i++
		case p[i] == '*':
			b.WriteString("[^/]*")
		case p[i] == '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(p[i : i+1]))
		}
	}
	return b.String()
}

type coverage int

const (
	coverNone coverage = iota
	coverPart
	coverFull
)

// covers tells whether the pattern matches every path of the route, some,
// or none, by sample paths: the route's own (its path; its prefix and
// paths under it; its :variables filled two ways) and paths the pattern
// names that the route matches.
func covers(m func(string) bool, named []string, match config.MatchConfig) coverage {
	var samples []string
	var routeMatches func(string) bool
	switch {
	case match.Path != "":
		samples = []string{match.Path}
		routeMatches = func(s string) bool { return s == match.Path }
	case match.Regex != "":
		re, err := regexp.Compile("^(?:" + match.Regex + ")$")
		if err != nil {
			return coverNone
		}
		routeMatches = re.MatchString
		for _, v := range []string{"1", "zz-sample"} {
			if s := unquoteMeta(strings.ReplaceAll(match.Regex, "[^/]+", v)); re.MatchString(s) {
				samples = append(samples, s)
			}
		}
	default:
		p := match.Prefix
		if p == "" {
			p = "/"
		}
		routeMatches = func(s string) bool { return strings.HasPrefix(s, p) }
		base := strings.TrimSuffix(p, "/")
		samples = []string{p, base + "/", base + "/zz-sample", base + "/zz-sample/yy", base + "/1"}
		if base != "" {
			samples = append(samples, base)
		}
	}
	matched := 0
	for _, s := range samples {
		if routeMatches(s) && m(s) {
			matched++
		}
	}
	switch {
	case matched > 0 && matched == len(samples):
		return coverFull
	case matched > 0:
		return coverPart
	}
	for _, s := range named {
		if s != "" && routeMatches(s) && m(s) {
			return coverPart
		}
	}
	return coverNone
}

// unquoteMeta undoes regexp.QuoteMeta.
func unquoteMeta(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func describeMatch(r *config.RouteConfig) string {
	switch {
	case r.Match.Path != "":
		return fmt.Sprintf("path %q", r.Match.Path)
	case r.Match.Regex != "":
		return fmt.Sprintf("regex %q", r.Match.Regex)
	}
	return fmt.Sprintf("prefix %q", r.Match.Prefix)
}

// protoService finds `package x.y;` and `service Name` in .proto sources.
var (
	protoPackage = regexp.MustCompile(`(?m)^\s*package\s+([A-Za-z0-9_.]+)\s*;`)
	protoService = regexp.MustCompile(`(?m)^\s*service\s+([A-Za-z0-9_]+)\s*\{`)
)

// convertGRPCProxy: Pixiu reads the .proto files of a folder (or asks the
// backend by reflection); meshgate's transcoder compiles listed .proto files
// and needs the service names, which are read from the files here.
func (c *converter) convertGRPCProxy(l *listener, cfg *node) {
	dir := cfg.str("path")
	strategy := strings.ToLower(cfg.str("descriptor_source_strategy"))
	if cfg.has("timeout") {
		c.warnf(cfg.path+".timeout", "not converted: the gRPC routes have no timeout (streams); a client's grpc-timeout still bounds its call")
	}
	if cfg.has("rules") {
		c.warnf(cfg.path+".rules", "not converted: every method of the services is reachable")
	}
	cfg.skip("timeout", "rules")
	if dir == "" {
		c.warnf(cfg.path, "no proto folder (path): gRPC clients pass through, but JSON callers need the listener's grpc_json (services and protos, or reflection) written by hand")
		return
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(c.baseDir, dir)
	}
	abs, err := filepath.Abs(dir)
	if err == nil {
		dir = abs
	}
	var protos, services []string
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".proto") {
			return err
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		protos = append(protos, filepath.ToSlash(p)) // absolute: the output may be written anywhere
		pkg := ""
		if m := protoPackage.FindSubmatch(src); m != nil {
			pkg = string(m[1]) + "."
		}
		for _, m := range protoService.FindAllSubmatch(src, -1) {
			services = append(services, pkg+string(m[1]))
		}
		return nil
	})
	if err != nil || len(services) == 0 {
		c.warnf(cfg.path+".path", "no service found in the .proto files under %s (%v): gRPC clients pass through, but JSON callers need the listener's grpc_json written by hand", dir, err)
		return
	}
	if strategy == "reflection" {
		c.warnf(cfg.path+".descriptor_source_strategy", "reflection: the descriptors are compiled from the .proto files instead (use grpc_json.reflection to ask the backend)")
	}
	sort.Strings(services)
	l.grpcServices = services
	l.out.GRPCJSON = &config.GRPCJSONConfig{Protos: protos, ImportPaths: []string{dir}, Services: services}
}

// convertDubboProxy reads the registries of Pixiu's Dubbo proxy. Its
// timeout_config is its Dubbo client's: it bounds this listener's Dubbo
// routes only (request_timeout) and the static clusters they call
// (connect_timeout), never other listeners' routes.
func (c *converter) convertDubboProxy(l *listener, cfg *node) {
	dp := cfg.child("dubboProxyConfig")
	c.convertRegistries(dp.child("registries"))
	if dp.boolean("auto_resolve") {
		c.warnf(dp.path+".auto_resolve", "automatic resolution of /<application>/<interface>/<version>/<method> is not converted: meshgate calls Dubbo methods through api config resources (routes with a dubbo block)")
	}
	dp.get("auto_resolve")
	tc := dp.child("timeout_config")
	if tc.has("connect_timeout") {
		if d, ok := c.duration(tc.path+".connect_timeout", tc.str("connect_timeout")); ok {
			l.dubboConnect, l.dubboConnPath = &config.Duration{Duration: d}, tc.path+".connect_timeout"
		}
	}
	if tc.has("request_timeout") {
		if d, ok := c.duration(tc.path+".request_timeout", tc.str("request_timeout")); ok {
			l.dubboTimeout = &config.Duration{Duration: d}
		}
	}
	c.leftovers(tc)
	c.leftovers(dp)
}

// convertAdapter reads the registries of Pixiu's Dubbo registry adapter.
func (c *converter) convertAdapter(n *node) {
	switch name := n.str("name"); name {
	case "dgp.adapter.dubboregistrycenter":
		cfg := n.child("config")
		c.convertRegistries(cfg.child("registries"))
		c.leftovers(cfg)
	default:
		n.get("config")
		c.warnf(n.path, "adapter %s has no meshgate equivalent; not converted", name)
	}
	n.get("id")
	c.leftovers(n)
}

func (c *converter) convertRegistries(regs *node) {
	names := make([]string, 0, len(regs.m))
	for k := range regs.m {
		names = append(names, k)
	}
	sort.Strings(names)
	if c.registries == nil {
		c.registries = map[string]bool{}
	}
	for _, name := range names {
		r := regs.child(name)
		servers := strings.Split(r.str("address"), ",")
		kind := strings.ToLower(r.str("protocol"))
		if kind == "" {
			kind = "zookeeper" // Pixiu's default
		}
		key := kind + "|" + r.str("address")
		r.get("timeout") // meshgate's registry clients keep their own timeouts
		out := config.RegistryConfig{Name: nameUnsafe.ReplaceAllString(name, "-")}
		switch kind {
		case "zookeeper":
			out.ZooKeeper = &config.ZooKeeperConfig{Servers: servers}
			if r.has("username") || r.has("password") {
				c.warnf(r.path, "ZooKeeper credentials are not converted")
			}
			for _, k := range []string{"group", "namespace"} {
				if r.has(k) {
					c.warnf(r.path+"."+k, "%q not converted: meshgate reads the ZooKeeper tree under its root (zookeeper.root, default dubbo); set root by hand if the providers register elsewhere", r.str(k))
				}
			}
			r.skip("username", "password", "group", "namespace")
		case "nacos":
			out.Nacos = &config.NacosConfig{Servers: servers, Namespace: r.str("namespace"), Group: r.str("group"), Username: r.str("username")}
			if r.has("password") {
				r.get("password")
				out.Nacos.PasswordEnv = "NACOS_PASSWORD"
				c.warnf(r.path+".password", "not written to the output: set the NACOS_PASSWORD environment variable (password_env)")
			}
		default:
			c.warnf(r.path, "registry protocol %q is not converted (meshgate reads ZooKeeper and Nacos)", kind)
			continue
		}
		switch mode := strings.ToLower(r.str("registry_type")); mode {
		case "":
		case "interface", "application":
			out.Mode = mode
		default:
			c.warnf(r.path+".registry_type", "%q is not converted; meshgate reads both levels", mode)
		}
		c.leftovers(r)
		if c.registries[key] {
			continue
		}
		c.registries[key] = true
		c.file.Registries = append(c.file.Registries, out)
	}
}
