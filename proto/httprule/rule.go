package httprule

import (
	"fmt"
	"net/http"
	"slices"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// Rule is one HTTP binding of a gRPC method.
type Rule struct {
	// Method is the HTTP method ("GET", ..., or a custom one).
	Method   string
	Template *Template
	// Body is "" (no body), "*" (the whole request message) or the name
	// of the request field the body fills.
	Body string
	// ResponseBody is "" (the whole answer) or the answer field written.
	ResponseBody string
	// RPC is the gRPC method called.
	RPC protoreflect.MethodDescriptor
	// Binding is 0 for the method's rule, n for its nth additional binding.
	Binding int
}

// Rules reads the google.api.http options of a service's methods,
// additional bindings included. A method without the option has no rule.
func Rules(sd protoreflect.ServiceDescriptor) ([]*Rule, error) {
	var out []*Rule
	methods := sd.Methods()
	for i := 0; i < methods.Len(); i++ {
		md := methods.Get(i)
		hr, err := httpOption(md)
		if err != nil {
			return nil, fmt.Errorf("%s: google.api.http: %w", md.FullName(), err)
		}
		if hr == nil {
			continue
		}
		rules, err := fromHTTPRule(md, hr, true)
		if err != nil {
			return nil, fmt.Errorf("%s: google.api.http: %w", md.FullName(), err)
		}
		out = append(out, rules...)
	}
	return out, nil
}

// httpOption reads a method's google.api.http option. Options of
// descriptors built at run time (compiled, or fetched by reflection) may
// hold it as a dynamic message or unknown bytes, so they are read again
// against the linked-in HttpRule type.
func httpOption(md protoreflect.MethodDescriptor) (*annotations.HttpRule, error) {
	opts, ok := md.Options().(*descriptorpb.MethodOptions)
	if !ok || opts == nil {
		return nil, nil
	}
	b, err := proto.Marshal(opts)
	if err != nil {
		return nil, err
	}
	var fresh descriptorpb.MethodOptions
	if err := (proto.UnmarshalOptions{Resolver: protoregistry.GlobalTypes}).Unmarshal(b, &fresh); err != nil {
		return nil, err
	}
	if !proto.HasExtension(&fresh, annotations.E_Http) {
		return nil, nil
	}
	hr, _ := proto.GetExtension(&fresh, annotations.E_Http).(*annotations.HttpRule)
	return hr, nil
}

func fromHTTPRule(md protoreflect.MethodDescriptor, hr *annotations.HttpRule, top bool) ([]*Rule, error) {
	var method, path string
	switch p := hr.GetPattern().(type) {
	case *annotations.HttpRule_Get:
		method, path = http.MethodGet, p.Get
	case *annotations.HttpRule_Put:
		method, path = http.MethodPut, p.Put
	case *annotations.HttpRule_Post:
		method, path = http.MethodPost, p.Post
	case *annotations.HttpRule_Delete:
		method, path = http.MethodDelete, p.Delete
	case *annotations.HttpRule_Patch:
		method, path = http.MethodPatch, p.Patch
	case *annotations.HttpRule_Custom:
		method, path = p.Custom.GetKind(), p.Custom.GetPath()
	default:
		return nil, fmt.Errorf("no pattern")
	}
	tmpl, err := ParseTemplate(path)
	if err != nil {
		return nil, err
	}
	r := &Rule{Method: method, Template: tmpl, Body: hr.GetBody(), ResponseBody: hr.GetResponseBody(), RPC: md}
	if err := r.check(); err != nil {
		return nil, err
	}
	out := []*Rule{r}
	if !top && len(hr.GetAdditionalBindings()) > 0 {
		return nil, fmt.Errorf("additional_bindings cannot nest")
	}
	for i, ab := range hr.GetAdditionalBindings() {
		more, err := fromHTTPRule(md, ab, false)
		if err != nil {
			return nil, fmt.Errorf("additional_bindings: %w", err)
		}
		more[0].Binding = i + 1
		out = append(out, more...)
	}
	return out, nil
}

// check refuses a rule naming fields its messages lack.
func (r *Rule) check() error {
	if r.RPC.IsStreamingClient() {
		return fmt.Errorf("client streaming methods cannot be transcoded")
	}
	in := r.RPC.Input()
	for _, f := range r.Template.Fields() {
		fd, err := fieldByPath(in, splitDots(f))
		if err != nil {
			return fmt.Errorf("path variable %q: %w", f, err)
		}
		if fd.IsList() || fd.IsMap() || fd.Kind() == protoreflect.MessageKind && !IsWellKnownScalar(fd.Message()) {
			return fmt.Errorf("path variable %q: must be a singular scalar field", f)
		}
	}
	if r.Body != "" && r.Body != "*" {
		fd := in.Fields().ByName(protoreflect.Name(r.Body))
		if fd == nil {
			return fmt.Errorf("body %q: %s has no such field", r.Body, in.FullName())
		}
	}
	if r.ResponseBody != "" {
		if r.RPC.Output().Fields().ByName(protoreflect.Name(r.ResponseBody)) == nil {
			return fmt.Errorf("response_body %q: %s has no such field", r.ResponseBody, r.RPC.Output().FullName())
		}
	}
	return nil
}

// Table finds the rule of a request. Rules are tried most specific first:
// a literal segment before a wildcard at the same place.
type Table struct {
	rules []*Rule
}

// NewTable orders rules for matching; two rules with the same method and
// template are a conflict.
func NewTable(rules []*Rule) (*Table, error) {
	seen := map[string]*Rule{}
	for _, r := range rules {
		key := r.Method + " " + r.Template.String()
		if prev := seen[key]; prev != nil {
			return nil, fmt.Errorf("%s is bound by both %s and %s", key, prev.RPC.FullName(), r.RPC.FullName())
		}
		seen[key] = r
	}
	sorted := slices.Clone(rules)
	slices.SortStableFunc(sorted, func(a, b *Rule) int {
		if c := slices.Compare(a.Template.specificity(), b.Template.specificity()); c != 0 {
			return c
		}
		// Of two otherwise equal templates, the one with a verb first.
		switch {
		case a.Template.verb != "" && b.Template.verb == "":
			return -1
		case a.Template.verb == "" && b.Template.verb != "":
			return 1
		}
		return 0
	})
	return &Table{rules: sorted}, nil
}

// Len is the number of rules.
func (t *Table) Len() int { return len(t.rules) }

// Rules are the table's rules in matching order.
func (t *Table) Rules() []*Rule { return t.rules }

// Match finds the rule for an HTTP method and escaped path.
func (t *Table) Match(method, escapedPath string) (*Rule, []Binding) {
	for _, r := range t.rules {
		if r.Method != method {
			continue
		}
		if b, ok := r.Template.Match(escapedPath); ok {
			return r, b
		}
	}
	return nil, nil
}
