// Package descriptors loads the protobuf descriptors the transcoders need:
// from a FileDescriptorSet (buf build -o, protoc --descriptor_set_out),
// from .proto files compiled at load time, or from a backend by gRPC
// server reflection.
package descriptors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/bufbuild/protocompile"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	// The google.api and google.rpc files a service's .proto commonly
	// imports resolve from these without their sources.
	_ "google.golang.org/genproto/googleapis/api/annotations"
	_ "google.golang.org/genproto/googleapis/api/httpbody"
	_ "google.golang.org/genproto/googleapis/rpc/status"
)

// Parse reads a serialized FileDescriptorSet.
func Parse(bin []byte) (*descriptorpb.FileDescriptorSet, error) {
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(bin, &set); err != nil {
		return nil, fmt.Errorf("not a FileDescriptorSet: %w", err)
	}
	return &set, nil
}

// Files links a set into descriptors. A file the set imports but lacks
// resolves from those linked into meshgate (well-known types, google.api),
// so a set built without --include_imports still loads.
func Files(set *descriptorpb.FileDescriptorSet) (*protoregistry.Files, error) {
	have := map[string]bool{}
	for _, f := range set.GetFile() {
		have[f.GetName()] = true
	}
	full := &descriptorpb.FileDescriptorSet{}
	var addLinked func(name string) error
	addLinked = func(name string) error {
		if have[name] {
			return nil
		}
		fd, err := protoregistry.GlobalFiles.FindFileByPath(name)
		if err != nil {
			return fmt.Errorf("import %q is neither in the set nor known to meshgate", name)
		}
		have[name] = true
		imports := fd.Imports()
		for i := 0; i < imports.Len(); i++ {
			if err := addLinked(imports.Get(i).Path()); err != nil {
				return err
			}
		}
		full.File = append(full.File, protodesc.ToFileDescriptorProto(fd))
		return nil
	}
	for _, f := range set.GetFile() {
		for _, dep := range f.GetDependency() {
			if err := addLinked(dep); err != nil {
				return nil, fmt.Errorf("%s: %w", f.GetName(), err)
			}
		}
	}
	full.File = append(full.File, set.GetFile()...)
	files, err := protodesc.NewFiles(full)
	if err != nil {
		return nil, fmt.Errorf("linking the descriptors: %w", err)
	}
	return files, nil
}

// Compile compiles .proto files, each named relative to one of the import
// paths, into a FileDescriptorSet holding them and everything they import.
// Well-known types and the google.api / google.rpc files resolve without
// their sources.
func Compile(ctx context.Context, importPaths, files []string) (*descriptorpb.FileDescriptorSet, error) {
	if len(files) == 0 {
		return nil, errors.New("no .proto files to compile")
	}
	if len(importPaths) == 0 {
		importPaths = []string{"."}
	}
	rel := make([]string, len(files))
	for i, f := range files {
		rel[i] = relativeTo(f, importPaths)
	}
	src := &protocompile.SourceResolver{ImportPaths: importPaths, Accessor: func(p string) (io.ReadCloser, error) { return os.Open(p) }}
	return compile(ctx, src, rel)
}

// CompileSources compiles .proto sources held in memory (name -> text).
func CompileSources(ctx context.Context, sources map[string]string, files ...string) (*descriptorpb.FileDescriptorSet, error) {
	src := &protocompile.SourceResolver{Accessor: protocompile.SourceAccessorFromMap(sources)}
	return compile(ctx, src, files)
}

func compile(ctx context.Context, src protocompile.Resolver, files []string) (*descriptorpb.FileDescriptorSet, error) {
	linked := protocompile.ResolverFunc(func(path string) (protocompile.SearchResult, error) {
		fd, err := protoregistry.GlobalFiles.FindFileByPath(path)
		if err != nil {
			return protocompile.SearchResult{}, err
		}
		return protocompile.SearchResult{Desc: fd}, nil
	})
	c := protocompile.Compiler{
		// Files linked into meshgate first, so a google/protobuf import
		// is the very descriptor the google.api files were built on.
		Resolver:       protocompile.CompositeResolver{linked, protocompile.WithStandardImports(src)},
		SourceInfoMode: protocompile.SourceInfoNone,
	}
	out, err := c.Compile(ctx, files...)
	if err != nil {
		return nil, fmt.Errorf("compiling %s: %w", strings.Join(files, ", "), err)
	}
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		imports := fd.Imports()
		for i := 0; i < imports.Len(); i++ {
			add(imports.Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	for _, f := range out {
		add(f)
	}
	return set, nil
}

// relativeTo names a file relative to the import path that holds it.
func relativeTo(file string, importPaths []string) string {
	abs, err := filepath.Abs(file)
	if err != nil {
		return file
	}
	for _, ip := range importPaths {
		root, err := filepath.Abs(ip)
		if err != nil {
			continue
		}
		if r, err := filepath.Rel(root, abs); err == nil && !strings.HasPrefix(r, "..") {
			return filepath.ToSlash(r)
		}
	}
	return file
}

// Services lists the services of a set's files, full names.
func Services(files *protoregistry.Files) []string {
	var out []string
	files.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		s := fd.Services()
		for i := 0; i < s.Len(); i++ {
			out = append(out, string(s.Get(i).FullName()))
		}
		return true
	})
	return out
}
