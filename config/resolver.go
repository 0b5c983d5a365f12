package config

import (
	"strings"

	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// TolerantResolver resolves Any type URLs from the global registry and
// stands in an empty message for types this binary does not know (an
// Istio filter's config, say), so that JSON output of resources that carry
// them works; their content is then left out.
type TolerantResolver struct{}

// FindMessageByURL implements protojson's resolver.
func (TolerantResolver) FindMessageByURL(url string) (protoreflect.MessageType, error) {
	if mt, err := protoregistry.GlobalTypes.FindMessageByURL(url); err == nil {
		return mt, nil
	}
	name := url[strings.LastIndexByte(url, '/')+1:]
	return placeholder(protoreflect.FullName(name))
}

// FindExtensionByName implements protojson's resolver.
func (TolerantResolver) FindExtensionByName(field protoreflect.FullName) (protoreflect.ExtensionType, error) {
	return protoregistry.GlobalTypes.FindExtensionByName(field)
}

// FindExtensionByNumber implements protojson's resolver.
func (TolerantResolver) FindExtensionByNumber(message protoreflect.FullName, field protoreflect.FieldNumber) (protoreflect.ExtensionType, error) {
	return protoregistry.GlobalTypes.FindExtensionByNumber(message, field)
}

// FindMessageByName implements protojson's resolver.
func (r TolerantResolver) FindMessageByName(name protoreflect.FullName) (protoreflect.MessageType, error) {
	return r.FindMessageByURL(string(name))
}

func placeholder(name protoreflect.FullName) (protoreflect.MessageType, error) {
	pkg, msg := "", string(name)
	if i := strings.LastIndexByte(msg, '.'); i >= 0 {
		pkg, msg = msg[:i], msg[i+1:]
	}
	fd, err := protodesc.NewFile(&descriptorpb.FileDescriptorProto{
		Name:        protoString("meshgate/placeholder/" + string(name) + ".proto"),
		Package:     protoString(pkg),
		Syntax:      protoString("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{Name: protoString(msg)}},
	}, new(protoregistry.Files))
	if err != nil {
		return nil, err
	}
	return dynamicpb.NewMessageType(fd.Messages().Get(0)), nil
}

func protoString(s string) *string { return &s }
