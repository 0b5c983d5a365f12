package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"testing"

	"google.golang.org/grpc/metadata"

	demov1 "github.com/meshgate/meshgate/proto/demo/v1"
)

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// x-request-id reaches an HTTP backend and a gRPC backend (a relayed call):
// made up (a version 4 UUID) when the client sent none, the client's kept
// otherwise. (The dubbo-go provider's side is in TestDubboBridge: the id
// travels as an attachment.)
func TestRequestID_ReachesBackends(t *testing.T) {
	b := startBackend(t, "b1")
	g := startGateway(t, render(t, baseConfig, baseData{GRPC: b.GRPCAddr, HTTP: b.HTTPAddr}))
	addr := g.addr("main")
	c := httpClient(t)
	grpcClient := demoClient(t, addr)
	for _, tc := range []struct {
		name, sent string
		want       *regexp.Regexp
	}{
		{"made up", "", uuidV4},
		{"kept", "from-the-client", regexp.MustCompile(`^from-the-client$`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", "http://"+addr+"/echo", nil)
			if tc.sent != "" {
				req.Header.Set("X-Request-Id", tc.sent)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var echo struct{ Headers map[string]string }
			err = json.NewDecoder(resp.Body).Decode(&echo)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if got := echo.Headers["x-request-id"]; !tc.want.MatchString(got) {
				t.Errorf("the HTTP backend got x-request-id %q, want %v", got, tc.want)
			}

			ctx := context.Background()
			if tc.sent != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "x-request-id", tc.sent)
			}
			for i := range 3 { // the first call to a host takes the handler path, the next are relayed
				out, err := grpcClient.Echo(ctx, &demov1.EchoRequest{Message: "id"})
				if err != nil {
					t.Fatal(err)
				}
				if got := out.GetMetadata()["x-request-id"]; !tc.want.MatchString(got) {
					t.Errorf("call %d: the gRPC backend got x-request-id %q, want %v", i, got, tc.want)
				}
			}
		})
	}
}
