package safehessian

import (
	"errors"
	"testing"

	hessian "github.com/apache/dubbo-go-hessian2"
)

// FuzzDecode: any bytes decode or fail with ErrMalformed; never a panic,
// never a huge allocation a few bytes asked for.
func FuzzDecode(f *testing.F) {
	for _, v := range []any{"hello", int64(7), []any{"a", int32(1)}, map[any]any{"k": "v"}, nil} {
		e := hessian.NewEncoder()
		if err := e.Encode(v); err != nil {
			f.Fatal(err)
		}
		f.Add(e.Buffer())
	}
	f.Add([]byte{'V', 0xd7, 0xff, 0xff, 0xff}) // a list that claims far more than it holds
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := Decode(b); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v is not ErrMalformed", err)
		}
	})
}
