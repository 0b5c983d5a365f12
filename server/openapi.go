package server

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// openAPIPath is where a listener with a gRPC-JSON transcoder describes
// the JSON calls it takes, so that Swagger UI can point at the gateway.
const openAPIPath = "/openapi.json"

// openAPI is the OpenAPI 3 document of the transcoder's methods: one POST
// per unary or server-streaming method (answering an array), with its
// request and response messages as schemas (proto3 JSON: lowerCamel names,
// 64-bit integers and bytes as strings).
func (t *jsonTranscoder) openAPI() ([]byte, error) {
	paths := map[string]any{}
	schemas := map[string]any{}
	names := make([]string, 0, len(t.services))
	for name := range t.services {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		sd := t.services[name]
		for i := range sd.Methods().Len() {
			md := sd.Methods().Get(i)
			if md.IsStreamingClient() {
				continue // not transcoded
			}
			addSchema(schemas, md.Input())
			addSchema(schemas, md.Output())
			answer := ref(md.Output())
			if md.IsStreamingServer() {
				// A server stream answers a JSON array of its messages.
				answer = map[string]any{"type": "array", "items": ref(md.Output())}
			}
			paths["/"+string(sd.FullName())+"/"+string(md.Name())] = map[string]any{
				"post": map[string]any{
					"operationId": string(sd.FullName()) + "." + string(md.Name()),
					"tags":        []string{string(sd.FullName())},
					"requestBody": map[string]any{"required": true, "content": map[string]any{
						"application/json": map[string]any{"schema": ref(md.Input())}}},
					"responses": map[string]any{
						"200": map[string]any{"description": "the " + string(md.Output().Name()),
							"content": map[string]any{"application/json": map[string]any{"schema": answer}}},
						"default": map[string]any{"description": "an error (google.rpc.Status)",
							"content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/google.rpc.Status"}}}},
					},
				},
			}
		}
	}
	schemas["google.rpc.Status"] = map[string]any{"type": "object", "properties": map[string]any{
		"code": map[string]any{"type": "integer", "format": "int32"}, "message": map[string]any{"type": "string"},
		"details": map[string]any{"type": "array", "items": map[string]any{"type": "object"}},
	}}
	doc := map[string]any{
		"openapi":    "3.0.3",
		"info":       map[string]any{"title": "meshgate: " + strings.Join(names, ", "), "version": "1"},
		"paths":      paths,
		"components": map[string]any{"schemas": schemas},
	}
	return json.MarshalIndent(doc, "", "  ")
}

func ref(md protoreflect.MessageDescriptor) map[string]any {
	return map[string]any{"$ref": "#/components/schemas/" + string(md.FullName())}
}

// addSchema adds a message's schema and those of the messages it holds.
func addSchema(schemas map[string]any, md protoreflect.MessageDescriptor) {
	name := string(md.FullName())
	if _, done := schemas[name]; done {
		return
	}
	props := map[string]any{}
	schemas[name] = map[string]any{"type": "object", "properties": props}
	fields := md.Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		var s map[string]any
		switch {
		case f.IsMap():
			s = map[string]any{"type": "object", "additionalProperties": fieldSchema(schemas, f.MapValue())}
		case f.IsList():
			s = map[string]any{"type": "array", "items": fieldSchema(schemas, f)}
		default:
			s = fieldSchema(schemas, f)
		}
		props[f.JSONName()] = s
	}
}

// fieldSchema is one value's schema, as proto3 JSON writes it.
func fieldSchema(schemas map[string]any, f protoreflect.FieldDescriptor) map[string]any {
	switch f.Kind() {
	case protoreflect.BoolKind:
		return map[string]any{"type": "boolean"}
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return map[string]any{"type": "integer", "format": "int32"}
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return map[string]any{"type": "integer", "format": "int64", "minimum": 0}
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return map[string]any{"type": "string", "format": "int64"}
	case protoreflect.FloatKind:
		return map[string]any{"type": "number", "format": "float"}
	case protoreflect.DoubleKind:
		return map[string]any{"type": "number", "format": "double"}
	case protoreflect.StringKind:
		return map[string]any{"type": "string"}
	case protoreflect.BytesKind:
		return map[string]any{"type": "string", "format": "byte"}
	case protoreflect.EnumKind:
		values := f.Enum().Values()
		names := make([]string, values.Len())
		for i := range names {
			names[i] = string(values.Get(i).Name())
		}
		return map[string]any{"type": "string", "enum": names}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		addSchema(schemas, f.Message())
		return ref(f.Message())
	}
	return map[string]any{}
}

// serveOpenAPI answers GET /openapi.json when the listener transcodes.
func serveOpenAPI(t *jsonTranscoder, w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodGet || r.URL.Path != openAPIPath {
		return false
	}
	b, err := t.openAPI()
	if err != nil {
		writeError(w, r, http.StatusInternalServerError, codeInternal, err.Error())
		return true
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
	return true
}
