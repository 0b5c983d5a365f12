package router

import (
	"testing"

	"github.com/cespare/xxhash/v2"
)

func TestForward_Hash(t *testing.T) {
	table := compile(t, `
virtual_hosts:
- name: vh
  domains: ["*"]
  routes:
  - match: {prefix: /one}
    route: {cluster: c, hash_policy: [{header: {header_name: x-user}}]}
  - match: {prefix: /chain}
    route:
      cluster: c
      hash_policy:
      - {header: {header_name: x-user}, terminal: true}
      - {cookie: {name: session}}
      - {query_parameter: {name: u}}
      - {connection_properties: {source_ip: true}}
  - match: {prefix: /rewrite}
    route: {cluster: c, hash_policy: [{header: {header_name: x-tenant, regex_rewrite: {pattern: {regex: "^([a-z]+)-.*$"}, substitution: "\\1"}}}]}
  - match: {prefix: /none}
    route: {cluster: c}
`)
	x := xxhash.Sum64String
	rot := func(h uint64) uint64 { return h<<1 | h>>63 }
	tests := []struct {
		name    string
		target  string
		headers map[string]string
		want    uint64
		wantOK  bool
	}{
		{"header", "/one", map[string]string{"x-user": "alice"}, x("alice"), true},
		{"header missing", "/one", nil, 0, false},
		{"terminal header stops the chain", "/chain?u=q", map[string]string{"x-user": "alice", "cookie": "session=s1"}, x("alice"), true},
		{"cookie, query and source folded in order", "/chain?u=q", map[string]string{"cookie": "session=s1"},
			rot(rot(x("s1"))^x("q")) ^ x("192.0.2.1"), true},
		{"regex rewrite before hashing", "/rewrite", map[string]string{"x-tenant": "acme-eu-7"}, x("acme"), true},
		{"no policy", "/none", map[string]string{"x-user": "alice"}, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := req{target: tc.target, headers: tc.headers}.build()
			r.RemoteAddr = "192.0.2.1:1234"
			got, ok := table.Match(r).Forward.Hash(r)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("Hash() = %x, %v; want %x, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}
