package admin_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/server"
	"github.com/meshgate/meshgate/server/admin"
	"github.com/meshgate/meshgate/server/cluster"
)

// fakeSource is a data plane as readiness sees it.
type fakeSource struct {
	ready, draining bool
	listeners       []server.ListenerStatus
}

func (f fakeSource) Ready() bool                                 { return f.ready }
func (f fakeSource) Draining() bool                              { return f.draining }
func (f fakeSource) Listeners() []server.ListenerStatus          { return f.listeners }
func (f fakeSource) Config() *config.Set                         { return nil }
func (f fakeSource) Clusters() []*cluster.Cluster                { return nil }
func (f fakeXDS) Address() string                                { return "istiod:15010" }
func (f fakeXDS) Synced() bool                                   { return f.synced }
func (f fakeXDS) Warming() []string                              { return f.warming }
func (f fakeXDS) Failures() map[string]map[string]config.Failure { return f.failures }

type fakeXDS struct {
	synced   bool
	warming  []string
	failures map[string]map[string]config.Failure
}

type readyBody struct {
	State     string   `json:"state"`
	Missing   []string `json:"missing"`
	Listeners []struct {
		Name, Address, State, Error string
	} `json:"listeners"`
}

func TestAdmin_Readiness(t *testing.T) {
	serving := []server.ListenerStatus{{Name: "http", Address: "127.0.0.1:8080"}}
	rejected := map[string]map[string]config.Failure{config.ListenerType: {"https": {Details: `listener "https": SDS is not supported`}}}
	tests := []struct {
		name string
		src  fakeSource
		xds  *fakeXDS
		// want: status, state, what /ready?verbose says is missing (by
		// substring, in order), and each listener as name=STATE.
		code      int
		state     string
		missing   []string
		listeners []string
	}{
		{name: "file config serving", src: fakeSource{ready: true, listeners: serving},
			code: 200, state: "LIVE", listeners: []string{"http=SERVING"}},
		{name: "no config yet", src: fakeSource{},
			code: 503, state: "INITIALIZING", missing: []string{"no config has gone live", "no listener is serving"}},
		{name: "draining", src: fakeSource{ready: false, draining: true, listeners: serving},
			code: 503, state: "DRAINING", missing: []string{"draining"}, listeners: []string{"http=SERVING"}},
		{name: "initial fetch not finished", src: fakeSource{ready: true},
			xds:  &fakeXDS{warming: []string{"gw-80"}},
			code: 503, state: "INITIALIZING", missing: []string{"initial fetch from the control plane at istiod:15010 has not finished (listeners waiting for their routes: gw-80)", "no listener is serving"},
			listeners: []string{"gw-80=WARMING"}},
		{name: "every listener rejected", src: fakeSource{ready: true},
			xds:  &fakeXDS{synced: true, failures: rejected},
			code: 503, state: "INITIALIZING", missing: []string{"no listener is serving (rejected: https)"},
			listeners: []string{"https=FAILED"}},
		{name: "one listener rejected, another serving", src: fakeSource{ready: true, listeners: serving},
			xds:  &fakeXDS{synced: true, failures: rejected},
			code: 200, state: "LIVE", listeners: []string{"http=SERVING", "https=FAILED"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []admin.Option
			if tt.xds != nil {
				opts = append(opts, admin.WithXDS(tt.xds))
			}
			h := admin.Handler(tt.src, prometheus.NewRegistry(), opts...)
			probe := admin.ReadinessHandler(tt.src, nil, opts...)

			code, body := get(t, h, "/ready")
			if code != tt.code {
				t.Fatalf("/ready = %d %s, want %d", code, body, tt.code)
			}
			if code == 200 && strings.TrimSpace(body) != "LIVE" {
				t.Errorf("/ready body %q, want LIVE (Envoy's)", body)
			}
			if pcode, pbody := get(t, probe, "/healthz/ready"); pcode != code || (code != 200 && pbody != body) {
				t.Errorf("/healthz/ready = %d %q, want what /ready says: %d %q", pcode, pbody, code, body)
			}
			vcode, vbody := get(t, h, "/ready?verbose")
			var got readyBody
			if err := json.Unmarshal([]byte(vbody), &got); err != nil || vcode != tt.code {
				t.Fatalf("/ready?verbose = %d %q (%v), want JSON with %d", vcode, vbody, err, tt.code)
			}
			if got.State != tt.state {
				t.Errorf("state %q, want %q", got.State, tt.state)
			}
			if len(got.Missing) != len(tt.missing) {
				t.Fatalf("missing %q, want %d entries like %q", got.Missing, len(tt.missing), tt.missing)
			}
			for i, m := range tt.missing {
				if !strings.Contains(got.Missing[i], m) {
					t.Errorf("missing[%d] = %q, want it to say %q", i, got.Missing[i], m)
				}
			}
			var ls []string
			for _, l := range got.Listeners {
				ls = append(ls, l.Name+"="+l.State)
				if l.State == "FAILED" && l.Error == "" {
					t.Errorf("listener %s failed without a reason", l.Name)
				}
			}
			if diff := cmp.Diff(ls, tt.listeners); diff != "" {
				t.Errorf("listeners (-got +want):\n%s", diff)
			}
		})
	}
}

// The probe port serves read-only status only: readiness, liveness and,
// when given a gatherer, the metrics; never the admin's config dump or its
// drain (which would let anyone who reaches the pod take it out of
// service).
func TestAdmin_ReadinessHandlerServesOnlyProbes(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "probe_test_total", Help: "a metric"}))
	src := fakeSource{ready: true, listeners: []server.ListenerStatus{{Name: "a"}}}
	for _, tc := range []struct {
		name     string
		gatherer prometheus.Gatherer
		method   string
		path     string
		want     int
	}{
		{"ready", nil, http.MethodGet, "/healthz/ready", 200},
		{"ready, admin's path", nil, http.MethodGet, "/ready", 200},
		{"live", nil, http.MethodGet, "/healthz/live", 200},
		{"no config dump", nil, http.MethodGet, "/config_dump", 404},
		{"no drain", reg, http.MethodPost, "/drain_listeners", 404},
		{"no metrics without a gatherer", nil, http.MethodGet, "/stats/prometheus", 404},
		{"metrics with one", reg, http.MethodGet, "/stats/prometheus", 200},
	} {
		rec := httptest.NewRecorder()
		admin.ReadinessHandler(src, tc.gatherer).ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		if rec.Code != tc.want {
			t.Errorf("%s: %s %s on the probe port = %d, want %d", tc.name, tc.method, tc.path, rec.Code, tc.want)
		}
		if tc.want == 200 && tc.path == "/stats/prometheus" && !strings.Contains(rec.Body.String(), "probe_test_total") {
			t.Errorf("%s: the metrics lack the gatherer's: %.200s", tc.name, rec.Body.String())
		}
	}
}
