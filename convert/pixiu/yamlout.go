package pixiu

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// The output is written by hand from the JSON form of config.File so that
// keys keep the order of meshgate's own types and docs (name, address,
// routes...); sigs.k8s.io/yaml would sort them alphabetically.

type field struct {
	key   string
	value any
}

type object []field

// toYAML renders v (anything encoding/json takes) as block YAML.
func toYAML(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	tree, err := decodeOrdered(dec)
	if err != nil {
		return nil, fmt.Errorf("re-read: %w", err)
	}
	var b bytes.Buffer
	for _, l := range yamlLines(tree) {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.Bytes(), nil
}

func decodeOrdered(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		obj := object{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := decodeOrdered(dec)
			if err != nil {
				return nil, err
			}
			obj = append(obj, field{k.(string), v})
		}
		_, err := dec.Token()
		return obj, err
	case json.Delim('['):
		list := []any{}
		for dec.More() {
			v, err := decodeOrdered(dec)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
		_, err := dec.Token()
		return list, err
	}
	return tok, nil
}

// yamlLines renders a mapping or a sequence, one line each, at indent 0.
func yamlLines(v any) []string {
	var out []string
	switch v := v.(type) {
	case object:
		for _, f := range v {
			if s, ok := inline(f.value); ok {
				out = append(out, yamlString(f.key)+": "+s)
				continue
			}
			out = append(out, yamlString(f.key)+":")
			for _, l := range yamlLines(f.value) {
				out = append(out, "  "+l)
			}
		}
	case []any:
		for _, e := range v {
			if s, ok := inline(e); ok {
				out = append(out, "- "+s)
				continue
			}
			for i, l := range yamlLines(e) {
				if i == 0 {
					out = append(out, "- "+l)
				} else {
					out = append(out, "  "+l)
				}
			}
		}
	}
	return out
}

// inline renders scalars and empty collections on the key's line.
func inline(v any) (string, bool) {
	switch v := v.(type) {
	case object:
		return "{}", len(v) == 0
	case []any:
		if len(v) == 0 {
			return "[]", true
		}
		// Short lists of scalars read best in flow style: [ a, b ].
		parts := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := inline(e)
			if !ok {
				return "", false
			}
			if _, isColl := e.(object); isColl {
				return "", false
			}
			parts = append(parts, s)
		}
		return "[ " + strings.Join(parts, ", ") + " ]", true
	case string:
		return yamlString(v), true
	case nil:
		return "null", true
	default:
		return fmt.Sprint(v), true
	}
}

// plain are strings YAML reads back as the same string without quotes.
var plain = regexp.MustCompile(`^[A-Za-z_/][A-Za-z0-9_./-]*$`)

// yamlWords are read as booleans or null by YAML 1.1 (meshgate's loader).
var yamlWords = map[string]bool{
	"y": true, "n": true, "yes": true, "no": true, "on": true, "off": true,
	"true": true, "false": true, "null": true,
}

func yamlString(s string) string {
	if plain.MatchString(s) && !yamlWords[strings.ToLower(s)] {
		return s
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a JSON string is a YAML double-quoted scalar
	return strings.TrimSuffix(b.String(), "\n")
}
