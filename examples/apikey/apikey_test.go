package apikey_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	xdstypev3 "github.com/cncf/xds/go/xds/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/meshgate/meshgate/examples/apikey"
	"github.com/meshgate/meshgate/server/httpfilter"
)

func typedStruct(t *testing.T, value map[string]any) *anypb.Any {
	t.Helper()
	st, err := structpb.NewStruct(value)
	if err != nil {
		t.Fatal(err)
	}
	a, err := anypb.New(&xdstypev3.TypedStruct{TypeUrl: apikey.ConfigType, Value: st})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestBuild(t *testing.T) {
	tests := []struct {
		name    string
		cfg     map[string]any
		wantErr string
	}{
		{"keys", map[string]any{"keys": []any{"a"}}, ""},
		{"own header", map[string]any{"header": "X-Key", "keys": []any{"a", "b"}}, ""},
		{"no keys", map[string]any{"header": "x"}, "at least one key"},
		{"empty key", map[string]any{"keys": []any{""}}, "keys[0]"},
		{"unknown field", map[string]any{"keys": []any{"a"}, "secret": 1}, "secret: unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := typedStruct(t, tt.cfg)
			f := httpfilter.Lookup("any-name", cfg)
			if f == nil {
				t.Fatal("the filter is not found by its TypedStruct type")
			}
			_, _, err := httpfilter.New(f, cfg, httpfilter.Build{})
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("New = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	cfg := typedStruct(t, map[string]any{"header": "X-Api-Key", "keys": []any{"k-1", "k-2"}})
	flt, _, err := httpfilter.New(httpfilter.Lookup(apikey.Name, cfg), cfg, httpfilter.Build{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, key string
		grpc      bool
		want      httpfilter.Status
		code      int
		grpcSt    string
	}{
		{"a good key", "k-2", false, httpfilter.Continue, 200, ""},
		{"no key", "", false, httpfilter.Stop, 401, ""},
		{"a wrong key", "k-3", false, httpfilter.Stop, 401, ""},
		{"a prefix of a key", "k-", false, httpfilter.Stop, 401, ""},
		{"gRPC without a key", "", true, httpfilter.Stop, 200, "16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", nil)
			if tt.key != "" {
				r.Header.Set("X-Api-Key", tt.key)
			}
			if tt.grpc {
				r.Header.Set("Content-Type", "application/grpc")
			}
			rec := httptest.NewRecorder()
			var s httpfilter.Stream
			s.Reset(rec, nil, r, nil)
			if got := flt.Decode(&s); got != tt.want {
				t.Fatalf("Decode = %v, want %v", got, tt.want)
			}
			if rec.Code != tt.code || rec.Header().Get("Grpc-Status") != tt.grpcSt {
				t.Errorf("answered %d grpc-status %q, want %d %q", rec.Code, rec.Header().Get("Grpc-Status"), tt.code, tt.grpcSt)
			}
			if tt.want == httpfilter.Continue && r.Header.Get("X-Api-Key") != "" {
				t.Error("the key went on to the upstream")
			}
		})
	}
}
