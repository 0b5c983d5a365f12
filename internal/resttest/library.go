// Package resttest is the backend of the REST transcoding tests: a real
// grpc-go server of proto/resttest/v1/library.proto (a library of books
// with google.api.http rules), built from the descriptors at run time so
// that no generated code stands between the .proto and the test, and
// serving gRPC server reflection (v1, v1alpha or both).
package resttest

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/reflection"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/meshgate/meshgate/proto/descriptors"
)

// Service is the library's full service name.
const Service = "resttest.v1.LibraryService"

// ProtoDir is the import path holding resttest/v1/library.proto.
func ProtoDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "proto")
}

// ProtoFile is the library's .proto, relative to ProtoDir.
const ProtoFile = "resttest/v1/library.proto"

// Descriptors compiles the library's .proto into a FileDescriptorSet with
// its imports (what `buf build -o` writes).
func Descriptors(ctx context.Context) (*descriptorpb.FileDescriptorSet, error) {
	return descriptors.Compile(ctx, []string{ProtoDir()}, []string{filepath.Join(ProtoDir(), ProtoFile)})
}

// Reflection says which reflection services the server offers.
type Reflection int

// The reflection services offered.
const (
	ReflectionNone Reflection = iota
	ReflectionV1
	ReflectionV1Alpha
)

// NewServer builds the library's gRPC server; the caller serves it.
func NewServer(ctx context.Context, refl Reflection) (*grpc.Server, error) {
	set, err := Descriptors(ctx)
	if err != nil {
		return nil, err
	}
	files, err := descriptors.Files(set)
	if err != nil {
		return nil, err
	}
	d, err := files.FindDescriptorByName(Service)
	if err != nil {
		return nil, err
	}
	sd := d.(protoreflect.ServiceDescriptor)
	lib := &library{books: map[string]*book{}, covers: map[string][]byte{}}
	desc := grpc.ServiceDesc{ServiceName: Service, HandlerType: (*any)(nil), Metadata: ProtoFile}
	methods := sd.Methods()
	for i := 0; i < methods.Len(); i++ {
		md := methods.Get(i)
		name := string(md.Name())
		if md.IsStreamingServer() {
			desc.Streams = append(desc.Streams, grpc.StreamDesc{StreamName: name, ServerStreams: true,
				Handler: func(_ any, stream grpc.ServerStream) error {
					in := dynamicpb.NewMessage(md.Input())
					if err := stream.RecvMsg(in); err != nil {
						return err
					}
					var req listRequest
					if err := fromMessage(in, &req); err != nil {
						return err
					}
					for _, b := range lib.list(req) {
						out, err := toMessage(md.Output(), b)
						if err != nil {
							return err
						}
						if err := stream.SendMsg(out); err != nil {
							return err
						}
					}
					return nil
				}})
			continue
		}
		desc.Methods = append(desc.Methods, grpc.MethodDesc{MethodName: name,
			Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				in := dynamicpb.NewMessage(md.Input())
				if err := dec(in); err != nil {
					return nil, err
				}
				ans, err := lib.call(name, in)
				if err != nil {
					return nil, err
				}
				return toMessage(md.Output(), ans)
			}})
	}
	s := grpc.NewServer()
	s.RegisterService(&desc, lib)
	opts := reflection.ServerOptions{Services: s, DescriptorResolver: files, ExtensionResolver: protoregistry.GlobalTypes}
	switch refl {
	case ReflectionV1:
		reflectionv1.RegisterServerReflectionServer(s, reflection.NewServerV1(opts))
	case ReflectionV1Alpha:
		reflectionv1alpha.RegisterServerReflectionServer(s, reflection.NewServer(opts))
	}
	return s, nil
}

// book is a Book in proto3 JSON.
type book struct {
	Name       string   `json:"name,omitempty"`
	Title      string   `json:"title,omitempty"`
	Author     string   `json:"author,omitempty"`
	Genre      string   `json:"genre,omitempty"`
	Tags       []string `json:"tags,omitempty"`
	Pages      int64    `json:"pages,string,omitempty"`
	Published  string   `json:"published,omitempty"`
	CoverBytes int64    `json:"coverBytes,string,omitempty"`
}

type listRequest struct {
	Parent   string `json:"parent"`
	PageSize int    `json:"pageSize"`
	Filter   struct {
		Author string `json:"author"`
		After  string `json:"after"`
	} `json:"filter"`
	Genres []string `json:"genres"`
}

type library struct {
	mu     sync.Mutex
	books  map[string]*book
	covers map[string][]byte
}

func (l *library) call(method string, in *dynamicpb.Message) (any, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch method {
	case "GetBook", "DeleteBook", "GetCover":
		var req struct {
			Name string `json:"name"`
		}
		if err := fromMessage(in, &req); err != nil {
			return nil, err
		}
		b := l.books[req.Name]
		if b == nil {
			return nil, status.Errorf(codes.NotFound, "no book %q", req.Name)
		}
		switch method {
		case "DeleteBook":
			delete(l.books, req.Name)
			return struct{}{}, nil
		case "GetCover":
			return map[string]any{"contentType": "image/png", "data": l.covers[req.Name]}, nil
		}
		return b, nil
	case "ListBooks", "ListTitles", "Search":
		var req listRequest
		if err := fromMessage(in, &req); err != nil {
			return nil, err
		}
		books := l.listLocked(req)
		titles := make([]string, 0, len(books))
		for _, b := range books {
			titles = append(titles, b.Title)
		}
		return map[string]any{"books": books, "titles": titles}, nil
	case "CreateBook":
		var req struct {
			Parent string `json:"parent"`
			BookID string `json:"bookId"`
			Book   book   `json:"book"`
		}
		if err := fromMessage(in, &req); err != nil {
			return nil, err
		}
		if req.BookID == "" || req.Parent == "" {
			return nil, status.Error(codes.InvalidArgument, "parent and book_id are needed")
		}
		b := req.Book
		b.Name = req.Parent + "/books/" + req.BookID
		if l.books[b.Name] != nil {
			return nil, status.Errorf(codes.AlreadyExists, "%s exists", b.Name)
		}
		l.books[b.Name] = &b
		return &b, nil
	case "UpdateBook":
		var req struct {
			Book book `json:"book"`
		}
		if err := fromMessage(in, &req); err != nil {
			return nil, err
		}
		b := l.books[req.Book.Name]
		if b == nil {
			return nil, status.Errorf(codes.NotFound, "no book %q", req.Book.Name)
		}
		if req.Book.Title != "" {
			b.Title = req.Book.Title
		}
		if req.Book.Author != "" {
			b.Author = req.Book.Author
		}
		if len(req.Book.Tags) > 0 {
			b.Tags = req.Book.Tags
		}
		return b, nil
	case "MoveBook":
		var req struct {
			Name    string `json:"name"`
			ToShelf string `json:"toShelf"`
		}
		if err := fromMessage(in, &req); err != nil {
			return nil, err
		}
		b := l.books[req.Name]
		if b == nil {
			return nil, status.Errorf(codes.NotFound, "no book %q", req.Name)
		}
		delete(l.books, req.Name)
		b.Name = req.ToShelf + "/books/" + req.Name[strings.LastIndex(req.Name, "/")+1:]
		l.books[b.Name] = b
		if c, ok := l.covers[req.Name]; ok {
			l.covers[b.Name] = c
		}
		return b, nil
	case "PutCover":
		var req struct {
			Name  string `json:"name"`
			Cover struct {
				ContentType string `json:"contentType"`
				Data        []byte `json:"data"`
			} `json:"cover"`
		}
		if err := fromMessage(in, &req); err != nil {
			return nil, err
		}
		b := l.books[req.Name]
		if b == nil {
			return nil, status.Errorf(codes.NotFound, "no book %q", req.Name)
		}
		if req.Cover.ContentType != "image/png" {
			return nil, status.Errorf(codes.InvalidArgument, "a cover is image/png, not %q", req.Cover.ContentType)
		}
		l.covers[req.Name] = req.Cover.Data
		b.CoverBytes = int64(len(req.Cover.Data))
		return b, nil
	case "Ping":
		return struct{}{}, nil
	}
	return nil, status.Errorf(codes.Unimplemented, "%s", method)
}

func (l *library) list(req listRequest) []*book {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.listLocked(req)
}

func (l *library) listLocked(req listRequest) []*book {
	var out []*book
	for _, b := range l.books {
		if req.Parent != "" && !strings.HasPrefix(b.Name, req.Parent+"/") ||
			req.Filter.Author != "" && b.Author != req.Filter.Author ||
			req.Filter.After != "" && b.Published <= req.Filter.After ||
			len(req.Genres) > 0 && !slices.Contains(req.Genres, b.Genre) {
			continue
		}
		c := *b
		out = append(out, &c)
	}
	slices.SortFunc(out, func(a, b *book) int { return strings.Compare(a.Name, b.Name) })
	if req.PageSize > 0 && len(out) > req.PageSize {
		out = out[:req.PageSize]
	}
	return out
}

// fromMessage reads a request through its proto3 JSON into plain Go.
func fromMessage(m proto.Message, v any) error {
	b, err := protojson.Marshal(m)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return status.Errorf(codes.Internal, "reading the request: %v", err)
	}
	return nil
}

// toMessage writes an answer in plain Go into the output message.
func toMessage(md protoreflect.MessageDescriptor, v any) (proto.Message, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	out := dynamicpb.NewMessage(md)
	if err := protojson.Unmarshal(b, out); err != nil {
		return nil, fmt.Errorf("writing the answer %s: %w", b, err)
	}
	return out, nil
}
