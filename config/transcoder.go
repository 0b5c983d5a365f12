package config

import (
	"os"

	transcoderv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/grpc_json_transcoder/v3"
)

// GRPCJSONTranscoderFilter is Envoy's gRPC-JSON transcoder HTTP filter.
const GRPCJSONTranscoderFilter = "envoy.filters.http.grpc_json_transcoder"

// GRPCJSONConfig lets JSON callers reach gRPC methods on a listener
// (Envoy's grpc_json_transcoder): POST /<package.Service>/<Method> with the
// request message in JSON.
type GRPCJSONConfig struct {
	// ProtoDescriptor is a FileDescriptorSet file (buf build -o, protoc
	// --descriptor_set_out --include_imports).
	ProtoDescriptor string `json:"proto_descriptor"`
	// Services are the package-qualified services transcoded.
	Services []string `json:"services"`
	// PreserveProtoFieldNames writes answers with the .proto field names
	// (default: lowerCamelCase JSON names).
	PreserveProtoFieldNames bool `json:"preserve_proto_field_names,omitempty"`
	// AlwaysPrintPrimitiveFields writes fields at their default values too.
	AlwaysPrintPrimitiveFields bool `json:"always_print_primitive_fields,omitempty"`
	// IgnoreUnknownFields accepts request fields the message lacks.
	IgnoreUnknownFields bool `json:"ignore_unknown_fields,omitempty"`
}

func (t *translator) grpcJSON(path string, c *GRPCJSONConfig) *transcoderv3.GrpcJsonTranscoder {
	out := &transcoderv3.GrpcJsonTranscoder{
		Services:    c.Services,
		AutoMapping: true,
		PrintOptions: &transcoderv3.GrpcJsonTranscoder_PrintOptions{
			PreserveProtoFieldNames:    c.PreserveProtoFieldNames,
			AlwaysPrintPrimitiveFields: c.AlwaysPrintPrimitiveFields,
		},
		ConvertGrpcStatus: true,
	}
	if c.IgnoreUnknownFields {
		out.RequestValidationOptions = &transcoderv3.GrpcJsonTranscoder_RequestValidationOptions{}
		out.IgnoreUnknownQueryParameters = true
	}
	if len(c.Services) == 0 {
		t.errf(path+".services", "needs at least one service")
	}
	b, err := os.ReadFile(t.file(c.ProtoDescriptor))
	if err != nil {
		t.errf(path+".proto_descriptor", "%v", err)
	}
	out.DescriptorSet = &transcoderv3.GrpcJsonTranscoder_ProtoDescriptorBin{ProtoDescriptorBin: b}
	return out
}
