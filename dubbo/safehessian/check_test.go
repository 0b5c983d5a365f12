package safehessian

import (
	"strings"
	"testing"
	"time"

	hessian "github.com/apache/dubbo-go-hessian2"
	gxbig "github.com/dubbogo/gost/math/big"
)

type checkedPOJO struct {
	Name  string
	Tags  []string
	Inner *checkedPOJO
}

func (checkedPOJO) JavaClassName() string { return "org.example.Checked" }

// What hessian2 encodes, the check lets through: it must never refuse a
// valid answer.
func TestCheckHessian_AcceptsWhatTheEncoderWrites(t *testing.T) {
	hessian.RegisterPOJO(&checkedPOJO{})
	dec := new(gxbig.Decimal)
	_ = dec.FromString("3.14159")
	long := strings.Repeat("long string é 😀 ", 5000)
	values := []any{
		nil, true, int32(-1), int32(1 << 20), int64(-1 << 40), int64(7), 0.0, 1.0, 3.5, 1e300,
		"", "short", "é😀", long, []byte{}, make([]byte, 70000),
		time.UnixMilli(1700000000000), time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
		[]any{int64(1), "a", nil}, []int32{1, 2, 3}, []string{"x", "y"}, make([]any, 300),
		map[any]any{"a": int64(1), "b": []any{map[any]any{"c": "d"}}},
		map[string]string{"k": "v"},
		&checkedPOJO{Name: "n", Tags: []string{"t"}, Inner: &checkedPOJO{Name: "inner"}},
		[]any{&checkedPOJO{Name: "1"}, &checkedPOJO{Name: "2"}},
		dec,
	}
	for i, v := range values {
		enc := hessian.NewEncoder()
		if err := enc.Encode(v); err != nil {
			t.Fatalf("value %d (%T): encode: %v", i, v, err)
		}
		if err := Check(enc.Buffer()); err != nil {
			t.Errorf("value %d (%T) refused: %v", i, v, err)
		}
	}
}

func TestCheckHessian_RefusesHugeCounts(t *testing.T) {
	tests := map[string][]byte{
		"fixed untyped list of 2^31-1":   {0x58, 'I', 0x7f, 0xff, 0xff, 0xff, 'N'},
		"fixed typed list of 1M":         {'V', 0x01, 'x', 'I', 0x00, 0x10, 0x00, 0x00},
		"class with 1M fields":           {'C', 0x01, 'x', 'I', 0x00, 0x10, 0x00, 0x00},
		"string of 65535 chars, 2 bytes": {'S', 0xff, 0xff, 'a', 'b'},
		"object of an undefined class":   {0x60},
		"nesting past the bound":         []byte(strings.Repeat("\x57", 1000)),
		"unknown tag":                    {0x40},
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			if err := Check(b); err == nil {
				t.Error("accepted")
			}
		})
	}
}
