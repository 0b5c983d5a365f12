// Package argsource reads where an argument of a bridged Dubbo call comes
// from ("body", "body.a.b", "path.id", "query.q", "header.x-user"). It is
// its own package so that config can check sources without linking the
// Dubbo codec.
package argsource

import (
	"fmt"
	"strings"
)

// Kind is where an argument of a bridged call comes from.
type Kind uint8

const (
	// FromBody is the whole JSON body, or a field of it (Path).
	FromBody Kind = iota
	// FromPath is a {variable} of the route's path template.
	FromPath
	// FromQuery is a query parameter.
	FromQuery
	// FromHeader is a request header.
	FromHeader
)

// Source is a parsed parameter source: "body", "body.a.b", "path.id",
// "query.q", "header.x-user".
type Source struct {
	Kind Kind
	// Name is the variable, parameter or header name; for the body, the
	// field path (nil: the whole body).
	Name  string
	Field []string
}

// Parse reads a parameter source.
func Parse(from string) (Source, error) {
	kind, name, _ := strings.Cut(from, ".")
	switch kind {
	case "body":
		if name == "" {
			return Source{Kind: FromBody}, nil
		}
		field := strings.Split(name, ".")
		for _, f := range field {
			if f == "" {
				return Source{}, fmt.Errorf("%q has an empty field name", from)
			}
		}
		return Source{Kind: FromBody, Name: name, Field: field}, nil
	case "path", "query", "header":
		if name == "" {
			return Source{}, fmt.Errorf("%q names no %s variable", from, kind)
		}
		k := map[string]Kind{"path": FromPath, "query": FromQuery, "header": FromHeader}[kind]
		return Source{Kind: k, Name: name}, nil
	}
	return Source{}, fmt.Errorf("unknown source %q (want body, body.<field>, path.<name>, query.<name> or header.<name>)", from)
}
