package transcoder

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/meshgate/meshgate/proto/httprule"
	"github.com/meshgate/meshgate/server/wire"
)

// defaultOpenAPIPath is where a listener with a gRPC-JSON transcoder
// describes the JSON calls it takes, so that Swagger UI can point at the
// gateway (meshgate.filters.http.openapi moves or turns it off).
const defaultOpenAPIPath = "/openapi.json"

// openAPIMethods are the HTTP methods OpenAPI 3.0 can describe; a custom
// google.api.http method (SEARCH, say) is left out of the document.
var openAPIMethods = map[string]bool{"get": true, "put": true, "post": true, "delete": true, "patch": true, "head": true, "options": true}

// openAPI is the OpenAPI 3 document of the transcoder's calls: each
// google.api.http binding (path and query parameters, body, answer), and
// with auto-mapping one POST per unary or server-streaming method. Schemas
// are proto3 JSON's: lowerCamel names, 64-bit integers and bytes as
// strings, enums by name; a server stream answers an array.
func (t *jsonTranscoder) openAPI() ([]byte, error) {
	paths := map[string]map[string]any{}
	schemas := map[string]any{}
	opIDs := map[string]bool{}
	names := make([]string, 0, len(t.services))
	for name := range t.services {
		names = append(names, name)
	}
	sort.Strings(names)
	add := func(path, method string, md protoreflect.MethodDescriptor, binding int, op map[string]any) {
		id := string(md.Parent().FullName()) + "." + string(md.Name())
		if binding > 0 {
			id = fmt.Sprintf("%s_%d", id, binding)
		}
		for n := 1; opIDs[id]; n++ {
			id = fmt.Sprintf("%s.%s_%d", md.Parent().FullName(), md.Name(), n)
		}
		opIDs[id] = true
		op["operationId"] = id
		op["tags"] = []string{string(md.Parent().FullName())}
		if paths[path] == nil {
			paths[path] = map[string]any{}
		}
		paths[path][method] = op
	}
	for _, r := range t.rules.Rules() {
		method := strings.ToLower(r.Method)
		if !openAPIMethods[method] {
			continue
		}
		md := r.RPC
		op := map[string]any{"responses": responses(schemas, md, r.ResponseBody)}
		var params []any
		bound := map[string]bool{}
		for _, f := range r.Template.Fields() {
			bound[f] = true
			fd := fieldAt(md.Input(), f)
			params = append(params, map[string]any{"name": f, "in": "path", "required": true, "schema": scalarSchema(schemas, fd)})
		}
		if r.Body != "*" {
			if r.Body != "" {
				bound[r.Body] = true
			}
			params = append(params, queryParams(schemas, md.Input(), "", bound, 0)...)
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		switch {
		case r.Body == "*":
			op["requestBody"] = bodySchema(schemas, md.Input(), nil)
		case r.Body != "":
			op["requestBody"] = bodySchema(schemas, md.Input(), md.Input().Fields().ByName(protoreflect.Name(r.Body)))
		}
		add(r.Template.OpenAPIPath(), method, md, r.Binding, op)
	}
	for _, name := range names {
		sd := t.services[name]
		if !t.auto {
			break
		}
		for i := range sd.Methods().Len() {
			md := sd.Methods().Get(i)
			if md.IsStreamingClient() {
				continue // not transcoded
			}
			add("/"+string(sd.FullName())+"/"+string(md.Name()), "post", md, 0, map[string]any{
				"requestBody": bodySchema(schemas, md.Input(), nil),
				"responses":   responses(schemas, md, ""),
			})
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

const httpBodyType = "google.api.HttpBody"

// responses are an operation's answers: the message (or its
// response_body field, or raw bytes for google.api.HttpBody) and errors.
func responses(schemas map[string]any, md protoreflect.MethodDescriptor, field string) map[string]any {
	content := map[string]any{}
	out := md.Output()
	var schema map[string]any
	switch fd := out.Fields().ByName(protoreflect.Name(field)); {
	case field != "" && fd != nil && fd.Message() != nil && fd.Message().FullName() == httpBodyType && !fd.IsList():
		content["*/*"] = map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}}
	case field != "" && fd != nil:
		schema = valueSchema(schemas, fd)
	case out.FullName() == httpBodyType:
		content["*/*"] = map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}}
	default:
		addSchema(schemas, out)
		schema = ref(out)
	}
	if schema != nil {
		if md.IsStreamingServer() {
			// A server stream answers a JSON array of its messages.
			schema = map[string]any{"type": "array", "items": schema}
		}
		content["application/json"] = map[string]any{"schema": schema}
	}
	return map[string]any{
		"200": map[string]any{"description": "the " + string(out.Name()), "content": content},
		"default": map[string]any{"description": "an error (google.rpc.Status)",
			"content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/google.rpc.Status"}}}},
	}
}

// bodySchema is a requestBody: the whole message, or one field of it.
func bodySchema(schemas map[string]any, in protoreflect.MessageDescriptor, fd protoreflect.FieldDescriptor) map[string]any {
	var schema map[string]any
	msg := in
	if fd != nil {
		msg = fd.Message()
		if msg == nil || fd.IsList() || fd.IsMap() {
			schema = valueSchema(schemas, fd)
		}
	}
	if schema == nil && msg.FullName() == httpBodyType {
		return map[string]any{"required": true, "content": map[string]any{"*/*": map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}}}}
	}
	if schema == nil {
		addSchema(schemas, msg)
		schema = ref(msg)
	}
	return map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": schema}}}
}

// queryParams are the fields a query may set: those the path and body do
// not bind, nested messages by dotted names (three levels at most).
func queryParams(schemas map[string]any, md protoreflect.MessageDescriptor, prefix string, bound map[string]bool, depth int) []any {
	var out []any
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		name := prefix + string(fd.Name())
		if bound[name] || fd.IsMap() {
			continue
		}
		if fd.Kind() == protoreflect.MessageKind && !httprule.IsWellKnownScalar(fd.Message()) {
			if !fd.IsList() && depth < 3 {
				out = append(out, queryParams(schemas, fd.Message(), name+".", bound, depth+1)...)
			}
			continue
		}
		p := map[string]any{"name": prefix + fd.JSONName(), "in": "query", "schema": valueSchema(schemas, fd)}
		if fd.IsList() {
			p["explode"] = true
		}
		out = append(out, p)
	}
	return out
}

// fieldAt finds the field a dotted path names.
func fieldAt(md protoreflect.MessageDescriptor, path string) protoreflect.FieldDescriptor {
	var fd protoreflect.FieldDescriptor
	for _, name := range strings.Split(path, ".") {
		if md == nil {
			return nil
		}
		fd = md.Fields().ByName(protoreflect.Name(name))
		if fd == nil {
			return nil
		}
		md = fd.Message()
	}
	return fd
}

// scalarSchema is the schema of a path variable's field.
func scalarSchema(schemas map[string]any, fd protoreflect.FieldDescriptor) map[string]any {
	if fd == nil {
		return map[string]any{"type": "string"}
	}
	return fieldSchema(schemas, fd)
}

// valueSchema is a field's schema, lists and maps included.
func valueSchema(schemas map[string]any, f protoreflect.FieldDescriptor) map[string]any {
	switch {
	case f.IsMap():
		return map[string]any{"type": "object", "additionalProperties": fieldSchema(schemas, f.MapValue())}
	case f.IsList():
		return map[string]any{"type": "array", "items": fieldSchema(schemas, f)}
	}
	return fieldSchema(schemas, f)
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
		props[f.JSONName()] = valueSchema(schemas, f)
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
		if wk := wellKnownSchema(f.Message()); wk != nil {
			return wk
		}
		addSchema(schemas, f.Message())
		return ref(f.Message())
	}
	return map[string]any{}
}

// serveOpenAPI answers GET /openapi.json when the listener transcodes.
func serveOpenAPI(t *jsonTranscoder, path string, w http.ResponseWriter, r *http.Request) bool {
	if path == "" || r.Method != http.MethodGet || r.URL.Path != path {
		return false
	}
	b, err := t.openAPI()
	if err != nil {
		wire.WriteError(w, r, http.StatusInternalServerError, codes.Internal, err.Error())
		return true
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
	return true
}

// wellKnownSchema is the schema of a well-known type proto3 JSON writes as
// a plain value, or nil.
func wellKnownSchema(md protoreflect.MessageDescriptor) map[string]any {
	switch md.FullName() {
	case "google.protobuf.Timestamp":
		return map[string]any{"type": "string", "format": "date-time"}
	case "google.protobuf.Duration", "google.protobuf.FieldMask", "google.protobuf.StringValue":
		return map[string]any{"type": "string"}
	case "google.protobuf.BytesValue":
		return map[string]any{"type": "string", "format": "byte"}
	case "google.protobuf.Int64Value", "google.protobuf.UInt64Value":
		return map[string]any{"type": "string", "format": "int64"}
	case "google.protobuf.Int32Value", "google.protobuf.UInt32Value":
		return map[string]any{"type": "integer"}
	case "google.protobuf.DoubleValue", "google.protobuf.FloatValue":
		return map[string]any{"type": "number"}
	case "google.protobuf.BoolValue":
		return map[string]any{"type": "boolean"}
	case "google.protobuf.Empty":
		return map[string]any{"type": "object"}
	case "google.protobuf.Struct":
		return map[string]any{"type": "object", "additionalProperties": true}
	case "google.protobuf.Value":
		return map[string]any{}
	}
	return nil
}
