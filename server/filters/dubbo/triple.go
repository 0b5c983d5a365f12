package dubbo

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/meshgate/meshgate/governance"
	"github.com/meshgate/meshgate/server/cluster"
	"github.com/meshgate/meshgate/server/filters/dubbo/bridge"
	"github.com/meshgate/meshgate/server/router"
	"github.com/meshgate/meshgate/triple"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// tripleProto carries Triple's unary application/proto form to a Triple
// provider in the gRPC form: the message (IDL, or a non-IDL wrapper) is
// framed and the answer's message returned, neither decoded.
func tripleProto(c http.ResponseWriter, r *http.Request, fw *router.Forward[*cluster.Cluster], cl *cluster.Cluster, b *bridge.Route,
	body []byte, ctx context.Context, timeout time.Duration, asJSON protoreflect.MethodDescriptor) {
	if err := cl.Admit(fw.Priority); err != nil {
		bridgeError(c, r, http.StatusServiceUnavailable, codes.Unavailable, err.Error())
		return
	}
	var info governance.PickInfo
	info.Hash, info.HasHash = fw.Hash(r)
	a, err := cl.Begin(info, nil)
	if err != nil {
		bridgeError(c, r, http.StatusServiceUnavailable, codes.Unavailable, err.Error())
		return
	}
	msg, hdr, err := triple.CallProto(ctx, cl.Transport(true), cl.Scheme(), a.Host.Address, r.URL.Path, body, r.Header, timeout)
	if err != nil {
		if r.Context().Err() != nil {
			a.End(governance.Outcome{}, false)
			return
		}
		fail := b.Classify(ctx, err, cl.Name, a.Host.Address)
		a.End(fail.Outcome, true)
		writeDubboFailure(c, r, fail)
		return
	}
	a.End(governance.Outcome{Status: http.StatusOK}, true)
	contentType := "application/proto"
	if asJSON != nil {
		if msg, err = bridge.ProtoToJSON(msg, asJSON); err != nil {
			bridgeError(c, r, http.StatusBadGateway, codes.Internal, err.Error())
			return
		}
		contentType = "application/json"
	}
	h := c.Header()
	for k, vs := range hdr {
		if lk := strings.ToLower(k); strings.HasPrefix(lk, "tri-") && len(vs) > 0 {
			h.Set(k, vs[0])
		}
	}
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(msg)))
	c.WriteHeader(http.StatusOK)
	_, _ = c.Write(msg)
}

// mediaType is the request's content type without parameters, lower case.
func mediaType(r *http.Request) string {
	t, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	return strings.ToLower(strings.TrimSpace(t))
}

// Headers of Triple's unary HTTP form (dubbo-go's names).
const (
	tripleVersionHeader = "Triple-Protocol-Version"
	tripleTimeoutHeader = "Triple-Timeout-Ms"
)

// isTripleUnary tells a caller of Triple's unary HTTP form, which expects
// Triple's error answer.
func isTripleUnary(r *http.Request) bool {
	return r.Header.Get(tripleVersionHeader) != "" && !router.IsGRPC(r)
}
