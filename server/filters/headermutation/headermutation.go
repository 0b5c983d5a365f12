// Package headermutation is Envoy's envoy.filters.http.header_mutation
// filter: request headers removed and appended in order before the
// request goes on, response headers before the answer goes back; a
// route's (or virtual host's) HeaderMutationPerRoute adds its own.
package headermutation

import (
	"errors"
	"net/http"

	hmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshgate/meshgate/server/httpfilter"
	"github.com/meshgate/meshgate/server/router"
)

// Name is the filter's name, as Envoy spells it.
const Name = "envoy.filters.http.header_mutation"

func init() {
	httpfilter.Register(&httpfilter.Factory{
		Name:         Name,
		Config:       &hmv3.HeaderMutation{},
		PerRouteType: httpfilter.TypeURL(&hmv3.HeaderMutationPerRoute{}),
		PerRoute: func(cfg *anypb.Any) (any, error) {
			var pr hmv3.HeaderMutationPerRoute
			if err := cfg.UnmarshalTo(&pr); err != nil {
				return nil, err
			}
			return compile(pr.GetMutations())
		},
		Build: func(cfg proto.Message, b httpfilter.Build) (httpfilter.Filter, []string, error) {
			f := &filter{name: b.Name, own: &mutations{}}
			if hm, ok := cfg.(*hmv3.HeaderMutation); ok {
				var err error
				if f.own, err = compile(hm.GetMutations()); err != nil {
					return nil, nil, err
				}
				f.specificLast = hm.GetMostSpecificHeaderMutationsWins()
			}
			return f, nil, nil
		},
	})
}

// mutations are one level's compiled edits.
type mutations struct {
	request, response router.HeaderEdits
}

func compile(m *hmv3.Mutations) (*mutations, error) {
	switch {
	case len(m.GetQueryParameterMutations()) > 0:
		return nil, errors.New("query_parameter_mutations are not supported")
	case len(m.GetRequestTrailersMutations()) > 0 || len(m.GetResponseTrailersMutations()) > 0:
		return nil, errors.New("trailer mutations are not supported")
	}
	out := &mutations{}
	var err error
	if out.request, err = router.CompileMutations(m.GetRequestMutations()); err != nil {
		return nil, errors.Join(errors.New("request_mutations"), err)
	}
	if out.response, err = router.CompileMutations(m.GetResponseMutations()); err != nil {
		return nil, errors.Join(errors.New("response_mutations"), err)
	}
	return out, nil
}

type filter struct {
	name string
	own  *mutations
	// specificLast: the route's mutations go last, so that they win
	// (most_specific_header_mutations_wins); by default they go first.
	specificLast bool
}

func (f *filter) Decode(s *httpfilter.Stream) httpfilter.Status {
	levels := [2]*mutations{nil, f.own}
	if rt, ok := s.PerFilter(f.name).(*mutations); ok {
		levels[0] = rt
	}
	if f.specificLast {
		levels[0], levels[1] = levels[1], levels[0]
	}
	var response router.HeaderEdits
	for _, l := range levels {
		if l == nil {
			continue
		}
		l.request.Apply(s.R.Header)
		response = append(response, l.response...)
	}
	if len(response) > 0 {
		w := &editingWriter{ResponseWriter: s.Below(), edits: response}
		s.Wrap(w, nil)
	}
	return httpfilter.Continue
}

// editingWriter edits the answer's headers as they go out.
type editingWriter struct {
	http.ResponseWriter
	edits   router.HeaderEdits
	applied bool
}

func (w *editingWriter) WriteHeader(code int) {
	if !w.applied {
		w.applied = true
		w.edits.Apply(w.ResponseWriter.Header())
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *editingWriter) Write(p []byte) (int, error) {
	if !w.applied {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

func (w *editingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *editingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
