package main

import (
	"fmt"
	"net"
)

// rbacGatewayConfig is the gRPC route behind an RBAC filter with DENY
// policies, as istiod renders an AuthorizationPolicy for a gateway: the
// bench's calls match none of them, so the policy allows them.
const rbacGatewayConfig = `
admin: { address: { socket_address: { address: 127.0.0.1, port_value: %d } } }
static_resources:
  listeners:
  - name: bench-rbac
    address: { socket_address: { address: 127.0.0.1, port_value: %d } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench-rbac
          route_config: { virtual_hosts: [ { name: all, domains: ["*"], routes: [ { match: { prefix: /demo.v1.DemoService/ }, route: { cluster: grpc, timeout: 0s } } ] } ] }
          http_filters:
          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                action: DENY
                policies:
                  ns[istio-system]-policy[deny-admin]-rule[0]:
                    permissions: [ { and_rules: { rules: [ { or_rules: { rules: [ { url_path: { path: { prefix: /admin } } } ] } } ] } } ]
                    principals: [ { and_ids: { ids: [ { any: true } ] } } ]
                  ns[istio-system]-policy[deny-blocked]-rule[0]:
                    permissions: [ { any: true } ]
                    principals: [ { and_ids: { ids: [ { or_ids: { ids: [ { header: { name: x-blocked, present_match: true } } ] } } ] } } ]
          - { name: envoy.filters.http.router, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } }
  clusters:
  - name: grpc
    type: STATIC
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }
    load_assignment: { cluster_name: grpc, endpoints: [ { lb_endpoints: [ { endpoint: { address: { socket_address: { address: %s, port_value: %s } } } } ] } ] }
`

// startRBACGateway starts a gateway process whose gRPC route is behind an
// Istio-style RBAC filter.
func startRBACGateway(bin, backendAddr string) (*gateway, error) {
	host, port, err := net.SplitHostPort(backendAddr)
	if err != nil {
		return nil, err
	}
	return startFileGateway(bin, "bench-rbac", func(adminPort, listenPort int, _ string) []byte {
		return fmt.Appendf(nil, rbacGatewayConfig, adminPort, listenPort, host, port)
	})
}
