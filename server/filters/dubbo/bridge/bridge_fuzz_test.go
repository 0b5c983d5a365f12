package bridge

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	hessian "github.com/apache/dubbo-go-hessian2"

	"github.com/meshgate/meshgate/dubbo"
	dubbov1 "github.com/meshgate/meshgate/proto/meshgate/extensions/filters/http/dubbo/v1"
)

// FuzzRequest feeds arbitrary bodies and paths through argument mapping
// and the hessian encoder: a client's bytes end in a call or a
// BadRequest, never a panic.
func FuzzRequest(f *testing.F) {
	for _, seed := range []struct{ path, body string }{
		{"/api/add", `[1, 2]`},
		{"/api/add", `[{"class": "x.Y", "a": [1, {"b": null}]}, "s", 1.5e300, true]`},
		{"/u/42", `{"a": {"b": "2024-01-01"}}`},
		{"/api/x", `[` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `]`},
		{"/api/x", `["\ud800", 1e999]`},
	} {
		f.Add(seed.path, seed.body)
	}
	convention := mustCompileF(f, &dubbov1.DubboRoute{})
	mapped := mustCompileF(f, &dubbov1.DubboRoute{Interface: "I", Method: "m", PathTemplate: "/u/{id}",
		Params: []*dubbov1.Param{{From: "path.id", Type: "long", Optional: true}, {From: "body.a.b", Type: "java.util.Date", Optional: true}, {From: "body", Type: "x.Pojo", Optional: true}}})
	typed := mustCompileF(f, &dubbov1.DubboRoute{Interface: "I", Types: []string{"int[]", "java.math.BigDecimal"}})
	svc := Service{Signatures: map[string][][]string{"add": {{"int", "java.util.List"}}}}
	f.Fuzz(func(t *testing.T, path, body string) {
		u, err := url.ParseRequestURI(path)
		if err != nil || !strings.HasPrefix(path, "/") || u.Host != "" {
			return // net/http refuses such a request line before any handler
		}
		for _, rt := range []*Route{convention, mapped, typed} {
			r := &http.Request{Method: "POST", URL: u, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(body))}
			c, err := rt.Request(r, []byte(body), svc)
			if err != nil {
				if _, ok := IsBadRequest(err); !ok {
					t.Fatalf("not a BadRequest: %v", err)
				}
				continue
			}
			req := dubbo.GenericRequest(c.Service, c.Types, c.Args, c.Attachments)
			_, _ = hessian.NewHessianCodec(nil).Write(hessian.Service{Path: "I", Interface: "I", Method: req.Service.Method},
				hessian.DubboHeader{SerialID: 2, Type: hessian.PackageRequest_TwoWay, ID: 1}, hessian.NewRequest(req.Args, req.Attachments))
		}
	})
}

func mustCompileF(f *testing.F, cfg *dubbov1.DubboRoute) *Route {
	r, err := compile(cfg)
	if err != nil {
		f.Fatal(err)
	}
	return r
}
