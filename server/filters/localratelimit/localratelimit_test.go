package localratelimit_test

import (
	"net/http/httptest"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/meshgate/meshgate/internal/filtertest"
	"github.com/meshgate/meshgate/server/filters/localratelimit"
	"github.com/meshgate/meshgate/server/httpfilter"
)

const routes = `
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: /own }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.local_ratelimit:
        "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
        stat_prefix: own
        token_bucket: { max_tokens: 2, fill_interval: 3600s }
        filter_enabled: { default_value: { numerator: 100 } }
        filter_enforced: { default_value: { numerator: 100 } }
  - { match: { prefix: / }, route: { cluster: web } }
`

func bucket(tokens uint32) *ratelimitv3.LocalRateLimit {
	all := &typev3.FractionalPercent{Numerator: 100}
	return &ratelimitv3.LocalRateLimit{StatPrefix: "l",
		TokenBucket:    &typev3.TokenBucket{MaxTokens: tokens, FillInterval: durationpb.New(time.Hour)},
		FilterEnabled:  &corev3.RuntimeFractionalPercent{DefaultValue: all},
		FilterEnforced: &corev3.RuntimeFractionalPercent{DefaultValue: all}}
}

// Requests beyond the bucket are refused (429; RESOURCE_EXHAUSTED to gRPC
// callers); a route's own bucket wins over the listener's.
func TestLocalRateLimit_Decode(t *testing.T) {
	table := filtertest.Table(t, routes)
	f := filtertest.Filter(t, localratelimit.Name, bucket(1))
	run := func(path string, grpc bool) (httpfilter.Status, int, string) {
		r := httptest.NewRequest("GET", path, nil)
		if grpc {
			r.Header.Set("Content-Type", "application/grpc")
		}
		st, rec := filtertest.Run(f, table, r)
		return st, rec.Code, rec.Header().Get("Grpc-Status")
	}
	if st, _, _ := run("/", false); st != httpfilter.Continue {
		t.Fatalf("first request: %v, want Continue", st)
	}
	if st, code, _ := run("/", false); st != httpfilter.Stop || code != 429 {
		t.Errorf("second request: %v %d, want Stop 429", st, code)
	}
	if st, _, gs := run("/", true); st != httpfilter.Stop || gs != "8" {
		t.Errorf("a gRPC request over the limit: %v grpc-status %q, want Stop 8", st, gs)
	}
	for i := range 2 {
		if st, _, _ := run("/own", false); st != httpfilter.Continue {
			t.Fatalf("route bucket, request %d: %v, want Continue", i+1, st)
		}
	}
	if st, _, _ := run("/own", false); st != httpfilter.Stop {
		t.Errorf("route bucket spent: %v, want Stop", st)
	}
	// Without a bucket of its own the filter lets everything by.
	none := filtertest.Filter(t, localratelimit.Name, &ratelimitv3.LocalRateLimit{StatPrefix: "none"})
	for range 5 {
		if st, _ := filtertest.Run(none, table, httptest.NewRequest("GET", "/", nil)); st != httpfilter.Continue {
			t.Fatal("a filter without a bucket refused a request")
		}
	}
}
