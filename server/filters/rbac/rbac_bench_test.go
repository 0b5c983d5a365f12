package rbac_test

import (
	"net/http/httptest"
	"testing"

	"github.com/meshgate/meshgate/server/httpfilter"
)

// BenchmarkRBAC_Allow is a request an ALLOW policy lets through by its
// path, method and peer address: the filter should allocate nothing.
func BenchmarkRBAC_Allow(b *testing.B) {
	f := build(b, `
rules:
  policies:
    api:
      permissions: [{and_rules: {rules: [{url_path: {path: {prefix: /api/}}}, {header: {name: ":method", string_match: {exact: GET}}}, {destination_port: 8080}]}}]
      principals: [{direct_remote_ip: {address_prefix: 10.0.0.0, prefix_len: 8}}]
`)
	r := req{target: "/api/items?x=1"}.request(b)
	rec := httptest.NewRecorder()
	var s httpfilter.Stream
	b.ReportAllocs()
	for b.Loop() {
		s.Reset(rec, nil, r, nil)
		if f.Decode(&s) != httpfilter.Continue {
			b.Fatal("denied")
		}
	}
}
