package xds

import (
	"context"
	"errors"
	"maps"
	"sort"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshgate/meshgate/config"
)

// entry is one resource as the control plane sent it.
type entry struct {
	msg     proto.Message
	version string
	raw     *anypb.Any // as sent, for /config_dump of a rejection
}

// resources holds entries by type URL and name.
type resources map[string]map[string]entry

func (r resources) clone() resources {
	out := make(resources, len(r))
	for t, m := range r {
		out[t] = maps.Clone(m)
	}
	return out
}

func (r resources) get(t, name string) (entry, bool) {
	e, ok := r[t][name]
	return e, ok
}

func (r resources) put(t, name string, e entry) {
	if r[t] == nil {
		r[t] = map[string]entry{}
	}
	r[t][name] = e
}

// change is what one response asks for, for one type.
type change struct {
	typeURL string
	// put are the resources the response carries that decoded and
	// validated, by name.
	put map[string]entry
	// remove names resources the response withdraws.
	remove []string
	// rejected are resources of the response that failed before staging
	// (decoding, validation), by name, with why.
	rejected map[string]rejection
}

// rejection is why one resource of a response was not accepted.
type rejection struct {
	err   error
	entry entry
}

// outcome is what became of a change.
type outcome struct {
	// rejected lists, by name, the resources of the response that were
	// not accepted; each keeps its previous version, if it had one.
	rejected map[string]rejection
	// whole, when set, is why the whole response was refused: a problem
	// that cannot be pinned on one of its resources.
	whole error
}

// err is the NACK's error detail, nil for an ACK. It names every rejected
// resource with its reason, one per line.
func (o outcome) err(typeURL string) error {
	if o.whole == nil && len(o.rejected) == 0 {
		return nil
	}
	var errs config.ResourceErrors
	for name, r := range o.rejected {
		errs = append(errs, &config.ResourceError{TypeURL: typeURL, Name: name, Err: r.err})
	}
	var lines []string
	if o.whole != nil {
		lines = append(lines, o.whole.Error())
	}
	if len(errs) > 0 {
		lines = append(lines, errs.Sorted().Error())
	}
	return errors.New(strings.Join(lines, "\n"))
}

// apply stages a change and makes live what is ready: every resource that
// compiles goes live, each one that does not is rejected alone and keeps
// its previous version. Called with c.mu held.
func (c *Client) apply(ctx context.Context, ch change) outcome {
	out := outcome{rejected: map[string]rejection{}}
	for n, r := range ch.rejected {
		out.rejected[n] = r
	}
	t := ch.typeURL
	cand := c.staged.clone()
	if cand[t] == nil {
		cand[t] = map[string]entry{}
	}
	// changed: resources of this response that differ from what is staged.
	changed := map[string]bool{}
	for n, e := range ch.put {
		if old, ok := cand[t][n]; ok && proto.Equal(old.msg, e.msg) {
			// Same content: only the version label moves.
			cand[t][n] = e
			continue
		}
		cand[t][n] = e
		changed[n] = true
	}
	for _, n := range ch.remove {
		if _, ok := cand[t][n]; ok {
			delete(cand[t], n)
			changed[n] = true
		}
	}

	// Try the candidate; pin each failure on a resource and take that
	// resource back, until what is left goes through. Each round takes back
	// at least one resource, so this ends.
	var view resources
	applied := false
	for round := 0; ; round++ {
		cand = c.pruned(cand)
		var err error
		view, applied, err = c.tryLocked(ctx, cand)
		if err == nil {
			break
		}
		byRes, rest := config.ByResource(err)
		progress := false
		if rest == nil {
			for typ, names := range byRes {
				for n, rerr := range names {
					if c.takeBack(cand, typ, n, t, changed) {
						progress = true
						if typ == t && ch.put[n].msg != nil {
							out.rejected[n] = rejection{err: rerr, entry: ch.put[n]}
						} else {
							c.noteFailure(typ, n, cand, rerr)
						}
						continue
					}
					rest = errors.Join(rest, &config.ResourceError{TypeURL: typ, Name: n, Err: rerr})
				}
			}
		}
		if rest != nil || !progress || round > 2*size(cand)+2*size(c.live)+8 {
			// Not something one resource of this response explains:
			// refuse the response whole and keep what was staged.
			out.whole = err
			if rest != nil && progress {
				out.whole = rest
			}
			for n, e := range ch.put {
				if _, ok := out.rejected[n]; !ok {
					out.rejected[n] = rejection{err: errors.New("not applied: the update was refused whole"), entry: e}
				}
			}
			return out
		}
	}
	c.staged = cand
	if applied {
		c.live = view
	}
	for n := range ch.put {
		if _, bad := out.rejected[n]; !bad {
			delete(c.failures[t], n)
		}
	}
	for _, n := range ch.remove {
		delete(c.failures[t], n)
	}
	c.afterStageLocked(ctx)
	return out
}

func size(r resources) int {
	n := 0
	for _, m := range r {
		n += len(m)
	}
	return n
}

// takeBack undoes a failing resource in cand: one that this response
// changed goes back to its staged version; one staged earlier but not yet
// live goes back to its live version. It reports false when the resource
// is live as it is (the failure is not its own).
func (c *Client) takeBack(cand resources, typ, name, respType string, changed map[string]bool) bool {
	if typ == respType && changed[name] {
		delete(changed, name)
		if old, ok := c.staged.get(typ, name); ok {
			cand.put(typ, name, old)
		} else {
			delete(cand[typ], name)
		}
		return true
	}
	cur, inCand := cand.get(typ, name)
	live, isLive := c.live.get(typ, name)
	if inCand && isLive && proto.Equal(cur.msg, live.msg) {
		return false
	}
	if !inCand && !isLive {
		return false
	}
	if isLive {
		cand.put(typ, name, live)
	} else {
		delete(cand[typ], name)
	}
	return true
}

// noteFailure records the failure of a resource staged by an earlier
// response (it was ACKed then, and fails now that it would go live).
func (c *Client) noteFailure(typ, name string, cand resources, err error) {
	c.log.Warn("a resource accepted earlier does not go live", "type", kind(typ), "name", name, "error", err)
	c.setFailure(typ, name, config.Failure{Details: err.Error(), Time: time.Now()})
}

func (c *Client) setFailure(typ, name string, f config.Failure) {
	if c.failures[typ] == nil {
		c.failures[typ] = map[string]config.Failure{}
	}
	c.failures[typ][name] = f
}

// tryLocked compiles cand and makes live what is ready of it. It returns
// the view it made live (applied) or nil.
func (c *Client) tryLocked(ctx context.Context, cand resources) (resources, bool, error) {
	view, full := c.viewOf(cand, time.Now())
	if !c.initialDone {
		// Clusters come first (as Envoy initializes them first), so that
		// no route is live before the clusters it names.
		if full && c.received[config.ClusterType] || time.Now().After(c.initialDeadline) {
			if !full {
				if err := c.store.Check(updateOf(cand)); err != nil {
					return nil, false, err
				}
			}
			if err := c.store.Apply(ctx, updateOf(view)); err != nil {
				return nil, false, err
			}
			c.initialDone = true
			return view, true, nil
		}
		// The first config goes live whole, once complete: check only.
		return nil, false, c.store.Check(updateOf(cand))
	}
	if !full {
		// Some listeners or clusters wait for their routes or endpoints:
		// check all, make live the rest.
		if err := c.store.Check(updateOf(cand)); err != nil {
			return nil, false, err
		}
	}
	if err := c.store.Apply(ctx, updateOf(view)); err != nil {
		return nil, false, err
	}
	return view, true, nil
}

// viewOf is what of cand can go live now: listeners whose route
// configurations and clusters whose endpoints have arrived (or waited past
// the initial fetch timeout); a listener or cluster still warming keeps
// its live version, if it has one. full reports that nothing is left out.
func (c *Client) viewOf(cand resources, now time.Time) (view resources, full bool) {
	view = resources{}
	full = true
	warmingNow := map[string]map[string]bool{}
	pick := func(t, name string, ready bool) {
		e := cand[t][name]
		if ready {
			view.put(t, name, e)
			return
		}
		if warmingNow[t] == nil {
			warmingNow[t] = map[string]bool{}
		}
		warmingNow[t][name] = true
		if c.waitedOut(t, name, now) {
			view.put(t, name, e)
			return
		}
		full = false
		if old, ok := c.live.get(t, name); ok {
			view.put(t, name, old)
		}
	}
	for name, e := range cand[config.ClusterType] {
		eds := edsName(e.msg.(*clusterv3.Cluster))
		_, has := cand.get(config.EndpointType, eds)
		pick(config.ClusterType, name, (eds == "" || has) && hasSecrets(cand, e.msg))
	}
	for name, e := range cand[config.ListenerType] {
		ready := hasSecrets(cand, e.msg)
		for _, rds := range rdsNames(e.msg.(*listenerv3.Listener)) {
			if _, ok := cand.get(config.RouteType, rds); !ok {
				ready = false
			}
		}
		pick(config.ListenerType, name, ready)
	}
	// Route configurations and endpoints the chosen listeners and
	// clusters read: the newest staged, else the live one.
	dep := func(t, name string) {
		if e, ok := cand.get(t, name); ok {
			view.put(t, name, e)
		} else if e, ok := c.live.get(t, name); ok {
			view.put(t, name, e)
		}
	}
	for _, e := range view[config.ListenerType] {
		for _, rds := range rdsNames(e.msg.(*listenerv3.Listener)) {
			dep(config.RouteType, rds)
		}
	}
	for _, e := range view[config.ClusterType] {
		if eds := edsName(e.msg.(*clusterv3.Cluster)); eds != "" {
			dep(config.EndpointType, eds)
		}
	}
	for _, t := range []string{config.ListenerType, config.ClusterType} {
		for _, e := range view[t] {
			for _, name := range adsSecrets(e.msg) {
				dep(config.SecretType, name)
			}
		}
	}
	// Start the clock of what began to wait; forget what no longer does.
	for _, t := range []string{config.ListenerType, config.ClusterType} {
		for name := range c.warming[t] {
			if !warmingNow[t][name] {
				delete(c.warming[t], name)
			}
		}
		for name := range warmingNow[t] {
			if _, ok := c.warming[t][name]; !ok {
				if c.warming[t] == nil {
					c.warming[t] = map[string]time.Time{}
				}
				c.warming[t][name] = now
			}
		}
	}
	return view, full
}

// hasSecrets reports whether every secret that a listener or cluster
// asks for over ADS is in cand: as Envoy does, it warms until they come.
func hasSecrets(cand resources, m proto.Message) bool {
	for _, name := range adsSecrets(m) {
		if _, ok := cand.get(config.SecretType, name); !ok {
			return false
		}
	}
	return true
}

// adsSecrets names the secrets that a listener or cluster asks for over
// the ADS stream (the others come from the gateway's identity or files).
func adsSecrets(m proto.Message) []string {
	var out []string
	for _, r := range config.SecretRefs(m) {
		if r.ADS {
			out = append(out, r.Name)
		}
	}
	return out
}

// waitedOut reports whether a listener or cluster has waited for its
// routes or endpoints longer than the initial fetch timeout: it then goes
// live without them (requests answer 503/404 until they come), as Envoy's
// does.
func (c *Client) waitedOut(t, name string, now time.Time) bool {
	since, ok := c.warming[t][name]
	return ok && now.Sub(since) >= c.opts.InitialFetchTimeout
}

// updateSyncedLocked notes the end of the initial fetch: clusters and
// listeners received, the first config live, and no listener of it still
// waiting for its routes. Like Envoy's initialization it happens once:
// listeners that come later warm without making the gateway unready.
func (c *Client) updateSyncedLocked(now time.Time) {
	if c.synced || !c.initialDone || !c.received[config.ClusterType] || !c.received[config.ListenerType] {
		return
	}
	for name := range c.warming[config.ListenerType] {
		if !c.waitedOut(config.ListenerType, name, now) {
			return
		}
	}
	c.synced = true
}

// pruned drops the route configurations and endpoints that neither a
// staged nor a live listener or cluster reads.
func (c *Client) pruned(cand resources) resources {
	routes, eds, secrets := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, r := range []resources{cand, c.live} {
		for _, e := range r[config.ListenerType] {
			for _, n := range rdsNames(e.msg.(*listenerv3.Listener)) {
				routes[n] = true
			}
			for _, n := range adsSecrets(e.msg) {
				secrets[n] = true
			}
		}
		for _, e := range r[config.ClusterType] {
			if n := edsName(e.msg.(*clusterv3.Cluster)); n != "" {
				eds[n] = true
			}
			for _, n := range adsSecrets(e.msg) {
				secrets[n] = true
			}
		}
	}
	for n := range cand[config.SecretType] {
		if !secrets[n] {
			delete(cand[config.SecretType], n)
		}
	}
	for n := range cand[config.RouteType] {
		if !routes[n] {
			delete(cand[config.RouteType], n)
		}
	}
	for n := range cand[config.EndpointType] {
		if !eds[n] {
			delete(cand[config.EndpointType], n)
		}
	}
	return cand
}

// afterStageLocked arms the timer for the next warming deadline (or the
// initial fetch deadline), and forgets failures of route configurations
// and endpoints nothing asks for any more.
func (c *Client) afterStageLocked(ctx context.Context) {
	for _, t := range []string{config.RouteType, config.EndpointType, config.SecretType} {
		need := map[string]bool{}
		for _, n := range c.neededLocked(t) {
			need[n] = true
		}
		for n := range c.failures[t] {
			if !need[n] {
				delete(c.failures[t], n)
			}
		}
	}
	now := time.Now()
	c.updateSyncedLocked(now)
	var next time.Time
	if !c.initialDone {
		next = c.initialDeadline
	}
	for _, m := range c.warming {
		for _, since := range m {
			// A deadline already past has been acted on.
			if d := since.Add(c.opts.InitialFetchTimeout); d.After(now) && (next.IsZero() || d.Before(next)) {
				next = d
			}
		}
	}
	if c.warmTimer != nil {
		c.warmTimer.Stop()
		c.warmTimer = nil
	}
	if next.IsZero() {
		return
	}
	c.warmTimer = time.AfterFunc(time.Until(next)+time.Millisecond, func() { c.warmTimeout(ctx) })
}

// warmTimeout makes live what waited past the initial fetch timeout.
func (c *Client) warmTimeout(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ctx.Err() != nil {
		return
	}
	if !c.initialDone && time.Now().After(c.initialDeadline) {
		c.log.Warn("the initial fetch timeout passed; applying what has arrived", "timeout", c.opts.InitialFetchTimeout,
			"clusters", len(c.staged[config.ClusterType]), "listeners", len(c.staged[config.ListenerType]))
	}
	// Re-stage what is staged: what waited out its timeout now goes in.
	o := c.apply(ctx, change{typeURL: config.ClusterType})
	if o.whole != nil {
		c.log.Error("what waited for its routes or endpoints does not go live", "error", o.whole)
	}
}

// updateOf is the store update that makes the store hold exactly r under
// the xds source.
func updateOf(r resources) config.Update {
	u := config.Update{Source: SourceName, Replace: config.ResourceTypes, ResourceVersions: map[string]map[string]string{}}
	for _, t := range config.ResourceTypes {
		names := make([]string, 0, len(r[t]))
		for n := range r[t] {
			names = append(names, n)
		}
		sort.Strings(names)
		u.ResourceVersions[t] = map[string]string{}
		for _, n := range names {
			u.Resources = append(u.Resources, r[t][n].msg)
			u.ResourceVersions[t][n] = r[t][n].version
		}
	}
	return u
}
