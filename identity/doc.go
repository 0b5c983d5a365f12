// Package identity keeps the gateway's workload identity in the config
// store, as istio-agent keeps an Istio ingress gateway's: an X.509
// certificate with a SPIFFE ID (spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>)
// and its trust anchors, written as two Envoy SDS Secret resources that
// listeners and clusters name the way Istio's do:
//
//   - "default" (CertSecret): a tls_certificate with the chain (leaf,
//     intermediates, root, as istio-agent serves it) and the private key,
//     both PEM inline_bytes;
//   - "ROOTCA" (RootSecret): a validation_context whose trusted_ca holds
//     the mesh's root certificates.
//
// Two sources write them, under the store source "identity" (StoreSource):
//
//   - IstioCA asks istiod's CA (istio.v1.auth.IstioCertificateService) for
//     a certificate over TLS, authenticated by a projected service-account
//     token, and renews it when half its lifetime has passed;
//   - Files reads a chain, a key and roots that another agent (cert-manager,
//     SPIRE) keeps on disk, and follows their rewrites.
//
// Invariants: a source replaces both secrets in one store update, so the
// data plane (which reads secrets at handshake time) swaps certificates
// without a restart and without dropping a connection; a certificate whose
// key does not match, or a failed renewal, never replaces the one in the
// store; every call takes the caller's context, and a source's Run returns
// when it ends, having stopped what it started.
//
// TokenCredentials gives the xDS client the same bearer token for
// istiod's secure xDS port.
package identity
