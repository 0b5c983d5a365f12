package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/meshgate/meshgate/server/cluster"
	"github.com/meshgate/meshgate/server/router"
	"github.com/meshgate/meshgate/server/wire"
)

// A panic while serving one request is answered, counted and contained.
func TestChain_PanicIsRecovered(t *testing.T) {
	s := New(Options{})
	rc := &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{
		Name: "vh", Domains: []string{"*"},
		Routes: []*routev3.Route{
			{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/boom"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "broken"}}}},
			{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 204}}},
		},
	}}}
	// The resolver claims a cluster it has no object for: forwarding to it
	// dereferences nil, a stand-in for any bug on the request path.
	table, err := router.Compile(rc, func(string) (*cluster.Cluster, bool) { return nil, true })
	if err != nil {
		t.Fatal(err)
	}
	ch := &chain{srv: s, listener: "l", routes: table}

	tests := []struct {
		name        string
		contentType string
		wantStatus  int
		check       func(t *testing.T, rec *httptest.ResponseRecorder)
	}{
		{"HTTP", "", http.StatusInternalServerError, func(t *testing.T, rec *httptest.ResponseRecorder) {
			var body wire.ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error.Status != "INTERNAL" {
				t.Errorf("body %q, want a JSON INTERNAL error", rec.Body.String())
			}
		}},
		{"gRPC", "application/grpc", http.StatusOK, func(t *testing.T, rec *httptest.ResponseRecorder) {
			if got := rec.Header().Get("Grpc-Status"); got != "13" {
				t.Errorf("grpc-status %q, want 13 (INTERNAL)", got)
			}
		}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", "/boom", strings.NewReader("x"))
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			rec := httptest.NewRecorder()
			ch.serveHTTP(rec, req)
			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d", rec.Code, tc.wantStatus)
			}
			tc.check(t, rec)
			if got := testutil.ToFloat64(s.metrics.Panics); got != float64(i+1) {
				t.Errorf("panics counted: %v, want %d", got, i+1)
			}
		})
	}
	rec := httptest.NewRecorder()
	ch.serveHTTP(rec, httptest.NewRequest("GET", "/fine", nil))
	if rec.Code != http.StatusNoContent {
		t.Errorf("after the panics a normal request got %d, want 204", rec.Code)
	}
}

// The fields that describe one connection go, those Connection names
// included; the message's own stay.
func TestRemoveHopByHop(t *testing.T) {
	tests := []struct {
		name string
		in   http.Header
		want http.Header
	}{
		{"none", http.Header{"Content-Type": {"application/grpc"}, "X-A": {"1"}},
			http.Header{"Content-Type": {"application/grpc"}, "X-A": {"1"}}},
		{"every standard one", http.Header{
			"Connection": {"keep-alive"}, "Proxy-Connection": {"x"}, "Keep-Alive": {"timeout=5"}, "Proxy-Authenticate": {"Basic"},
			"Proxy-Authorization": {"Basic eA=="}, "Te": {"trailers"}, "Trailer": {"Grpc-Status"}, "Transfer-Encoding": {"chunked"},
			"Upgrade": {"h2c"}, "Authorization": {"Bearer t"}, "Grpc-Timeout": {"1S"}},
			http.Header{"Authorization": {"Bearer t"}, "Grpc-Timeout": {"1S"}}},
		{"named by Connection", http.Header{"Connection": {"x-hop, X-Other ,", "x-third"}, "X-Hop": {"1"}, "X-Other": {"2"}, "X-Third": {"3"}, "X-Kept": {"4"}},
			http.Header{"X-Kept": {"4"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			removeHopByHop(tc.in)
			if !reflect.DeepEqual(tc.in, tc.want) {
				t.Errorf("got %v, want %v", tc.in, tc.want)
			}
		})
	}
}
