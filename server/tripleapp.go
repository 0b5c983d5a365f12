package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/apache/dubbo-go-hessian2/java_exception"
	"golang.org/x/net/http/httpguts"
	"google.golang.org/grpc/codes"

	"github.com/meshgate/meshgate/dubbo"
	"github.com/meshgate/meshgate/grpcframe"
	"github.com/meshgate/meshgate/server/localapp"
	"github.com/meshgate/meshgate/server/wire"
	"github.com/meshgate/meshgate/triple"
)

// maxTripleRequest bounds a Triple consumer's request (Dubbo's payload
// default).
const maxTripleRequest = 8 << 20

// serveTripleApp serves a Triple consumer's call of the local app on a
// Dubbo listener's port (Dubbo 3 serves dubbo and tri on one port alike):
// the non-IDL form, POST /<interface>/<method> with a TripleRequestWrapper
// of hessian2 arguments; the answer is a TripleResponseWrapper, the app's
// exception a gRPC status saying it.
func (p *dubboProxy) serveTripleApp(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	app := p.app
	// The route is the declared method a call names ("" until it is one:
	// the path is the caller's, neither bounded nor UTF-8).
	route, status := "", int(codes.OK)
	defer func() {
		p.srv.metrics.Request(p.listener, route, app.Cluster, status, -1, time.Since(start))
	}()
	fail := func(c codes.Code, msg string) {
		status = int(c)
		wire.WriteGRPCStatus(w, c, msg)
	}
	if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
		fail(codes.Unimplemented, fmt.Sprintf("this Dubbo port serves Triple's gRPC form (POST, application/grpc), not %s %q", r.Method, r.Header.Get("Content-Type")))
		return
	}
	iface, method, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if !ok || iface == "" || method == "" || strings.Contains(method, "/") {
		fail(codes.Unimplemented, fmt.Sprintf("%s is not /<interface>/<method>", r.URL.Path))
		return
	}
	inv := &dubbo.Invocation{Service: dubbo.Service{Interface: iface, Method: method,
		Version: r.Header.Get("Tri-Service-Version"), Group: r.Header.Get("Tri-Service-Group")}}
	svc := app.Service(inv.Service)
	if svc == nil {
		fail(codes.Unimplemented, fmt.Sprintf("service %s (version %q, group %q) is not served here", iface, inv.Service.Version, inv.Service.Group))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxTripleRequest+grpcframe.HeaderLen+1))
	if err != nil {
		fail(codes.Canceled, "reading the request: "+err.Error())
		return
	}
	timeout := app.DefaultCallTimeout()
	if v := r.Header.Get("Grpc-Timeout"); v != "" {
		d, err := wire.ParseGRPCTimeout(v)
		if err != nil {
			// As the gateway's own gRPC routes answer it: never a call
			// without the deadline its caller meant to set.
			fail(codes.InvalidArgument, err.Error())
			return
		}
		if d > 0 {
			timeout = d
		}
	}
	if app.GRPC {
		m := svc.Methods[method]
		if m == nil {
			fail(codes.Unimplemented, fmt.Sprintf("%s.%s is not a method the local app serves", iface, method))
			return
		}
		if len(body) > maxTripleRequest+grpcframe.HeaderLen {
			fail(codes.ResourceExhausted, fmt.Sprintf("the request is over %d bytes", maxTripleRequest))
			return
		}
		route = svc.Interface + "." + m.Name
		if fl := app.Forward(w, r, body, timeout); fl != nil {
			fail(failureCode(fl), fl.Message)
		}
		return
	}
	msg, ok := grpcframe.Single(body)
	if !ok {
		fail(codes.InvalidArgument, fmt.Sprintf("the request is not one uncompressed message of at most %d bytes", maxTripleRequest))
		return
	}
	if md := app.IDLMethod(svc.Interface, method); md != nil {
		route = svc.Interface + "." + method
		res := app.CallIDL(r.Context(), svc.Methods[method], md, msg, triple.Attachments(r.Header), timeout)
		switch {
		case res.Failure != nil:
			fail(failureCode(res.Failure), res.Failure.Message)
		case res.Exception != nil:
			fail(codes.Unknown, exceptionText(res.Exception))
		default:
			answer, _ := res.Value.([]byte)
			writeGRPCAnswer(w, r, answer, res.Attachments)
		}
		return
	}
	if inv.Args, inv.Types, err = triple.DecodeRequest(msg); err != nil {
		c := codes.InvalidArgument
		if errors.Is(err, triple.ErrSerialization) {
			c = codes.Unimplemented
		}
		fail(c, "a non-IDL Triple call (TripleRequestWrapper, hessian2): "+err.Error())
		return
	}
	m, err := svc.Lookup(inv)
	if err != nil {
		fail(codes.Unimplemented, exceptionText(err))
		return
	}
	route = svc.Interface + "." + m.Name
	res := app.Call(r.Context(), m, inv.Args, triple.Attachments(r.Header), timeout)
	switch {
	case res.Failure != nil:
		fail(failureCode(res.Failure), res.Failure.Message)
		return
	case res.Exception != nil:
		fail(codes.Unknown, exceptionText(res.Exception))
		return
	}
	out, err := triple.EncodeResponse(res.Value)
	if err != nil {
		fail(codes.Internal, fmt.Sprintf("java.lang.IllegalStateException: the local app's answer to %s cannot be sent as hessian2: %v", m.Name, err))
		return
	}
	writeGRPCAnswer(w, r, out, res.Attachments)
}

// writeGRPCAnswer sends one message and an OK status, the app's
// attachments as headers (Triple's).
func writeGRPCAnswer(w http.ResponseWriter, r *http.Request, msg []byte, attachments map[string]string) {
	h := w.Header()
	for k, v := range attachments {
		if httpguts.ValidHeaderFieldName(k) && httpguts.ValidHeaderFieldValue(v) {
			h.Set(k, v)
		}
	}
	h.Set("Content-Type", r.Header.Get("Content-Type"))
	h.Set("Trailer", "Grpc-Status, Grpc-Message")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(grpcframe.Append(make([]byte, 0, grpcframe.HeaderLen+len(msg)), 0, msg))
	wire.SetGRPCTrailers(w, codes.OK, "")
}

// exceptionText is what a Java exception says (its message names its
// class), for a gRPC status.
func exceptionText(err error) string {
	var t java_exception.Throwabler
	if errors.As(err, &t) {
		return dubbo.ExceptionMessage(t)
	}
	return err.Error()
}

// failureCode is the gRPC status of a call the app did not answer.
func failureCode(f *localapp.Failure) codes.Code {
	switch f.Kind {
	case localapp.BadArguments:
		return codes.InvalidArgument
	case localapp.TimedOut:
		return codes.DeadlineExceeded
	}
	return codes.Unavailable // not configured, unreachable: another provider may serve it
}
