package cli

import (
	"context"
	"log/slog"
	"time"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/identity"
	"github.com/meshgate/meshgate/server/admin"
)

// newIdentity builds the identity source of the bootstrap's identity
// section: istiod's CA or files.
func newIdentity(s *config.IdentitySettings, store *config.Store, log *slog.Logger) (identity.Source, error) {
	opts := []identity.Option{identity.WithLogger(log)}
	if c := s.IstioCA; c != nil {
		src, err := identity.NewIstioCA(store, identity.IstioCAConfig{
			Address: c.Address, RootCertFile: c.RootCertFile, TokenFile: c.TokenFile, ServerName: c.ServerName,
			TrustDomain: c.TrustDomain, Namespace: c.Namespace, ServiceAccount: c.ServiceAccount,
			ClusterID: c.ClusterID, CertTTL: c.CertTTL,
		}, opts...)
		if err != nil {
			return nil, err
		}
		return src, nil
	}
	f := s.Files
	src, err := identity.NewFiles(store, identity.FilesConfig{CertChain: f.CertChain, PrivateKey: f.PrivateKey, RootCert: f.RootCert}, opts...)
	if err != nil {
		return nil, err
	}
	return src, nil
}

// identityPatience is how long start-up waits for the first certificate
// before saying, once, that readiness is held back by it.
const identityPatience = 10 * time.Second

// reportIdentity logs when the first certificate is in the store, and
// says so if it has not come within patience. It returns then or when
// ctx ends.
func reportIdentity(ctx context.Context, id identity.Source, log *slog.Logger, patience time.Duration) {
	patient, cancel := context.WithTimeout(ctx, patience)
	err := id.WaitReady(patient)
	cancel()
	if err != nil && ctx.Err() == nil {
		log.Warn("no workload certificate yet; /ready stays INITIALIZING until one is in the store", "waited", patience)
		err = id.WaitReady(ctx)
	}
	if err != nil {
		return
	}
	info, _ := id.Current()
	log.Info("workload identity ready", "spiffe_id", info.SPIFFEID, "serial", info.Serial, "expires", info.NotAfter)
}

// identityGate holds readiness back until the workload certificate is in
// the store: a gateway that would answer mTLS handshakes without it is
// not ready for traffic.
func identityGate(id interface{ Ready() bool }) admin.Option {
	return admin.WithReadinessGate(func() string {
		if id.Ready() {
			return ""
		}
		return "the workload certificate has not been issued yet (identity: in the bootstrap; the log says why)"
	})
}
