package dubbo

import (
	"context"

	hessian "github.com/apache/dubbo-go-hessian2"
)

// Caller sends one call to one provider: a Pool, or a test's fake.
type Caller interface {
	Call(ctx context.Context, addr string, req Request) (*Response, error)
}

// GenericRequest is a call by method name, with Java parameter types,
// through Dubbo's generic invocation: the provider needs no stub of the
// caller's, and POJOs travel as maps with a "class" key.
func GenericRequest(svc Service, paramTypes []string, args []any, attachments map[string]string) Request {
	att := make(map[string]string, len(attachments)+1)
	for k, v := range attachments {
		att[k] = v
	}
	att["generic"] = "true"
	if paramTypes == nil {
		paramTypes = []string{}
	}
	// Object[] on the wire (a typed list): dubbo-go's provider asserts
	// []hessian.Object, which an untyped list does not decode to.
	objs := make([]hessian.Object, len(args))
	for i, a := range args {
		objs[i] = a
	}
	method := svc.Method
	svc.Method = "$invoke"
	return Request{Service: svc, Args: []any{method, paramTypes, objs}, Attachments: att}
}
