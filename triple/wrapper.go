package triple

import (
	"errors"
	"fmt"

	hessian "github.com/apache/dubbo-go-hessian2"
	"google.golang.org/protobuf/proto"

	"github.com/meshgate/meshgate/dubbo/safehessian"
	triplev1 "github.com/meshgate/meshgate/proto/meshgate/triple/v1"
)

// Hessian2 is the serialization this package writes; it reads it under
// Java Dubbo's wrapper name too.
const Hessian2 = "hessian2"

// hessian4 is what Java Dubbo writes in a wrapper for hessian2 (its
// TripleConstant.HESSIAN4), to tell Dubbo's hessian-lite from hessian2.
const hessian4 = "hessian4"

func isHessian(serializeType string) bool {
	return serializeType == Hessian2 || serializeType == hessian4
}

// EncodeRequest wraps a call's arguments (values as the Dubbo2 bridge makes
// them) in a TripleRequestWrapper: each argument hessian2-serialized on its
// own, POJOs (maps naming their class) written as objects of that class, as
// a provider without generic invocation deserializes its parameters.
func EncodeRequest(args []any, types []string) ([]byte, error) {
	w := &triplev1.TripleRequestWrapper{SerializeType: Hessian2, Args: make([][]byte, len(args)), ArgTypes: types}
	for i, a := range args {
		e := hessian.NewEncoder()
		if err := e.Encode(objects(a, 0)); err != nil {
			return nil, fmt.Errorf("triple: argument %d: %w", i, err)
		}
		w.Args[i] = e.Buffer()
	}
	return proto.Marshal(w)
}

// objects turns maps with a "class" key into the form hessian2 encodes as
// an object of that class (map[string]any with its class key).
func objects(v any, depth int) any {
	if depth > 64 {
		return v
	}
	switch x := v.(type) {
	case map[any]any:
		class, hasClass := x["class"].(string)
		if !hasClass {
			out := make(map[any]any, len(x))
			for k, e := range x {
				out[k] = objects(e, depth+1)
			}
			return out
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			if ks, ok := k.(string); ok && ks != "class" {
				out[ks] = objects(e, depth+1)
			}
		}
		out[hessian.ClassKey] = class
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = objects(e, depth+1)
		}
		return out
	}
	return v
}

// EncodeResponse wraps a result (as the bridge holds it: POJOs as maps
// naming their class) in a TripleResponseWrapper, for a non-IDL Triple
// caller.
func EncodeResponse(v any) ([]byte, error) {
	w := &triplev1.TripleResponseWrapper{SerializeType: Hessian2}
	if v != nil {
		e := hessian.NewEncoder()
		if err := e.Encode(objects(v, 0)); err != nil {
			return nil, fmt.Errorf("triple: the result: %w", err)
		}
		w.Data = e.Buffer()
	}
	return proto.Marshal(w)
}

// Generic turns a decoded argument into the form Dubbo's generic
// invocation sends (POJOs as maps with a "class" key): the decoder's
// "_class" maps become "class" maps.
func Generic(v any) any { return generic(v, 0) }

func generic(v any, depth int) any {
	if depth > 64 {
		return v
	}
	switch x := v.(type) {
	case map[string]any:
		out := make(map[any]any, len(x))
		for k, e := range x {
			if k == hessian.ClassKey {
				out["class"] = e
				continue
			}
			out[k] = generic(e, depth+1)
		}
		return out
	case map[any]any:
		out := make(map[any]any, len(x))
		for k, e := range x {
			out[k] = generic(e, depth+1)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = generic(e, depth+1)
		}
		return out
	}
	return v
}

// ErrSerialization is a wrapper in a serialization other than hessian2.
var ErrSerialization = errors.New("triple: unsupported serialization")

// DecodeResponse reads a TripleResponseWrapper's result. The hessian bytes
// are checked before decoding, as for Dubbo2 frames.
func DecodeResponse(b []byte) (any, error) {
	var w triplev1.TripleResponseWrapper
	if err := proto.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("%w: triple response wrapper: %v", ErrMalformed, err)
	}
	if !isHessian(w.GetSerializeType()) && w.GetSerializeType() != "" {
		return nil, fmt.Errorf("%w %q", ErrSerialization, w.GetSerializeType())
	}
	if len(w.GetData()) == 0 {
		return nil, nil
	}
	v, err := safehessian.Decode(w.GetData())
	if err != nil {
		return nil, fmt.Errorf("%w: the result: %w", ErrMalformed, err)
	}
	return v, nil
}

// DecodeRequest reads a TripleRequestWrapper (a Triple caller's non-IDL
// call): each argument's value and the declared types.
func DecodeRequest(b []byte) ([]any, []string, error) {
	var w triplev1.TripleRequestWrapper
	if err := proto.Unmarshal(b, &w); err != nil {
		return nil, nil, fmt.Errorf("%w: triple request wrapper: %v", ErrMalformed, err)
	}
	if !isHessian(w.GetSerializeType()) {
		return nil, nil, fmt.Errorf("%w %q", ErrSerialization, w.GetSerializeType())
	}
	args := make([]any, len(w.GetArgs()))
	for i, a := range w.GetArgs() {
		v, err := safehessian.Decode(a)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: argument %d: %w", ErrMalformed, i, err)
		}
		args[i] = v
	}
	return args, w.GetArgTypes(), nil
}
