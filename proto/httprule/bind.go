package httprule

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// httpBodyName is google.api.HttpBody: a raw body and its content type.
const httpBodyName protoreflect.FullName = "google.api.HttpBody"

// RequestOptions are the transcoder's request policies.
type RequestOptions struct {
	// DiscardUnknown ignores body fields the message lacks.
	DiscardUnknown bool
	// IgnoreUnknownQuery ignores query parameters naming no field.
	IgnoreUnknownQuery bool
}

// Request builds the gRPC request message of a matched rule from the path
// bindings, the query and the body. Fields bound by the path win over the
// same fields in the body or the query.
func (r *Rule) Request(bindings []Binding, query url.Values, body []byte, contentType string, opts RequestOptions) (*dynamicpb.Message, error) {
	in := dynamicpb.NewMessage(r.RPC.Input())
	switch {
	case r.Body == "*":
		if err := fillBody(in, body, contentType, opts); err != nil {
			return nil, err
		}
	case r.Body != "":
		fd := in.Descriptor().Fields().ByName(protoreflect.Name(r.Body))
		if err := fillBodyField(in, fd, body, contentType, opts); err != nil {
			return nil, err
		}
	}
	bound := map[string]bool{}
	for _, b := range bindings {
		if err := setField(in, b.Field, []string{b.Value}); err != nil {
			return nil, fmt.Errorf("path variable %s: %w", strings.Join(b.Field, "."), err)
		}
		bound[strings.Join(b.Field, ".")] = true
	}
	if r.Body == "*" {
		return in, nil // every field not in the path comes from the body
	}
	keys := make([]string, 0, len(query))
	for k := range query {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		path := splitDots(k)
		fd, err := fieldByPath(in.Descriptor(), path)
		if err != nil {
			if opts.IgnoreUnknownQuery {
				continue
			}
			return nil, fmt.Errorf("query parameter %q: %w", k, err)
		}
		name := fieldPathName(in.Descriptor(), path)
		if bound[name] || r.Body != "" && path[0] == r.Body {
			continue // the path or the body has it
		}
		if fd.IsMap() {
			return nil, fmt.Errorf("query parameter %q: map fields cannot come from the query", k)
		}
		if err := setField(in, path, query[k]); err != nil {
			return nil, fmt.Errorf("query parameter %q: %w", k, err)
		}
	}
	return in, nil
}

// fillBody reads the whole request message from the body.
func fillBody(m *dynamicpb.Message, body []byte, contentType string, opts RequestOptions) error {
	if m.Descriptor().FullName() == httpBodyName {
		setHTTPBody(m, body, contentType)
		return nil
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: opts.DiscardUnknown}).Unmarshal(body, m); err != nil {
		return fmt.Errorf("the body is not a %s in JSON: %v", m.Descriptor().FullName(), err)
	}
	return nil
}

// fillBodyField reads one field of the request message from the body.
func fillBodyField(m *dynamicpb.Message, fd protoreflect.FieldDescriptor, body []byte, contentType string, opts RequestOptions) error {
	if fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap() {
		sub := m.Mutable(fd).Message().Interface().(*dynamicpb.Message)
		return fillBody(sub, body, contentType, opts)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	// A scalar, list or map field: its JSON is the body; parse it as the
	// field of a message of its own so proto3 JSON's rules apply.
	wrapped := append(append([]byte(`{`+strconv.Quote(fd.JSONName())+`:`), body...), '}')
	tmp := dynamicpb.NewMessage(m.Descriptor())
	if err := (protojson.UnmarshalOptions{DiscardUnknown: opts.DiscardUnknown}).Unmarshal(wrapped, tmp); err != nil {
		return fmt.Errorf("the body is not the field %s in JSON: %v", fd.Name(), err)
	}
	m.Set(fd, tmp.Get(fd))
	return nil
}

func setHTTPBody(m *dynamicpb.Message, body []byte, contentType string) {
	f := m.Descriptor().Fields()
	if fd := f.ByName("content_type"); fd != nil {
		m.Set(fd, protoreflect.ValueOfString(contentType))
	}
	if fd := f.ByName("data"); fd != nil {
		m.Set(fd, protoreflect.ValueOfBytes(body))
	}
}

// fieldByPath finds the field a dotted path names, by .proto or JSON name;
// every step but the last must be a singular message.
func fieldByPath(md protoreflect.MessageDescriptor, path []string) (protoreflect.FieldDescriptor, error) {
	var fd protoreflect.FieldDescriptor
	for i, name := range path {
		if md == nil {
			return nil, fmt.Errorf("%s is not a message", strings.Join(path[:i], "."))
		}
		fd = md.Fields().ByName(protoreflect.Name(name))
		if fd == nil {
			fd = md.Fields().ByJSONName(name)
		}
		if fd == nil {
			return nil, fmt.Errorf("%s has no field %q", md.FullName(), name)
		}
		md = nil
		if fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap() && !IsWellKnownScalar(fd.Message()) {
			md = fd.Message()
		}
	}
	return fd, nil
}

// fieldPathName is a path with every step by its .proto name.
func fieldPathName(md protoreflect.MessageDescriptor, path []string) string {
	names := make([]string, 0, len(path))
	for _, name := range path {
		fd := md.Fields().ByName(protoreflect.Name(name))
		if fd == nil {
			fd = md.Fields().ByJSONName(name)
		}
		if fd == nil {
			break
		}
		names = append(names, string(fd.Name()))
		md = fd.Message()
		if md == nil {
			break
		}
	}
	return strings.Join(names, ".")
}

// setField sets the field a path names from text values (one unless the
// field is repeated), creating the messages on the way.
func setField(m protoreflect.Message, path []string, values []string) error {
	fd, err := fieldByPath(m.Descriptor(), path)
	if err != nil {
		return err
	}
	for _, name := range path[:len(path)-1] {
		f := m.Descriptor().Fields().ByName(protoreflect.Name(name))
		if f == nil {
			f = m.Descriptor().Fields().ByJSONName(name)
		}
		m = m.Mutable(f).Message()
	}
	if !fd.IsList() {
		if len(values) > 1 {
			return fmt.Errorf("%s is not repeated but has %d values", fd.Name(), len(values))
		}
		v, err := parseValue(m, fd, values[0])
		if err != nil {
			return err
		}
		m.Set(fd, v)
		return nil
	}
	list := m.Mutable(fd).List()
	for _, s := range values {
		v, err := parseValue(m, fd, s)
		if err != nil {
			return err
		}
		list.Append(v)
	}
	return nil
}

// parseValue turns text into a value of fd's kind, as proto3 JSON writes
// it: enums by name or number, bytes in base64, well-known types by their
// JSON string form.
func parseValue(m protoreflect.Message, fd protoreflect.FieldDescriptor, s string) (protoreflect.Value, error) {
	bad := func(err error) (protoreflect.Value, error) {
		return protoreflect.Value{}, fmt.Errorf("%q is not a %s: %v", s, kindName(fd), err)
	}
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(s), nil
	case protoreflect.BoolKind:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return bad(err)
		}
		return protoreflect.ValueOfBool(b), nil
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return bad(err)
		}
		return protoreflect.ValueOfInt32(int32(n)), nil
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return bad(err)
		}
		return protoreflect.ValueOfInt64(n), nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return bad(err)
		}
		return protoreflect.ValueOfUint32(uint32(n)), nil
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return bad(err)
		}
		return protoreflect.ValueOfUint64(n), nil
	case protoreflect.FloatKind:
		f, err := strconv.ParseFloat(s, 32)
		if err != nil {
			return bad(err)
		}
		return protoreflect.ValueOfFloat32(float32(f)), nil
	case protoreflect.DoubleKind:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return bad(err)
		}
		if math.IsInf(f, 0) && !strings.Contains(strings.ToLower(s), "inf") {
			return bad(fmt.Errorf("out of range"))
		}
		return protoreflect.ValueOfFloat64(f), nil
	case protoreflect.BytesKind:
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
			if b, err := enc.DecodeString(s); err == nil {
				return protoreflect.ValueOfBytes(b), nil
			}
		}
		return bad(fmt.Errorf("not base64"))
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByName(protoreflect.Name(s)); ev != nil {
			return protoreflect.ValueOfEnum(ev.Number()), nil
		}
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return bad(fmt.Errorf("no such value"))
		}
		return protoreflect.ValueOfEnum(protoreflect.EnumNumber(n)), nil
	case protoreflect.MessageKind:
		if !IsWellKnownScalar(fd.Message()) {
			return bad(fmt.Errorf("a message cannot come from text"))
		}
		var sub protoreflect.Message
		if fd.IsList() {
			sub = m.Mutable(fd).List().NewElement().Message()
		} else {
			sub = m.NewField(fd).Message()
		}
		// A wrapper of a number or bool takes its JSON as is; the others
		// (and strings) are JSON strings.
		raw := []byte(strconv.Quote(s))
		if err := protojson.Unmarshal(raw, sub.Interface()); err != nil {
			if err2 := protojson.Unmarshal([]byte(s), sub.Interface()); err2 != nil || !json.Valid([]byte(s)) {
				return bad(err)
			}
		}
		return protoreflect.ValueOfMessage(sub), nil
	}
	return bad(fmt.Errorf("unsupported kind"))
}

func kindName(fd protoreflect.FieldDescriptor) string {
	if fd.Kind() == protoreflect.EnumKind {
		return string(fd.Enum().FullName())
	}
	if fd.Kind() == protoreflect.MessageKind {
		return string(fd.Message().FullName())
	}
	return fd.Kind().String()
}

// IsWellKnownScalar tells the messages proto3 JSON writes as one string or
// number, so a path or query parameter can carry them.
func IsWellKnownScalar(md protoreflect.MessageDescriptor) bool {
	switch md.FullName() {
	case "google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask",
		"google.protobuf.DoubleValue", "google.protobuf.FloatValue", "google.protobuf.Int64Value",
		"google.protobuf.UInt64Value", "google.protobuf.Int32Value", "google.protobuf.UInt32Value",
		"google.protobuf.BoolValue", "google.protobuf.StringValue", "google.protobuf.BytesValue":
		return true
	}
	return false
}

func splitDots(s string) []string { return strings.Split(s, ".") }

// Response renders a method's answer for HTTP: the whole message or its
// response_body field in JSON, or the raw body of a google.api.HttpBody.
func (r *Rule) Response(out protoreflect.Message, opts protojson.MarshalOptions) (contentType string, body []byte, err error) {
	return RenderResponse(out, r.ResponseBody, opts)
}

// RenderResponse is Response for a method reached without a rule (the
// field "" is the whole message).
func RenderResponse(out protoreflect.Message, field string, opts protojson.MarshalOptions) (string, []byte, error) {
	if field == "" {
		if out.Descriptor().FullName() == httpBodyName {
			ct, data := httpBody(out)
			return ct, data, nil
		}
		b, err := opts.Marshal(out.Interface())
		return "application/json", b, err
	}
	fd := out.Descriptor().Fields().ByName(protoreflect.Name(field))
	if fd == nil {
		return "", nil, fmt.Errorf("%s has no field %q", out.Descriptor().FullName(), field)
	}
	if fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap() {
		sub := out.Get(fd).Message()
		if fd.Message().FullName() == httpBodyName {
			ct, data := httpBody(sub)
			return ct, data, nil
		}
		b, err := opts.Marshal(sub.Interface())
		return "application/json", b, err
	}
	// A scalar, list or map: cut it out of the whole message's JSON.
	only := out.Type().New()
	if out.Has(fd) {
		only.Set(fd, out.Get(fd))
	}
	opts.EmitUnpopulated = true
	b, err := opts.Marshal(only.Interface())
	if err != nil {
		return "", nil, err
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return "", nil, err
	}
	key := fd.JSONName()
	if opts.UseProtoNames {
		key = string(fd.Name())
	}
	v, ok := obj[key]
	if !ok {
		return "application/json", []byte("null"), nil
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, v); err != nil {
		return "", nil, err
	}
	return "application/json", compact.Bytes(), nil
}

func httpBody(m protoreflect.Message) (string, []byte) {
	f := m.Descriptor().Fields()
	var ct string
	var data []byte
	if fd := f.ByName("content_type"); fd != nil {
		ct = m.Get(fd).String()
	}
	if fd := f.ByName("data"); fd != nil {
		data = m.Get(fd).Bytes()
	}
	return ct, data
}
