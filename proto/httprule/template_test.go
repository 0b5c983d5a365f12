package httprule

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseTemplate_Errors(t *testing.T) {
	for _, tmpl := range []string{
		"v1/books",         // no leading /
		"/v1//books",       // empty segment
		"/v1/books/",       // trailing /
		"/v1/{name",        // unclosed
		"/v1/{name=a/{b}}", // nested
		"/v1/**/books",     // ** not last
		"/v1/{name=**}/x",  // ** not last, in a variable
		"/v1/a*b",          // * inside a segment
		"/v1/{1name}",      // not an identifier
		"/v1/{a.}",         // empty name
		"/v1/{a}/{a}",      // bound twice
		"/v1/x{a}",         // variable not a whole segment
		"/v1/books:",       // empty verb
	} {
		if _, err := ParseTemplate(tmpl); err == nil {
			t.Errorf("ParseTemplate(%q) accepted", tmpl)
		}
	}
}

func TestTemplate_Match(t *testing.T) {
	type b = map[string]string
	for _, tc := range []struct {
		tmpl, path string
		want       b // nil: no match
	}{
		{"/v1/books", "/v1/books", b{}},
		{"/v1/books", "/v1/books/", nil},
		{"/v1/books", "/v1/book", nil},
		{"/", "/", b{}},
		{"/v1/{name}", "/v1/abc", b{"name": "abc"}},
		{"/v1/{name}", "/v1/", nil},
		{"/v1/{name}", "/v1/a/b", nil},
		{"/v1/{name=shelves/*/books/*}", "/v1/shelves/s1/books/b2", b{"name": "shelves/s1/books/b2"}},
		{"/v1/{name=shelves/*/books/*}", "/v1/shelves/s1/books", nil},
		{"/v1/{name=shelves/*/books/*}", "/v1/shelves/s1/novels/b2", nil},
		{"/v1/{book.name=shelves/*}/x", "/v1/shelves/7/x", b{"book.name": "shelves/7"}},
		// One segment: decoded whole, %2F too.
		{"/v1/{name}", "/v1/a%2Fb%20c", b{"name": "a/b c"}},
		// Several segments: %2F kept as written, the rest decoded.
		{"/v1/{name=shelves/*}", "/v1/shelves/a%2Fb%20c", b{"name": "shelves/a%2Fb c"}},
		{"/v1/{path=**}", "/v1/a/b/c", b{"path": "a/b/c"}},
		{"/v1/{path=**}", "/v1", b{"path": ""}}, // ** takes zero segments too
		{"/v1/{path=**}", "/v1/", b{"path": ""}},
		{"/v1/files/**", "/v1/files/a/b", b{}},
		{"/v1/files/**", "/v1/files", b{}},
		{"/v1/{name=*}:move", "/v1/b1:move", b{"name": "b1"}},
		{"/v1/{name=*}:move", "/v1/b1", nil},
		{"/v1/{name=*}:move", "/v1/b1:copy", nil},
		{"/v1/{name=*}:move", "/v1/b1%3Amove", nil}, // an escaped ':' is part of the name, no verb
		{"/v1/{path=**}:watch", "/v1/a/b:watch", b{"path": "a/b"}},
		{"/v1/a%20b", "/v1/a%20b", b{}},
		{"/v1/a%20b", "/v1/a b", b{}},
		{"/v1/{a}/{b}", "/v1/x/y", b{"a": "x", "b": "y"}},
	} {
		tmpl, err := ParseTemplate(tc.tmpl)
		if err != nil {
			t.Fatalf("ParseTemplate(%q): %v", tc.tmpl, err)
		}
		got, ok := tmpl.Match(tc.path)
		if tc.want == nil {
			if ok {
				t.Errorf("%s matched %s: %v", tc.tmpl, tc.path, got)
			}
			continue
		}
		if !ok {
			t.Errorf("%s did not match %s", tc.tmpl, tc.path)
			continue
		}
		gotMap := b{}
		for _, g := range got {
			gotMap[strings.Join(g.Field, ".")] = g.Value
		}
		if !reflect.DeepEqual(gotMap, tc.want) {
			t.Errorf("%s on %s: %v, want %v", tc.tmpl, tc.path, gotMap, tc.want)
		}
	}
}

func FuzzTemplate(f *testing.F) {
	f.Add("/v1/{name=shelves/*/books/*}:move", "/v1/shelves/a/books/b:move")
	f.Add("/v1/{path=**}", "/v1/a%2F/b%zz")
	f.Fuzz(func(t *testing.T, tmpl, path string) {
		tp, err := ParseTemplate(tmpl)
		if err != nil {
			return
		}
		bindings, ok := tp.Match(path)
		if ok && len(bindings) != len(tp.Fields()) {
			t.Fatalf("%s on %s: %d bindings for %d variables", tmpl, path, len(bindings), len(tp.Fields()))
		}
	})
}

func TestTemplate_OpenAPIPath(t *testing.T) {
	for tmpl, want := range map[string]string{
		"/v1/{name=shelves/*/books/*}":       "/v1/{name}",
		"/v1/{parent=shelves/*}/books:watch": "/v1/{parent}/books:watch",
		"/v1/{book.name=shelves/*/books/*}":  "/v1/{book.name}",
		"/v1/titles/{parent=**}":             "/v1/titles/{parent}",
		"/v1/*/x/**":                         "/v1/{_0}/x/{_1}",
		"/":                                  "/",
		"/v1/books":                          "/v1/books",
	} {
		tp, err := ParseTemplate(tmpl)
		if err != nil {
			t.Fatal(err)
		}
		if got := tp.OpenAPIPath(); got != want {
			t.Errorf("%s: %s, want %s", tmpl, got, want)
		}
	}
}
