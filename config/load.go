package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"
)

// Bootstrap holds the process settings that are not xDS resources.
type Bootstrap struct {
	// AdminAddress is host:port of the admin endpoint; "" disables it.
	AdminAddress string
	// ReadinessAddress, when set, serves the readiness probe alone
	// (GET /healthz/ready, as Istio's gateways on :15021) on host:port.
	ReadinessAddress string
	// DrainTimeout bounds the wait for in-flight requests on shutdown,
	// once the listeners stopped accepting.
	DrainTimeout time.Duration
	// DrainPeriod is how long the listeners keep accepting on shutdown,
	// telling clients to go (Envoy's --drain-time-s, Istio's
	// terminationDrainDuration).
	DrainPeriod time.Duration
	// XDS, when set, takes config from a control plane too.
	XDS *XDSSettings
	// Registries are Dubbo registries to discover providers in.
	Registries []RegistrySettings
	// Identity, when set, keeps a workload certificate in the store.
	Identity *IdentitySettings
	// Overload configures the overload manager (zero: its defaults).
	Overload OverloadSettings
	// IstioMetrics, when set, turns Istio's request metrics on.
	IstioMetrics *IstioWorkload
}

// OverloadSettings are the overload manager's (see OverloadConfig); zero
// fields take its defaults.
type OverloadSettings struct {
	MaxHeapBytes                                uint64
	DisableHTTPKeepalive, StopAcceptingRequests float64
	RefreshInterval                             time.Duration
	MaxActiveDownstreamConnections              int64
}

// DefaultBootstrap returns the settings used when a file gives none.
func DefaultBootstrap() Bootstrap {
	return Bootstrap{AdminAddress: "127.0.0.1:9901", DrainTimeout: 15 * time.Second, DrainPeriod: 5 * time.Second}
}

// Loaded is the result of reading a configuration file.
type Loaded struct {
	Bootstrap Bootstrap
	Resources []proto.Message
	// Format is "meshgate" (the friendly YAML) or "envoy" (static_resources).
	Format string
	// Warnings are parts of the file that were read but are not used.
	Warnings []string
}

// LoadFile reads and translates a configuration file.
func LoadFile(path string) (*Loaded, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	l, err := Load(data, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return l, nil
}

// Load parses a configuration in either format (YAML or JSON): Envoy's when
// it has a top-level static_resources, meshgate's friendly one otherwise.
// baseDir resolves relative file names in the friendly format.
func Load(data []byte, baseDir string) (*Loaded, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(js, &top); err != nil {
		return nil, fmt.Errorf("parse: the top level must be a mapping: %w", err)
	}
	var l *Loaded
	if _, ok := top["static_resources"]; ok {
		l, err = loadEnvoy(top)
	} else {
		l, err = loadFriendly(js, baseDir)
	}
	if err != nil {
		return nil, err
	}
	// With a control plane, a file may name what only it provides; with
	// registries, the clusters they provide.
	if l.Bootstrap.XDS == nil {
		var provided func(string) bool
		if len(l.Bootstrap.Registries) > 0 {
			provided = IsRegistryClusterName
		}
		if err := CheckReferences(l.Resources, provided); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func loadFriendly(js []byte, baseDir string) (*Loaded, error) {
	var f File
	d := json.NewDecoder(bytes.NewReader(js))
	d.DisallowUnknownFields()
	if err := d.Decode(&f); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	res, err := f.Translate(baseDir)
	if err != nil {
		return nil, err
	}
	return &Loaded{Bootstrap: f.Bootstrap(), Resources: res, Format: "meshgate"}, nil
}

// envoyIgnored are bootstrap fields that make sense to Envoy but not to
// meshgate; they are read past with a warning.
var envoyIgnored = map[string]bool{
	"layered_runtime": true, "overload_manager": true, "stats_config": true,
	"stats_sinks": true, "cluster_manager": true, "watchdogs": true, "tracing": true,
	"stats_flush_interval": true, "bootstrap_extensions": true,
}

func loadEnvoy(top map[string]json.RawMessage) (*Loaded, error) {
	l := &Loaded{Bootstrap: DefaultBootstrap(), Format: "envoy"}
	var errs []error
	keys := make([]string, 0, len(top))
	for k := range top {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch {
		case k == "static_resources" || k == "admin" || k == "node" || k == "dynamic_resources":
		case envoyIgnored[k]:
			l.Warnings = append(l.Warnings, fmt.Sprintf("%s: not used by meshgate, ignored", k))
		default:
			errs = append(errs, fmt.Errorf("%s: unknown bootstrap field", k))
		}
	}
	if raw, ok := top["admin"]; ok {
		var admin struct {
			Address json.RawMessage `json:"address"`
		}
		if err := json.Unmarshal(raw, &admin); err != nil {
			errs = append(errs, fmt.Errorf("admin: %w", err))
		} else if admin.Address != nil {
			var a corev3.Address
			if err := protojson.Unmarshal(admin.Address, &a); err != nil {
				errs = append(errs, fmt.Errorf("admin.address: %w", err))
			} else if sa := a.GetSocketAddress(); sa != nil {
				l.Bootstrap.AdminAddress = fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue())
			}
		}
	}
	var sr map[string][]json.RawMessage
	if err := json.Unmarshal(top["static_resources"], &sr); err != nil {
		return nil, fmt.Errorf("static_resources: %w", err)
	}
	fields := make([]string, 0, len(sr))
	for f := range sr {
		fields = append(fields, f)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(fields))) // listeners, then clusters
	for _, field := range fields {
		list := sr[field]
		var mk func() proto.Message
		switch field {
		case "listeners":
			mk = func() proto.Message { return &listenerv3.Listener{} }
		case "clusters":
			mk = func() proto.Message { return &clusterv3.Cluster{} }
		default:
			errs = append(errs, fmt.Errorf("static_resources.%s: not supported (meshgate reads listeners and clusters)", field))
			continue
		}
		for i, raw := range list {
			m := mk()
			raw = foldEnums(raw, m.ProtoReflect().Descriptor())
			if err := protojson.Unmarshal(raw, m); err != nil {
				errs = append(errs, fmt.Errorf("static_resources.%s[%d]: %w", field, i, err))
				continue
			}
			l.Resources = append(l.Resources, m)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	x, err := envoyXDS(top, l.Resources)
	if err != nil {
		return nil, err
	}
	l.Bootstrap.XDS = x
	return l, nil
}
