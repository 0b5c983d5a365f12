package config

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/out from testdata/in")

// Each friendly config in testdata/in translates into the Envoy resources
// in testdata/out (one YAML document each, in the order Translate gives);
// go test ./config -update rewrites them, to be read in review. The
// hand-written equivalence test (TestLoad_FriendlyMatchesHandWrittenEnvoy)
// is the independent check of the mapping itself.
func TestTranslate_Golden(t *testing.T) {
	ins, err := filepath.Glob("testdata/in/*.yaml")
	if err != nil || len(ins) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	for _, in := range ins {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		t.Run(name, func(t *testing.T) {
			l, err := LoadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			for i, r := range l.Resources {
				js, err := protojson.MarshalOptions{UseProtoNames: true, Resolver: TolerantResolver{}}.Marshal(r)
				if err != nil {
					t.Fatal(err)
				}
				y, err := yaml.JSONToYAML(js)
				if err != nil {
					t.Fatal(err)
				}
				if i > 0 {
					got.WriteString("---\n")
				}
				got.WriteString("# " + TypeURL(r) + "\n")
				got.Write(y)
			}
			out := filepath.Join("testdata", "out", name+".yaml")
			if *updateGolden {
				if err := os.WriteFile(out, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(out)
			if err != nil {
				t.Fatalf("%v (run go test ./config -update)", err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("%s differs from %s: run go test ./config -run TestTranslate_Golden -update and review the diff", in, out)
			}
		})
	}
}
