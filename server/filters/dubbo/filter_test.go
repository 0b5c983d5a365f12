package dubbo_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/meshgate/meshgate/config"
	"github.com/meshgate/meshgate/dubbo"
	"github.com/meshgate/meshgate/internal/filtertest"
	dubbov1 "github.com/meshgate/meshgate/proto/meshgate/extensions/filters/http/dubbo/v1"
	"github.com/meshgate/meshgate/server/cluster"
	dubbofilter "github.com/meshgate/meshgate/server/filters/dubbo"
	"github.com/meshgate/meshgate/server/httpfilter"
)

// call is the typed_per_filter_config of a route that calls getUser(long)
// of org.x.UserService with the path's id.
const call = `
    typed_per_filter_config:
      meshgate.filters.http.dubbo:
        "@type": type.googleapis.com/meshgate.extensions.filters.http.dubbo.v1.DubboRoute
        interface: org.x.UserService
        method: getUser
        path_template: /{c}/{id}
        params: [ { from: path.id, type: long } ]`

const routes = `
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: { prefix: /users/ }
    route: { cluster: users, timeout: 5s }` + call + `
  - match: { prefix: /empty/ }
    route: { cluster: empty }` + call + `
  - match: { prefix: /web/ }
    route: { cluster: web }` + call + `
  - match: { prefix: /missing/ }
    route: { cluster: missing }` + call + `
  - match: { prefix: /direct/ }
    direct_response: { status: 204 }` + call + `
  - match: { prefix: / }
    route: { cluster: web }
`

// fakeProvider answers Dubbo2 generic calls: getUser(id) is "user <id>",
// anything else throws.
func fakeProvider(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					f, err := dubbo.ReadFrame(br, 1<<20)
					if err != nil {
						return
					}
					if !f.IsRequest() || !f.TwoWay() {
						continue
					}
					inv, err := f.Request()
					var answer []byte
					switch {
					case err != nil:
						answer, _ = dubbo.EncodeStatus(f.ID(), 40, err.Error())
					case inv.Service.Method != "$invoke" || len(inv.Args) != 3:
						answer, _ = dubbo.EncodeResponse(f.ID(), nil, fmt.Errorf("not a generic call: %s", inv.Service.Method), nil)
					case inv.Args[0] == "getUser":
						// The arguments' list type is hessian's choice.
						id := strings.Trim(fmt.Sprint(inv.Args[2]), "[]")
						answer, _ = dubbo.EncodeResponse(f.ID(), "user "+id, nil, map[string]string{"served-by": "fake"})
					default:
						answer, _ = dubbo.EncodeResponse(f.ID(), nil, errors.New("no such method"), nil)
					}
					if _, err := c.Write(answer); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func newCluster(t *testing.T, name, dubboProtocol string, addrs ...string) *cluster.Cluster {
	t.Helper()
	spec := &clusterv3.Cluster{Name: name, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{}}}}
	for _, a := range addrs {
		host, port, _ := net.SplitHostPort(a)
		var p uint32
		_, _ = fmt.Sscan(port, &p)
		spec.LoadAssignment.Endpoints[0].LbEndpoints = append(spec.LoadAssignment.Endpoints[0].LbEndpoints, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{
				Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: host,
					PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: p}}}}}}})
	}
	if dubboProtocol != "" {
		md, err := structpb.NewStruct(map[string]any{"protocol": dubboProtocol})
		if err != nil {
			t.Fatal(err)
		}
		spec.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{config.DubboMetadata: md}}
	}
	c, err := cluster.New(spec, cluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestDubbo_Decode(t *testing.T) {
	clusters := map[string]*cluster.Cluster{
		"users": newCluster(t, "users", "dubbo", fakeProvider(t)),
		"empty": newCluster(t, "empty", "dubbo"),
		"web":   newCluster(t, "web", ""),
	}
	resolve := func(name string) (*cluster.Cluster, bool) { c, ok := clusters[name]; return c, ok }
	table := filtertest.TableResolving(t, routes, resolve)
	f := filtertest.FilterBuilt(t, dubbofilter.Name, &dubbov1.Dubbo{}, httpfilter.Build{Cluster: resolve, MaxBody: 64})

	tests := []struct {
		name    string
		method  string
		path    string
		body    string
		header  map[string]string
		want    httpfilter.Status
		code    int    // the HTTP status answered (0: none)
		grpc    string // the grpc-status answered
		has     string // what the body holds
		cluster string // the cluster the stream reports
	}{
		{name: "a route without a DubboRoute: the router's", path: "/index.html", want: httpfilter.Continue},
		{name: "a direct response: the router's", path: "/direct/1", want: httpfilter.Continue},
		{name: "the call, answered as JSON", path: "/users/7", want: httpfilter.Stop, code: 200, has: `"user 7"`, cluster: "users"},
		{name: "an argument that is not a long: 400 before any call", path: "/users/seven", want: httpfilter.Stop, code: 400, has: "seven", cluster: "users"},
		{name: "a cluster that is not there", path: "/missing/7", want: httpfilter.Stop, code: 503, has: `not configured`, cluster: "missing"},
		{name: "a cluster of HTTP hosts", path: "/web/7", want: httpfilter.Stop, code: 503, has: "neither Dubbo2 nor Triple", cluster: "web"},
		{name: "no provider", path: "/empty/7", want: httpfilter.Stop, code: 503, has: "UNAVAILABLE", cluster: "empty"},
		{name: "a body over the listener's limit", method: "POST", path: "/users/7", body: strings.Repeat("x", 65), want: httpfilter.Stop, code: 413, cluster: "users"},
		{name: "Triple's timeout header, malformed: Triple's error", path: "/users/7",
			header: map[string]string{"Triple-Protocol-Version": "1", "Triple-Timeout-Ms": "soon"},
			want:   httpfilter.Stop, code: 400, has: `"code":"invalid_argument"`, cluster: "users"},
		{name: "grpc-timeout, malformed: a gRPC status", method: "POST", path: "/users/7",
			header: map[string]string{"Content-Type": "application/grpc", "Grpc-Timeout": "5parsecs"},
			want:   httpfilter.Stop, code: 200, grpc: "3", cluster: "users"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			r := httptest.NewRequest(method, tt.path, strings.NewReader(tt.body))
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			var s httpfilter.Stream
			s.Reset(rec, nil, r, table)
			st := f.Decode(&s)
			s.Finish()
			if st != tt.want {
				t.Fatalf("Decode = %v, want %v", st, tt.want)
			}
			if tt.code != 0 && rec.Code != tt.code {
				t.Errorf("answered %d, want %d: %s", rec.Code, tt.code, rec.Body)
			}
			if got := rec.Header().Get("Grpc-Status"); got != tt.grpc {
				t.Errorf("grpc-status %q, want %q", got, tt.grpc)
			}
			if !strings.Contains(rec.Body.String(), tt.has) {
				t.Errorf("body %q does not hold %q", rec.Body, tt.has)
			}
			if s.Cluster != tt.cluster {
				t.Errorf("stream's cluster %q, want %q", s.Cluster, tt.cluster)
			}
		})
	}
}

// TestDubbo_AnswerCarriesAttachments: the provider's attachments come back
// as headers, the value as JSON.
func TestDubbo_AnswerCarriesAttachments(t *testing.T) {
	users := newCluster(t, "users", "dubbo", fakeProvider(t))
	resolve := func(name string) (*cluster.Cluster, bool) { return users, name == "users" }
	table := filtertest.TableResolving(t, routes, resolve)
	f := filtertest.FilterBuilt(t, dubbofilter.Name, &dubbov1.Dubbo{}, httpfilter.Build{Cluster: resolve})
	st, rec := filtertest.Run(f, table, httptest.NewRequest("GET", "/users/42", nil))
	if st != httpfilter.Stop || rec.Code != 200 {
		t.Fatalf("Decode = %v, answered %d: %s", st, rec.Code, rec.Body)
	}
	var v string
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil || v != "user 42" {
		t.Errorf("body %q (%v), want the JSON string \"user 42\"", rec.Body, err)
	}
	found := false
	for k, vs := range rec.Header() {
		if strings.HasSuffix(strings.ToLower(k), "served-by") && len(vs) == 1 && vs[0] == "fake" {
			found = true
		}
	}
	if !found {
		t.Errorf("the provider's attachment is not among the headers: %v", rec.Header())
	}
}
