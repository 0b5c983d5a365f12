package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	demov1 "github.com/meshgate/meshgate/proto/demo/v1"
)

// The mesh identities of the mTLS scenario, as Istio names workloads.
const (
	backendSPIFFE = "spiffe://cluster.local/ns/default/sa/backend"
	clientSPIFFE  = "spiffe://cluster.local/ns/istio-system/sa/meshgate"
	// backendSNI is the SNI Istio's outbound clusters send.
	backendSNI = "outbound_.50051_._.backend.default.svc.cluster.local"
)

// meshPKI is a throwaway mesh CA and the workload certificates it signed
// (ECDSA P-256, SPIFFE URI SANs, chains leaf first and root last as
// istio-agent serves them).
type meshPKI struct {
	roots                     *x509.CertPool
	caPEM                     []byte
	backend, client           tls.Certificate
	clientChain, clientKeyPEM []byte
}

func newMeshPKI() (*meshPKI, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Organization: []string{"cluster.local"}, CommonName: "meshgate bench mesh CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	p := &meshPKI{roots: x509.NewCertPool(), caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})}
	p.roots.AddCert(ca)
	// leaf is a workload certificate as istiod issues them: no subject,
	// the SPIFFE ID as the only (URI) SAN, for client and server use.
	leaf := func(serial int64, spiffe string) (tls.Certificate, []byte, []byte, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return tls.Certificate{}, nil, nil, err
		}
		u, err := url.Parse(spiffe)
		if err != nil {
			return tls.Certificate{}, nil, nil, err
		}
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(serial),
			NotBefore:             now.Add(-time.Hour),
			NotAfter:              now.Add(24 * time.Hour),
			KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			BasicConstraintsValid: true,
			URIs:                  []*url.URL{u},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return tls.Certificate{}, nil, nil, err
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return tls.Certificate{}, nil, nil, err
		}
		chainPEM := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), p.caPEM...)
		keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
		c, err := tls.X509KeyPair(chainPEM, keyPEM)
		return c, chainPEM, keyPEM, err
	}
	if p.backend, _, _, err = leaf(2, backendSPIFFE); err != nil {
		return nil, err
	}
	if p.client, p.clientChain, p.clientKeyPEM, err = leaf(3, clientSPIFFE); err != nil {
		return nil, err
	}
	return p, nil
}

// startMTLSBackend serves the demo service (the same instance as the
// plaintext backend's) over TLS that requires a client certificate from
// the mesh CA, as a sidecar in an Istio STRICT namespace does.
func startMTLSBackend(ctx context.Context, svc demov1.DemoServiceServer, p *meshPKI) (string, func(), error) {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{p.backend},
		ClientCAs:    p.roots,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	})))
	demov1.RegisterDemoServiceServer(srv, svc)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(l) }()
	return l.Addr().String(), func() { srv.Stop(); <-done }, nil
}

// clientCreds is what the direct client dials the mTLS backend with: the
// client certificate, and the server checked as meshgate's validation
// context checks it (chain to the mesh CA, then the SPIFFE URI SAN;
// workload certificates carry no host names).
func (p *meshPKI) clientCreds() credentials.TransportCredentials {
	return credentials.NewTLS(&tls.Config{
		Certificates:       []tls.Certificate{p.client},
		ServerName:         backendSNI,
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, //nolint:gosec // verified by VerifyConnection below.
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("no server certificate")
			}
			leaf := cs.PeerCertificates[0]
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: p.roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				return err
			}
			if !slices.ContainsFunc(leaf.URIs, func(u *url.URL) bool { return u.String() == backendSPIFFE }) {
				return fmt.Errorf("server certificate %v is not %s", leaf.URIs, backendSPIFFE)
			}
			return nil
		},
	})
}

// mtlsGatewayConfig is an Envoy bootstrap (the friendly format has no SAN
// matchers): one plaintext listener with the HTTP filters every friendly
// listener has, routing the demo service to a cluster that dials the
// backend the way an Istio DestinationRule with ISTIO_MUTUAL does: an
// UpstreamTlsContext with the workload certificate, the mesh CA and the
// backend's SPIFFE ID, ALPN h2. Certificates are inline PEM.
const mtlsGatewayConfig = `
admin: { address: { socket_address: { address: 127.0.0.1, port_value: %d } } }
static_resources:
  listeners:
  - name: bench-mtls
    address: { socket_address: { address: 127.0.0.1, port_value: %d } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench-mtls
          codec_type: AUTO
          route_config:
            name: bench-mtls
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: /demo.v1.DemoService/ }
                route: { cluster: grpc-mtls, timeout: 0s }
          http_filters:
          - name: envoy.filters.http.grpc_web
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.grpc_web.v3.GrpcWeb }
          - name: envoy.filters.http.connect_grpc_bridge
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.connect_grpc_bridge.v3.FilterConfig }
          - name: envoy.filters.http.cors
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors }
          - name: envoy.filters.http.router
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
  clusters:
  - name: grpc-mtls
    type: STATIC
    connect_timeout: 5s
    lb_policy: ROUND_ROBIN
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: %s
        common_tls_context:
          alpn_protocols: [h2]
          tls_certificates:
          - certificate_chain: { inline_string: %s }
            private_key: { inline_string: %s }
          validation_context:
            trusted_ca: { inline_string: %s }
            match_typed_subject_alt_names:
            - san_type: URI
              matcher: { exact: %s }
    load_assignment:
      cluster_name: grpc-mtls
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: %s, port_value: %s } } }
`

// startMTLSGateway starts a second gateway process (the binary main
// built) whose only cluster reaches backendAddr over mTLS.
func startMTLSGateway(bin, backendAddr string, p *meshPKI) (*gateway, error) {
	host, port, err := net.SplitHostPort(backendAddr)
	if err != nil {
		return nil, err
	}
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) } // a YAML (JSON) string
	return startFileGateway(bin, "bench-mtls", func(adminPort, listenPort int, _ string) []byte {
		return fmt.Appendf(nil, mtlsGatewayConfig, adminPort, listenPort, q(backendSNI),
			q(string(p.clientChain)), q(string(p.clientKeyPEM)), q(string(p.caPEM)), q(backendSPIFFE), q(host), port)
	})
}

// freePorts picks n free local ports.
func freePorts(n int) ([]int, error) {
	ports := make([]int, n)
	for i := range ports {
		a, err := freeAddr()
		if err != nil {
			return nil, err
		}
		if ports[i], err = portOf(a); err != nil {
			return nil, err
		}
	}
	return ports, nil
}

func portOf(addr string) (int, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	var n int
	_, err = fmt.Sscanf(p, "%d", &n)
	return n, err
}
