// Package httpapp maps Dubbo calls onto a local HTTP/JSON application and
// its answers back (the sidecar's inbound side): a declared method becomes
// an HTTP request whose JSON body carries the arguments (by parameter name,
// or as an array in order), and the app's JSON answer becomes the value of
// the method's declared Java return type, or an exception the consumer can
// read when the app failed or answered something that is not that type.
package httpapp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/apache/dubbo-go-hessian2/java_exception"

	"github.com/meshgate/meshgate/dubbo"
)

// maxAnswerBytes bounds the part of an app's answer put into an exception's
// message.
const maxAnswerBytes = 512

// Method is one method of a service the app serves.
type Method struct {
	Name string
	// ParamTypes are the Java types of the parameters, in order; a call
	// whose types differ is refused (an overload the app does not serve).
	ParamTypes []string
	// ParamNames, when given (one per parameter), make the body a JSON
	// object of them; else the body is a JSON array of the arguments.
	ParamNames []string
	// ReturnType is the Java type the consumer expects back ("void": the
	// answer's body is ignored).
	ReturnType string
	// HTTPMethod and Path are the app's request (default POST /<Name>).
	HTTPMethod, Path string
}

// Service is one Dubbo service (interface, version, group) the app serves.
type Service struct {
	Interface, Version, Group string
	Methods                   map[string]*Method
}

// noSuchMethod is the exception for a call of a method the service does
// not declare (with these parameter types).
func (s *Service) noSuchMethod(name string, types []string) error {
	return java_exception.NewThrowable(fmt.Sprintf("java.lang.NoSuchMethodException: %s.%s(%s): the service served for the local app declares no such method",
		s.Interface, name, strings.Join(types, ", ")))
}

// Lookup finds the method inv calls; an exception for the consumer when
// the service has no such method (or not with those parameter types).
func (s *Service) Lookup(inv *dubbo.Invocation) (*Method, error) {
	m := s.Methods[inv.Service.Method]
	if m == nil || (len(inv.Types) > 0 && !equalTypes(m.ParamTypes, inv.Types)) {
		return nil, s.noSuchMethod(inv.Service.Method, inv.Types)
	}
	if len(inv.Args) != len(m.ParamTypes) {
		return nil, java_exception.NewThrowable(fmt.Sprintf("java.lang.IllegalArgumentException: %s.%s takes %d arguments, the call has %d",
			s.Interface, m.Name, len(m.ParamTypes), len(inv.Args)))
	}
	return m, nil
}

func equalTypes(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if dubbo.EraseType(a[i]) != dubbo.EraseType(b[i]) {
			return false
		}
	}
	return true
}

// RequestBody is the JSON body of the app's request for a call of m with
// args (decoded hessian values).
func (m *Method) RequestBody(args []any) ([]byte, error) {
	opts := dubbo.JSONOptions{}
	if len(m.ParamNames) == len(args) && len(args) > 0 {
		obj := make(map[string]any, len(args))
		for i, a := range args {
			obj[m.ParamNames[i]] = dubbo.ToJSON(a, opts)
		}
		return json.Marshal(obj)
	}
	arr := make([]any, len(args))
	for i, a := range args {
		arr[i] = dubbo.ToJSON(a, opts)
	}
	return json.Marshal(arr)
}

// Request is the app's HTTP method and path for m.
func (m *Method) Request() (method, path string) {
	method, path = m.HTTPMethod, m.Path
	if method == "" {
		method = http.MethodPost
	}
	if path == "" {
		path = "/" + m.Name
	}
	return method, path
}

// Answer turns the app's answer (status, content type, body) into the
// method's value, or an exception for the consumer: the app failed
// (status not 2xx: its message, or its body, is in the exception), or
// answered no JSON, or JSON that is not of the return type.
func (m *Method) Answer(status int, contentType string, body []byte) (any, error) {
	if m.ReturnType == "void" {
		if err := m.Failed(status, body); err != nil {
			return nil, err
		}
		return nil, nil
	}
	v, err := m.AnswerJSON(status, contentType, body)
	if err != nil {
		return nil, err
	}
	out, err := dubbo.ToHessian(v, m.ReturnType) // json.Numbers keep big integers exact
	if err != nil {
		return nil, exception(fmt.Sprintf("java.lang.IllegalStateException: the local app's answer to %s is not a %s: %v", m.Name, m.ReturnType, err))
	}
	return out, nil
}

// Failed is the exception of an app's answer that is not a success (status
// not 2xx: its message, or its body, is in it); nil for a success.
func (m *Method) Failed(status int, body []byte) error {
	if status < 200 || status > 299 {
		return exception(fmt.Sprintf("java.lang.RuntimeException: the local app answered %s with HTTP %d: %s",
			m.Name, status, appMessage(body)))
	}
	return nil
}

// AnswerJSON is the app's successful answer as one JSON value (numbers as
// json.Number), or the exception of an answer that failed or is not JSON.
func (m *Method) AnswerJSON(status int, contentType string, body []byte) (any, error) {
	if err := m.Failed(status, body); err != nil {
		return nil, err
	}
	if ct, _, _ := mime.ParseMediaType(contentType); contentType != "" && ct != "application/json" && !strings.HasSuffix(ct, "+json") {
		return nil, exception(fmt.Sprintf("java.lang.IllegalStateException: the local app answered %s with %q, not JSON: %s", m.Name, contentType, excerpt(body)))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, exception(fmt.Sprintf("java.lang.IllegalStateException: the local app's answer to %s is not JSON (%v): %s", m.Name, err, excerpt(body)))
	}
	if dec.More() {
		return nil, exception(fmt.Sprintf("java.lang.IllegalStateException: the local app's answer to %s has more than one JSON value: %s", m.Name, excerpt(body)))
	}
	return v, nil
}

// exception is a Java exception the consumer can read (hessian2 writes
// java_exception's own types; a type of ours would not encode).
func exception(msg string) error {
	return java_exception.NewThrowable(msg)
}

// appMessage is what an app's error answer says: "message" or "error" of
// a JSON object (or error.message), else an excerpt of the body.
func appMessage(body []byte) string {
	var obj map[string]any
	if json.Unmarshal(body, &obj) == nil {
		if s, ok := obj["message"].(string); ok {
			return s
		}
		switch e := obj["error"].(type) {
		case string:
			return e
		case map[string]any:
			if s, ok := e["message"].(string); ok {
				return s
			}
		}
	}
	return excerpt(body)
}

// excerpt is the start of body as text for a message.
func excerpt(body []byte) string {
	if len(body) == 0 {
		return "(empty)"
	}
	b := body
	if len(b) > maxAnswerBytes {
		b = b[:maxAnswerBytes]
	}
	s := strings.ToValidUTF8(string(b), string(utf8.RuneError))
	if len(body) > maxAnswerBytes {
		s += "…"
	}
	return s
}
