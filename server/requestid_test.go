package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshgate/meshgate/config"
)

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNewRequestID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := newRequestID()
		if !uuidV4.MatchString(id) {
			t.Fatalf("%q is not a version 4 UUID", id)
		}
		if seen[id] {
			t.Fatalf("%q twice in 1000", id)
		}
		seen[id] = true
	}
}

// editHCM applies edit to every HttpConnectionManager of the listeners.
func editHCM(t *testing.T, resources []any, edit func(*hcmv3.HttpConnectionManager)) {
	t.Helper()
	for _, r := range resources {
		ln, ok := r.(*listenerv3.Listener)
		if !ok {
			continue
		}
		for _, fc := range ln.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				var hcm hcmv3.HttpConnectionManager
				if f.GetTypedConfig().UnmarshalTo(&hcm) != nil {
					continue
				}
				edit(&hcm)
				a, err := anypb.New(&hcm)
				if err != nil {
					t.Fatal(err)
				}
				f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: a}
			}
		}
	}
}

// x-request-id: made up when a request has none (a version 4 UUID), a
// client's kept, passed upstream; not made up with generate_request_id
// false; set on the answer too with always_set_request_id_in_response.
func TestRequestID(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("X-Request-Id"))
	}))
	t.Cleanup(backend.Close)
	cfg := `
listeners:
  - {name: l, address: "127.0.0.1:0", virtual_hosts: [{routes: [{match: {prefix: /}, cluster: svc}]}]}
clusters: [{name: svc, endpoints: ["` + strings.TrimPrefix(backend.URL, "http://") + `"]}]
`
	tests := []struct {
		name       string
		edit       func(*hcmv3.HttpConnectionManager)
		sent       string // the client's x-request-id, "" for none
		want       *regexp.Regexp
		inResponse bool
	}{
		{name: "made up", want: uuidV4},
		{name: "the client's kept", sent: "client-id-1", want: regexp.MustCompile(`^client-id-1$`)},
		{name: "generate_request_id false", edit: func(h *hcmv3.HttpConnectionManager) { h.GenerateRequestId = wrapperspb.Bool(false) },
			want: regexp.MustCompile(`^$`)},
		{name: "always_set_request_id_in_response", edit: func(h *hcmv3.HttpConnectionManager) { h.AlwaysSetRequestIdInResponse = true },
			want: uuidV4, inResponse: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := New(Options{})
			t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
			l, err := config.Load([]byte(cfg), "")
			if err != nil {
				t.Fatal(err)
			}
			if tc.edit != nil {
				res := make([]any, len(l.Resources))
				for i, r := range l.Resources {
					res[i] = r
				}
				editHCM(t, res, tc.edit)
			}
			if err := config.NewStore(srv).Apply(context.Background(), config.Update{Source: "file", Replace: config.ResourceTypes, Resources: l.Resources}); err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequest("GET", "http://"+srv.ListenerAddr("l")+"/", nil)
			if tc.sent != "" {
				req.Header.Set("X-Request-Id", tc.sent)
			}
			c := &http.Client{Transport: &http.Transport{}}
			defer c.CloseIdleConnections()
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if got := string(b); !tc.want.MatchString(got) {
				t.Errorf("the backend got x-request-id %q, want %v", got, tc.want)
			}
			if got := resp.Header.Get("X-Request-Id"); (got != "") != tc.inResponse || (tc.inResponse && got != string(b)) {
				t.Errorf("the answer's x-request-id %q (the backend's %q); want it there: %v", got, b, tc.inResponse)
			}
		})
	}
}

// Validate (meshgate validate) opens no access log file: the config does
// not run.
func TestValidate_OpensNoAccessLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	srv := New(Options{})
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	store := config.NewStore(nil) // as meshgate validate: nothing applied
	l, err := config.Load([]byte(`
listeners:
  - {name: l, address: "127.0.0.1:0", access_log: [ { path: "`+path+`" } ], virtual_hosts: [{routes: [{match: {prefix: /}, cluster: svc}]}]}
clusters: [{name: svc, endpoints: ["127.0.0.1:1"]}]
`), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Apply(context.Background(), config.Update{Source: "file", Replace: config.ResourceTypes, Resources: l.Resources}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Validate(store.Current()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("Validate created %s (%v)", path, err)
	}
}
