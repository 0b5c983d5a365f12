// Package httprule maps HTTP requests onto gRPC methods by their
// google.api.http rules: path templates, body and query parameters to
// request fields, and response_body.
package httprule

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// segment kinds of a path template.
const (
	segLiteral    = iota
	segStar       // "*": one segment
	segDoubleStar // "**": the rest of the path, zero or more segments
)

type segment struct {
	kind    int
	literal string
}

// variable binds the segments [start, end) of a template to a field path;
// end is -1 when the variable runs to the last segment through "**".
type variable struct {
	field []string
	start int
	end   int
}

// Template is a parsed google.api.http path template:
//
//	Template = "/" Segments [ Verb ] ;
//	Segments = Segment { "/" Segment } ;
//	Segment  = "*" | "**" | LITERAL | Variable ;
//	Variable = "{" FieldPath [ "=" Segments ] "}" ;
//	Verb     = ":" LITERAL ;
type Template struct {
	raw      string
	segments []segment
	vars     []variable
	verb     string
}

// String is the template as written.
func (t *Template) String() string { return t.raw }

// Fields are the field paths the template's variables bind, dotted.
func (t *Template) Fields() []string {
	out := make([]string, len(t.vars))
	for i, v := range t.vars {
		out[i] = strings.Join(v.field, ".")
	}
	return out
}

// ParseTemplate parses a path template, refusing what the grammar does not
// allow (a "**" anywhere but last, nested or repeated variables).
func ParseTemplate(s string) (*Template, error) {
	if !strings.HasPrefix(s, "/") {
		return nil, fmt.Errorf("template %q: must start with /", s)
	}
	t := &Template{raw: s}
	rest := s[1:]
	// The verb follows the last segment; a ':' inside a variable's braces
	// is not one.
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && !strings.ContainsAny(rest[i:], "/}") {
		t.verb, rest = rest[i+1:], rest[:i]
		if t.verb == "" {
			return nil, fmt.Errorf("template %q: empty verb", s)
		}
	}
	if rest == "" {
		return t, nil // "/" alone, or "/:verb"
	}
	seen := map[string]bool{}
	for len(rest) > 0 {
		if rest[0] == '{' {
			end := strings.IndexByte(rest, '}')
			if end < 0 {
				return nil, fmt.Errorf("template %q: unclosed {", s)
			}
			body := rest[1:end]
			rest = rest[end+1:]
			name, pattern, hasPattern := strings.Cut(body, "=")
			if !hasPattern {
				pattern = "*"
			}
			field, err := parseFieldPath(name)
			if err != nil {
				return nil, fmt.Errorf("template %q: %w", s, err)
			}
			if seen[name] {
				return nil, fmt.Errorf("template %q: variable %q bound twice", s, name)
			}
			seen[name] = true
			if strings.ContainsAny(pattern, "{}") {
				return nil, fmt.Errorf("template %q: variables cannot nest", s)
			}
			v := variable{field: field, start: len(t.segments)}
			for _, p := range strings.Split(pattern, "/") {
				seg, err := parseSegment(p)
				if err != nil {
					return nil, fmt.Errorf("template %q: %w", s, err)
				}
				t.segments = append(t.segments, seg)
			}
			v.end = len(t.segments)
			t.vars = append(t.vars, v)
		} else {
			end := strings.IndexByte(rest, '/')
			if end < 0 {
				end = len(rest)
			}
			if strings.ContainsAny(rest[:end], "{}") {
				return nil, fmt.Errorf("template %q: a variable must be a whole segment", s)
			}
			seg, err := parseSegment(rest[:end])
			if err != nil {
				return nil, fmt.Errorf("template %q: %w", s, err)
			}
			t.segments = append(t.segments, seg)
			rest = rest[end:]
		}
		if rest == "" {
			break
		}
		if rest[0] != '/' || len(rest) == 1 {
			return nil, fmt.Errorf("template %q: segments must be separated by one /", s)
		}
		rest = rest[1:]
	}
	for i, seg := range t.segments {
		if seg.kind == segDoubleStar && i != len(t.segments)-1 {
			return nil, fmt.Errorf("template %q: ** must be the last segment", s)
		}
	}
	return t, nil
}

func parseSegment(p string) (segment, error) {
	switch p {
	case "":
		return segment{}, errors.New("empty segment")
	case "*":
		return segment{kind: segStar}, nil
	case "**":
		return segment{kind: segDoubleStar}, nil
	}
	if strings.Contains(p, "*") {
		return segment{}, fmt.Errorf("segment %q: * must be a whole segment", p)
	}
	lit, err := url.PathUnescape(p)
	if err != nil {
		return segment{}, fmt.Errorf("segment %q: %w", p, err)
	}
	return segment{kind: segLiteral, literal: lit}, nil
}

func parseFieldPath(s string) ([]string, error) {
	parts := strings.Split(s, ".")
	for _, p := range parts {
		if p == "" {
			return nil, fmt.Errorf("field path %q: empty name", s)
		}
		for i, r := range p {
			ok := r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9'
			if !ok {
				return nil, fmt.Errorf("field path %q: %q is not an identifier", s, p)
			}
		}
	}
	return parts, nil
}

// Binding is one variable's value from a matched path.
type Binding struct {
	Field []string
	Value string
}

// Match matches an escaped request path (URL.EscapedPath) against the
// template, returning the variables' values. A variable of one segment is
// percent-decoded whole; one of several keeps "%2F" as written, as the
// google.api.http rules ask of multi-segment variables.
func (t *Template) Match(escapedPath string) ([]Binding, bool) {
	if !strings.HasPrefix(escapedPath, "/") {
		return nil, false
	}
	p := escapedPath[1:]
	if t.verb != "" {
		i := strings.LastIndexByte(p, ':')
		if i < 0 || strings.Contains(p[i:], "/") {
			return nil, false
		}
		verb, err := url.PathUnescape(p[i+1:])
		if err != nil || verb != t.verb {
			return nil, false
		}
		p = p[:i]
	}
	var parts []string
	if p != "" {
		parts = strings.Split(p, "/")
	}
	// spans[i] is the range of path parts segment i took.
	type span struct{ from, to int }
	spans := make([]span, len(t.segments))
	n := 0
	for i, seg := range t.segments {
		switch seg.kind {
		case segDoubleStar:
			spans[i] = span{n, len(parts)}
			n = len(parts)
			continue
		case segStar:
			if n >= len(parts) || parts[n] == "" {
				return nil, false
			}
		case segLiteral:
			if n >= len(parts) {
				return nil, false
			}
			lit, err := url.PathUnescape(parts[n])
			if err != nil || lit != seg.literal {
				return nil, false
			}
		}
		spans[i] = span{n, n + 1}
		n++
	}
	if n != len(parts) {
		return nil, false
	}
	out := make([]Binding, 0, len(t.vars))
	for _, v := range t.vars {
		from, to := spans[v.start].from, spans[v.end-1].to
		var value string
		if v.end-v.start == 1 && t.segments[v.start].kind != segDoubleStar {
			dec, err := url.PathUnescape(parts[from])
			if err != nil {
				return nil, false
			}
			value = dec
		} else {
			value = unescapeReserved(strings.Join(parts[from:to], "/"))
		}
		out = append(out, Binding{Field: v.field, Value: value})
	}
	return out, true
}

// unescapeReserved decodes percent-escapes except those of '/', as
// multi-segment variables keep them.
func unescapeReserved(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if h, ok := unhex(s[i+1], s[i+2]); ok && h != '/' {
				b.WriteByte(h)
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func unhex(a, b byte) (byte, bool) {
	x, ok1 := hexval(a)
	y, ok2 := hexval(b)
	return x<<4 | y, ok1 && ok2
}

func hexval(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// specificity orders templates so that a literal segment is tried before a
// wildcard at the same place, and a verb before none.
func (t *Template) specificity() []int {
	k := make([]int, 0, len(t.segments)+1)
	for _, s := range t.segments {
		k = append(k, s.kind)
	}
	return k
}

// Verb is the template's custom verb ("" for none).
func (t *Template) Verb() string { return t.verb }

// OpenAPIPath writes the template as an OpenAPI path: each variable as
// {field.path} (whatever segments it matches), literals as they are, and
// a wildcard outside any variable as {_n}.
func (t *Template) OpenAPIPath() string {
	var b strings.Builder
	inVar := make([]int, len(t.segments)) // the variable of a segment, +1
	for i, v := range t.vars {
		for s := v.start; s < v.end; s++ {
			inVar[s] = i + 1
		}
	}
	wild := 0
	for i := 0; i < len(t.segments); i++ {
		b.WriteByte('/')
		if v := inVar[i]; v > 0 {
			b.WriteString("{" + strings.Join(t.vars[v-1].field, ".") + "}")
			i = t.vars[v-1].end - 1
			continue
		}
		switch seg := t.segments[i]; seg.kind {
		case segLiteral:
			b.WriteString(seg.literal)
		default:
			fmt.Fprintf(&b, "{_%d}", wild)
			wild++
		}
	}
	if len(t.segments) == 0 {
		b.WriteByte('/')
	}
	if t.verb != "" {
		b.WriteString(":" + t.verb)
	}
	return b.String()
}
