// Package localapp is the sidecar's inbound side, whatever the consumer
// speaks: a local HTTP/JSON application serving Dubbo services
// (meshgate.filters.dubbo.local_app on a Dubbo listener,
// meshgate.filters.http.local_app for Triple consumers). It compiles the
// LocalApp config, finds a call's service and method, calls the app (with
// the cluster's balancer, breakers and outlier detection) and turns its
// answer into the method's value or exception; the caller frames it for
// its protocol. It also says what the app is announced as in registries.
package localapp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/meshgate/meshgate/dubbo"
	"github.com/meshgate/meshgate/dubbo/httpapp"
	"github.com/meshgate/meshgate/governance"
	"github.com/meshgate/meshgate/proto/descriptors"
	localappv1 "github.com/meshgate/meshgate/proto/meshgate/extensions/filters/dubbo/local_app/v1"
	"github.com/meshgate/meshgate/registry/announce"
	"github.com/meshgate/meshgate/server/cluster"
	"github.com/meshgate/meshgate/server/router"
	"github.com/meshgate/meshgate/server/upstream"
	"github.com/meshgate/meshgate/triple"
)

// App is a compiled LocalApp.
type App struct {
	Cluster string
	// GRPC: the app speaks gRPC; Triple calls are passed to it as they
	// came (Forward), Dubbo2 calls refused.
	GRPC     bool
	target   *cluster.Cluster // nil: not configured (calls answered so)
	services []*httpapp.Service
	timeout  time.Duration
	// Registration registers the app (nil: not registered).
	Registration *localappv1.Registration
	// metadata is what the app's MetadataService answers once its
	// listener's address is known (nil before).
	metadata atomic.Pointer[announce.MetadataInfo]
	// idl are the methods of the services the descriptors define, by
	// interface and method name (IDL Triple calls).
	idl map[string]map[string]protoreflect.MethodDescriptor
	// onUnreachable is told when a call finds the app unreachable (nil:
	// no one listens).
	onUnreachable atomic.Pointer[func()]
}

// SetOnUnreachable sets what a call that finds the app unreachable tells.
func (a *App) SetOnUnreachable(f func()) { a.onUnreachable.Store(&f) }

// DefaultTimeout bounds a call to the app when the consumer gives none.
const DefaultTimeout = 15 * time.Second

// maxAnswer bounds an app's answer body.
const maxAnswer = 16 << 20

// Compile builds an App; resolve finds the app's cluster.
func Compile(la *localappv1.LocalApp, resolve router.Resolver[*cluster.Cluster]) (*App, error) {
	if la.GetCluster() == "" {
		return nil, errors.New("needs the app's cluster")
	}
	out := &App{Cluster: la.GetCluster(), timeout: DefaultTimeout}
	if c, ok := resolve(la.GetCluster()); ok {
		out.target = c
	}
	if d := la.GetTimeout(); d != nil && d.AsDuration() > 0 {
		out.timeout = d.AsDuration()
	}
	for i, s := range la.GetServices() {
		if s.GetInterface() == "" {
			return nil, fmt.Errorf("services[%d]: needs an interface", i)
		}
		svc := &httpapp.Service{Interface: s.GetInterface(), Version: s.GetVersion(), Group: s.GetGroup(), Methods: map[string]*httpapp.Method{}}
		for j, m := range s.GetMethods() {
			if m.GetName() == "" {
				return nil, fmt.Errorf("services[%d].methods[%d]: needs a name", i, j)
			}
			if n := len(m.GetParamNames()); n > 0 && n != len(m.GetParamTypes()) {
				return nil, fmt.Errorf("services[%d].methods[%d] (%s): %d param_names for %d param_types", i, j, m.GetName(), n, len(m.GetParamTypes()))
			}
			if _, dup := svc.Methods[m.GetName()]; dup {
				return nil, fmt.Errorf("services[%d].methods[%d]: %s is declared twice (overloads are not served)", i, j, m.GetName())
			}
			ret := m.GetReturnType()
			if ret == "" {
				ret = "java.lang.Object"
			}
			svc.Methods[m.GetName()] = &httpapp.Method{Name: m.GetName(), ParamTypes: m.GetParamTypes(), ParamNames: m.GetParamNames(),
				ReturnType: ret, HTTPMethod: m.GetHttpMethod(), Path: m.GetPath()}
		}
		out.services = append(out.services, svc)
	}
	out.GRPC = la.GetProtocol() == localappv1.LocalApp_APP_PROTOCOL_GRPC
	if bin := la.GetProtoDescriptorBin(); len(bin) > 0 {
		if out.GRPC {
			return nil, errors.New("proto_descriptor_bin: a gRPC app is passed its calls as they come; descriptors are for an HTTP/JSON app")
		}
		idl, err := idlMethods(bin, out.services)
		if err != nil {
			return nil, fmt.Errorf("proto_descriptor_bin: %w", err)
		}
		out.idl = idl
	}
	if r := la.GetRegistration(); r != nil {
		if err := checkRegistration(r); err != nil {
			return nil, fmt.Errorf("registration: %w", err)
		}
		hc := r.GetHealthCheck()
		if out.GRPC && hc.GetPath() != "" {
			return nil, fmt.Errorf("registration: health_check: a gRPC app is checked with grpc.health.v1 (grpc_service), not GET %s", hc.GetPath())
		}
		if !out.GRPC && hc.GetGrpcService() != "" {
			return nil, errors.New("registration: health_check: grpc_service is for a gRPC app (protocol APP_PROTOCOL_GRPC)")
		}
		out.Registration = r
	}
	return out, nil
}

// idlMethods finds the declared services the descriptors define: each of
// their declared methods must be a unary method of that service.
func idlMethods(bin []byte, services []*httpapp.Service) (map[string]map[string]protoreflect.MethodDescriptor, error) {
	set, err := descriptors.Parse(bin)
	if err != nil {
		return nil, err
	}
	files, err := descriptors.Files(set)
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]protoreflect.MethodDescriptor{}
	for _, svc := range services {
		d, err := files.FindDescriptorByName(protoreflect.FullName(svc.Interface))
		if err != nil {
			continue // not an IDL service: served in the non-IDL form
		}
		sd, ok := d.(protoreflect.ServiceDescriptor)
		if !ok {
			return nil, fmt.Errorf("%s is a %T in the descriptors, not a service", svc.Interface, d)
		}
		out[svc.Interface] = map[string]protoreflect.MethodDescriptor{}
		for name := range svc.Methods {
			md := sd.Methods().ByName(protoreflect.Name(name))
			if md == nil {
				return nil, fmt.Errorf("service %s has no method %s", svc.Interface, name)
			}
			if md.IsStreamingClient() || md.IsStreamingServer() {
				return nil, fmt.Errorf("%s.%s streams: only unary methods are served", svc.Interface, name)
			}
			out[svc.Interface][name] = md
		}
	}
	if len(out) == 0 {
		return nil, errors.New("defines none of the declared services")
	}
	return out, nil
}

// IDLMethod is the descriptor of an IDL method the app serves (nil: the
// method is served in the non-IDL form).
func (a *App) IDLMethod(iface, method string) protoreflect.MethodDescriptor {
	return a.idl[iface][method]
}

// checkRegistration refuses a registration that cannot be carried out.
func checkRegistration(r *localappv1.Registration) error {
	if r.GetApplication() == "" {
		return errors.New("needs an application name")
	}
	if len(r.GetRegistries()) == 0 {
		return errors.New("needs at least one registry")
	}
	for i, reg := range r.GetRegistries() {
		switch {
		case reg.GetZookeeper() != nil:
			if len(reg.GetZookeeper().GetServers()) == 0 {
				return fmt.Errorf("registries[%d]: zookeeper needs servers", i)
			}
		case reg.GetNacos() != nil:
			n := reg.GetNacos()
			if len(n.GetServers()) == 0 {
				return fmt.Errorf("registries[%d]: nacos needs servers", i)
			}
			if env := n.GetPasswordEnv(); env != "" {
				if _, ok := os.LookupEnv(env); !ok {
					return fmt.Errorf("registries[%d]: nacos password_env: %s is not set", i, env)
				}
			}
		default:
			return fmt.Errorf("registries[%d]: give zookeeper or nacos", i)
		}
	}
	if p := r.GetHealthCheck().GetPath(); p != "" && p[0] != '/' {
		return fmt.Errorf("health_check.path %q does not start with /", p)
	}
	return nil
}

// Service is the app's service a call names, nil when the app serves none.
func (a *App) Service(s dubbo.Service) *httpapp.Service {
	for _, svc := range a.services {
		if svc.Interface == s.Interface && (svc.Version == "" || svc.Version == s.Version) && (svc.Group == "" || svc.Group == s.Group) {
			return svc
		}
	}
	return nil
}

// DefaultCallTimeout is the app's bound for a call whose consumer gives
// none.
func (a *App) DefaultCallTimeout() time.Duration { return a.timeout }

// FailureKind says why the app gave no answer.
type FailureKind int

const (
	// NotConfigured: the app's cluster is not in the config.
	NotConfigured FailureKind = iota + 1
	// BadArguments: the arguments cannot be sent as JSON.
	BadArguments
	// Unreachable: the app could not be reached or broke off.
	Unreachable
	// TimedOut: the app did not answer within the call's bound.
	TimedOut
)

// Failure is a call the app did not answer.
type Failure struct {
	Kind    FailureKind
	Message string
}

func (f *Failure) Error() string { return f.Message }

// Result is the app's answer to a call: the method's value or its
// exception (Exception non-nil), or no answer (Failure non-nil).
type Result struct {
	Value     any
	Exception error
	Failure   *Failure
	// Attachments are what the app's answer says for the consumer: its
	// Dubbo-Attachment-<key> headers, by lower-case key.
	Attachments map[string]string
}

// Call calls method m of the app with a consumer's arguments and
// attachments, bounded by timeout.
func (a *App) Call(ctx context.Context, m *httpapp.Method, args []any, attachments map[string]string, timeout time.Duration) Result {
	body, err := m.RequestBody(args)
	if err != nil {
		return Result{Failure: &Failure{Kind: BadArguments, Message: "the arguments as JSON: " + err.Error()}}
	}
	ans, fail := a.exchange(ctx, m, body, attachments, timeout)
	if fail != nil {
		return Result{Failure: fail}
	}
	v, exc := m.Answer(ans.status, ans.contentType, ans.body)
	return Result{Value: v, Exception: exc, Attachments: ans.attachments}
}

// CallIDL calls method m with a Triple consumer's protobuf request (the
// IDL form; md describes it): the request message as JSON is the app's
// body, the app's JSON answer read as md's output the answer message (the
// Result's Value, []byte); its Exception says why an app that failed or
// answered what is not that message gave none.
func (a *App) CallIDL(ctx context.Context, m *httpapp.Method, md protoreflect.MethodDescriptor, msg []byte, attachments map[string]string,
	timeout time.Duration) Result {
	in := dynamicpb.NewMessage(md.Input())
	if err := proto.Unmarshal(msg, in); err != nil {
		return Result{Failure: &Failure{Kind: BadArguments, Message: fmt.Sprintf("the request is not a %s: %v", md.Input().FullName(), err)}}
	}
	body, err := protojson.Marshal(in)
	if err != nil {
		return Result{Failure: &Failure{Kind: BadArguments, Message: fmt.Sprintf("the request as JSON: %v", err)}}
	}
	ans, fail := a.exchange(ctx, m, body, attachments, timeout)
	if fail != nil {
		return Result{Failure: fail}
	}
	if _, err := m.AnswerJSON(ans.status, ans.contentType, ans.body); err != nil {
		return Result{Exception: err, Attachments: ans.attachments}
	}
	out := dynamicpb.NewMessage(md.Output())
	if err := protojson.Unmarshal(ans.body, out); err != nil {
		return Result{Exception: fmt.Errorf("java.lang.IllegalStateException: the local app's answer to %s is not a %s: %v", m.Name, md.Output().FullName(), err),
			Attachments: ans.attachments}
	}
	b, err := proto.Marshal(out)
	if err != nil {
		return Result{Failure: &Failure{Kind: BadArguments, Message: err.Error()}}
	}
	return Result{Value: b, Attachments: ans.attachments}
}

// appAnswer is what the app answered a call.
type appAnswer struct {
	status      int
	contentType string
	body        []byte
	attachments map[string]string
}

// attachmentPrefix marks the headers that carry attachments, both ways.
const attachmentPrefix = "Dubbo-Attachment-"

// reservedAttachment: a key the protocols themselves write (Dubbo's
// version, the call's identity; Triple's and HTTP/2's own headers), which
// an app's answer does not set.
func reservedAttachment(k string) bool {
	switch k {
	case "dubbo", "path", "interface", "version", "group", "timeout", "content-type", "content-length", "te", "trailer",
		"connection", "transfer-encoding", "keep-alive", "upgrade":
		return true
	}
	return strings.HasPrefix(k, "grpc-") || strings.HasPrefix(k, "tri-") || strings.HasPrefix(k, ":")
}

// answerAttachments are the attachments an app's answer carries.
func answerAttachments(h http.Header) map[string]string {
	var out map[string]string
	for k, vs := range h {
		if len(vs) == 0 || len(k) <= len(attachmentPrefix) || !strings.EqualFold(k[:len(attachmentPrefix)], attachmentPrefix) {
			continue
		}
		key := strings.ToLower(k[len(attachmentPrefix):])
		if reservedAttachment(key) {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[key] = vs[0]
	}
	return out
}

// exchange sends one request of m with body to the app (a host of its
// cluster, as its balancer picks) and reads the answer, or says why there
// is none.
func (a *App) exchange(ctx context.Context, m *httpapp.Method, body []byte, attachments map[string]string, timeout time.Duration) (appAnswer, *Failure) {
	if a.target == nil {
		return appAnswer{}, &Failure{Kind: NotConfigured, Message: fmt.Sprintf("the local app's cluster %q is not configured", a.Cluster)}
	}
	cl := a.target
	verb, path := m.Request()
	var ans appAnswer
	var fail *Failure
	attempt := func(parent context.Context, at *cluster.Attempt, _ int) upstream.Result {
		actx, cancel := context.WithTimeout(parent, timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(actx, verb, cl.Scheme()+"://"+at.Host.Address+path, bytes.NewReader(body))
		if err != nil {
			fail = &Failure{Kind: BadArguments, Message: err.Error()}
			return upstream.Result{}
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		AttachmentHeaders(req.Header, attachments)
		resp, err := cl.Transport(false).RoundTrip(req)
		var out []byte
		if err == nil {
			out, err = io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
			resp.Body.Close()
			if err == nil && len(out) > maxAnswer {
				err = fmt.Errorf("the answer is over %d bytes", maxAnswer)
			}
		}
		if err != nil {
			var res upstream.Result
			res, fail = a.tryFailed(err, actx, parent)
			return res
		}
		fail, ans = nil, appAnswer{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), body: out, attachments: answerAttachments(resp.Header)}
		return upstream.Result{Outcome: governance.Outcome{Status: resp.StatusCode}, Judge: true}
	}
	call := upstream.Call{Cluster: cl, Pick: governance.PickInfo{Hash: rand.Uint64()}}
	if _, _, err := upstream.Run(ctx, call, attempt); err != nil && fail == nil && ans.status == 0 {
		return appAnswer{}, &Failure{Kind: Unreachable, Message: "the local app: " + err.Error()}
	}
	if fail != nil {
		return appAnswer{}, fail
	}
	return ans, nil
}

// AttachmentHeaders carry a call's attachments (Dubbo2) or Triple headers
// to the app: the trace context and request id as themselves, the rest as
// Dubbo-Attachment-<k>; what only describes the call on the wire is left
// out.
func AttachmentHeaders(h http.Header, att map[string]string) {
	for k, v := range att {
		switch lk := strings.ToLower(k); lk {
		case "path", "interface", "version", "group", "timeout", "dubbo", "input", "generic":
		case "traceparent", "tracestate", "x-request-id", "b3":
			h.Set(lk, v)
		default:
			if strings.HasPrefix(lk, "x-b3-") {
				h.Set(lk, v)
				continue
			}
			h.Set(attachmentPrefix+k, v)
		}
	}
}

// Provider is what the app is announced as when its listener is bound to
// addr: the advertised host, the bound port, the declared services.
func (a *App) Provider(addr net.Addr, started time.Time) (*announce.Provider, error) {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return nil, fmt.Errorf("listener address %v is not TCP", addr)
	}
	host := a.Registration.GetAdvertiseHost()
	if host == "" {
		host = advertisedIP(tcp.IP)
	}
	p := &announce.Provider{App: a.Registration.GetApplication(), Host: host, Port: uint32(tcp.Port), Started: started}
	for _, svc := range a.services {
		s := announce.Service{Interface: svc.Interface, Version: svc.Version, Group: svc.Group}
		for _, name := range slices.Sorted(maps.Keys(svc.Methods)) {
			m := svc.Methods[name]
			s.Methods = append(s.Methods, announce.Method{Name: m.Name, ParamTypes: m.ParamTypes, ReturnType: m.ReturnType})
		}
		p.Services = append(p.Services, s)
	}
	return p, nil
}

// advertisedIP is the host to announce for a listener on ip: ip itself,
// or for a wildcard address the first non-loopback IPv4 address of the
// machine (as Dubbo does), else loopback.
func advertisedIP(ip net.IP) string {
	if !ip.IsUnspecified() {
		return ip.String()
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil && !n.IP.IsLinkLocalUnicast() {
				return n.IP.String()
			}
		}
	}
	return "127.0.0.1"
}

// HealthCheck probes the app on its cluster's first host: GET hc's path
// (2xx: healthy), or for a gRPC app grpc.health.v1.Health/Check (SERVING).
func (a *App) HealthCheck(ctx context.Context, hc *localappv1.HealthCheck, timeout time.Duration) error {
	if a.target == nil {
		return fmt.Errorf("the local app's cluster %q is not configured", a.Cluster)
	}
	hosts := a.target.Hosts()
	if len(hosts) == 0 {
		return fmt.Errorf("the local app's cluster %q has no endpoint", a.Cluster)
	}
	if timeout <= 0 {
		timeout = time.Second
	}
	if a.GRPC {
		return grpcHealth(ctx, a.target, hosts[0].Address, hc.GetGrpcService(), timeout)
	}
	client := &http.Client{Transport: a.target.Transport(false)}
	return announce.HTTPCheck(client, a.target.Scheme()+"://"+hosts[0].Address+hc.GetPath(), timeout)(ctx)
}

// grpcHealth asks a gRPC server's grpc.health.v1 about service.
func grpcHealth(ctx context.Context, cl *cluster.Cluster, addr, service string, timeout time.Duration) error {
	req, err := proto.Marshal(&healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	msg, _, err := triple.CallProto(ctx, cl.Transport(true), cl.Scheme(), addr, "/grpc.health.v1.Health/Check", req, nil, timeout)
	if err != nil {
		return fmt.Errorf("grpc.health.v1 check of %q at %s: %w", service, addr, err)
	}
	var resp healthpb.HealthCheckResponse
	if err := proto.Unmarshal(msg, &resp); err != nil {
		return fmt.Errorf("grpc.health.v1 check of %q at %s: %w", service, addr, err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("grpc.health.v1 says %q at %s is %s", service, addr, resp.GetStatus())
	}
	return nil
}

// tryFailed is a try that got no answer from the app (err): timed out when
// the try's own bound (tctx) ran out while the caller (parent) still
// waits, else unreachable, which also runs a health check at once.
func (a *App) tryFailed(err error, tctx, parent context.Context) (upstream.Result, *Failure) {
	kind, local := Unreachable, governance.Reset
	if errors.Is(err, context.DeadlineExceeded) || tctx.Err() != nil && parent.Err() == nil {
		kind, local = TimedOut, governance.Timeout
	}
	if f := a.onUnreachable.Load(); f != nil && kind == Unreachable && parent.Err() == nil {
		(*f)()
	}
	return upstream.Result{Outcome: governance.Outcome{Local: local}, Judge: parent.Err() == nil, Failed: true},
		&Failure{Kind: kind, Message: "the local app: " + err.Error()}
}

// Forward passes a Triple consumer's unary call to a gRPC app as it came
// (the path, the message, the Triple headers) and its answer back: the
// status, the message, the trailers. The call's body is read whole first
// (maxBody).
func (a *App) Forward(w http.ResponseWriter, r *http.Request, body []byte, timeout time.Duration) *Failure {
	if a.target == nil {
		return &Failure{Kind: NotConfigured, Message: fmt.Sprintf("the local app's cluster %q is not configured", a.Cluster)}
	}
	cl := a.target
	var fail *Failure
	var resp *http.Response
	done := func() {} // ends the answering try's context once its body is copied
	attempt := func(parent context.Context, at *cluster.Attempt, _ int) upstream.Result {
		ctx, cancel := context.WithTimeout(parent, timeout)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, cl.Scheme()+"://"+at.Host.Address+r.URL.Path, bytes.NewReader(body))
		if err != nil {
			cancel()
			fail = &Failure{Kind: BadArguments, Message: err.Error()}
			return upstream.Result{}
		}
		for k, vs := range r.Header {
			req.Header[k] = vs
		}
		req.ContentLength = int64(len(body))
		out, err := cl.Transport(true).RoundTrip(req)
		if err != nil {
			cancel()
			var res upstream.Result
			res, fail = a.tryFailed(err, ctx, parent)
			return res
		}
		fail, resp, done = nil, out, cancel // the body is read below, within the try's bound
		return upstream.Result{Outcome: governance.Outcome{Status: out.StatusCode}, Judge: true}
	}
	call := upstream.Call{Cluster: cl, Pick: governance.PickInfo{Hash: rand.Uint64()}}
	if _, _, err := upstream.Run(r.Context(), call, attempt); err != nil && resp == nil && fail == nil {
		return &Failure{Kind: Unreachable, Message: "the local app: " + err.Error()}
	}
	defer done()
	if resp == nil {
		return fail
	}
	defer resp.Body.Close()
	h := w.Header()
	for k, vs := range resp.Header {
		h[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	if n, _ := io.Copy(w, io.LimitReader(resp.Body, maxAnswer+1)); n > maxAnswer {
		// The answer is cut: its status must say so, not the app's.
		h.Set(http.TrailerPrefix+"Grpc-Status", strconv.Itoa(int(codes.ResourceExhausted)))
		h.Set(http.TrailerPrefix+"Grpc-Message", fmt.Sprintf("the local app's answer is over %d bytes", maxAnswer))
		return nil
	}
	for k, vs := range resp.Trailer {
		for _, v := range vs {
			h.Add(http.TrailerPrefix+k, v)
		}
	}
	return nil
}

// Metadata is the MetadataInfo the app is announced with (nil until its
// listener is bound).
func (a *App) Metadata() *announce.MetadataInfo { return a.metadata.Load() }

// SetMetadata records the MetadataInfo the app is announced with.
func (a *App) SetMetadata(m *announce.MetadataInfo) { a.metadata.Store(m) }
