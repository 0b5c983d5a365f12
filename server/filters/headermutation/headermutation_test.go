package headermutation_test

import (
	"net/http/httptest"
	"testing"

	mutationv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"

	"github.com/meshgate/meshgate/internal/filtertest"
	"github.com/meshgate/meshgate/server/filters/headermutation"
	"github.com/meshgate/meshgate/server/httpfilter"
)

const routes = `
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: /tagged }
    route: { cluster: web }
    typed_per_filter_config:
      envoy.filters.http.header_mutation:
        "@type": type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutationPerRoute
        mutations:
          request_mutations: [ { append: { header: { key: x-level, value: route }, append_action: OVERWRITE_IF_EXISTS_OR_ADD } } ]
          response_mutations: [ { append: { header: { key: x-served-by, value: route } } } ]
  - { match: { prefix: / }, route: { cluster: web } }
`

func set(key, value string) *mutationv3.HeaderMutation {
	return &mutationv3.HeaderMutation{Action: &mutationv3.HeaderMutation_Append{Append: &corev3.HeaderValueOption{
		Header: &corev3.HeaderValue{Key: key, Value: value}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}}}
}

func remove(key string) *mutationv3.HeaderMutation {
	return &mutationv3.HeaderMutation{Action: &mutationv3.HeaderMutation_Remove{Remove: key}}
}

func TestHeaderMutation(t *testing.T) {
	table := filtertest.Table(t, routes)
	own := &hmv3.Mutations{
		RequestMutations:  []*mutationv3.HeaderMutation{remove("x-secret"), set("x-level", "listener")},
		ResponseMutations: []*mutationv3.HeaderMutation{remove("server")},
	}
	tests := []struct {
		name         string
		specificWins bool
		path         string
		level        string // x-level the upstream gets
		servedBy     string // x-served-by of the answer
	}{
		{"the listener's alone", false, "/", "listener", ""},
		{"the route's first, the listener's after (it wins)", false, "/tagged", "listener", "route"},
		{"most specific wins: the route's last", true, "/tagged", "route", "route"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := filtertest.Filter(t, headermutation.Name, &hmv3.HeaderMutation{Mutations: own, MostSpecificHeaderMutationsWins: tt.specificWins})
			r := httptest.NewRequest("GET", tt.path, nil)
			r.Header.Set("X-Secret", "s")
			rec := httptest.NewRecorder()
			var s httpfilter.Stream
			s.Reset(rec, nil, r, table)
			if f.Decode(&s) != httpfilter.Continue {
				t.Fatal("the filter stopped the request")
			}
			if r.Header.Get("X-Secret") != "" || r.Header.Get("X-Level") != tt.level {
				t.Errorf("request headers %v, want x-secret removed and x-level %q", r.Header, tt.level)
			}
			s.W.Header().Set("Server", "backend")
			s.W.WriteHeader(200)
			s.Finish()
			if rec.Header().Get("Server") != "" || rec.Header().Get("X-Served-By") != tt.servedBy {
				t.Errorf("answer headers %v, want server removed and x-served-by %q", rec.Header(), tt.servedBy)
			}
		})
	}
}

func TestHeaderMutation_Refuses(t *testing.T) {
	f := httpfilter.Lookup(headermutation.Name, nil)
	for _, m := range []*hmv3.Mutations{
		{QueryParameterMutations: []*corev3.KeyValueMutation{{}}},
		{ResponseTrailersMutations: []*mutationv3.HeaderMutation{remove("x")}},
		{RequestMutations: []*mutationv3.HeaderMutation{{Action: &mutationv3.HeaderMutation_RemoveOnMatch_{}}}},
	} {
		cfg := filtertest.Any(t, &hmv3.HeaderMutation{Mutations: m})
		if _, _, err := httpfilter.New(f, cfg, httpfilter.Build{}); err == nil {
			t.Errorf("%v was accepted", m)
		}
	}
}
