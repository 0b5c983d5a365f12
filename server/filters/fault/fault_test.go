package fault_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	commonfaultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/meshgate/meshgate/internal/filtertest"
	"github.com/meshgate/meshgate/server/filters/fault"
	"github.com/meshgate/meshgate/server/httpfilter"
)

const routes = `
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: /teapot }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.fault:
        "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
        abort: { http_status: 418, percentage: { numerator: 100 } }
  - match: { prefix: /grpc-abort }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.fault:
        "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
        abort: { grpc_status: 14, percentage: { numerator: 100 } }
  - { match: { prefix: / }, route: { cluster: web } }
`

func hundred() *typev3.FractionalPercent { return &typev3.FractionalPercent{Numerator: 100} }

func TestFault_Decode(t *testing.T) {
	table := filtertest.Table(t, routes)
	plain := filtertest.Filter(t, fault.Name, &faultv3.HTTPFault{}) // Istio's: faults come per route
	listenerAbort := filtertest.Filter(t, fault.Name, &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{
		ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 503}, Percentage: hundred()}})
	tests := []struct {
		name   string
		filter httpfilter.Filter
		path   string
		grpc   bool
		want   httpfilter.Status
		code   int
		grpcSt string
	}{
		{"no fault anywhere", plain, "/", false, httpfilter.Continue, 0, ""},
		{"the route's abort", plain, "/teapot", false, httpfilter.Stop, 418, ""},
		{"a gRPC abort to an HTTP caller: its HTTP status", plain, "/grpc-abort", false, httpfilter.Stop, 503, ""},
		{"a gRPC abort to a gRPC caller: the status", plain, "/grpc-abort", true, httpfilter.Stop, 200, "14"},
		{"the listener's fault for a route without one", listenerAbort, "/", false, httpfilter.Stop, 503, ""},
		{"the route's fault over the listener's", listenerAbort, "/teapot", false, httpfilter.Stop, 418, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", tt.path, nil)
			if tt.grpc {
				r.Header.Set("Content-Type", "application/grpc")
			}
			st, rec := filtertest.Run(tt.filter, table, r)
			if st != tt.want {
				t.Fatalf("Decode = %v, want %v", st, tt.want)
			}
			if tt.code != 0 && rec.Code != tt.code {
				t.Errorf("answered %d, want %d", rec.Code, tt.code)
			}
			if got := rec.Header().Get("Grpc-Status"); got != tt.grpcSt {
				t.Errorf("grpc-status %q, want %q", got, tt.grpcSt)
			}
		})
	}
}

// A caller that leaves while delayed ends the chain; one that waits goes on.
func TestFault_Delay(t *testing.T) {
	delay := func(d time.Duration) httpfilter.Filter {
		return filtertest.Filter(t, fault.Name, &faultv3.HTTPFault{Delay: &commonfaultv3.FaultDelay{
			FaultDelaySecifier: &commonfaultv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(d)}, Percentage: hundred()}})
	}
	if st, _ := filtertest.Run(delay(time.Millisecond), nil, httptest.NewRequest("GET", "/", nil)); st != httpfilter.Continue {
		t.Errorf("after a 1ms delay: %v, want Continue", st)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := httptest.NewRequest("GET", "/", nil).WithContext(ctx)
	if st, _ := filtertest.Run(delay(time.Hour), nil, r); st != httpfilter.Stop {
		t.Errorf("a caller gone while delayed: %v, want Stop", st)
	}
}

// A route's config is the filter's by the filter's name in the chain, as
// in Envoy: a fault filter named otherwise does not read configs keyed
// envoy.filters.http.fault.
func TestFault_PerRouteByName(t *testing.T) {
	table := filtertest.Table(t, `
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: /mine }
    route: { cluster: web }
    typed_per_filter_config:
      my-fault:
        "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
        abort: { http_status: 429, percentage: { numerator: 100 } }
  - match: { prefix: /theirs }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.fault:
        "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
        abort: { http_status: 418, percentage: { numerator: 100 } }
`)
	f, _, err := httpfilter.New(httpfilter.Lookup(fault.Name, nil), nil, httpfilter.Build{Name: "my-fault"})
	if err != nil {
		t.Fatal(err)
	}
	if st, rec := filtertest.Run(f, table, httptest.NewRequest("GET", "/mine", nil)); st != httpfilter.Stop || rec.Code != 429 {
		t.Errorf("its own config: %v %d, want Stop 429", st, rec.Code)
	}
	if st, _ := filtertest.Run(f, table, httptest.NewRequest("GET", "/theirs", nil)); st != httpfilter.Continue {
		t.Errorf("another filter's config was read: %v", st)
	}
}
