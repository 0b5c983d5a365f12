package httpfilter_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshgate/meshgate/server/httpfilter"
)

// upper is a wrapper that upper-cases what goes through it.
type upper struct {
	http.ResponseWriter
}

func (u *upper) Write(p []byte) (int, error) {
	return u.ResponseWriter.Write([]byte(strings.ToUpper(string(p))))
}

// Wrappers see what the chain answers through them, and finish innermost
// (last wrapped) first; without a tracking writer W follows the wrappers.
func TestStream_WrapAndFinish(t *testing.T) {
	rec := httptest.NewRecorder()
	var s httpfilter.Stream
	s.Reset(rec, nil, httptest.NewRequest("GET", "/", nil), nil)
	var order []string
	a := &upper{ResponseWriter: s.Below()}
	s.Wrap(a, func() { order = append(order, "a") })
	b := &upper{ResponseWriter: s.Below()}
	s.Wrap(b, func() { order = append(order, "b") })
	if s.W != b || s.Below() != b {
		t.Fatalf("W = %T, want the last wrapper", s.W)
	}
	_, _ = s.W.Write([]byte("hi"))
	s.Finish()
	if rec.Body.String() != "HI" {
		t.Errorf("body %q, want HI through both wrappers", rec.Body.String())
	}
	if strings.Join(order, ",") != "b,a" {
		t.Errorf("finished %v, want the last wrapped first", order)
	}
	s.Finish()
	if len(order) != 2 {
		t.Errorf("Finish ran completions twice: %v", order)
	}
}

// With a tracking writer (the chain's own), W stays the tracker and the
// wrappers go below it.
func TestStream_WrapBelowTracker(t *testing.T) {
	rec := httptest.NewRecorder()
	tracker := &upper{ResponseWriter: rec}
	var s httpfilter.Stream
	s.Reset(tracker, &tracker.ResponseWriter, httptest.NewRequest("GET", "/", nil), nil)
	w := &upper{ResponseWriter: s.Below()}
	s.Wrap(w, nil)
	if s.W != tracker || tracker.ResponseWriter != w {
		t.Fatal("the wrapper did not go below the tracker")
	}
	if s.Route() != nil {
		t.Error("a stream without a table matched a route")
	}
}

// A filter is found by its typed_config's type when it has one (its name
// in the chain is free, as in Envoy), else by name; registering a name
// twice is a programming error.
func TestRegister_Lookup(t *testing.T) {
	f := &httpfilter.Factory{
		Name:   "test.filters.http.nop",
		Config: &wrapperspb.StringValue{},
		Build: func(cfg proto.Message, b httpfilter.Build) (httpfilter.Filter, []string, error) {
			return httpfilter.FilterFunc(func(*httpfilter.Stream) httpfilter.Status { return httpfilter.Stop }),
				[]string{"built " + b.Name + " with " + cfg.(*wrapperspb.StringValue).GetValue()}, nil
		},
	}
	httpfilter.Register(f)
	cfg, _ := anypb.New(wrapperspb.String("x"))
	tests := []struct {
		name string
		cfg  *anypb.Any
		want *httpfilter.Factory
	}{
		{"test.filters.http.nop", nil, f},
		{"any-name", cfg, f},
		{"test.filters.http.nop", &anypb.Any{TypeUrl: "type.googleapis.com/other.Type"}, nil},
		{"unknown", nil, nil},
	}
	for _, tt := range tests {
		if got := httpfilter.Lookup(tt.name, tt.cfg); got != tt.want {
			t.Errorf("Lookup(%q, %v) = %v, want %v", tt.name, tt.cfg.GetTypeUrl(), got, tt.want)
		}
	}
	flt, notes, err := httpfilter.New(f, cfg, httpfilter.Build{Name: "mine"})
	if err != nil || len(notes) != 1 || notes[0] != "built mine with x" {
		t.Fatalf("New = %v, %v; want the config unpacked and the chain name passed", notes, err)
	}
	if flt.Decode(&httpfilter.Stream{}) != httpfilter.Stop {
		t.Error("the built filter is not the factory's")
	}
	defer func() {
		if recover() == nil {
			t.Error("registering a name twice did not panic")
		}
	}()
	httpfilter.Register(&httpfilter.Factory{Name: "test.filters.http.nop", Build: f.Build})
}

func TestStream_Metadata(t *testing.T) {
	var s httpfilter.Stream
	s.Reset(httptest.NewRecorder(), nil, httptest.NewRequest("GET", "/", nil), nil)
	if s.Metadata("a") != nil {
		t.Fatal("metadata before any was set")
	}
	s.SetMetadata("envoy.filters.http.jwt_authn", "payload", map[string]any{"sub": "x"})
	s.SetMetadata("envoy.filters.http.jwt_authn", "other", "y")
	m := s.Metadata("envoy.filters.http.jwt_authn")
	if len(m) != 2 || m["other"] != "y" {
		t.Errorf("metadata %v", m)
	}
	s.Reset(httptest.NewRecorder(), nil, httptest.NewRequest("GET", "/", nil), nil)
	if s.Metadata("envoy.filters.http.jwt_authn") != nil {
		t.Error("metadata outlived the request")
	}
}
