package config

import (
	"strings"
	"testing"
)

// Envoy's examples spell enums in lower case; Envoy takes them.
func TestLoad_EnumsInAnyCase(t *testing.T) {
	l, err := Load([]byte(`
static_resources:
  listeners:
  - name: l
    address: { socket_address: { address: 127.0.0.1, port_value: 0 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          codec_type: auto
          stat_prefix: x
          route_config: { virtual_hosts: [ { name: a, domains: ["*"], routes: [ { match: { prefix: / }, route: { cluster: c } } ] } ] }
          http_filters: [ { name: envoy.filters.http.router, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } } ]
  clusters:
  - { name: c, type: static, lb_policy: round_robin, load_assignment: { cluster_name: c } }
`), "")
	if err != nil {
		t.Fatalf("lower-case enums: %v", err)
	}
	if len(l.Resources) != 2 {
		t.Fatalf("%d resources, want 2", len(l.Resources))
	}
	// A value that is no enum value in any case is still an error.
	_, err = Load([]byte(`
static_resources:
  clusters:
  - { name: c, type: sometimes }
`), "")
	if err == nil || !strings.Contains(err.Error(), "sometimes") {
		t.Errorf("a bad enum value: %v, want an error naming it", err)
	}
}
