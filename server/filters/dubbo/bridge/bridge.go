// Package bridge turns a request a route matched into a Dubbo call and the
// provider's answer back into JSON or protobuf: the route's compiled
// bridge config (DubboRoute), argument mapping, signature choice and the
// mapping of Dubbo failures onto HTTP and gRPC codes. The dubbo filter
// owns the host choice, retries and the wire.
package bridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/cespare/xxhash/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshgate/meshgate/dubbo"
	"github.com/meshgate/meshgate/dubbo/argsource"
	dubbov1 "github.com/meshgate/meshgate/proto/meshgate/extensions/filters/http/dubbo/v1"
)

// TypeURL is the type of the bridge's per-route config.
const TypeURL = "type.googleapis.com/meshgate.extensions.filters.http.dubbo.v1.DubboRoute"

// Route is one route's compiled bridge.
type Route struct {
	cfg      *dubbov1.DubboRoute
	template *regexp.Regexp // nil without a path template
	vars     []string       // the template's variables, in order
	params   []param
	json     dubbo.JSONOptions
	headers  []string             // request headers copied into attachments
	prefix   string               // header prefix of attachments, lower case
	files    *protoregistry.Files // the gRPC services bridged, or nil
}

type param struct {
	src      argsource.Source
	from     string
	typ      string
	optional bool
}

// Compile compiles a route's bridge config (a DubboRoute, the filter's
// typed_per_filter_config).
func Compile(a *anypb.Any) (any, error) {
	var cfg dubbov1.DubboRoute
	if err := a.UnmarshalTo(&cfg); err != nil {
		return nil, fmt.Errorf("dubbo bridge: %w", err)
	}
	return compile(&cfg)
}

func compile(cfg *dubbov1.DubboRoute) (*Route, error) {
	r := &Route{cfg: cfg, json: dubbo.JSONOptions{KeepClass: cfg.GetKeepClass(), LongsAsStrings: cfg.GetLongsAsStrings()}}
	vars := map[string]bool{}
	if t := cfg.GetPathTemplate(); t != "" {
		re, names, err := compileTemplate(t)
		if err != nil {
			return nil, fmt.Errorf("dubbo bridge: path_template: %w", err)
		}
		r.template, r.vars = re, names
		for _, n := range names {
			vars[n] = true
		}
	}
	for i, p := range cfg.GetParams() {
		src, err := argsource.Parse(p.GetFrom())
		if err != nil {
			return nil, fmt.Errorf("dubbo bridge: params[%d].from: %w", i, err)
		}
		if src.Kind == argsource.FromPath && !vars[src.Name] {
			return nil, fmt.Errorf("dubbo bridge: params[%d].from: the path template has no {%s}", i, src.Name)
		}
		r.params = append(r.params, param{src: src, from: p.GetFrom(), typ: strings.TrimSpace(p.GetType()), optional: p.GetOptional()})
	}
	for _, h := range cfg.GetAttachments().GetHeaders() {
		r.headers = append(r.headers, strings.ToLower(h))
	}
	if b := cfg.GetProtoDescriptorBin(); len(b) > 0 {
		files, err := descriptors(b)
		if err != nil {
			return nil, fmt.Errorf("dubbo bridge: %w", err)
		}
		r.files = files
	}
	r.prefix = strings.ToLower(cfg.GetAttachments().GetHeaderPrefix())
	if r.prefix == "" {
		r.prefix = "x-dubbo-"
	}
	return r, nil
}

var templateVar = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// compileTemplate turns "/users/{id}" into an anchored regexp whose
// groups are the variables, each one path segment.
func compileTemplate(t string) (*regexp.Regexp, []string, error) {
	if !strings.HasPrefix(t, "/") {
		return nil, nil, fmt.Errorf("%q does not start with /", t)
	}
	var b strings.Builder
	var names []string
	b.WriteString("^")
	last := 0
	for _, m := range templateVar.FindAllStringSubmatchIndex(t, -1) {
		b.WriteString(regexp.QuoteMeta(t[last:m[0]]))
		name := t[m[2]:m[3]]
		for _, n := range names {
			if n == name {
				return nil, nil, fmt.Errorf("{%s} appears twice", name)
			}
		}
		names = append(names, name)
		b.WriteString("([^/]+)")
		last = m[1]
	}
	rest := t[last:]
	if strings.ContainsAny(rest, "{}") {
		return nil, nil, fmt.Errorf("%q has a malformed {variable}", t)
	}
	b.WriteString(regexp.QuoteMeta(rest))
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	return re, names, err
}

// Service is what the cluster knows of its service (a registry's cluster
// metadata) and the signatures its providers published.
type Service struct {
	Interface, Version, Group string
	// Methods the providers publish (empty: unknown, any is tried).
	Methods    []string
	Signatures map[string][][]string
}

// Call is one prepared generic call.
type Call struct {
	Service dubbo.Service
	Types   []string
	Args    []any
	// TypesSource says where the parameter types came from: "route",
	// "signature" or "inferred".
	TypesSource string
	Attachments map[string]string
	// Hash keys a ring_hash or maglev pick when HasHash (the route's
	// hash_arguments).
	Hash    uint64
	HasHash bool
}

// Request builds the generic call for r, whose body is JSON. A client's
// mistake comes back as *BadRequest.
func (rt *Route) Request(r *http.Request, body []byte, svc Service) (*Call, error) {
	if _, err := rt.service(r, svc); err != nil {
		return nil, err
	}
	values, err := rt.arguments(r, body)
	if err != nil {
		return nil, err
	}
	return rt.call(r, values, svc, nil)
}

// service names the call's target: the route's, else the cluster's, else
// the path's (POST /<interface>/<method>).
func (rt *Route) service(r *http.Request, svc Service) (dubbo.Service, error) {
	// Triple callers name the version and group in headers; the route and
	// a registry cluster's metadata win.
	s := dubbo.Service{
		Interface: first(rt.cfg.GetInterface(), svc.Interface),
		Version:   first(first(rt.cfg.GetVersion(), svc.Version), r.Header.Get("Tri-Service-Version")),
		Group:     first(first(rt.cfg.GetGroup(), svc.Group), r.Header.Get("Tri-Service-Group")),
		Method:    rt.cfg.GetMethod(),
	}
	if s.Method == "" || s.Interface == "" {
		segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
		if s.Method == "" {
			s.Method = segs[len(segs)-1]
		}
		if s.Interface == "" && len(segs) >= 2 {
			s.Interface = segs[len(segs)-2]
		}
	}
	if s.Method == "" || s.Interface == "" {
		return s, badRequest(http.StatusNotFound, "the path names no method: call POST /<interface>/<method>")
	}
	if len(svc.Methods) > 0 && !slices.Contains(svc.Methods, s.Method) &&
		(rt.cfg.GetInterface() == "" || rt.cfg.GetInterface() == svc.Interface) {
		return s, &BadRequest{Status: http.StatusNotFound, GRPC: codes.Unimplemented,
			Msg: fmt.Sprintf("%s has no method %q (its providers publish %s)", s.Interface, s.Method, strings.Join(svc.Methods, ", "))}
	}
	return s, nil
}

// call types and converts the arguments' JSON values. fallback, when
// given, types what neither the route nor a signature does (a gRPC
// request's proto field types).
func (rt *Route) call(r *http.Request, values []any, svc Service, fallback []string) (*Call, error) {
	s, err := rt.service(r, svc)
	if err != nil {
		return nil, err
	}
	c := &Call{Service: s}
	sigs := svc.Signatures[c.Service.Method]
	if len(rt.params) == 0 && len(rt.cfg.GetTypes()) > 0 {
		sigs = [][]string{rt.cfg.GetTypes()}
	}
	types, source := rt.types(sigs, values, fallback)
	if types == nil {
		return nil, badRequest(http.StatusBadRequest, fmt.Sprintf("%s.%s takes %s, not %d arguments",
			c.Service.Interface, c.Service.Method, arities(sigs), len(values)))
	}
	// The provider matches the erased types; conversion uses the full ones
	// (a List<User> makes its elements Users).
	c.Types, c.TypesSource = make([]string, len(types)), source
	for i, t := range types {
		c.Types[i] = dubbo.EraseType(t)
	}
	c.Args = make([]any, len(values))
	for i, v := range values {
		if c.Args[i], err = dubbo.ToHessian(v, types[i]); err != nil {
			return nil, badRequest(http.StatusBadRequest, (&dubbo.ArgError{Index: i, Type: types[i], Err: err}).Error())
		}
	}
	c.Attachments = rt.attachments(r)
	if args := rt.cfg.GetHashArguments(); len(args) > 0 {
		// As Dubbo's ConsistentHashLoadBalance: the chosen arguments' values.
		h := xxhash.New()
		for _, i := range args {
			if int(i) < len(values) {
				b, _ := json.Marshal(values[i])
				_, _ = h.Write(b)
			}
			_, _ = h.Write([]byte{0})
		}
		c.Hash, c.HasHash = h.Sum64(), true
	}
	return c, nil
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// arguments collects the JSON values of the call's arguments.
func (rt *Route) arguments(r *http.Request, body []byte) ([]any, error) {
	var doc any
	haveDoc := false
	parse := func() error {
		if haveDoc {
			return nil
		}
		haveDoc = true
		if len(bytes.TrimSpace(body)) == 0 {
			return nil
		}
		d := json.NewDecoder(bytes.NewReader(body))
		d.UseNumber()
		if err := d.Decode(&doc); err != nil {
			return badRequest(http.StatusBadRequest, "the body is not JSON: "+err.Error())
		}
		if _, err := d.Token(); err != io.EOF {
			return badRequest(http.StatusBadRequest, "the body holds more than one JSON value")
		}
		return nil
	}
	if len(rt.params) == 0 {
		if err := parse(); err != nil {
			return nil, err
		}
		switch d := doc.(type) {
		case nil:
			return nil, nil
		case []any:
			return d, nil
		}
		return nil, badRequest(http.StatusBadRequest, "want the body to be a JSON array of the method's arguments")
	}
	var vars []string
	if rt.template != nil {
		// Matched escaped, so that an escaped "/" stays inside its segment.
		vars = rt.template.FindStringSubmatch(r.URL.EscapedPath())
		if vars == nil {
			return nil, badRequest(http.StatusNotFound, fmt.Sprintf("the path %q does not match the route's template %q", r.URL.Path, rt.cfg.GetPathTemplate()))
		}
	}
	var query map[string][]string
	out := make([]any, len(rt.params))
	for i, p := range rt.params {
		var v any
		found := false
		switch p.src.Kind {
		case argsource.FromBody:
			if err := parse(); err != nil {
				return nil, err
			}
			v, found = field(doc, p.src.Field)
		case argsource.FromPath:
			for j, name := range rt.vars {
				if name == p.src.Name {
					v, found = unescape(vars[j+1]), true
				}
			}
		case argsource.FromQuery:
			if query == nil {
				query = r.URL.Query()
			}
			if vs, ok := query[p.src.Name]; ok && len(vs) > 0 {
				v, found = vs[0], true
			}
		case argsource.FromHeader:
			if vs := r.Header.Values(p.src.Name); len(vs) > 0 {
				v, found = vs[0], true
			}
		}
		if !found && !p.optional {
			return nil, badRequest(http.StatusBadRequest, fmt.Sprintf("argument %d (%s) is missing", i, p.from))
		}
		out[i] = v
	}
	return out, nil
}

func unescape(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}

// field walks a JSON document down a field path; an empty path is the
// whole document (a missing body is then missing).
func field(doc any, path []string) (any, bool) {
	if doc == nil {
		return nil, false
	}
	for _, f := range path {
		m, ok := doc.(map[string]any)
		if !ok {
			return nil, false
		}
		if doc, ok = m[f]; !ok {
			return nil, false
		}
	}
	return doc, true
}

// types picks the parameter types: the route's when it declares every
// one, else a published signature of the right arity (the route's own
// types winning where given), else inferred from the values. It returns
// nil when signatures are known and none takes that many arguments.
func (rt *Route) types(sigs [][]string, values []any, fallback []string) ([]string, string) {
	declared := len(rt.params) > 0
	for _, p := range rt.params {
		if p.typ == "" {
			declared = false
		}
	}
	if len(rt.params) == 0 && len(rt.cfg.GetTypes()) > 0 {
		if len(values) != len(rt.cfg.GetTypes()) {
			return nil, ""
		}
		return rt.cfg.GetTypes(), "route"
	}
	if declared {
		out := make([]string, len(rt.params))
		for i, p := range rt.params {
			out[i] = p.typ
		}
		return out, "route"
	}
	var match []string
	matches := 0
	for _, s := range sigs {
		if len(s) == len(values) {
			match = s
			matches++
		}
	}
	if matches > 0 {
		// Overloads of one arity: the first whose types take the values.
		if matches > 1 {
			for _, s := range sigs {
				if len(s) == len(values) && fits(s, values) {
					match = s
					break
				}
			}
		}
		out := make([]string, len(values))
		for i := range out {
			out[i] = match[i]
			if i < len(rt.params) && rt.params[i].typ != "" {
				out[i] = rt.params[i].typ
			}
		}
		return out, "signature"
	}
	if len(sigs) > 0 && !hasEmpty(sigs) {
		return nil, ""
	}
	out := make([]string, len(values))
	source := "inferred"
	for i, v := range values {
		out[i] = dubbo.InferType(v)
		if i < len(fallback) && fallback[i] != "" {
			out[i], source = fallback[i], "proto"
		}
		if i < len(rt.params) && rt.params[i].typ != "" {
			out[i] = rt.params[i].typ
		}
	}
	return out, source
}

// hasEmpty reports a signature list that only names methods (dubbo-go
// publishes no types): it says nothing of the arity.
func hasEmpty(sigs [][]string) bool {
	for _, s := range sigs {
		if len(s) == 0 {
			return true
		}
	}
	return false
}

func fits(types []string, values []any) bool {
	for i, t := range types {
		if _, err := dubbo.ToHessian(values[i], t); err != nil {
			return false
		}
	}
	return true
}

func arities(sigs [][]string) string {
	var parts []string
	for _, s := range sigs {
		parts = append(parts, fmt.Sprintf("(%s)", strings.Join(s, ", ")))
	}
	return strings.Join(parts, " or ")
}

// traceHeaders are carried into attachments whatever the config says:
// the W3C trace context and the request's id.
var traceHeaders = []string{"traceparent", "tracestate", "x-request-id"}

func (rt *Route) attachments(r *http.Request) map[string]string {
	out := map[string]string{}
	for _, h := range traceHeaders {
		if v := r.Header.Get(h); v != "" {
			out[h] = v
		}
	}
	for _, h := range rt.headers {
		if v := r.Header.Get(h); v != "" {
			out[h] = v
		}
	}
	for k, vs := range r.Header {
		lk := strings.ToLower(k)
		if name, ok := strings.CutPrefix(lk, rt.prefix); ok && name != "" && len(vs) > 0 {
			out[name] = vs[0]
		}
		// Triple's own headers (tri-unit-info, ...) travel as attachments,
		// as a Triple provider reads them; the service's identity does not.
		if strings.HasPrefix(lk, "tri-") && lk != "tri-service-version" && lk != "tri-service-group" && len(vs) > 0 {
			out[lk] = vs[0]
		}
	}
	return out
}

// Answer writes a successful result as JSON, with the provider's
// attachments as prefixed headers. An error comes before anything is
// written (a failed write is the caller's leaving: nothing to answer).
func (rt *Route) Answer(w http.ResponseWriter, resp *dubbo.Response) error {
	b, err := json.Marshal(dubbo.ToJSON(resp.Value, rt.json))
	if err != nil {
		return fmt.Errorf("dubbo bridge: the answer as JSON: %w", err)
	}
	h := w.Header()
	for k, v := range resp.Attachments {
		if validHeader(k) && validValue(v) {
			h.Set(rt.prefix+k, v)
		}
	}
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(b, '\n'))
	return nil
}

func validHeader(k string) bool {
	if k == "" {
		return false
	}
	for _, c := range k {
		if c <= ' ' || c >= 0x7f || strings.ContainsRune("()<>@,;:\\\"/[]?={}", c) {
			return false
		}
	}
	return true
}

func validValue(v string) bool {
	for _, c := range v {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// BadRequest is a client's mistake found before calling: the status to
// answer with and why.
type BadRequest struct {
	Status int
	// GRPC is the code for a gRPC caller (default: INVALID_ARGUMENT, or
	// NOT_FOUND with status 404).
	GRPC codes.Code
	Msg  string
}

func (e *BadRequest) Error() string { return e.Msg }

func badRequest(status int, msg string) error {
	code := codes.InvalidArgument
	if status == http.StatusNotFound {
		code = codes.NotFound
	}
	return &BadRequest{Status: status, GRPC: code, Msg: msg}
}

// IsBadRequest unwraps a *BadRequest.
func IsBadRequest(err error) (*BadRequest, bool) {
	var b *BadRequest
	ok := errors.As(err, &b)
	return b, ok
}

// ExceptionStatus is the HTTP status the route maps an exception class to
// (500 by default).
func (rt *Route) ExceptionStatus(class string) int {
	if s, ok := rt.cfg.GetExceptionStatus()[class]; ok {
		return int(s)
	}
	return http.StatusInternalServerError
}
