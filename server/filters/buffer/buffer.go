// Package buffer is Envoy's envoy.filters.http.buffer filter: it reads a
// request's body whole before the rest of the chain and the upstream see
// it, answering 413 when the body is over max_request_bytes, and forwards
// it with its length known. A route's BufferPerRoute turns it off or sets
// another limit.
package buffer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	bufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/buffer/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshgate/meshgate/server/httpfilter"
	"github.com/meshgate/meshgate/server/wire"
)

// Name is the filter's name, as Envoy spells it.
const Name = "envoy.filters.http.buffer"

func init() {
	httpfilter.Register(&httpfilter.Factory{
		Name:         Name,
		Config:       &bufferv3.Buffer{},
		PerRouteType: httpfilter.TypeURL(&bufferv3.BufferPerRoute{}),
		PerRoute:     compilePerRoute,
		Build: func(cfg proto.Message, b httpfilter.Build) (httpfilter.Filter, []string, error) {
			max, err := maxBytes(cfg.(*bufferv3.Buffer))
			if err != nil {
				return nil, nil, err
			}
			return &filter{name: b.Name, max: max}, nil, nil
		},
	})
}

// maxBytes is a Buffer's max_request_bytes, which Envoy requires (> 0).
func maxBytes(b *bufferv3.Buffer) (int64, error) {
	if b.GetMaxRequestBytes().GetValue() == 0 {
		return 0, errors.New("max_request_bytes: must be set and above 0")
	}
	return int64(b.GetMaxRequestBytes().GetValue()), nil
}

// perRoute is a route's BufferPerRoute: off, or another limit.
type perRoute struct {
	disabled bool
	max      int64
}

func compilePerRoute(a *anypb.Any) (any, error) {
	var pr bufferv3.BufferPerRoute
	if err := a.UnmarshalTo(&pr); err != nil {
		return nil, err
	}
	switch o := pr.GetOverride().(type) {
	case *bufferv3.BufferPerRoute_Disabled:
		if !o.Disabled {
			return nil, errors.New("disabled: may only be true")
		}
		return &perRoute{disabled: true}, nil
	case *bufferv3.BufferPerRoute_Buffer:
		max, err := maxBytes(o.Buffer)
		if err != nil {
			return nil, fmt.Errorf("buffer: %w", err)
		}
		return &perRoute{max: max}, nil
	}
	return nil, errors.New("needs disabled or buffer")
}

type filter struct {
	name string // its name in the chain: the key of its per-route configs
	max  int64
}

func (f *filter) Decode(s *httpfilter.Stream) httpfilter.Status {
	max := f.max
	if pr, ok := s.PerFilter(f.name).(*perRoute); ok {
		if pr.disabled {
			return httpfilter.Continue
		}
		max = pr.max
	}
	r := s.R
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return httpfilter.Continue
	}
	if r.ContentLength > max {
		tooLarge(s, max)
		return httpfilter.Stop
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	switch {
	case err != nil:
		wire.WriteError(s.W, r, http.StatusBadRequest, codes.InvalidArgument, "reading the request body: "+err.Error())
		return httpfilter.Stop
	case int64(len(body)) > max:
		tooLarge(s, max)
		return httpfilter.Stop
	}
	// The body goes on whole, its length known (Envoy sets content-length
	// on a buffered request).
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.TransferEncoding = nil
	r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return httpfilter.Continue
}

// tooLarge is Envoy's answer to a body over the limit: 413.
func tooLarge(s *httpfilter.Stream, max int64) {
	wire.WriteError(s.W, s.R, http.StatusRequestEntityTooLarge, codes.ResourceExhausted,
		fmt.Sprintf("request body is over the buffer limit of %d bytes", max))
}
