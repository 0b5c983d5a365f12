package announce

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/config_client"
	"github.com/nacos-group/nacos-sdk-go/v2/clients/naming_client"
	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/meshgate/meshgate/registry"
)

// Nacos registers in a Nacos 2 server, as Dubbo 3 providers do: each
// service as an instance of providers:<interface>:<version>:<group>
// (interface-level) and the application as an instance of the service
// named after it (instance-level), both with Dubbo's metadata; the mapping
// as config <interface> in group "mapping"; definitions as config
// <interface>:<version>:<group>:provider:<app> in group "dubbo".
type Nacos struct {
	name    string
	group   string
	naming  naming_client.INamingClient
	configs config_client.IConfigClient

	mu sync.Mutex
	// registered are the instances written, by service name, with the
	// metadata they carry: the Nacos client re-registers them itself
	// after a reconnect, so each is written again only when it changes.
	registered map[string]vo.RegisterInstanceParam
	// published are the configs written (mapping, definitions), by
	// group/dataId.
	published map[string]string
}

// DialNacos makes the Nacos clients for opts (its Servers, GRPCPort,
// Namespace, Group, credentials, WorkDir); they connect as they are used.
func DialNacos(opts registry.NacosOptions) (*Nacos, error) {
	if len(opts.Servers) == 0 {
		return nil, errors.New("nacos: no servers")
	}
	param, err := registry.NacosClientParam(opts)
	if err != nil {
		return nil, err
	}
	naming, err := clients.NewNamingClient(param)
	if err != nil {
		return nil, fmt.Errorf("nacos %v: naming client: %w", opts.Servers, err)
	}
	configs, err := clients.NewConfigClient(param)
	if err != nil {
		naming.CloseClient()
		return nil, fmt.Errorf("nacos %v: config client: %w", opts.Servers, err)
	}
	group := opts.Group
	if group == "" {
		group = constant.DEFAULT_GROUP
	}
	return &Nacos{name: "nacos " + strings.Join(opts.Servers, ","), group: group, naming: naming, configs: configs,
		registered: map[string]vo.RegisterInstanceParam{}, published: map[string]string{}}, nil
}

func (n *Nacos) Name() string { return n.name }

func (n *Nacos) Close() {
	n.naming.CloseClient()
	n.configs.CloseClient()
}

// Register writes the instances, the mapping and the definitions that
// are missing or changed.
func (n *Nacos) Register(ctx context.Context, p *Provider, m *MetadataInfo, mode Mode) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	want := map[string]vo.RegisterInstanceParam{}
	for i := range p.Services {
		s := &p.Services[i]
		if mode.interfaceLevel() {
			// One instance per service and address in Nacos: the
			// first protocol's URL, Dubbo2 when the port serves it
			// (Triple consumers find the port's tri endpoint
			// application-level).
			meta := p.params(s)
			meta["protocol"] = p.protocols()[0]
			meta["path"] = s.Interface
			name := "providers:" + s.Interface + ":" + s.Version + ":" + s.Group
			want[name] = n.instance(p, name, meta)
		}
		if err := n.mapApp(ctx, s.Interface, p.App); err != nil {
			return err
		}
		def, err := p.Definition(s)
		if err != nil {
			return err
		}
		if err := n.publish(ctx, s.Interface+":"+s.Version+":"+s.Group+":provider:"+p.App, "dubbo", string(def)); err != nil {
			return err
		}
	}
	if mode.instanceLevel() {
		meta, err := p.InstanceMetadata(m.Revision)
		if err != nil {
			return err
		}
		want[p.App] = n.instance(p, p.App, meta)
	}
	for name, old := range n.registered {
		if _, ok := want[name]; !ok {
			if err := n.deregister(old); err != nil {
				return err
			}
		}
	}
	for name, in := range want {
		if err := ctx.Err(); err != nil {
			return err
		}
		if old, ok := n.registered[name]; ok && maps.Equal(old.Metadata, in.Metadata) {
			continue
		}
		if ok, err := n.naming.RegisterInstance(in); err != nil || !ok {
			return fmt.Errorf("nacos: registering %s: %v (ok %v)", name, err, ok)
		}
		n.registered[name] = in
	}
	return nil
}

func (n *Nacos) instance(p *Provider, service string, meta map[string]string) vo.RegisterInstanceParam {
	return vo.RegisterInstanceParam{Ip: p.Host, Port: uint64(p.Port), ServiceName: service, GroupName: n.group,
		Weight: 1, Enable: true, Healthy: true, Ephemeral: true, Metadata: meta}
}

// Deregister removes the instances.
func (n *Nacos) Deregister(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	var errs []error
	for _, in := range n.registered {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := n.deregister(in); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (n *Nacos) deregister(in vo.RegisterInstanceParam) error {
	ok, err := n.naming.DeregisterInstance(vo.DeregisterInstanceParam{Ip: in.Ip, Port: in.Port, ServiceName: in.ServiceName,
		GroupName: in.GroupName, Ephemeral: true})
	if err != nil || !ok {
		return fmt.Errorf("nacos: deregistering %s: %v (ok %v)", in.ServiceName, err, ok)
	}
	delete(n.registered, in.ServiceName)
	return nil
}

// publish writes a config once per content.
func (n *Nacos) publish(ctx context.Context, dataID, group, content string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	key := group + "/" + dataID
	if n.published[key] == content {
		return nil
	}
	if ok, err := n.configs.PublishConfig(vo.ConfigParam{DataId: dataID, Group: group, Content: content}); err != nil || !ok {
		return fmt.Errorf("nacos: publishing %s: %v (ok %v)", key, err, ok)
	}
	n.published[key] = content
	return nil
}

// mapApp adds app to the interface's mapping config, keeping the other
// applications there.
func (n *Nacos) mapApp(ctx context.Context, iface, app string) error {
	key := "mapping/" + iface
	if _, done := n.published[key]; done {
		return nil
	}
	cur, err := n.configs.GetConfig(vo.ConfigParam{DataId: iface, Group: "mapping"})
	if err != nil && cur == "" && !registry.ConfigMissing(err) {
		// Not "no mapping yet" (a refused read, the SDK's rate limit): writing
		// this app alone would drop the other applications from it.
		return fmt.Errorf("nacos: reading the mapping of %s: %w", iface, err)
	}
	var apps []string
	if cur != "" {
		apps = strings.Split(cur, ",")
	}
	if slices.Contains(apps, app) {
		n.published[key] = cur
		return nil
	}
	return n.publish(ctx, iface, "mapping", strings.Join(append(apps, app), ","))
}
