package server

import (
	"context"
	"fmt"

	"github.com/apache/dubbo-go-hessian2/java_exception"

	"github.com/meshgate/meshgate/dubbo"
	"github.com/meshgate/meshgate/dubbo/httpapp"
	"github.com/meshgate/meshgate/registry/announce"
	"github.com/meshgate/meshgate/server/localapp"
)

// callApp serves one Dubbo2 call of svc by the local app: a method it does
// not declare is a NoSuchMethodException, the app's answer becomes the
// value or an exception, an app that cannot be reached a Dubbo error
// status the consumer's failover acts on.
func (p *dubboProxy) callApp(ctx context.Context, f *dubbo.Frame, inv *dubbo.Invocation, app *localapp.App, svc *httpapp.Service) ([]byte, byte) {
	inv, ok := inv.Unwrapped()
	if !ok {
		return statusAnswer(f.ID(), dubbo.StatusBadRequest, "a generic call ($invoke) needs a method name, its parameter types and its arguments"), dubbo.StatusBadRequest
	}
	m, err := svc.Lookup(inv)
	if err != nil {
		return exceptionAnswer(f.ID(), err), dubbo.StatusOK
	}
	res := app.Call(ctx, m, inv.Args, inv.Attachments, inv.Timeout(app.DefaultCallTimeout()))
	if fl := res.Failure; fl != nil {
		st := failureStatus(fl.Kind)
		return statusAnswer(f.ID(), st, fl.Message), st
	}
	b, err := dubbo.EncodeResponse(f.ID(), res.Value, res.Exception, res.Attachments)
	if err != nil {
		b = exceptionAnswer(f.ID(), java_exception.NewThrowable(fmt.Sprintf("java.lang.IllegalStateException: the local app's answer to %s cannot be sent as hessian2: %v", m.Name, err)))
	}
	return b, dubbo.StatusOK
}

// exceptionAnswer is an OK answer carrying err as the method's exception.
func exceptionAnswer(id int64, err error) []byte {
	b, encErr := dubbo.EncodeResponse(id, nil, err, nil)
	if encErr != nil {
		return statusAnswer(id, dubbo.StatusServerError, err.Error())
	}
	return b
}

// serveMetadata answers a consumer's call of the MetadataService that
// application-level discovery makes (getMetadataInfo(revision)), ok false
// for a call of another service.
func serveMetadata(app *localapp.App, f *dubbo.Frame, inv *dubbo.Invocation) ([]byte, bool) {
	m := app.Metadata()
	if m == nil || inv.Service.Interface != announce.MetadataServiceName || (inv.Service.Group != "" && inv.Service.Group != m.App) {
		return nil, false
	}
	if inv.Service.Method != "getMetadataInfo" || len(inv.Args) != 1 {
		return exceptionAnswer(f.ID(), java_exception.NewThrowable(fmt.Sprintf(
			"java.lang.NoSuchMethodException: %s.%s (meshgate answers getMetadataInfo(java.lang.String))", announce.MetadataServiceName, inv.Service.Method))), true
	}
	var v any // another revision: null, as Dubbo answers one it does not have
	if rev, _ := inv.Args[0].(string); rev == m.Revision {
		v = m
	}
	b, err := dubbo.EncodeResponse(f.ID(), v, nil, nil)
	if err != nil {
		return statusAnswer(f.ID(), dubbo.StatusServerError, "encoding the metadata: "+err.Error()), true
	}
	return b, true
}

// failureStatus is the Dubbo2 status of a call the app did not answer.
func failureStatus(k localapp.FailureKind) byte {
	switch k {
	case localapp.NotConfigured:
		return dubbo.StatusServiceNotFound
	case localapp.BadArguments:
		return dubbo.StatusBadRequest
	case localapp.TimedOut:
		return dubbo.StatusServerTimeout
	}
	return dubbo.StatusServiceError // unreachable
}
