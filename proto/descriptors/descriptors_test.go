package descriptors_test

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/meshgate/meshgate/internal/resttest"
	"github.com/meshgate/meshgate/proto/descriptors"
	"github.com/meshgate/meshgate/proto/httprule"
)

func TestCompile_ResolvesLinkedImports(t *testing.T) {
	set, err := resttest.Descriptors(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range set.GetFile() {
		names[f.GetName()] = true
	}
	for _, want := range []string{resttest.ProtoFile, "google/api/annotations.proto", "google/api/http.proto", "google/api/httpbody.proto", "google/protobuf/descriptor.proto"} {
		if !names[want] {
			t.Errorf("the set lacks %s: %v", want, names)
		}
	}
	if _, err := descriptors.Files(set); err != nil {
		t.Fatal(err)
	}
}

func TestCompile_Errors(t *testing.T) {
	for name, src := range map[string]string{
		"syntax.proto":  `syntax = "proto3"; message {`,
		"import.proto":  `syntax = "proto3"; import "nope/missing.proto";`,
		"unknown.proto": `syntax = "proto3"; message A { Missing m = 1; }`,
	} {
		if _, err := descriptors.CompileSources(context.Background(), map[string]string{name: src}, name); err == nil {
			t.Errorf("%s compiled", name)
		}
	}
}

// TestFiles_WithoutImports loads a set holding only the service's own
// file (protoc without --include_imports): its imports resolve from the
// files linked into meshgate.
func TestFiles_WithoutImports(t *testing.T) {
	set, err := resttest.Descriptors(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var own *descriptorpb.FileDescriptorSet
	for _, f := range set.GetFile() {
		if f.GetName() == resttest.ProtoFile {
			own = &descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{f}}
		}
	}
	files, err := descriptors.Files(own)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := files.FindDescriptorByName(resttest.Service); err != nil {
		t.Fatal(err)
	}
	bad := &descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{{
		Name: proto.String("a.proto"), Dependency: []string{"not/known.proto"}}}}
	if _, err := descriptors.Files(bad); err == nil {
		t.Error("a set importing an unknown file loaded")
	}
}

// rawCodec sends and receives messages as bytes already marshaled.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(b []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), b...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// TestReflect fetches the library's descriptors from a real grpc-go server
// offering reflection v1, then one offering only v1alpha.
func TestReflect(t *testing.T) {
	for _, tc := range []struct {
		name string
		refl resttest.Reflection
	}{{"v1", resttest.ReflectionV1}, {"v1alpha", resttest.ReflectionV1Alpha}, {"none", resttest.ReflectionNone}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			srv, err := resttest.NewServer(ctx, tc.refl)
			if err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go func() { _ = srv.Serve(ln) }()
			defer srv.Stop()
			conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			var paths []string
			invoke := func(ctx context.Context, path string, req []byte) ([]byte, error) {
				paths = append(paths, path)
				var out []byte
				err := conn.Invoke(ctx, path, &req, &out)
				return out, err
			}
			for _, services := range [][]string{nil, {resttest.Service}} {
				set, err := descriptors.Reflect(ctx, invoke, services)
				if tc.refl == resttest.ReflectionNone {
					if status.Code(err) != codes.Unimplemented {
						t.Fatalf("no reflection: %v, want Unimplemented", err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				files, err := descriptors.Files(set)
				if err != nil {
					t.Fatal(err)
				}
				d, err := files.FindDescriptorByName(resttest.Service)
				if err != nil {
					t.Fatalf("services %v: %v", services, err)
				}
				sd := d.(protoreflect.ServiceDescriptor)
				if n := sd.Methods().Len(); n != 12 {
					t.Errorf("%d methods, want 12", n)
				}
				// The google.api.http options come through reflection.
				if rules, err := httprule.Rules(sd); err != nil || len(rules) != 12 {
					t.Errorf("%d rules (%v), want 12", len(rules), err)
				}
			}
			if tc.refl == resttest.ReflectionV1Alpha && paths[0] != "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo" {
				t.Errorf("v1 was not asked first: %v", paths)
			}
		})
	}
}
