package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"
)

// view is what one registry watcher knows: interface-level providers,
// application-level instances with their metadata (cached by revision),
// and full signatures from metadata reports. The watchers differ only in
// how they read the registry; the view turns what they read into
// providers and publishes them through the catalog.
type view struct {
	// callDubbo asks MetadataServices over the dubbo protocol (nil: not asked).
	callDubbo MetadataCaller
	name      string
	cat       *catalog
	log       *slog.Logger
	m         *metrics

	mu          sync.Mutex
	byKey       map[string][]*Provider          // interface-level, by registry key
	byApp       map[string]map[string]*Instance // application-level, by app and instance id
	metadata    map[string]*MetadataInfo        // by app + "@" + revision
	definitions map[string]*Signatures          // by definitionKey, from metadata reports
	missing     map[string]bool                 // definitions looked for and not found
	rules       map[string]Rule                 // traffic rules by config-center name (<key>.<kind>)
	badRules    map[string]string               // refused rule texts, logged once
	urlRouters  map[string][]Rule               // older URL-style condition routers, by interface

	http *http.Client // for MetadataService over Triple

	st status
}

// MetadataCaller asks the MetadataService of a provider over the dubbo
// protocol (Dubbo2, hessian2) for the MetadataInfo of a revision, and
// returns the decoded value. meshgate's command gives
// dubbo.CallMetadataService; registry does not link the Dubbo codec itself.
type MetadataCaller func(ctx context.Context, addr, app, revision string) (any, error)

func newView(name string, cat *catalog, log *slog.Logger, m *metrics, metadata MetadataCaller) *view {
	return &view{name: name, cat: cat, log: log, m: m, callDubbo: metadata,
		byKey: map[string][]*Provider{}, byApp: map[string]map[string]*Instance{},
		metadata: map[string]*MetadataInfo{}, definitions: map[string]*Signatures{}, missing: map[string]bool{},
		rules: map[string]Rule{}, badRules: map[string]string{}, urlRouters: map[string][]Rule{},
		// Rare calls (once per revision): no idle connections to leak.
		http: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}
}

// setProviders replaces the interface-level providers found under key
// (nil drops the key).
func (v *view) setProviders(key string, provs []*Provider) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if provs == nil {
		delete(v.byKey, key)
		return
	}
	v.byKey[key] = provs
}

// keepProviders drops every interface-level key not in keep.
func (v *view) keepProviders(keep map[string]bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for k := range v.byKey {
		if !keep[k] {
			delete(v.byKey, k)
		}
	}
}

// setInstances replaces an application's instances (nil drops the app).
func (v *view) setInstances(app string, insts map[string]*Instance) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if insts == nil {
		delete(v.byApp, app)
		return
	}
	v.byApp[app] = insts
}

// keepApps drops every application not in keep.
func (v *view) keepApps(keep map[string]bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for a := range v.byApp {
		if !keep[a] {
			delete(v.byApp, a)
		}
	}
}

// remoteMetadata reads an application revision's MetadataInfo JSON from
// the registry's metadata report.
type remoteMetadata func(ctx context.Context, app, revision string) ([]byte, error)

// fetchMetadata makes sure the instance's revision has its MetadataInfo:
// from the remote report or the instance's MetadataService, once per
// revision.
func (v *view) fetchMetadata(ctx context.Context, inst *Instance, remote remoteMetadata) error {
	key := inst.App + "@" + inst.Revision()
	v.mu.Lock()
	_, have := v.metadata[key]
	v.mu.Unlock()
	if have || inst.Revision() == "" {
		return nil
	}
	var md *MetadataInfo
	proto, port, local := inst.MetadataService()
	switch {
	case !local:
		b, err := remote(ctx, inst.App, inst.Revision())
		if err != nil {
			return fmt.Errorf("remote metadata of %s revision %s: %w", inst.App, inst.Revision(), err)
		}
		if md, err = ParseMetadataJSON(b); err != nil {
			return err
		}
	case proto == "dubbo":
		var err error
		if md, err = v.callMetadataService(ctx, inst, port); err != nil {
			return err
		}
	case proto == "tri":
		var err error
		if md, err = v.callTriMetadataService(ctx, inst, port); err != nil {
			return err
		}
	default:
		return fmt.Errorf("metadata service over %q is not supported (dubbo and tri are)", proto)
	}
	v.mu.Lock()
	v.metadata[key] = md
	v.mu.Unlock()
	return nil
}

// callMetadataService asks a provider's MetadataService for its metadata.
func (v *view) callMetadataService(ctx context.Context, inst *Instance, port uint32) (*MetadataInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	addr := (&Provider{Host: inst.Host, Port: port}).Address()
	if v.callDubbo == nil {
		return nil, fmt.Errorf("MetadataService at %s speaks dubbo, and this watcher was given no Dubbo caller", addr)
	}
	val, err := v.callDubbo(ctx, addr, inst.App, inst.Revision())
	if err != nil {
		return nil, fmt.Errorf("MetadataService at %s: %w", addr, err)
	}
	return MetadataFromHessian(val)
}

// maxMetadataBytes bounds a MetadataInfo answer.
const maxMetadataBytes = 4 << 20

// callTriMetadataService asks a provider's MetadataService over Triple,
// where Java Dubbo 3.3 serves it by default. MetadataService 1.0.0 answers
// JSON over plain HTTP (Triple's unary form); the 2.0.0 the instance
// advertises speaks protobuf only, and serves the same content.
func (v *view) callTriMetadataService(ctx context.Context, inst *Instance, port uint32) (*MetadataInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	addr := (&Provider{Host: inst.Host, Port: port}).Address()
	body, err := json.Marshal([]string{inst.Revision()})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		"http://"+addr+"/org.apache.dubbo.metadata.MetadataService/getMetadataInfo", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("tri-service-group", inst.App)
	req.Header.Set("tri-service-version", "1.0.0")
	resp, err := v.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("MetadataService (tri) at %s: %w", addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadataBytes))
	if err != nil {
		return nil, fmt.Errorf("MetadataService (tri) at %s: %w", addr, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("MetadataService (tri) at %s: HTTP %d: %.200s", addr, resp.StatusCode, b)
	}
	return ParseMetadataJSON(b)
}

// definitionKey names a service definition as the metadata report stores
// it: per service and providing application.
func definitionKey(k ServiceKey, app string) string { return k.String() + "@" + app }

// definitionReader reads a service's definition (FullServiceDefinition
// JSON) from the registry's metadata report; nil, nil when there is none.
type definitionReader func(ctx context.Context, k ServiceKey, app string) ([]byte, error)

// retryDefinitions forgets which definitions were missing, so the next
// fetchDefinitions looks for them again (on a resync, or when the
// registry says one appeared).
func (v *view) retryDefinitions() {
	v.mu.Lock()
	v.missing = map[string]bool{}
	v.mu.Unlock()
}

// fetchDefinitions reads the service definitions not yet known for the
// current providers. Java Dubbo publishes them; dubbo-go does not, so a
// missing one is remembered until retryDefinitions.
func (v *view) fetchDefinitions(ctx context.Context, read definitionReader) {
	type want struct {
		k   ServiceKey
		app string
	}
	var wants []want
	v.mu.Lock()
	seen := map[string]bool{}
	for _, p := range v.providersLocked() {
		app := p.Params["application"]
		dk := definitionKey(p.Service, app)
		if app == "" || seen[dk] || v.definitions[dk] != nil || v.missing[dk] {
			continue
		}
		seen[dk] = true
		wants = append(wants, want{p.Service, app})
	}
	v.mu.Unlock()
	for _, w := range wants {
		b, err := read(ctx, w.k, w.app)
		if err != nil {
			v.noteError("metadata", err)
			v.log.Debug("reading a service definition", "service", w.k.String(), "app", w.app, "error", err)
			continue
		}
		if b == nil {
			v.mu.Lock()
			v.missing[definitionKey(w.k, w.app)] = true
			v.mu.Unlock()
			continue
		}
		def, err := ParseServiceDefinition(b)
		if err != nil {
			v.noteError("metadata", err)
			v.log.Warn("a service definition that does not parse", "service", w.k.String(), "app", w.app, "error", err)
			continue
		}
		v.mu.Lock()
		v.definitions[definitionKey(w.k, w.app)] = &Signatures{Source: "metadata-report", Methods: def.Methods}
		v.mu.Unlock()
	}
}

// providersLocked lists every provider the view holds; v.mu is held.
func (v *view) providersLocked() []*Provider {
	keys := make([]string, 0, len(v.byKey))
	for k := range v.byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var provs []*Provider
	for _, k := range keys {
		provs = append(provs, v.byKey[k]...)
	}
	apps := make([]string, 0, len(v.byApp))
	for a := range v.byApp {
		apps = append(apps, a)
	}
	sort.Strings(apps)
	for _, a := range apps {
		ids := make([]string, 0, len(v.byApp[a]))
		for id := range v.byApp[a] {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			inst := v.byApp[a][id]
			if md := v.metadata[inst.App+"@"+inst.Revision()]; md != nil {
				provs = append(provs, md.Providers(inst)...)
			}
		}
	}
	return provs
}

// publish writes the current view into the store. Signatures come from,
// in order of preference: a metadata report's service definition (full
// types), the application metadata, the provider URLs (names only).
func (v *view) publish(ctx context.Context) {
	v.mu.Lock()
	provs := v.providersLocked()
	sigs := map[ServiceKey]*Signatures{}
	for _, p := range provs {
		if d := v.definitions[definitionKey(p.Service, p.Params["application"])]; d != nil {
			sigs[p.Service] = d
		}
	}
	for _, insts := range v.byApp {
		for _, inst := range insts {
			md := v.metadata[inst.App+"@"+inst.Revision()]
			if md == nil {
				continue
			}
			for _, p := range md.Providers(inst) {
				if sigs[p.Service] == nil && len(p.Methods()) > 0 {
					sigs[p.Service] = &Signatures{Source: "metadata-service", Revision: inst.Revision(), Methods: methodsOf(p)}
				}
			}
		}
	}
	apps := map[ServiceKey]map[string]bool{}
	for _, p := range provs {
		if apps[p.Service] == nil {
			apps[p.Service] = map[string]bool{}
		}
		if a := p.Params["application"]; a != "" {
			apps[p.Service][a] = true
		}
	}
	rulesOf := map[ServiceKey][]Rule{}
	for k, as := range apps {
		if rs := v.rulesForLocked(k, as); len(rs) > 0 {
			rulesOf[k] = rs
		}
	}
	v.mu.Unlock()
	for _, p := range provs {
		if sigs[p.Service] == nil && len(p.Methods()) > 0 {
			sigs[p.Service] = &Signatures{Source: "provider-url", Methods: methodsOf(p)}
		}
	}
	if err := v.cat.publish(ctx, provs, sigs, rulesOf); err != nil {
		v.noteError("apply", err)
		v.log.Error("publishing the registry view", "error", err)
	}
}

func methodsOf(p *Provider) []Method {
	var out []Method
	for _, m := range p.Methods() {
		out = append(out, Method{Name: m})
	}
	return out
}
