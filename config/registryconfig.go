package config

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
)

// RegistryConfig is one Dubbo registry to discover providers in (the
// friendly format's registries section). Give zookeeper or nacos.
type RegistryConfig struct {
	Name      string           `json:"name"`
	ZooKeeper *ZooKeeperConfig `json:"zookeeper,omitempty"`
	Nacos     *NacosConfig     `json:"nacos,omitempty"`
	// Mode is which registrations to read: interface, application or all
	// (default all).
	Mode string `json:"mode,omitempty"`
	// Services limits discovery to these services (default: every one
	// found).
	Services []DubboServiceConfig `json:"services,omitempty"`
	// Resync re-reads everything this often besides watching (default:
	// 30s for ZooKeeper, 10s for Nacos).
	Resync *Duration `json:"resync,omitempty"`
	// LBPolicy of the discovered clusters (default ROUND_ROBIN, which
	// honours the providers' warm-up).
	LBPolicy string `json:"lb_policy,omitempty"`
}

// ZooKeeperConfig locates a ZooKeeper ensemble.
type ZooKeeperConfig struct {
	Servers []string `json:"servers"`
	// Root is Dubbo's root node (default dubbo).
	Root           string    `json:"root,omitempty"`
	SessionTimeout *Duration `json:"session_timeout,omitempty"`
}

// NacosConfig locates a Nacos 2.x server (gRPC on its port + 1000 unless
// grpc_port says otherwise).
type NacosConfig struct {
	Servers   []string `json:"servers"`
	GRPCPort  uint64   `json:"grpc_port,omitempty"`
	Namespace string   `json:"namespace,omitempty"`
	Group     string   `json:"group,omitempty"`
	Username  string   `json:"username,omitempty"`
	// Password, or PasswordEnv naming the environment variable that holds
	// it (to keep it out of the file).
	Password    string `json:"password,omitempty"`
	PasswordEnv string `json:"password_env,omitempty"`
}

// DubboServiceConfig names a Dubbo service.
type DubboServiceConfig struct {
	Interface string `json:"interface"`
	Version   string `json:"version,omitempty"`
	Group     string `json:"group,omitempty"`
}

// RegistrySettings are a registry to watch, validated.
type RegistrySettings struct {
	Name string
	// Kind is "zookeeper" or "nacos".
	Kind     string
	Servers  []string
	Mode     string
	Services []DubboServiceConfig
	Resync   time.Duration
	LBPolicy string
	// ZooKeeper.
	Root           string
	SessionTimeout time.Duration
	// Nacos.
	GRPCPort                             uint64
	Namespace, Group, Username, Password string
}

func (t *translator) registries(path string, rs []RegistryConfig) []RegistrySettings {
	var out []RegistrySettings
	names := map[string]bool{}
	for i, r := range rs {
		p := fmt.Sprintf("%s[%d]", path, i)
		s := RegistrySettings{Name: r.Name, Mode: r.Mode, Services: r.Services, LBPolicy: r.LBPolicy}
		switch {
		case r.Name == "":
			t.errf(p+".name", "must not be empty")
		case names[r.Name]:
			t.errf(p+".name", "registry %q is defined twice", r.Name)
		}
		names[r.Name] = true
		switch r.Mode {
		case "", "all", "interface", "application":
		default:
			t.errf(p+".mode", "want interface, application or all, got %q", r.Mode)
		}
		if r.LBPolicy != "" {
			if _, ok := clusterv3.Cluster_LbPolicy_value[strings.ToUpper(r.LBPolicy)]; !ok {
				t.errf(p+".lb_policy", "unknown load balancing policy %q", r.LBPolicy)
			}
		}
		for j, svc := range r.Services {
			if svc.Interface == "" {
				t.errf(fmt.Sprintf("%s.services[%d].interface", p, j), "must not be empty")
			}
		}
		if r.Resync != nil {
			if r.Resync.Duration <= 0 {
				t.errf(p+".resync", "must be positive")
			}
			s.Resync = r.Resync.Duration
		}
		switch {
		case !t.registryKind(p, r.ZooKeeper, r.Nacos):
		case r.ZooKeeper != nil:
			s.Kind, s.Servers, s.Root = "zookeeper", r.ZooKeeper.Servers, r.ZooKeeper.Root
			if r.ZooKeeper.SessionTimeout != nil {
				s.SessionTimeout = r.ZooKeeper.SessionTimeout.Duration
			}
		default:
			n := r.Nacos
			s.Kind, s.Servers, s.GRPCPort = "nacos", n.Servers, n.GRPCPort
			s.Namespace, s.Group, s.Username, s.Password = n.Namespace, n.Group, n.Username, n.Password
			if n.PasswordEnv != "" {
				s.Password = os.Getenv(n.PasswordEnv) // (set: registryKind checked)
			}
		}
		out = append(out, s)
	}
	return out
}

// servers checks a list of host:port addresses.
// registryKind checks a registry entry, a watcher's or a local app's: one
// of zookeeper or nacos, its servers, and a Nacos password given once and,
// from the environment, set there. It reports whether the entry is usable.
func (t *translator) registryKind(p string, zk *ZooKeeperConfig, n *NacosConfig) bool {
	if (zk == nil) == (n == nil) {
		t.errf(p, "give exactly one of zookeeper or nacos")
		return false
	}
	if zk != nil {
		t.servers(p+".zookeeper.servers", zk.Servers)
		return true
	}
	t.servers(p+".nacos.servers", n.Servers)
	if n.GRPCPort > 65535 {
		t.errf(p+".nacos.grpc_port", "%d is not a port", n.GRPCPort)
	}
	if n.PasswordEnv != "" {
		if n.Password != "" {
			t.errf(p+".nacos", "give password or password_env, not both")
		}
		if _, ok := os.LookupEnv(n.PasswordEnv); !ok {
			t.errf(p+".nacos.password_env", "environment variable %s is not set", n.PasswordEnv)
		}
	}
	return true
}

func (t *translator) servers(path string, servers []string) {
	if len(servers) == 0 {
		t.errf(path, "give at least one host:port")
	}
	for i, s := range servers {
		if _, _, err := net.SplitHostPort(s); err != nil {
			t.errf(fmt.Sprintf("%s[%d]", path, i), "want host:port, got %q", s)
		}
	}
}
