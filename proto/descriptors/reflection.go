package descriptors

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
)

// Invoker sends one request message to a gRPC method path and returns the
// one answer message; a gRPC status comes back as a status error.
type Invoker func(ctx context.Context, path string, req []byte) ([]byte, error)

// The reflection service's method, v1 and the older v1alpha (the same
// messages on the wire).
const (
	reflectionV1      = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
	reflectionV1Alpha = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
)

// Reflect fetches the descriptors of services (every service the server
// lists, when none are named) by gRPC server reflection, v1 falling back to
// v1alpha. Each question is a stream of its own with one request, so a
// plain unary invoker carries it.
func Reflect(ctx context.Context, call Invoker, services []string) (*descriptorpb.FileDescriptorSet, error) {
	r := &reflector{call: call, path: reflectionV1, files: map[string]*descriptorpb.FileDescriptorProto{}}
	if len(services) == 0 {
		listed, err := r.listServices(ctx)
		if err != nil {
			return nil, err
		}
		services = listed
	}
	for _, s := range services {
		if err := r.fileContaining(ctx, s); err != nil {
			return nil, fmt.Errorf("reflection: service %s: %w", s, err)
		}
	}
	// Fetch imports the answers left out (a server sends each file once
	// per stream, and some send only the file asked for).
	for {
		var missing []string
		for _, f := range r.files {
			for _, dep := range f.GetDependency() {
				if r.files[dep] == nil {
					if _, err := protoregistry.GlobalFiles.FindFileByPath(dep); err != nil {
						missing = append(missing, dep)
					}
				}
			}
		}
		if len(missing) == 0 {
			break
		}
		for _, dep := range missing {
			if r.files[dep] != nil {
				continue
			}
			if err := r.fileByName(ctx, dep); err != nil {
				return nil, fmt.Errorf("reflection: file %s: %w", dep, err)
			}
			if r.files[dep] == nil {
				return nil, fmt.Errorf("reflection: the server did not send %s", dep)
			}
		}
	}
	return order(r.files), nil
}

type reflector struct {
	call  Invoker
	path  string
	files map[string]*descriptorpb.FileDescriptorProto
}

// ask sends one reflection request, trying v1alpha when v1 is missing.
func (r *reflector) ask(ctx context.Context, req *reflectionpb.ServerReflectionRequest) (*reflectionpb.ServerReflectionResponse, error) {
	b, err := proto.Marshal(req)
	if err != nil {
		return nil, err
	}
	ans, err := r.call(ctx, r.path, b)
	if status.Code(err) == codes.Unimplemented && r.path == reflectionV1 {
		r.path = reflectionV1Alpha
		ans, err = r.call(ctx, r.path, b)
	}
	if err != nil {
		return nil, err
	}
	var resp reflectionpb.ServerReflectionResponse
	if err := proto.Unmarshal(ans, &resp); err != nil {
		return nil, fmt.Errorf("reflection answer: %w", err)
	}
	if e := resp.GetErrorResponse(); e != nil {
		return nil, status.Error(codes.Code(e.GetErrorCode()), e.GetErrorMessage())
	}
	return &resp, nil
}

func (r *reflector) listServices(ctx context.Context) ([]string, error) {
	resp, err := r.ask(ctx, &reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{ListServices: "*"}})
	if err != nil {
		return nil, fmt.Errorf("reflection: listing services: %w", err)
	}
	var out []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		name := s.GetName()
		if strings.HasPrefix(name, "grpc.reflection.") || strings.HasPrefix(name, "grpc.health.") {
			continue
		}
		out = append(out, name)
	}
	return out, nil
}

func (r *reflector) fileContaining(ctx context.Context, symbol string) error {
	resp, err := r.ask(ctx, &reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: symbol}})
	if err != nil {
		return err
	}
	return r.add(resp)
}

func (r *reflector) fileByName(ctx context.Context, name string) error {
	resp, err := r.ask(ctx, &reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_FileByFilename{FileByFilename: name}})
	if err != nil {
		return err
	}
	return r.add(resp)
}

func (r *reflector) add(resp *reflectionpb.ServerReflectionResponse) error {
	for _, b := range resp.GetFileDescriptorResponse().GetFileDescriptorProto() {
		var f descriptorpb.FileDescriptorProto
		if err := proto.Unmarshal(b, &f); err != nil {
			return fmt.Errorf("a file descriptor in the answer: %w", err)
		}
		r.files[f.GetName()] = &f
	}
	return nil
}

// order lists files with every file after those it imports.
func order(files map[string]*descriptorpb.FileDescriptorProto) *descriptorpb.FileDescriptorSet {
	set := &descriptorpb.FileDescriptorSet{}
	done := map[string]bool{}
	var visit func(name string)
	visit = func(name string) {
		f := files[name]
		if f == nil || done[name] {
			return
		}
		done[name] = true
		for _, dep := range f.GetDependency() {
			visit(dep)
		}
		set.File = append(set.File, f)
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		visit(n)
	}
	return set
}
