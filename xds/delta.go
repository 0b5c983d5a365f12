package xds

import (
	"context"
	"errors"
	"fmt"
	"slices"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"

	"github.com/meshgate/meshgate/config"
)

// deltaStream runs one incremental (delta) ADS stream: the server sends
// only what changed, each resource with its own version, and names what it
// removed.
func (c *Client) deltaStream(ctx context.Context, client discoveryv3.AggregatedDiscoveryServiceClient) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := client.DeltaAggregatedResources(ctx)
	if err != nil {
		return err
	}
	c.mu.Lock()
	var reqs []*discoveryv3.DeltaDiscoveryRequest
	for i, t := range typeOrder {
		ts := c.types[t]
		ts.nonce = ""
		r := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: t, InitialResourceVersions: map[string]string{}}
		if i == 0 {
			r.Node = c.opts.Node
		}
		if wildcard(t) {
			r.ResourceNamesSubscribe = []string{"*"}
		} else {
			ts.names = c.neededLocked(t)
			if len(ts.names) == 0 {
				continue
			}
			r.ResourceNamesSubscribe = ts.names
		}
		for n, e := range c.staged[t] {
			r.InitialResourceVersions[n] = e.version
		}
		reqs = append(reqs, r)
	}
	c.mu.Unlock()
	for _, r := range reqs {
		if err := s.Send(r); err != nil {
			return err
		}
	}
	for {
		resp, err := s.Recv()
		if err != nil {
			return err
		}
		if !c.connected.Swap(true) {
			c.log.Info("delta ADS stream up")
			c.m.connected.Set(1)
		}
		for _, r := range c.handleDelta(ctx, resp) {
			if err := s.Send(r); err != nil {
				return err
			}
		}
	}
}

// handleDelta processes one delta response and returns its ACK or NACK,
// then any subscription changes.
func (c *Client) handleDelta(ctx context.Context, resp *discoveryv3.DeltaDiscoveryResponse) []*discoveryv3.DeltaDiscoveryRequest {
	t := resp.GetTypeUrl()
	c.mu.Lock()
	defer c.mu.Unlock()
	ts := c.types[t]
	if ts == nil {
		c.log.Warn("ignoring a delta response of a type not asked for", "type", t)
		return nil
	}
	ts.nonce = resp.GetNonce()
	ack := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: t, ResponseNonce: ts.nonce}

	ch := change{typeURL: t, put: map[string]entry{}, rejected: map[string]rejection{}, remove: resp.GetRemovedResources()}
	var unnamed []error
	for _, r := range resp.GetResources() {
		e := entry{version: r.GetVersion(), raw: r.GetResource()}
		if r.GetName() == "" {
			unnamed = append(unnamed, errors.New("a resource without a name"))
			continue
		}
		m, err := r.GetResource().UnmarshalNew()
		if err == nil {
			e.msg = m
			var name string
			if name, err = config.ResourceName(m); err == nil && name != r.GetName() {
				err = fmt.Errorf("named %q inside", name)
			}
		}
		if err == nil {
			err = config.Validate(e.msg)
		}
		if err != nil {
			ch.rejected[r.GetName()] = rejection{err: err, entry: e}
			continue
		}
		ch.put[r.GetName()] = e
	}
	if wildcard(t) {
		c.received[t] = true
	}
	o := c.apply(ctx, ch)
	if len(unnamed) > 0 {
		o.whole = errors.Join(append(unnamed, o.whole)...)
	}
	c.record(t, o, "")
	if err := o.err(t); err != nil {
		ack.ErrorDetail = &statuspb.Status{Code: int32(codes.InvalidArgument), Message: err.Error()}
		c.m.updates.WithLabelValues(kind(t), "nack").Inc()
		c.log.Warn("NACK", "type", kind(t), "nonce", resp.GetNonce(), "rejected", len(o.rejected),
			"accepted", len(resp.GetResources())-len(o.rejected), "error", err)
	} else {
		c.m.updates.WithLabelValues(kind(t), "ack").Inc()
	}
	out := []*discoveryv3.DeltaDiscoveryRequest{ack}
	// Follow what the listeners and clusters now name.
	for _, typ := range typeOrder {
		if wildcard(typ) {
			continue
		}
		st := c.types[typ]
		need := c.neededLocked(typ)
		var add, drop []string
		for _, n := range need {
			if !slices.Contains(st.names, n) {
				add = append(add, n)
			}
		}
		for _, n := range st.names {
			if !slices.Contains(need, n) {
				drop = append(drop, n)
			}
		}
		if len(add)+len(drop) > 0 {
			st.names = need
			out = append(out, &discoveryv3.DeltaDiscoveryRequest{TypeUrl: typ, ResourceNamesSubscribe: add, ResourceNamesUnsubscribe: drop})
		}
	}
	return out
}
