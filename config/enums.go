package config

import (
	"encoding/json"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// foldEnums rewrites the enum values of a resource's JSON to the case the
// proto spells them in, as Envoy's loader accepts them in any case
// ("codec_type: auto", "lb_policy: round_robin" in Envoy's own examples);
// protojson wants them exact. It walks the JSON along the message's
// descriptor, into Anys by their @type; what it cannot place it leaves as
// it is, for protojson to judge.
func foldEnums(raw []byte, md protoreflect.MessageDescriptor) []byte {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return raw
	}
	if !foldMessage(v, md) {
		return raw
	}
	out, err := json.Marshal(v)
	if err != nil {
		return raw
	}
	return out
}

// foldMessage folds the enum values of one JSON object of message md; it
// reports whether it changed anything.
func foldMessage(v any, md protoreflect.MessageDescriptor) bool {
	obj, ok := v.(map[string]any)
	if !ok {
		return false
	}
	if md.FullName() == "google.protobuf.Any" {
		url, _ := obj["@type"].(string)
		mt, err := protoregistry.GlobalTypes.FindMessageByURL(url)
		if err != nil {
			return false
		}
		md = mt.Descriptor()
	}
	changed := false
	for key, val := range obj {
		fd := md.Fields().ByJSONName(key)
		if fd == nil {
			fd = md.Fields().ByName(protoreflect.Name(key))
		}
		if fd == nil {
			continue
		}
		switch {
		case fd.IsMap():
			if m, ok := val.(map[string]any); ok && fd.MapValue().Message() != nil {
				for _, e := range m {
					changed = foldMessage(e, fd.MapValue().Message()) || changed
				}
			}
		case fd.Enum() != nil:
			fold := func(s string) (string, bool) {
				if fd.Enum().Values().ByName(protoreflect.Name(s)) != nil {
					return s, false
				}
				if up := strings.ToUpper(s); fd.Enum().Values().ByName(protoreflect.Name(up)) != nil {
					return up, true
				}
				return s, false
			}
			switch x := val.(type) {
			case string:
				if s, ok := fold(x); ok {
					obj[key], changed = s, true
				}
			case []any:
				for i, e := range x {
					if s, isStr := e.(string); isStr {
						if f, ok := fold(s); ok {
							x[i], changed = f, true
						}
					}
				}
			}
		case fd.Message() != nil:
			if list, ok := val.([]any); ok && fd.IsList() {
				for _, e := range list {
					changed = foldMessage(e, fd.Message()) || changed
				}
			} else {
				changed = foldMessage(val, fd.Message()) || changed
			}
		}
	}
	return changed
}
