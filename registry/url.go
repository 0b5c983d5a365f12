package registry

import (
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// ServiceKey identifies a Dubbo service: interface, version and group.
type ServiceKey struct {
	Interface string
	Version   string
	Group     string
}

func (k ServiceKey) String() string {
	s := k.Interface
	if k.Group != "" {
		s = k.Group + "/" + s
	}
	if k.Version != "" {
		s += ":" + k.Version
	}
	return s
}

// Provider is one provider of one service over one protocol: a Dubbo URL.
type Provider struct {
	Service  ServiceKey
	Protocol string // dubbo, tri, ...
	Host     string
	Port     uint32
	// Params are the URL's query parameters (methods, serialization,
	// weight, warmup, timestamp, application, side, ...).
	Params map[string]string
}

// Address is host:port.
func (p *Provider) Address() string {
	return net.JoinHostPort(p.Host, strconv.FormatUint(uint64(p.Port), 10))
}

// Methods lists the method names the provider declares.
func (p *Provider) Methods() []string {
	m := p.Params["methods"]
	if m == "" {
		return nil
	}
	out := strings.Split(m, ",")
	sort.Strings(out)
	return out
}

// Weight is the provider's weight (Dubbo's default 100).
func (p *Provider) Weight() uint32 {
	if w, err := strconv.ParseUint(p.Params["weight"], 10, 32); err == nil && w > 0 {
		return uint32(w)
	}
	return 100
}

// Enabled reports whether the provider takes traffic (disabled=true or an
// enabled=false override turns it off).
func (p *Provider) Enabled() bool {
	return p.Params["disabled"] != "true" && p.Params["enabled"] != "false"
}

// ParseURL parses a Dubbo URL such as
// dubbo://10.0.0.1:20000/org.example.Greeter?version=1.0.0&group=g&methods=SayHello
// (or its URL-encoded form, as ZooKeeper node names hold it).
func ParseURL(raw string) (*Provider, error) {
	if strings.Contains(raw, "%") && !strings.Contains(raw, "://") {
		dec, err := url.QueryUnescape(raw)
		if err != nil {
			return nil, fmt.Errorf("dubbo url %q: %w", raw, err)
		}
		raw = dec
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("dubbo url %q: %w", raw, err)
	}
	if u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("dubbo url %q: want protocol://host:port/interface", raw)
	}
	host, portStr, err := net.SplitHostPort(u.Host)
	if err != nil && (u.Scheme == "override" || u.Scheme == "route" || u.Scheme == "condition") && u.Port() == "" {
		// override://0.0.0.0/<interface>?..., route://0.0.0.0/...:
		// Dubbo's form for "every address" has no port.
		host, portStr, err = u.Hostname(), "0", nil
	}
	if err != nil {
		return nil, fmt.Errorf("dubbo url %q: %w", raw, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("dubbo url %q: bad port %q", raw, portStr)
	}
	p := &Provider{Protocol: u.Scheme, Host: host, Port: uint32(port), Params: map[string]string{}}
	for k, vs := range u.Query() {
		if len(vs) > 0 {
			p.Params[k] = vs[len(vs)-1]
		}
	}
	iface := p.Params["interface"]
	if iface == "" {
		iface = strings.TrimPrefix(u.Path, "/")
	}
	if iface == "" {
		return nil, fmt.Errorf("dubbo url %q: no interface", raw)
	}
	p.Service = ServiceKey{Interface: iface, Version: p.Params["version"], Group: p.Params["group"]}
	return p, nil
}
