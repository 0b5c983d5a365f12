package config

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

func TestLoad_Identity(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       *IdentitySettings
		wantToken  string // xds.token_file as read
	}{
		{"istio_ca with defaults", `
identity:
  istio_ca: { address: "istiod.istio-system.svc:15012", root_cert_file: /var/run/secrets/istio/root-cert.pem, token_file: /var/run/secrets/tokens/istio-token }`,
			&IdentitySettings{IstioCA: &IstioCASettings{
				Address: "istiod.istio-system.svc:15012", RootCertFile: "/var/run/secrets/istio/root-cert.pem",
				TokenFile: "/var/run/secrets/tokens/istio-token", TrustDomain: "cluster.local", Namespace: "istio-system",
				ServiceAccount: "meshgate", ClusterID: "Kubernetes", ServerName: "istiod.istio-system.svc", CertTTL: 24 * time.Hour,
			}}, ""},
		{"istio_ca with the xds section's namespace and cluster, relative files", `
xds:
  address: "istiod.istio-system.svc:15012"
  tls: { ca_file: root-cert.pem, sni: istiod.istio-system.svc }
  token_file: istio-token
  istio: { namespace: gw-ns, cluster_id: east }
identity:
  istio_ca: { address: "istiod.istio-system.svc:15012", root_cert_file: root-cert.pem, token_file: istio-token, cert_ttl: 1h }`,
			&IdentitySettings{IstioCA: &IstioCASettings{
				Address: "istiod.istio-system.svc:15012", RootCertFile: "/etc/meshgate/root-cert.pem",
				TokenFile: "/etc/meshgate/istio-token", TrustDomain: "cluster.local", Namespace: "gw-ns",
				ServiceAccount: "meshgate", ClusterID: "east", ServerName: "istiod.istio-system.svc", CertTTL: time.Hour,
			}}, "/etc/meshgate/istio-token"},
		{"istio_ca, every field", `
xds: { address: "istiod:15012", istio: { namespace: ignored, cluster_id: ignored } }
identity:
  istio_ca:
    address: 10.0.0.1:15012
    root_cert_file: /r.pem
    token_file: /t
    trust_domain: example.org
    namespace: edge
    service_account: gw
    cluster_id: west
    server_name: istiod.example.org
    cert_ttl: 2s`,
			&IdentitySettings{IstioCA: &IstioCASettings{
				Address: "10.0.0.1:15012", RootCertFile: "/r.pem", TokenFile: "/t", TrustDomain: "example.org", Namespace: "edge",
				ServiceAccount: "gw", ClusterID: "west", ServerName: "istiod.example.org", CertTTL: 2 * time.Second,
			}}, ""},
		{"files", `
identity:
  files: { cert_chain: tls.crt, private_key: /keys/tls.key, root_cert: ca.crt }`,
			&IdentitySettings{Files: &IdentityFilesSettings{CertChain: "/etc/meshgate/tls.crt", PrivateKey: "/keys/tls.key", RootCert: "/etc/meshgate/ca.crt"}}, ""},
		{"no identity", `admin: { address: "127.0.0.1:9901" }`, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Load([]byte(tt.yaml), "/etc/meshgate")
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if diff := cmp.Diff(tt.want, l.Bootstrap.Identity); diff != "" {
				t.Errorf("Bootstrap.Identity (-want +got):\n%s", diff)
			}
			if x := l.Bootstrap.XDS; x != nil && x.TokenFile != tt.wantToken {
				t.Errorf("xds token file = %q, want %q", x.TokenFile, tt.wantToken)
			}
		})
	}
}

// The section written back as YAML reads the same.
func TestIdentityConfig_RoundTrip(t *testing.T) {
	for _, in := range []string{
		`istio_ca: { address: "istiod:15012", root_cert_file: /r.pem, token_file: /t, trust_domain: example.org, namespace: edge, service_account: gw, cluster_id: west, server_name: istiod.example.org, cert_ttl: 90m }`,
		`files: { cert_chain: /c.pem, private_key: /k.pem, root_cert: /r.pem }`,
	} {
		var c IdentityConfig
		if err := yaml.UnmarshalStrict([]byte(in), &c); err != nil {
			t.Fatalf("unmarshal %s: %v", in, err)
		}
		out, err := yaml.Marshal(&c)
		if err != nil {
			t.Fatal(err)
		}
		var back IdentityConfig
		if err := yaml.UnmarshalStrict(out, &back); err != nil {
			t.Fatalf("unmarshal %s: %v", out, err)
		}
		if diff := cmp.Diff(c, back); diff != "" {
			t.Errorf("round trip of %s through\n%s(-in +back):\n%s", in, out, diff)
		}
		js, _ := json.Marshal(&c)
		l, err := Load([]byte(`{"identity": `+string(js)+`}`), "")
		if err != nil || l.Bootstrap.Identity == nil {
			t.Errorf("Load of the written section: %v", err)
		}
	}
}

func TestLoad_IdentityErrors(t *testing.T) {
	const ca = `address: "istiod:15012", root_cert_file: r.pem, token_file: t`
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"neither", `identity: {}`, []string{"identity: give exactly one of istio_ca or files"}},
		{"both", `identity: { istio_ca: { ` + ca + ` }, files: { cert_chain: c, private_key: k, root_cert: r } }`, []string{"give exactly one of istio_ca or files"}},
		{"missing fields", `identity: { istio_ca: { address: istiod } }`, []string{
			`identity.istio_ca.address: want host:port of istiod's secure port (15012), got "istiod"`,
			"identity.istio_ca.root_cert_file: must not be empty",
			"identity.istio_ca.token_file: must not be empty",
		}},
		{"bad names", `identity: { istio_ca: { ` + ca + `, namespace: "a/b", trust_domain: "x:y" } }`, []string{
			`identity.istio_ca.namespace: "a/b" cannot be part of a SPIFFE ID`, `identity.istio_ca.trust_domain: "x:y" cannot be part of a SPIFFE ID`,
		}},
		{"short ttl", `identity: { istio_ca: { ` + ca + `, cert_ttl: 500ms } }`, []string{"identity.istio_ca.cert_ttl: want at least 1s, got 500ms"}},
		{"bad ttl", `identity: { istio_ca: { ` + ca + `, cert_ttl: daily } }`, []string{`duration "daily"`}},
		{"files incomplete", `identity: { files: { cert_chain: c } }`, []string{
			"identity.files.private_key: must not be empty", "identity.files.root_cert: must not be empty",
		}},
		{"unknown field", `identity: { istio_ca: { ` + ca + `, ttl: 1h } }`, []string{`unknown field "ttl"`}},
		{"xds token without tls", `xds: { address: "istiod:15012", token_file: /t }`, []string{"xds.token_file: needs tls"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load([]byte(tt.yaml), "")
			if err == nil {
				t.Fatalf("Load(%s) succeeded, want errors %q", tt.yaml, tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Load() error:\n%v\nwant it to contain %q", err, w)
				}
			}
		})
	}
}
