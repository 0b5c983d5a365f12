package announce

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Provider is what is announced: the services one listener serves for an
// application, at one address, over the dubbo protocol (hessian2).
type Provider struct {
	App      string
	Host     string
	Port     uint32
	Services []Service
	// Protocols the port serves, each announced (default: dubbo alone).
	Protocols []string
	// Started is when the provider started (the URLs' timestamp).
	Started time.Time
}

// protocols are the protocols announced, dubbo (Dubbo2) first.
func (p *Provider) protocols() []string {
	if len(p.Protocols) == 0 {
		return []string{Dubbo}
	}
	return p.Protocols
}

// Service is one service the provider serves.
type Service struct {
	Interface, Version, Group string
	Methods                   []Method
}

// Method is a method with its Java signature.
type Method struct {
	Name       string
	ParamTypes []string
	ReturnType string
}

// Dubbo and Triple are the protocols announced, both with hessian2 (the
// MetadataService answers over Dubbo).
const (
	Dubbo  = "dubbo"
	Triple = "tri"
)

// MetadataServiceName is the interface Dubbo 3 consumers ask an instance
// for its MetadataInfo (group = the application, version 1.0.0).
const (
	MetadataServiceName    = "org.apache.dubbo.metadata.MetadataService"
	MetadataServiceVersion = "1.0.0"
)

// Address is host:port.
func (p *Provider) Address() string {
	return net.JoinHostPort(p.Host, strconv.FormatUint(uint64(p.Port), 10))
}

// methodNames is the comma-separated, sorted method list of s (Dubbo's
// "methods" parameter).
func (s *Service) methodNames() string {
	names := make([]string, 0, len(s.Methods))
	for _, m := range s.Methods {
		names = append(names, m.Name)
	}
	slices.Sort(names)
	return strings.Join(slices.Compact(names), ",")
}

// params are the parameters of s's URL, as a Dubbo 3 provider pinned to
// hessian2 publishes them.
func (p *Provider) params(s *Service) map[string]string {
	out := map[string]string{
		"application":          p.App,
		"anyhost":              "false",
		"deprecated":           "false",
		"dubbo":                "2.0.2",
		"dynamic":              "true",
		"generic":              "false",
		"interface":            s.Interface,
		"methods":              s.methodNames(),
		"prefer.serialization": "hessian2",
		"serialization":        "hessian2",
		"side":                 "provider",
		"metadata-type":        "local",
		"service-name-mapping": "true",
		"pid":                  strconv.Itoa(os.Getpid()),
		"timestamp":            strconv.FormatInt(p.Started.UnixMilli(), 10),
	}
	if s.Version != "" {
		out["version"] = s.Version
	}
	if s.Group != "" {
		out["group"] = s.Group
	}
	return out
}

// URL is s's interface-level registration over protocol:
// <protocol>://host:port/<interface>?<params, sorted>.
func (p *Provider) URL(s *Service, protocol string) string {
	params := p.params(s)
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var q strings.Builder
	for i, k := range keys {
		if i > 0 {
			q.WriteByte('&')
		}
		q.WriteString(url.QueryEscape(k) + "=" + url.QueryEscape(params[k]))
	}
	return protocol + "://" + p.Address() + "/" + s.Interface + "?" + q.String()
}

// ServiceInfo is one service of a MetadataInfo, as hessian2 writes
// org.apache.dubbo.metadata.MetadataInfo$ServiceInfo for Java consumers.
type ServiceInfo struct {
	Name     string            `hessian:"name"`
	Group    string            `hessian:"group"`
	Version  string            `hessian:"version"`
	Protocol string            `hessian:"protocol"`
	Port     int32             `hessian:"port"`
	Path     string            `hessian:"path"`
	Params   map[string]string `hessian:"params"`
}

// JavaClassName names the Java class hessian2 writes.
func (*ServiceInfo) JavaClassName() string {
	return "org.apache.dubbo.metadata.MetadataInfo$ServiceInfo"
}

// MetadataInfo is an application's services at one revision, what its
// MetadataService answers (org.apache.dubbo.metadata.MetadataInfo).
type MetadataInfo struct {
	App      string                  `hessian:"app"`
	Revision string                  `hessian:"revision"`
	Services map[string]*ServiceInfo `hessian:"services"`
}

// JavaClassName names the Java class hessian2 writes.
func (*MetadataInfo) JavaClassName() string { return "org.apache.dubbo.metadata.MetadataInfo" }

// serviceKey is how MetadataInfo keys a service: group/interface:version:protocol.
func serviceKey(s *Service, protocol string) string {
	k := s.Interface + ":" + s.Version + ":" + protocol
	if s.Group != "" {
		k = s.Group + "/" + k
	}
	return k
}

// Metadata is p's MetadataInfo; its revision is a digest of what
// consumers read of it (the services, their methods and parameters, the
// port), so that it changes exactly when they must read it again.
func (p *Provider) Metadata() *MetadataInfo {
	m := &MetadataInfo{App: p.App, Services: map[string]*ServiceInfo{}}
	h := md5.New() // the digest Dubbo's revisions are (a cache key, not a secret)
	fmt.Fprintf(h, "%s|%d", p.App, p.Port)
	for i := range p.Services {
		s := &p.Services[i]
		params := p.params(s)
		delete(params, "pid") // per process, not per content
		delete(params, "timestamp")
		for _, proto := range p.protocols() {
			m.Services[serviceKey(s, proto)] = &ServiceInfo{Name: s.Interface, Group: s.Group, Version: s.Version, Protocol: proto,
				Port: int32(p.Port), Path: s.Interface, Params: maps.Clone(params)}
			fmt.Fprintf(h, "|%s", serviceKey(s, proto))
		}
		fmt.Fprintf(h, "|%s", s.methodNames())
		for _, mt := range s.Methods {
			fmt.Fprintf(h, "|%s(%s)%s", mt.Name, strings.Join(mt.ParamTypes, ","), mt.ReturnType)
		}
	}
	m.Revision = hex.EncodeToString(h.Sum(nil))
	for _, si := range m.Services {
		si.Params["revision"] = m.Revision
	}
	return m
}

// InstanceJSON is p's application-level registration in ZooKeeper:
// Curator's ServiceInstance with Dubbo's payload, naming the metadata
// revision and where the MetadataService answers (this listener).
func (p *Provider) InstanceJSON(revision string) ([]byte, error) {
	meta, err := p.InstanceMetadata(revision)
	if err != nil {
		return nil, err
	}
	id := p.Address()
	inst := map[string]any{
		"name": p.App, "id": id, "address": p.Host, "port": p.Port, "sslPort": nil,
		"payload": map[string]any{
			"@class": "org.apache.dubbo.registry.zookeeper.ZookeeperInstance",
			"id":     id, "name": p.App, "metadata": meta,
		},
		"registrationTimeUTC": p.Started.UnixMilli(), // (not now: the node is rewritten only when it changes) "serviceType": "DYNAMIC", "uriSpec": nil,
	}
	return json.Marshal(inst)
}

// InstanceMetadata is the metadata of p's instance (Dubbo's keys).
func (p *Provider) InstanceMetadata(revision string) (map[string]string, error) {
	var eps []map[string]any
	for _, proto := range p.protocols() {
		eps = append(eps, map[string]any{"port": p.Port, "protocol": proto})
	}
	endpoints, err := json.Marshal(eps)
	if err != nil {
		return nil, err
	}
	msParams, err := json.Marshal(map[string]string{
		"serialization": "hessian2", "prefer.serialization": "hessian2", "version": MetadataServiceVersion,
		"dubbo": "2.0.2", "side": "provider", "port": strconv.FormatUint(uint64(p.Port), 10), "protocol": Dubbo,
	})
	if err != nil {
		return nil, err
	}
	return map[string]string{
		"dubbo.endpoints":                   string(endpoints),
		"dubbo.metadata-service.url-params": string(msParams),
		"dubbo.metadata.revision":           revision,
		"dubbo.metadata.storage-type":       "local",
		"meta-v":                            MetadataServiceVersion,
		"timestamp":                         strconv.FormatInt(p.Started.UnixMilli(), 10),
	}, nil
}

// Definition is s's FullServiceDefinition JSON, as Java Dubbo's metadata
// report holds it: the methods with their signatures.
func (p *Provider) Definition(s *Service) ([]byte, error) {
	type method struct {
		Name           string   `json:"name"`
		ParameterTypes []string `json:"parameterTypes"`
		ReturnType     string   `json:"returnType"`
		Annotations    []string `json:"annotations"`
	}
	methods := make([]method, 0, len(s.Methods))
	for _, m := range s.Methods {
		pt := m.ParamTypes
		if pt == nil {
			pt = []string{}
		}
		methods = append(methods, method{Name: m.Name, ParameterTypes: pt, ReturnType: m.ReturnType, Annotations: []string{}})
	}
	return json.Marshal(map[string]any{
		"canonicalName": s.Interface,
		"codeSource":    "meshgate",
		"methods":       methods,
		"types":         []any{},
		"annotations":   []string{},
		"parameters":    p.params(s),
	})
}
