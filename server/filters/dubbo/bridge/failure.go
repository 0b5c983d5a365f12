package bridge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/apache/dubbo-go-hessian2/java_exception"
	"google.golang.org/grpc/codes"

	"github.com/meshgate/meshgate/dubbo"
	"github.com/meshgate/meshgate/governance"
	"github.com/meshgate/meshgate/triple"
)

// Failure is how a failed call is answered and what it says of the host.
type Failure struct {
	HTTP int
	GRPC codes.Code
	Msg  string
	// Exception is the provider's exception: class and message.
	Exception *Exception
	// DubboStatus names a Dubbo response status other than OK.
	DubboStatus string
	// Outcome is the attempt's result for outlier detection, breakers and
	// retries.
	Outcome governance.Outcome
}

// Exception is a Java exception a provider threw.
type Exception struct {
	Class   string `json:"class,omitempty"`
	Message string `json:"message"`
}

// Classify maps a call's error onto the answer a client can act on. An
// exception the method threw is the application's answer, not the host's
// failure: it is not held against the host.
func (rt *Route) Classify(ctx context.Context, err error, cluster, host string) Failure {
	var (
		ex   *dubbo.ExceptionError
		st   *dubbo.StatusError
		ce   *dubbo.ConnectError
		tce  *triple.ConnectError
		enc  *dubbo.EncodeError
		tenc *triple.EncodeError
		thr  java_exception.Throwabler
		tst  *triple.StatusError
		fail Failure
	)
	where := fmt.Sprintf("(cluster %q, host %s)", cluster, host)
	switch {
	case errors.As(err, &ex):
		e := exceptionOf(ex.Err)
		fail = Failure{HTTP: rt.ExceptionStatus(e.Class), GRPC: codes.Unknown, Exception: e,
			Msg: fmt.Sprintf("the provider threw %s: %s", e.Class, e.Message), Outcome: governance.Outcome{Status: 200}}
	case errors.As(err, &st):
		fail = statusFailure(st)
		// The provider's text carries its stack trace: the first line says
		// what happened, the rest stays in the provider's logs.
		detail := ""
		if st.Err != nil {
			detail = firstLine(strings.TrimPrefix(st.Err.Error(), "java exception:"))
		}
		fail.Msg = fmt.Sprintf("the provider answered %s %s: %s", dubbo.StatusName(st.Status), where, detail)
		if errors.As(st.Err, &thr) {
			fail.Exception = exceptionOf(thr)
		}
	case errors.As(err, &tst):
		// A Triple provider's status: UNKNOWN is what a method's error
		// becomes (the application's answer); the others say what failed.
		hs := governance.HTTPStatusFromGRPC(int(tst.Code))
		fail = Failure{HTTP: hs, GRPC: tst.Code, Msg: fmt.Sprintf("the provider answered %s %s: %s", tst.Code, where, firstLine(tst.Message)),
			Outcome: governance.Outcome{Status: hs}}
		switch tst.Code {
		case codes.Unknown:
			fail.HTTP, fail.Outcome = 500, governance.Outcome{Status: 200}
			fail.Exception = &Exception{Message: firstLine(tst.Message)}
		case codes.Unimplemented:
			// No such method or service at the provider: for a REST
			// caller, a 404 as the Dubbo2 path answers.
			fail.HTTP, fail.Outcome = http.StatusNotFound, governance.Outcome{Status: 200}
		case codes.InvalidArgument, codes.NotFound, codes.FailedPrecondition, codes.OutOfRange,
			codes.AlreadyExists, codes.PermissionDenied, codes.Unauthenticated:
			fail.Outcome = governance.Outcome{Status: 200} // the call's fault, not the host's
		case codes.DeadlineExceeded:
			fail.Outcome = governance.Outcome{Local: governance.Timeout}
		}
	case errors.As(err, &enc), errors.As(err, &tenc):
		fail = Failure{HTTP: http.StatusBadRequest, GRPC: codes.InvalidArgument, Msg: enc.Error(), Outcome: governance.Outcome{Status: 200}}
	case errors.As(err, &ce), errors.As(err, &tce):
		cause := err
		if ce != nil {
			cause = ce.Err
		} else if tce != nil {
			cause = tce.Err
		}
		fail = Failure{HTTP: http.StatusServiceUnavailable, GRPC: codes.Unavailable, Outcome: governance.Outcome{Local: governance.ConnectFailure},
			Msg: fmt.Sprintf("upstream connect error %s: %v", where, cause)}
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		fail = Failure{HTTP: http.StatusGatewayTimeout, GRPC: codes.DeadlineExceeded, Outcome: governance.Outcome{Local: governance.Timeout},
			Msg: fmt.Sprintf("upstream request timeout %s", where)}
	case errors.Is(err, context.Canceled):
		fail = Failure{HTTP: 499, GRPC: codes.Canceled, Msg: "the client went away"}
	case errors.Is(err, dubbo.ErrGoingAway):
		fail = Failure{HTTP: http.StatusServiceUnavailable, GRPC: codes.Unavailable, Outcome: governance.Outcome{Local: governance.ConnectFailure},
			Msg: fmt.Sprintf("the provider is shutting down %s", where)}
	case errors.Is(err, dubbo.ErrFrame), errors.Is(err, triple.ErrMalformed):
		fail = Failure{HTTP: http.StatusBadGateway, GRPC: codes.Internal, Outcome: governance.Outcome{Status: http.StatusBadGateway},
			Msg: fmt.Sprintf("the provider's answer is malformed %s: %v", where, err)}
	default:
		// The connection ended under the call: it may have run.
		fail = Failure{HTTP: http.StatusServiceUnavailable, GRPC: codes.Unavailable, Outcome: governance.Outcome{Local: governance.Reset},
			Msg: fmt.Sprintf("upstream reset %s: %v", where, err)}
	}
	return fail
}

// statusFailure maps Dubbo's response statuses.
func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return strings.TrimSpace(s[:i])
	}
	return s
}

func statusFailure(st *dubbo.StatusError) Failure {
	f := Failure{DubboStatus: dubbo.StatusName(st.Status)}
	switch st.Status {
	case 30, 31: // CLIENT_TIMEOUT, SERVER_TIMEOUT
		f.HTTP, f.GRPC = http.StatusGatewayTimeout, codes.DeadlineExceeded
		f.Outcome = governance.Outcome{Local: governance.Timeout}
	case 40: // BAD_REQUEST: the provider could not decode the call
		f.HTTP, f.GRPC = http.StatusBadRequest, codes.InvalidArgument
		f.Outcome = governance.Outcome{Status: 200}
	case 60: // SERVICE_NOT_FOUND
		f.HTTP, f.GRPC = http.StatusNotFound, codes.Unimplemented
		f.Outcome = governance.Outcome{Status: 200}
	case 100: // SERVER_THREADPOOL_EXHAUSTED
		f.HTTP, f.GRPC = http.StatusServiceUnavailable, codes.ResourceExhausted
		f.Outcome = governance.Outcome{Status: http.StatusServiceUnavailable}
	case 35: // CHANNEL_INACTIVE
		f.HTTP, f.GRPC = http.StatusServiceUnavailable, codes.Unavailable
		f.Outcome = governance.Outcome{Local: governance.Reset}
	case 70: // SERVICE_ERROR: the provider failed to run the method
		f.HTTP, f.GRPC = http.StatusInternalServerError, codes.Internal
		f.Outcome = governance.Outcome{Status: http.StatusInternalServerError}
	default: // BAD_RESPONSE, SERVER_ERROR, CLIENT_ERROR, unknown
		f.HTTP, f.GRPC = http.StatusBadGateway, codes.Internal
		f.Outcome = governance.Outcome{Status: http.StatusBadGateway}
	}
	return f
}

func exceptionOf(err error) *Exception {
	var thr java_exception.Throwabler
	if errors.As(err, &thr) {
		e := &Exception{Class: thr.JavaClassName(), Message: dubbo.ExceptionMessage(thr)}
		if strings.HasSuffix(e.Class, ".rpc.service.GenericException") {
			// Java's generic invocation wraps what the method threw:
			// "<class>: <message>" then the stack trace.
			first := firstLine(e.Message)
			if cls, msg, ok := strings.Cut(first, ": "); ok && !strings.ContainsAny(cls, " \t") {
				return &Exception{Class: cls, Message: msg}
			}
			if first != "" && !strings.ContainsAny(first, " \t") {
				return &Exception{Class: first}
			}
			e.Message = first
		}
		return e
	}
	if err == nil {
		return &Exception{Class: "java.lang.Throwable"}
	}
	return &Exception{Class: "java.lang.Exception", Message: err.Error()}
}
