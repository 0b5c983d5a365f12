package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The fixtures are real payloads: testdata/java from Java Dubbo 3.3.6,
// testdata/dubbogo from dubbo-go v3.3.2 (each directory's README.md says
// how they were captured). The facts the tests compare with were written
// by hand from the files; recapturing changes ports, revisions and
// timestamps, and those facts with them.

const greeterIface = "org.apache.dubbo.samples.GreeterService"

// fixture reads testdata/<name>.
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixtureText is a .url or .txt fixture without its trailing newline.
func fixtureText(t testing.TB, name string) string {
	t.Helper()
	return strings.TrimSuffix(string(fixture(t, name)), "\n")
}

// hessianFromFixture turns a metadata-info-hessian2.json fixture back into
// what dubbo-go-hessian2 decoded from the MetadataService's answer, before
// the capture wrote it as JSON (which keeps the keys and values but not
// their Go types):
//
//   - a Java object (a JSON object with a "_class" key: MetadataInfo,
//     MetadataInfo$ServiceInfo) decodes as map[string]any, "_class" included;
//   - a Java or Go map (services, params) decodes as map[any]any with
//     string keys;
//   - strings stay strings;
//   - the port is a hessian int from Java (int32) and a hessian long from
//     dubbo-go, whose ServiceInfo.Port is a Go int (int64): intType says
//     which. No other number is in these answers.
//
// testdata/dubbogo/metadata-info-hessian2.types.txt lists the types the
// capture saw for dubbo-go, and TestHessianFromFixtureTypes checks this
// conversion gives exactly those; decoding the Java provider's answer the
// same way gave the same shapes with int32 ports.
func hessianFromFixture(t testing.TB, name string, intType string) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(fixture(t, name)))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var conv func(v any) any
	conv = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			if _, object := x["_class"]; object {
				out := make(map[string]any, len(x))
				for k, v := range x {
					out[k] = conv(v)
				}
				return out
			}
			out := make(map[any]any, len(x))
			for k, v := range x {
				out[k] = conv(v)
			}
			return out
		case json.Number:
			n, err := strconv.ParseInt(x.String(), 10, 64)
			if err != nil {
				t.Fatalf("%s: number %s: %v", name, x, err)
			}
			if intType == "int32" {
				return int32(n)
			}
			return n
		}
		return v
	}
	return conv(v)
}

// hessianTypes lists the Go type of every value by path, as the capture
// test (integration/dubbogo_fixtures_test.go) wrote the .types.txt file.
func hessianTypes(v any, at string, out *[]string) {
	*out = append(*out, fmt.Sprintf("%s %T", at, v))
	var keys []string
	kids := map[string]any{}
	switch m := v.(type) {
	case map[string]any:
		for k, v := range m {
			keys, kids[k] = append(keys, k), v
		}
	case map[any]any:
		for k, v := range m {
			ks := fmt.Sprintf("%v (%T)", k, k)
			keys, kids[ks] = append(keys, ks), v
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		hessianTypes(kids[k], at+"["+k+"]", out)
	}
}

func TestHessianFromFixtureTypes(t *testing.T) {
	v := hessianFromFixture(t, "dubbogo/metadata-info-hessian2.json", "int64")
	var got []string
	hessianTypes(v, "$", &got)
	want := strings.Split(strings.TrimSuffix(string(fixture(t, "dubbogo/metadata-info-hessian2.types.txt")), "\n"), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("the converted fixture has types\n%s\nwant (as captured)\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
