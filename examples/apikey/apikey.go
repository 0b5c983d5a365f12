// Package apikey is an example of an HTTP filter written outside meshgate:
// it lets a request through only when its API key header holds one of the
// configured keys, and answers 401 (UNAUTHENTICATED to gRPC callers)
// otherwise. It registers itself when imported; a custom build of meshgate
// imports it beside the command (see cmd/meshgate-apikey).
//
// Its config has no compiled proto type, so it travels as Envoy carries
// such configs, in a TypedStruct:
//
//	http_filters:
//	- name: example.filters.http.apikey
//	  typed_config:
//	    "@type": type.googleapis.com/xds.type.v3.TypedStruct
//	    type_url: type.googleapis.com/example.apikey.Config
//	    value: { header: x-api-key, keys: [ "k-123" ] }
package apikey

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/meshgate/meshgate/server/httpfilter"
	"github.com/meshgate/meshgate/server/wire"
)

// Name is the filter's name; ConfigType the type URL of its config in a
// TypedStruct.
const (
	Name       = "example.filters.http.apikey"
	ConfigType = "type.googleapis.com/example.apikey.Config"
)

func init() {
	httpfilter.Register(&httpfilter.Factory{Name: Name, StructType: ConfigType, Build: build})
}

// filter holds the accepted keys.
type filter struct {
	header string
	keys   [][]byte
}

func build(cfg proto.Message, _ httpfilter.Build) (httpfilter.Filter, []string, error) {
	st, ok := cfg.(*structpb.Struct)
	if !ok {
		return nil, nil, errors.New("want its config in a TypedStruct")
	}
	f := &filter{header: "x-api-key"}
	for k, v := range st.GetFields() {
		switch k {
		case "header":
			f.header = strings.ToLower(v.GetStringValue())
		case "keys":
			for i, key := range v.GetListValue().GetValues() {
				if key.GetStringValue() == "" {
					return nil, nil, fmt.Errorf("keys[%d]: want a non-empty string", i)
				}
				f.keys = append(f.keys, []byte(key.GetStringValue()))
			}
		default:
			return nil, nil, fmt.Errorf("%s: unknown field", k)
		}
	}
	if f.header == "" || len(f.keys) == 0 {
		return nil, nil, errors.New("needs a header name and at least one key")
	}
	return f, nil, nil
}

// Decode checks the key in constant time and keeps it from the upstream.
func (f *filter) Decode(s *httpfilter.Stream) httpfilter.Status {
	got := []byte(s.R.Header.Get(f.header))
	for _, k := range f.keys {
		if len(got) > 0 && subtle.ConstantTimeCompare(got, k) == 1 {
			s.R.Header.Del(f.header)
			return httpfilter.Continue
		}
	}
	wire.WriteError(s.W, s.R, http.StatusUnauthorized, codes.Unauthenticated, "a valid API key is required")
	return httpfilter.Stop
}
