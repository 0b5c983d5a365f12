package config

import (
	"context"
	"os"
	"strings"

	transcoderv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/grpc_json_transcoder/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/meshgate/meshgate/proto/descriptors"
	grpcreflectionv1 "github.com/meshgate/meshgate/proto/meshgate/extensions/filters/http/grpc_reflection/v1"
	openapiv1 "github.com/meshgate/meshgate/proto/meshgate/extensions/filters/http/openapi/v1"
)

// GRPCJSONTranscoderFilter is Envoy's gRPC-JSON transcoder HTTP filter.
const GRPCJSONTranscoderFilter = "envoy.filters.http.grpc_json_transcoder"

// GRPCReflectionFilter fetches a transcoder's descriptors by gRPC server
// reflection (meshgate's own filter, before the transcoder).
const GRPCReflectionFilter = "meshgate.filters.http.grpc_reflection"

// OpenAPIFilter places or turns off the OpenAPI document of a listener's
// transcoder (meshgate's own filter).
const OpenAPIFilter = "meshgate.filters.http.openapi"

// GRPCJSONConfig lets JSON callers reach gRPC methods on a listener
// (Envoy's grpc_json_transcoder): by the methods' google.api.http rules,
// and POST /<package.Service>/<Method> with the request message in JSON.
// The descriptors come from a FileDescriptorSet file, from .proto files
// compiled when the config loads, and/or from the backend by reflection.
type GRPCJSONConfig struct {
	// ProtoDescriptor is a FileDescriptorSet file (buf build -o, protoc
	// --descriptor_set_out --include_imports).
	ProtoDescriptor string `json:"proto_descriptor,omitempty"`
	// Protos are .proto files compiled at load time, found under
	// ImportPaths (default: the config file's directory). Imports of the
	// well-known types and google/api, google/rpc need no sources.
	Protos      []string `json:"protos,omitempty"`
	ImportPaths []string `json:"import_paths,omitempty"`
	// Reflection fetches the descriptors from a cluster's hosts.
	Reflection *ReflectionConfig `json:"reflection,omitempty"`
	// Services are the package-qualified services transcoded.
	Services []string `json:"services"`
	// AutoMapping also maps POST /<package.Service>/<Method> (default true).
	AutoMapping *bool `json:"auto_mapping,omitempty"`
	// PreserveProtoFieldNames writes answers with the .proto field names
	// (default: lowerCamelCase JSON names).
	PreserveProtoFieldNames bool `json:"preserve_proto_field_names,omitempty"`
	// AlwaysPrintPrimitiveFields writes fields at their default values too.
	AlwaysPrintPrimitiveFields bool `json:"always_print_primitive_fields,omitempty"`
	// AlwaysPrintEnumsAsInts writes enums by number, not name.
	AlwaysPrintEnumsAsInts bool `json:"always_print_enums_as_ints,omitempty"`
	// StreamNewlineDelimited writes server streams as newline-delimited
	// JSON instead of one JSON array.
	StreamNewlineDelimited bool `json:"stream_newline_delimited,omitempty"`
	// IgnoreUnknownFields accepts request fields the message lacks.
	IgnoreUnknownFields bool `json:"ignore_unknown_fields,omitempty"`
	// IgnoreUnknownQueryParameters accepts query parameters naming no
	// field (default: 400).
	IgnoreUnknownQueryParameters bool `json:"ignore_unknown_query_parameters,omitempty"`
	// IgnoredQueryParameters are never mapped to fields (api keys, say).
	IgnoredQueryParameters []string `json:"ignored_query_parameters,omitempty"`
	// OpenAPI moves or turns off the OpenAPI document (default GET
	// /openapi.json).
	OpenAPI *OpenAPIConfig `json:"openapi,omitempty"`
}

// OpenAPIConfig is where the OpenAPI document is served.
type OpenAPIConfig struct {
	Path     string `json:"path,omitempty"`
	Disabled bool   `json:"disabled,omitempty"`
}

// ReflectionConfig is where and how often descriptors are fetched.
type ReflectionConfig struct {
	Cluster         string    `json:"cluster"`
	RefreshInterval *Duration `json:"refresh_interval,omitempty"`
	Timeout         *Duration `json:"timeout,omitempty"`
}

// grpcJSONFilters are the HTTP filters of a listener's grpc_json: the
// reflection filter when descriptors come from a backend, then Envoy's
// transcoder.
func (t *translator) grpcJSONFilters(path string, c *GRPCJSONConfig) []*hcmv3.HttpFilter {
	var out []*hcmv3.HttpFilter
	if r := c.Reflection; r != nil {
		if r.Cluster == "" {
			t.errf(path+".reflection.cluster", "is needed")
		}
		rc := &grpcreflectionv1.GrpcReflection{Cluster: r.Cluster}
		if r.RefreshInterval != nil {
			rc.RefreshInterval = durationpb.New(r.RefreshInterval.Duration)
		}
		if r.Timeout != nil {
			rc.Timeout = durationpb.New(r.Timeout.Duration)
		}
		out = append(out, &hcmv3.HttpFilter{Name: GRPCReflectionFilter,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(rc)}})
	}
	if o := c.OpenAPI; o != nil {
		if o.Path != "" && !strings.HasPrefix(o.Path, "/") {
			t.errf(path+".openapi.path", "must start with /")
		}
		out = append(out, &hcmv3.HttpFilter{Name: OpenAPIFilter,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&openapiv1.OpenAPI{Path: o.Path, Disabled: o.Disabled})}})
	}
	return append(out, &hcmv3.HttpFilter{Name: GRPCJSONTranscoderFilter,
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t.grpcJSON(path, c))}})
}

func (t *translator) grpcJSON(path string, c *GRPCJSONConfig) *transcoderv3.GrpcJsonTranscoder {
	out := &transcoderv3.GrpcJsonTranscoder{
		Services:    c.Services,
		AutoMapping: c.AutoMapping == nil || *c.AutoMapping,
		PrintOptions: &transcoderv3.GrpcJsonTranscoder_PrintOptions{
			PreserveProtoFieldNames:    c.PreserveProtoFieldNames,
			AlwaysPrintPrimitiveFields: c.AlwaysPrintPrimitiveFields,
			AlwaysPrintEnumsAsInts:     c.AlwaysPrintEnumsAsInts,
			StreamNewlineDelimited:     c.StreamNewlineDelimited,
		},
		ConvertGrpcStatus:            true,
		IgnoreUnknownQueryParameters: c.IgnoreUnknownQueryParameters,
		IgnoredQueryParameters:       c.IgnoredQueryParameters,
	}
	if c.IgnoreUnknownFields {
		out.RequestValidationOptions = &transcoderv3.GrpcJsonTranscoder_RequestValidationOptions{}
	}
	if len(c.Services) == 0 {
		t.errf(path+".services", "needs at least one service")
	}
	sources := 0
	for _, set := range []bool{c.ProtoDescriptor != "", len(c.Protos) > 0, c.Reflection != nil} {
		if set {
			sources++
		}
	}
	if sources == 0 {
		t.errf(path, "needs its descriptors: proto_descriptor, protos or reflection")
	}
	if c.ProtoDescriptor != "" && len(c.Protos) > 0 {
		t.errf(path+".protos", "give either proto_descriptor or protos, not both")
	}
	var bin []byte
	switch {
	case c.ProtoDescriptor != "":
		b, err := os.ReadFile(t.file(c.ProtoDescriptor))
		if err != nil {
			t.errf(path+".proto_descriptor", "%v", err)
		}
		bin = b
	case len(c.Protos) > 0:
		imports := make([]string, 0, len(c.ImportPaths))
		for _, ip := range c.ImportPaths {
			imports = append(imports, t.file(ip))
		}
		if len(imports) == 0 {
			imports = []string{t.file(".")}
		}
		files := make([]string, 0, len(c.Protos))
		for _, p := range c.Protos {
			files = append(files, t.file(p))
		}
		set, err := descriptors.Compile(context.Background(), imports, files)
		if err != nil {
			t.errf(path+".protos", "%v", err)
			break
		}
		// Compiled here, carried as Envoy's proto_descriptor_bin.
		b, err := proto.Marshal(set)
		if err != nil {
			t.errf(path+".protos", "%v", err)
		}
		bin = b
	}
	out.DescriptorSet = &transcoderv3.GrpcJsonTranscoder_ProtoDescriptorBin{ProtoDescriptorBin: bin}
	return out
}
