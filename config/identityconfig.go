package config

import (
	"net"
	"strings"
	"time"
)

// IdentityConfig is the friendly format's identity section: where the
// gateway's workload certificate (its SPIFFE identity) comes from. Give
// exactly one of IstioCA and Files. The certificate goes into the store as
// the SDS secrets "default" and "ROOTCA", which Istio's listeners and
// clusters name.
type IdentityConfig struct {
	IstioCA *IstioCAConfig       `json:"istio_ca,omitempty"`
	Files   *IdentityFilesConfig `json:"files,omitempty"`
}

// IstioCAConfig asks istiod's CA for the certificate, as istio-agent does,
// and renews it at half its lifetime.
type IstioCAConfig struct {
	// Address is istiod's secure port, host:port (required), e.g.
	// istiod.istio-system.svc:15012.
	Address string `json:"address"`
	// RootCertFile verifies istiod and holds the mesh's roots: the
	// istio-ca-root-cert configmap's root-cert.pem (required).
	RootCertFile string `json:"root_cert_file"`
	// TokenFile is the projected service-account token with audience
	// istio-ca (required), re-read for each request.
	TokenFile string `json:"token_file"`
	// TrustDomain of the SPIFFE ID (default cluster.local).
	TrustDomain string `json:"trust_domain,omitempty"`
	// Namespace of the SPIFFE ID (default: xds.istio.namespace, else
	// istio-system).
	Namespace string `json:"namespace,omitempty"`
	// ServiceAccount of the SPIFFE ID (default meshgate).
	ServiceAccount string `json:"service_account,omitempty"`
	// ClusterID is sent as the ClusterID header: the cluster whose API
	// server checks the token (default: xds.istio.cluster_id, else
	// Kubernetes).
	ClusterID string `json:"cluster_id,omitempty"`
	// ServerName is the name istiod's certificate must hold (default
	// istiod.istio-system.svc).
	ServerName string `json:"server_name,omitempty"`
	// CertTTL is the validity asked for, at least 1s, in whole seconds
	// (default 24h); istiod may cap it.
	CertTTL *Duration `json:"cert_ttl,omitempty"`
}

// IdentityFilesConfig reads the certificate from PEM files another agent
// keeps up to date (cert-manager, SPIRE), following their changes. All
// three are required.
type IdentityFilesConfig struct {
	// CertChain is the chain, leaf first.
	CertChain string `json:"cert_chain"`
	// PrivateKey is the leaf's key.
	PrivateKey string `json:"private_key"`
	// RootCert holds the mesh's roots.
	RootCert string `json:"root_cert"`
}

// IdentitySettings are the identity section, validated, with defaults
// and file names resolved. Exactly one of IstioCA and Files is set.
type IdentitySettings struct {
	IstioCA *IstioCASettings
	Files   *IdentityFilesSettings
}

// IstioCASettings are an istio_ca section with its defaults.
type IstioCASettings struct {
	Address, RootCertFile, TokenFile                              string
	TrustDomain, Namespace, ServiceAccount, ClusterID, ServerName string
	CertTTL                                                       time.Duration
}

// IdentityFilesSettings are a files section.
type IdentityFilesSettings struct {
	CertChain, PrivateKey, RootCert string
}

// Defaults of the istio_ca section (istio-agent's).
const (
	DefaultTrustDomain    = "cluster.local"
	DefaultServiceAccount = "meshgate"
	DefaultCAServerName   = "istiod.istio-system.svc"
	DefaultCertTTL        = 24 * time.Hour
)

func (t *translator) identity(path string, c *IdentityConfig, x *XDSConfig) *IdentitySettings {
	out := &IdentitySettings{}
	switch {
	case (c.IstioCA == nil) == (c.Files == nil):
		t.errf(path, "give exactly one of istio_ca or files")
	case c.Files != nil:
		f := c.Files
		p := path + ".files"
		for _, r := range []struct{ field, v string }{{"cert_chain", f.CertChain}, {"private_key", f.PrivateKey}, {"root_cert", f.RootCert}} {
			if r.v == "" {
				t.errf(p+"."+r.field, "must not be empty")
			}
		}
		out.Files = &IdentityFilesSettings{CertChain: t.file(f.CertChain), PrivateKey: t.file(f.PrivateKey), RootCert: t.file(f.RootCert)}
	default:
		out.IstioCA = t.istioCA(path+".istio_ca", c.IstioCA, x)
	}
	return out
}

func (t *translator) istioCA(p string, c *IstioCAConfig, x *XDSConfig) *IstioCASettings {
	s := &IstioCASettings{
		Address: c.Address, RootCertFile: t.file(c.RootCertFile), TokenFile: t.file(c.TokenFile),
		TrustDomain: c.TrustDomain, Namespace: c.Namespace, ServiceAccount: c.ServiceAccount,
		ClusterID: c.ClusterID, ServerName: c.ServerName, CertTTL: DefaultCertTTL,
	}
	if _, _, err := net.SplitHostPort(c.Address); err != nil {
		t.errf(p+".address", "want host:port of istiod's secure port (15012), got %q", c.Address)
	}
	if c.RootCertFile == "" {
		t.errf(p+".root_cert_file", "must not be empty (istiod's certificate is verified with it)")
	}
	if c.TokenFile == "" {
		t.errf(p+".token_file", "must not be empty (istiod authenticates the gateway by its service-account token)")
	}
	var istio IstioNodeConfig
	if x != nil && x.Istio != nil {
		istio = *x.Istio
	}
	def := func(v *string, ds ...string) {
		for _, d := range ds {
			if *v == "" {
				*v = d
			}
		}
	}
	def(&s.TrustDomain, DefaultTrustDomain)
	def(&s.Namespace, istio.Namespace, "istio-system")
	def(&s.ServiceAccount, DefaultServiceAccount)
	def(&s.ClusterID, istio.ClusterID, "Kubernetes")
	def(&s.ServerName, DefaultCAServerName)
	for _, n := range []struct{ field, v string }{{"trust_domain", s.TrustDomain}, {"namespace", s.Namespace}, {"service_account", s.ServiceAccount}} {
		if strings.ContainsAny(n.v, "/:?#@ \t") {
			t.errf(p+"."+n.field, "%q cannot be part of a SPIFFE ID (no '/', ':', '?', '#', '@' or spaces)", n.v)
		}
	}
	if c.CertTTL != nil {
		if c.CertTTL.Duration < time.Second {
			t.errf(p+".cert_ttl", "want at least 1s, got %v", c.CertTTL.Duration)
		}
		s.CertTTL = c.CertTTL.Duration
	}
	return s
}
