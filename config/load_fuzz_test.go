package config

import (
	"os"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to the config parser: it may reject them,
// never panic.
func FuzzLoad(f *testing.F) {
	for _, name := range []string{"testdata/friendly.yaml", "testdata/envoy-equivalent.yaml"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`listeners: [{name: l, address: ":1", virtual_hosts: [{routes: [{match: {regex: "a+"}, cluster: c}]}]}]`))
	f.Add([]byte(`{"static_resources": {"listeners": [{"name": "x"}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := Load(data, "")
		if err == nil && l == nil {
			t.Fatal("Load returned neither a config nor an error")
		}
	})
}
