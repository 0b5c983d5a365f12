package localapp

import (
	"net/http"
	"strings"
	"testing"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"

	localappv1 "github.com/meshgate/meshgate/proto/meshgate/extensions/filters/dubbo/local_app/v1"
	"github.com/meshgate/meshgate/server/cluster"
)

// A registration that cannot be carried out fails the listener's
// dubbo_proxy with what is missing.
func TestCompile_Registration(t *testing.T) {
	zk := &localappv1.Registry{Kind: &localappv1.Registry_Zookeeper{Zookeeper: &localappv1.ZooKeeper{Servers: []string{"zk:2181"}}}}
	for _, tt := range []struct {
		name string
		reg  *localappv1.Registration
		want string // "" compiles
	}{
		{"complete", &localappv1.Registration{Application: "a", Registries: []*localappv1.Registry{zk}, HealthCheck: &localappv1.HealthCheck{Path: "/health"}}, ""},
		{"no application", &localappv1.Registration{Registries: []*localappv1.Registry{zk}}, "needs an application name"},
		{"no registry", &localappv1.Registration{Application: "a"}, "needs at least one registry"},
		{"an empty registry", &localappv1.Registration{Application: "a", Registries: []*localappv1.Registry{{}}}, "registries[0]: give zookeeper or nacos"},
		{"zookeeper without servers", &localappv1.Registration{Application: "a", Registries: []*localappv1.Registry{
			{Kind: &localappv1.Registry_Zookeeper{Zookeeper: &localappv1.ZooKeeper{}}}}}, "registries[0]: zookeeper needs servers"},
		{"a relative health path", &localappv1.Registration{Application: "a", Registries: []*localappv1.Registry{zk},
			HealthCheck: &localappv1.HealthCheck{Path: "health"}}, `health_check.path "health" does not start with /`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			la := &localappv1.LocalApp{Cluster: "app", Registration: tt.reg,
				Services: []*localappv1.Service{{Interface: "org.x.S", Methods: []*localappv1.Method{{Name: "m"}}}}}
			app, err := Compile(la, func(string) (*cluster.Cluster, bool) { return nil, false })
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("compile: %v", err)
			case tt.want == "" && app.Registration == nil:
				t.Fatal("compiled without its registration")
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("compile error %v, want it to say %q", err, tt.want)
			}
		})
	}
}

// The descriptors must define the declared methods of the services they
// define, unary; a service they do not define stays non-IDL.
func TestCompile_Descriptors(t *testing.T) {
	bin, err := proto.Marshal(&descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{
		protodesc.ToFileDescriptorProto(healthpb.File_grpc_health_v1_health_proto)}})
	if err != nil {
		t.Fatal(err)
	}
	svc := func(iface string, methods ...string) *localappv1.Service {
		s := &localappv1.Service{Interface: iface}
		for _, m := range methods {
			s.Methods = append(s.Methods, &localappv1.Method{Name: m})
		}
		return s
	}
	for _, tt := range []struct {
		name     string
		services []*localappv1.Service
		bin      []byte
		grpc     bool
		want     string // "" compiles
	}{
		{"a unary method, and a non-IDL service beside it", []*localappv1.Service{svc("grpc.health.v1.Health", "Check"), svc("org.x.S", "m")}, bin, false, ""},
		{"a method the service lacks", []*localappv1.Service{svc("grpc.health.v1.Health", "Check", "Ping")}, bin, false, "service grpc.health.v1.Health has no method Ping"},
		{"a streaming method", []*localappv1.Service{svc("grpc.health.v1.Health", "Watch")}, bin, false, "grpc.health.v1.Health.Watch streams"},
		{"a message, not a service", []*localappv1.Service{svc("grpc.health.v1.HealthCheckRequest", "Check")}, bin, false, "not a service"},
		{"no declared service defined", []*localappv1.Service{svc("org.x.S", "m")}, bin, false, "defines none of the declared services"},
		{"not a descriptor set", []*localappv1.Service{svc("org.x.S", "m")}, []byte("nope"), false, "not a FileDescriptorSet"},
		{"for a gRPC app", []*localappv1.Service{svc("grpc.health.v1.Health", "Check")}, bin, true, "descriptors are for an HTTP/JSON app"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			la := &localappv1.LocalApp{Cluster: "app", Services: tt.services, ProtoDescriptorBin: tt.bin}
			if tt.grpc {
				la.Protocol = localappv1.LocalApp_APP_PROTOCOL_GRPC
			}
			app, err := Compile(la, func(string) (*cluster.Cluster, bool) { return nil, false })
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("compile: %v", err)
			case tt.want == "":
				if app.IDLMethod("grpc.health.v1.Health", "Check") == nil || app.IDLMethod("org.x.S", "m") != nil {
					t.Error("Check should be IDL, org.x.S.m not")
				}
			case err == nil || !strings.Contains(err.Error(), tt.want):
				t.Fatalf("compile error %v, want it to say %q", err, tt.want)
			}
		})
	}
}

// The app's Dubbo-Attachment-<key> answer headers are the consumer's
// attachments, except the keys the protocols write themselves.
func TestAnswerAttachments(t *testing.T) {
	h := http.Header{}
	h.Set("Dubbo-Attachment-Served-By", "python")
	h.Set("dubbo-attachment-trace-note", "x")
	h.Set("Dubbo-Attachment-Dubbo", "9.9.9")
	h.Set("Dubbo-Attachment-Grpc-Status", "0")
	h.Set("Dubbo-Attachment-Content-Type", "text/html")
	h.Set("Dubbo-Attachment-", "empty key")
	h.Set("X-Other", "y")
	got := answerAttachments(h)
	want := map[string]string{"served-by": "python", "trace-note": "x"}
	if len(got) != len(want) || got["served-by"] != "python" || got["trace-note"] != "x" {
		t.Errorf("attachments %v, want %v", got, want)
	}
}
