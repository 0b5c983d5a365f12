package support

import (
	"flag"
	"os"
	"strings"
	"testing"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routecfgv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	_ "github.com/meshgate/meshgate/config" // registers the extension types resources carry
)

var update = flag.Bool("update", false, "rewrite docs/envoy-support.md from the table")

// Every field of every listed message has a decision, and every decision
// names a real field: a go-control-plane upgrade that adds fields fails
// here until someone decides what becomes of them.
func TestTable_Complete(t *testing.T) {
	for name, fields := range table {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
		if err != nil {
			t.Errorf("%s: not a known message: %v", name, err)
			continue
		}
		md := d.(protoreflect.MessageDescriptor)
		for i := 0; i < md.Fields().Len(); i++ {
			if f := md.Fields().Get(i); fields[string(f.Name())].kind == 0 {
				t.Errorf("%s.%s: no decision", name, f.Name())
			}
		}
		for f, st := range fields {
			if md.Fields().ByName(protoreflect.Name(f)) == nil {
				t.Errorf("%s.%s: no such field", name, f)
			}
			if (st.kind == kindIgnored || st.kind == kindRefused) && st.why == "" {
				t.Errorf("%s.%s: %v without a reason", name, f, st.kind)
			}
		}
	}
}

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name      string
		resource  proto.Message
		wantNotes []string
		wantErr   string // substring; "" for none
	}{
		{
			name: "listener with Istio's connection manager",
			resource: listenerWith(t, &hcmv3.HttpConnectionManager{
				StatPrefix:         "outbound_0.0.0.0_8080",
				UseRemoteAddress:   wrapperspb.Bool(true),
				NormalizePath:      wrapperspb.Bool(true),
				MergeSlashes:       false,
				ServerName:         "istio-envoy",
				UpgradeConfigs:     []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "websocket"}},
				RequestIdExtension: &hcmv3.RequestIDExtension{TypedConfig: mustAny(t, &wrapperspb.StringValue{Value: "uuid"})},
				CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{IdleTimeout: nil,
					HeadersWithUnderscoresAction: corev3.HttpProtocolOptions_ALLOW},
				PathWithEscapedSlashesAction: hcmv3.HttpConnectionManager_KEEP_UNCHANGED,
			}),
			wantNotes: []string{
				"filter_chains[chain].filters[envoy.filters.network.http_connection_manager].typed_config.normalize_path: paths are not normalized: routes match the path as sent",
				"filter_chains[chain].filters[envoy.filters.network.http_connection_manager].typed_config.request_id_extension: x-request-id is a random UUID, as UuidRequestIdConfig makes; random sampling goes by it, but the trace decision is not packed into it (pack_trace_reason)",
				"filter_chains[chain].filters[envoy.filters.network.http_connection_manager].typed_config.server_name: no server header is set; the upstream's passes through",
				"filter_chains[chain].filters[envoy.filters.network.http_connection_manager].typed_config.upgrade_configs: WebSocket and other upgrades are not proxied: the Upgrade header is dropped",
				"filter_chains[chain].filters[envoy.filters.network.http_connection_manager].typed_config.use_remote_address: the peer address is always appended to X-Forwarded-For; x-envoy-external-address is not set and external x-envoy-* headers are not stripped",
			},
		},
		{
			name:     "defaults ask for nothing more",
			resource: listenerWith(t, &hcmv3.HttpConnectionManager{StatPrefix: "x", NormalizePath: wrapperspb.Bool(false), GenerateRequestId: wrapperspb.Bool(false)}),
		},
		{
			name:     "virtual listener",
			resource: &listenerv3.Listener{Name: "virtual", BindToPort: wrapperspb.Bool(false)},
			wantErr:  "bind_to_port: bind_to_port: false (virtual listeners) is not supported",
		},
		{
			name: "custom cluster type",
			resource: &clusterv3.Cluster{Name: "agg", ClusterDiscoveryType: &clusterv3.Cluster_ClusterType{
				ClusterType: &clusterv3.Cluster_CustomClusterType{Name: "envoy.clusters.aggregate"}}},
			wantErr: "cluster_type: custom cluster types",
		},
		{
			name: "certificate pinning fails closed",
			resource: &clusterv3.Cluster{Name: "tls", TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.tls",
				ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t, &tlsv3.UpstreamTlsContext{
					CommonTlsContext: &tlsv3.CommonTlsContext{ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{
						ValidationContext: &tlsv3.CertificateValidationContext{VerifyCertificateSpki: []string{"abc"}}}}})}}},
			wantErr: "transport_socket.typed_config.common_tls_context.validation_context.verify_certificate_spki: certificate SPKI pinning is not enforced yet",
		},
		{
			name: "SAN checks are enforced, so accepted",
			resource: &clusterv3.Cluster{Name: "tls", TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.tls",
				ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t, &tlsv3.UpstreamTlsContext{
					CommonTlsContext: &tlsv3.CommonTlsContext{ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{
						ValidationContext: &tlsv3.CertificateValidationContext{
							MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{SanType: tlsv3.SubjectAltNameMatcher_URI}}}}}})}}},
		},
		{
			name: "weighted cluster header edits, once per path",
			resource: &routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{Name: "vh", Domains: []string{"*"},
				IncludeRequestAttemptCount: true, Routes: []*routev3.Route{
					{Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{
						WeightedClusters: &routev3.WeightedCluster{Clusters: []*routev3.WeightedCluster_ClusterWeight{
							{Name: "a", RequestHeadersToRemove: []string{"x"}}, {Name: "b"}}}}}}},
				}}}},
			wantNotes: []string{
				"virtual_hosts[vh].include_request_attempt_count: x-envoy-attempt-count is not sent upstream",
				"virtual_hosts[vh].routes[*].route.weighted_clusters.clusters[a].request_headers_to_remove: header edits of one weighted cluster are not applied yet",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			notes, err := Check(tt.resource)
			if diff := cmp.Diff(notes, tt.wantNotes); diff != "" {
				t.Errorf("notes (-got +want):\n%s", diff)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Check = %v, want no refusal", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Check = %v, want a refusal saying %q", err, tt.wantErr)
			}
		})
	}
}

func listenerWith(t *testing.T, hcm *hcmv3.HttpConnectionManager) *listenerv3.Listener {
	return &listenerv3.Listener{Name: "l", FilterChains: []*listenerv3.FilterChain{{Name: "chain", Filters: []*listenerv3.Filter{{
		Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, hcm)}}}}}}
}

// docs/envoy-support.md is the table, rendered; go test -update rewrites it.
func TestMarkdown_MatchesDocs(t *testing.T) {
	const path = "../../docs/envoy-support.md"
	want := docHeader + Markdown()
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("%s is out of date with the table: run go test ./server/support -update", path)
	}
}

const docHeader = `# Envoy fields: what meshgate does with each

Generated from ` + "`server/support/table.go`" + ` by ` + "`go test ./server/support -update`" + `; a test keeps the two equal.

Every field of the messages below has one of four fates:

- **Honoured**: read and acted on as Envoy documents it (where a value cannot be honoured, the resource is
  refused with an error naming the field; docs/config.md lists such limits).
- **Refused when set**: the resource fails with the reason below. From a control plane that one resource is
  NACKed and the others go live; in a file the file is refused.
- **Accepted, not done**: the resource goes live without it. Each one set on a resource is logged once at
  WARN, listed under the resource in ` + "`/config_dump`" + ` (` + "`meshgate.admin.v1.UnimplementedConfigDump`" + `) and counted in
  ` + "`meshgate_config_unimplemented_fields{type}`" + `. Many are excused when set to the value that asks for nothing
  beyond what meshgate does (Envoy's default, most often).
- **Read past**: not read, and that changes nothing a request gets (names, stats, metadata nobody reads).

A field of a message not listed here is the compiler's business: the resource is built from what it reads and
refuses the rest with a message.

`

// The router's own settings are checked too (its typed_config is walked).
func TestCheck_RouterSettings(t *testing.T) {
	router, err := anypb.New(&routecfgv3.Router{UpstreamLog: []*accesslogv3.AccessLog{{Name: "x"}}, UpstreamHttpFilters: []*hcmv3.HttpFilter{{Name: "x"}}})
	if err != nil {
		t.Fatal(err)
	}
	l := listenerWith(t, &hcmv3.HttpConnectionManager{StatPrefix: "x", HttpFilters: []*hcmv3.HttpFilter{{
		Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router}}}})
	notes, err := Check(l)
	if err == nil || !strings.Contains(err.Error(), "upstream_http_filters: upstream HTTP filters are not supported") {
		t.Errorf("upstream_http_filters: %v, want refused", err)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "http_filters[envoy.filters.http.router].typed_config.upstream_log: upstream access logs are not written") {
		t.Errorf("notes %q, want upstream_log's", notes)
	}
}
