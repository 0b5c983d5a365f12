package dubbo

import "context"

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
	if args == nil {
		args = []any{}
	}
	method := svc.Method
	svc.Method = "$invoke"
	return Request{Service: svc, Args: []any{method, paramTypes, args}, Attachments: att}
}
