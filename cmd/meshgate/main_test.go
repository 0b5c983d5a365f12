package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshgate/meshgate/config"
)

// The embedded demo config loads and compiles.
func TestDemoConfig(t *testing.T) {
	l, err := config.Load(demoConfig, "")
	if err != nil {
		t.Fatalf("demo config: %v", err)
	}
	if err := check(l); err != nil {
		t.Fatalf("demo config does not compile: %v", err)
	}
	if l.Bootstrap.AdminAddress != "127.0.0.1:9901" {
		t.Errorf("demo admin address = %q, want 127.0.0.1:9901", l.Bootstrap.AdminAddress)
	}
}

func TestRun_Commands(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, demoConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("listeners: [{name: l, address: ':1', virtual_hosts: [{routes: [{match: {prefix: /}, cluster: nope}]}]}]"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"version"}, 0, "meshgate ", ""},
		{[]string{"validate", "-c", good}, 0, "valid (meshgate format", ""},
		{[]string{"validate", "-c", bad}, 1, "", `cluster "nope" is not defined`},
		{[]string{"validate"}, 2, "", "-c FILE is required"},
		{[]string{"validate", "-c", filepath.Join(dir, "missing.yaml")}, 1, "", "no such file"},
		{[]string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{nil, 2, "", "Usage:"},
	}
	for _, tc := range tests {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stdout.String(), tc.stdout) || !strings.Contains(stderr.String(), tc.stderr) {
			t.Errorf("meshgate %v = %d, stdout %q, stderr %q; want %d with %q / %q",
				tc.args, code, stdout.String(), stderr.String(), tc.code, tc.stdout, tc.stderr)
		}
	}
}

func TestXDSFlags_Apply(t *testing.T) {
	var b config.Bootstrap
	f := xdsFlags{address: "istiod:15010", nodeCluster: "edge", locality: "eu/eu-1"}
	_ = f.metadata.Set("CLUSTER_ID=c2")
	if err := f.apply(&b); err != nil {
		t.Fatal(err)
	}
	n := b.XDS.Node
	if b.XDS.Address != "istiod:15010" || !strings.HasPrefix(n.GetId(), "router~127.0.0.1~meshgate.istio-system~") ||
		n.GetCluster() != "edge" || n.GetLocality().GetZone() != "eu-1" {
		t.Errorf("node = %v at %s", n, b.XDS.Address)
	}
	md := n.GetMetadata().AsMap()
	if md["CLUSTER_ID"] != "c2" || md["NAMESPACE"] != "istio-system" {
		t.Errorf("metadata = %v, want CLUSTER_ID overridden and Istio defaults kept", md)
	}
	var none config.Bootstrap
	if err := (xdsFlags{nodeID: "x"}).apply(&none); err == nil {
		t.Error("-node-id without a control plane was accepted")
	}
}
