package dubbo

import (
	"net/http"

	"github.com/meshgate/meshgate/server/filters/dubbo/bridge"
	"github.com/meshgate/meshgate/server/router"
	"github.com/meshgate/meshgate/server/wire"
	"google.golang.org/grpc/codes"
)

// bridgeError answers a bridged call's failure in the caller's protocol:
// gRPC status, Triple's unary error, or the JSON error.
func bridgeError(w http.ResponseWriter, r *http.Request, httpCode int, grpcCode codes.Code, msg string) {
	if isTripleUnary(r) {
		wire.WriteTripleError(w, grpcCode, msg)
		return
	}
	wire.WriteError(w, r, httpCode, grpcCode, msg)
}

// writeDubboFailure answers with the failure: for HTTP, the usual JSON
// error with the exception and Dubbo status added.
func writeDubboFailure(w http.ResponseWriter, r *http.Request, f bridge.Failure) {
	if f.HTTP == 499 {
		return // nobody to answer
	}
	if router.IsGRPC(r) {
		wire.WriteGRPCStatus(w, f.GRPC, f.Msg)
		return
	}
	if isTripleUnary(r) {
		wire.WriteTripleError(w, f.GRPC, f.Msg)
		return
	}
	wire.WriteErrorBody(w, f.HTTP, f.GRPC, f.Msg, func(e *wire.ErrorBody) {
		e.Error.Exception = f.Exception
		e.Error.DubboStatus = f.DubboStatus
	})
}
