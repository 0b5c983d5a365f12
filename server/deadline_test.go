package server

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/meshgate/meshgate/server/cluster"
)

// A call whose deadline is gone before its first attempt (a client's
// grpc-timeout of 1ns: upstream.Run returns at once, no host was picked) is
// a timeout to answer, with no host to name: "-", as Envoy logs it.
func TestFailure_NoAttemptMade(t *testing.T) {
	ch := &chain{srv: New(Options{}), listener: "l"}
	ctx := newCallContext(context.Background(), time.Nanosecond, 0, 0)
	defer ctx.stop()
	for ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	r := httptest.NewRequest("POST", "/demo.v1.DemoService/Echo", nil)
	fail := ch.failure(ctx, r, &cluster.Cluster{Name: "grpc"}, nil, nil, ctx.Err(), false)
	if fail.grpc != codeDeadlineExceeded || !strings.Contains(fail.msg, "host -") {
		t.Errorf("failure = %+v, want DEADLINE_EXCEEDED naming no host", fail)
	}
}
