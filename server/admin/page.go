package admin

import (
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strings"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/meshgate/meshgate/config"
)

// The admin page: what /ready, /clusters, /config_dump and /registries
// say, on one HTML page for a person (no script, no build step; it
// reloads itself every five seconds).
type pageData struct {
	Now        string
	Ready      readiness
	Listeners  []pageListener
	Clusters   []pageCluster
	XDS        *pageXDS
	Registries []RegistryStatus
}

type pageListener struct {
	Name, Address, State string
	Routes               []pageRoute
	More                 int // routes not shown
}

type pageRoute struct{ Host, Match, Target string }

type pageCluster struct {
	// Rules are the Dubbo traffic rules in force, one line each.
	Rules                                                []string
	Name, Protocol                                       string
	RqTotal, RqActive, Rq5xx, Retries, Relayed, CxActive uint64
	OutlierEjected                                       int64
	Hosts                                                []pageHost
}

type pageHost struct {
	Address, Health, Breaker, Locality string
	Weight, Priority                   uint32
	Stats                              map[string]uint64
}

type pageXDS struct {
	Address  string
	Synced   bool
	Warming  []string
	Failures []pageFailure
}

type pageFailure struct{ Type, Name, Error, At string }

// maxPageRoutes bounds the routes listed per listener.
const maxPageRoutes = 50

func (a *admin) page(w http.ResponseWriter, _ *http.Request) {
	d := pageData{Now: time.Now().UTC().Format(time.RFC3339), Ready: a.readiness()}
	set := a.src.Config()
	for _, l := range d.Ready.Listeners {
		pl := pageListener{Name: l.Name, Address: l.Address, State: l.State}
		if l.Error != "" {
			pl.State += ": " + l.Error
		}
		if set != nil {
			pl.Routes, pl.More = listenerRoutes(set, set.Listener(l.Name))
		}
		d.Listeners = append(d.Listeners, pl)
	}
	for _, c := range a.src.Clusters() {
		s := &c.Stats
		pc := pageCluster{Name: c.Name, Protocol: fmt.Sprint(c.Protocol), RqTotal: s.RqTotal.Load(),
			RqActive: uint64(max(s.RqActive.Load(), 0)), Rq5xx: s.Rq5xx.Load(), Retries: s.RqRetry.Load(),
			Relayed: s.RqRelayed.Load(), CxActive: uint64(max(s.CxActive.Load(), 0))}
		if ej, active := c.OutlierStats(); ej != nil {
			pc.OutlierEjected = active
		}
		pc.Rules = c.DubboRules()
		for _, h := range c.Hosts() {
			spec := h.Spec()
			ph := pageHost{Address: h.Address, Health: h.HealthFlags(), Breaker: h.BreakerState(),
				Weight: spec.Weight, Priority: spec.Priority, Stats: map[string]uint64{}}
			if spec.Locality != "//" {
				ph.Locality = spec.Locality
			}
			for _, m := range hostStats(h) {
				ph.Stats[m.GetName()] = m.GetValue()
			}
			pc.Hosts = append(pc.Hosts, ph)
		}
		d.Clusters = append(d.Clusters, pc)
	}
	if a.xds != nil {
		x := &pageXDS{Address: a.xds.Address(), Synced: a.xds.Synced(), Warming: a.xds.Warming()}
		for typ, byName := range a.xds.Failures() {
			for name, f := range byName {
				x.Failures = append(x.Failures, pageFailure{Type: strings.TrimPrefix(typ, "type.googleapis.com/"), Name: name,
					Error: f.Details, At: f.Time.UTC().Format(time.RFC3339)})
			}
		}
		sort.Slice(x.Failures, func(i, j int) bool { return x.Failures[i].Name < x.Failures[j].Name })
		d.XDS = x
	}
	if a.registries != nil {
		d.Registries = a.registries()
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := pageTemplate.Execute(w, d); err != nil {
		fmt.Fprintf(w, "<p>page error: %s</p>", template.HTMLEscapeString(err.Error()))
	}
}

// listenerRoutes lists a listener's routes, inline or by RDS name.
func listenerRoutes(set *config.Set, l *listenerv3.Listener) ([]pageRoute, int) {
	var out []pageRoute
	more := 0
	for _, fc := range l.GetFilterChains() {
		hcm, err := config.HTTPConnectionManager(fc)
		if err != nil {
			continue
		}
		rc := hcm.GetRouteConfig()
		if name := hcm.GetRds().GetRouteConfigName(); name != "" {
			if rc = set.Route(name); rc == nil {
				out = append(out, pageRoute{Host: "(RDS " + name + ")", Match: "-", Target: "not received yet"})
				continue
			}
		}
		for _, vh := range rc.GetVirtualHosts() {
			for _, r := range vh.GetRoutes() {
				if len(out) >= maxPageRoutes {
					more++
					continue
				}
				out = append(out, pageRoute{Host: strings.Join(vh.GetDomains(), " "), Match: routeMatch(r.GetMatch()), Target: routeTarget(r)})
			}
		}
	}
	return out, more
}

func routeMatch(m *routev3.RouteMatch) string {
	switch {
	case m.GetPrefix() != "":
		return "prefix " + m.GetPrefix()
	case m.GetPath() != "":
		return "path " + m.GetPath()
	case m.GetSafeRegex() != nil:
		return "regex " + m.GetSafeRegex().GetRegex()
	case m.GetPathSeparatedPrefix() != "":
		return "prefix " + m.GetPathSeparatedPrefix() + "/"
	}
	return "any"
}

func routeTarget(r *routev3.Route) string {
	switch {
	case r.GetRoute().GetCluster() != "":
		return r.GetRoute().GetCluster()
	case r.GetRoute().GetWeightedClusters() != nil:
		var parts []string
		for _, c := range r.GetRoute().GetWeightedClusters().GetClusters() {
			parts = append(parts, fmt.Sprintf("%s (%d)", c.GetName(), c.GetWeight().GetValue()))
		}
		return strings.Join(parts, ", ")
	case r.GetRedirect() != nil:
		return "redirect"
	case r.GetDirectResponse() != nil:
		return fmt.Sprintf("direct response %d", r.GetDirectResponse().GetStatus())
	}
	return "-"
}

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>meshgate admin</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em;margin:0 0 .2em} h2{font-size:1.1em;margin:1.4em 0 .4em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.3em 0 .8em} td,th{padding:.15em .6em;border:1px solid #e3e3e3;text-align:left;vertical-align:top}
th{background:#f5f5f5} .ok{color:#17702b;font-weight:600} .bad{color:#b3261e;font-weight:600} .dim{color:#777}
code{font-size:.95em} nav a{margin-right:1em}
</style></head><body>
<h1>meshgate admin</h1>
<p id="state">State: {{if .Ready.Missing}}<span class="bad">{{.Ready.State}}</span>{{else}}<span class="ok">{{.Ready.State}}</span>{{end}}
<span class="dim">· {{.Now}}</span></p>
{{if .Ready.Missing}}<ul id="missing">{{range .Ready.Missing}}<li class="bad">{{.}}</li>{{end}}</ul>{{end}}
<nav><a href="/ready?verbose">/ready</a><a href="/config_dump">/config_dump</a><a href="/clusters">/clusters</a><a href="/stats/prometheus">/stats/prometheus</a><a href="/registries">/registries</a></nav>

<h2>Listeners</h2>
<table id="listeners"><tr><th>listener</th><th>address</th><th>state</th><th>routes (domains · match → cluster)</th></tr>
{{range .Listeners}}<tr><td>{{.Name}}</td><td><code>{{.Address}}</code></td><td>{{.State}}</td><td>
{{range .Routes}}<div>{{.Host}} · <code>{{.Match}}</code> → {{.Target}}</div>{{end}}{{if .More}}<div class="dim">and {{.More}} more</div>{{end}}</td></tr>
{{else}}<tr><td colspan="4" class="dim">none</td></tr>{{end}}</table>

<h2>Clusters</h2>
{{range .Clusters}}<table class="cluster"><tr><th colspan="6">{{.Name}} <span class="dim">{{.Protocol}} · requests {{.RqTotal}} · active {{.RqActive}} · 5xx {{.Rq5xx}} · retries {{.Retries}} · relayed {{.Relayed}} · connections {{.CxActive}}{{if .OutlierEjected}} · <span class="bad">ejected {{.OutlierEjected}}</span>{{end}}</span></th></tr>
{{range .Rules}}<tr><td colspan="6" class="dim">rule: <code>{{.}}</code></td></tr>{{end}}
<tr><th>host</th><th>health</th><th>breaker</th><th>active requests</th><th>requests</th><th>weight · priority · locality</th></tr>
{{range .Hosts}}<tr><td><code>{{.Address}}</code></td><td>{{if eq .Health "healthy"}}<span class="ok">healthy</span>{{else}}<span class="bad">{{.Health}}</span>{{end}}</td>
<td>{{if .Breaker}}{{.Breaker}}{{else}}<span class="dim">-</span>{{end}}</td><td>{{index .Stats "rq_active"}}</td><td>{{index .Stats "rq_total"}}</td>
<td>{{.Weight}} · {{.Priority}}{{if .Locality}} · {{.Locality}}{{end}}</td></tr>
{{else}}<tr><td colspan="6" class="dim">no hosts</td></tr>{{end}}</table>
{{else}}<p class="dim">no clusters</p>{{end}}

{{with .XDS}}<h2>Control plane (xDS)</h2>
<p id="xds"><code>{{.Address}}</code> · {{if .Synced}}<span class="ok">synced</span>{{else}}<span class="bad">initial fetch not done</span>{{end}}
{{if .Warming}} · warming: {{range .Warming}}{{.}} {{end}}{{end}}</p>
{{if .Failures}}<table><tr><th>rejected (NACK)</th><th>type</th><th>error</th><th>at</th></tr>
{{range .Failures}}<tr><td>{{.Name}}</td><td>{{.Type}}</td><td class="bad">{{.Error}}</td><td>{{.At}}</td></tr>{{end}}</table>{{end}}{{end}}

{{if .Registries}}<h2>Registries</h2>
<table id="registries"><tr><th>registry</th><th>kind</th><th>connected</th><th>clusters</th><th>endpoints</th><th>last error</th></tr>
{{range .Registries}}<tr><td>{{.Name}}</td><td>{{.Kind}}</td><td>{{if .Connected}}<span class="ok">yes</span>{{else}}<span class="bad">no</span>{{end}}</td><td>{{.Clusters}}</td><td>{{.Endpoints}}</td><td>{{.LastError}}</td></tr>{{end}}</table>{{end}}
</body></html>
`))
