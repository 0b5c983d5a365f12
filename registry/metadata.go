package registry

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// Instance is one application-level registration: a provider process
// (Dubbo 3's service discovery), as ZooKeeper's /services/<app>/<ip:port>
// JSON or a Nacos instance carries it.
type Instance struct {
	App     string
	Host    string
	Port    uint32
	Meta    map[string]string
	Healthy bool
}

// Revision is the instance's metadata revision.
func (i *Instance) Revision() string { return i.Meta["dubbo.metadata.revision"] }

// Endpoints maps protocol to port, from dubbo.endpoints.
func (i *Instance) Endpoints() map[string]uint32 {
	out := map[string]uint32{}
	var eps []struct {
		Port     uint32 `json:"port"`
		Protocol string `json:"protocol"`
	}
	if err := json.Unmarshal([]byte(i.Meta["dubbo.endpoints"]), &eps); err == nil {
		for _, e := range eps {
			out[e.Protocol] = e.Port
		}
	}
	return out
}

// MetadataService tells where the instance serves its metadata: the
// protocol and port (from dubbo.metadata-service.url-params), or ok false
// when the metadata is kept remotely (storage-type remote).
func (i *Instance) MetadataService() (protocol string, port uint32, ok bool) {
	if i.Meta["dubbo.metadata.storage-type"] == "remote" {
		return "", 0, false
	}
	var p map[string]string
	if err := json.Unmarshal([]byte(i.Meta["dubbo.metadata-service.url-params"]), &p); err != nil {
		return "", 0, false
	}
	n, err := strconv.ParseUint(p["port"], 10, 16)
	if err != nil {
		return "", 0, false
	}
	proto := p["protocol"]
	if proto == "" {
		proto = "dubbo"
	}
	return proto, uint32(n), true
}

// ParseZKInstance reads the JSON of a ZooKeeper /services/<app>/<id> node
// (Curator's ServiceInstance with dubbo's payload).
func ParseZKInstance(data []byte) (*Instance, error) {
	var raw struct {
		Name    string `json:"name"`
		Address string `json:"address"`
		Port    uint32 `json:"port"`
		Payload struct {
			Metadata map[string]string `json:"metadata"`
		} `json:"payload"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("service instance: %w", err)
	}
	if raw.Name == "" || raw.Address == "" {
		return nil, fmt.Errorf("service instance: name and address are required")
	}
	return &Instance{App: raw.Name, Host: raw.Address, Port: raw.Port, Meta: raw.Payload.Metadata, Healthy: true}, nil
}

// ServiceInfo is one service of an application's MetadataInfo.
type ServiceInfo struct {
	Name     string            `json:"name"`
	Group    string            `json:"group"`
	Version  string            `json:"version"`
	Protocol string            `json:"protocol"`
	Port     int               `json:"port"`
	Path     string            `json:"path"`
	Params   map[string]string `json:"params"`
}

// MetadataInfo is what an application publishes about its services
// (org.apache.dubbo.metadata.MetadataInfo), for one revision.
type MetadataInfo struct {
	App      string                  `json:"app"`
	Revision string                  `json:"revision"`
	Services map[string]*ServiceInfo `json:"services"`
}

// ParseMetadataJSON reads MetadataInfo JSON (a remote metadata report, or
// MetadataServiceV2 over HTTP).
func ParseMetadataJSON(data []byte) (*MetadataInfo, error) {
	var m MetadataInfo
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("metadata info: %w", err)
	}
	return &m, nil
}

// MetadataFromHessian converts the value a MetadataService returns over
// dubbo (hessian2): a map for the MetadataInfo object, maps of its
// ServiceInfo objects inside.
func MetadataFromHessian(v any) (*MetadataInfo, error) {
	m, ok := asMap(v)
	if !ok {
		return nil, fmt.Errorf("metadata info: want an object, got %T", v)
	}
	if m["app"] == nil && m["services"] == nil {
		return nil, fmt.Errorf("metadata info: an object with neither app nor services")
	}
	out := &MetadataInfo{App: str(m["app"]), Revision: str(m["revision"]), Services: map[string]*ServiceInfo{}}
	services, _ := asMap(m["services"])
	if services == nil {
		services = anyMap(m["services"]) // a struct's field: map[string]*T
	}
	for k, sv := range services {
		sm, ok := asMap(sv)
		if !ok {
			continue
		}
		si := &ServiceInfo{Name: str(sm["name"]), Group: str(sm["group"]), Version: str(sm["version"]),
			Protocol: str(sm["protocol"]), Path: str(sm["path"]), Params: map[string]string{}}
		switch p := sm["port"].(type) {
		case int32:
			si.Port = int(p)
		case int64:
			si.Port = int(p)
		case int:
			si.Port = p
		}
		if params, ok := sm["params"].(map[string]string); ok { // a struct's field
			maps.Copy(si.Params, params)
		} else if params, ok := asMap(sm["params"]); ok {
			for pk, pv := range params {
				si.Params[pk] = str(pv)
			}
		}
		out.Services[k] = si
	}
	return out, nil
}

func asMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, v := range m {
			out[fmt.Sprint(k)] = v
		}
		return out, true
	}
	return structMap(v)
}

// anyMap reads a map of any key and value type (nil if v is none).
func anyMap(v any) map[string]any {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Map {
		return nil
	}
	out := make(map[string]any, rv.Len())
	for it := rv.MapRange(); it.Next(); {
		out[fmt.Sprint(it.Key().Interface())] = it.Value().Interface()
	}
	return out
}

// metadataClasses are the Java classes structMap reads.
var metadataClasses = map[string]bool{
	"org.apache.dubbo.metadata.MetadataInfo":             true,
	"org.apache.dubbo.metadata.MetadataInfo$ServiceInfo": true,
}

// structMap reads a struct (or a pointer to one) as a map by its hessian
// field names: what the decoder builds for a class this process has
// registered as a POJO (a sidecar's own MetadataInfo), where it builds a
// map for one it does not know.
func structMap(v any) (map[string]any, bool) {
	// Only Dubbo's own metadata classes: any other object is not a
	// MetadataInfo, and must not read as an empty one.
	pojo, ok := v.(interface{ JavaClassName() string })
	if !ok || !metadataClasses[pojo.JavaClassName()] {
		return nil, false
	}
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer && !rv.IsNil() {
		rv = rv.Elem()
	}
	if rv.Kind() != reflect.Struct {
		return nil, false
	}
	out := map[string]any{}
	for i := range rv.NumField() {
		f := rv.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		name := f.Tag.Get("hessian")
		if name == "" {
			name = strings.ToLower(f.Name[:1]) + f.Name[1:]
		}
		out[name] = rv.Field(i).Interface()
	}
	return out, true
}

func str(v any) string {
	if v == nil {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

// Providers turns an instance and its application's metadata into one
// Provider per service and protocol it serves.
func (m *MetadataInfo) Providers(inst *Instance) []*Provider {
	ports := inst.Endpoints()
	keys := make([]string, 0, len(m.Services))
	for k := range m.Services {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []*Provider
	for _, k := range keys {
		si := m.Services[k]
		if si == nil {
			continue // "services": {"k": null} from a report or an answer
		}
		port, ok := ports[si.Protocol]
		if !ok && si.Port > 0 {
			port, ok = uint32(si.Port), true
		}
		if !ok {
			continue
		}
		params := map[string]string{}
		for pk, pv := range si.Params {
			params[pk] = pv
		}
		params["application"] = inst.App
		name := si.Name
		if name == "" {
			name = strings.TrimPrefix(si.Path, "/")
		}
		out = append(out, &Provider{
			Service:  ServiceKey{Interface: name, Version: si.Version, Group: si.Group},
			Protocol: si.Protocol, Host: inst.Host, Port: port, Params: params,
		})
	}
	return out
}

// ServiceDefinition is a service's method list with full signatures, as
// Java Dubbo's metadata report stores it (FullServiceDefinition JSON).
type ServiceDefinition struct {
	CanonicalName string
	Methods       []Method
}

// ParseServiceDefinition reads a (Full)ServiceDefinition JSON.
func ParseServiceDefinition(data []byte) (*ServiceDefinition, error) {
	var raw struct {
		CanonicalName string `json:"canonicalName"`
		Methods       []struct {
			Name           string   `json:"name"`
			ParameterTypes []string `json:"parameterTypes"`
			ReturnType     string   `json:"returnType"`
		} `json:"methods"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("service definition: %w", err)
	}
	if raw.CanonicalName == "" {
		return nil, fmt.Errorf("service definition: no canonicalName")
	}
	def := &ServiceDefinition{CanonicalName: raw.CanonicalName}
	for _, m := range raw.Methods {
		if m.Name == "" {
			return nil, fmt.Errorf("service definition %s: a method without a name", raw.CanonicalName)
		}
		def.Methods = append(def.Methods, Method{Name: m.Name, ParameterTypes: m.ParameterTypes, ReturnType: m.ReturnType})
	}
	sort.SliceStable(def.Methods, func(i, j int) bool { return def.Methods[i].Name < def.Methods[j].Name })
	return def, nil
}
