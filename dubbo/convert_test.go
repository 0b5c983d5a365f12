package dubbo

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	gxbig "github.com/dubbogo/gost/math/big"
)

func decodeJSON(t *testing.T, s string) any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("bad test JSON %s: %v", s, err)
	}
	return v
}

func TestToHessian(t *testing.T) {
	tests := []struct {
		json, typ string
		want      any
	}{
		{`7`, "int", int32(7)},
		{`"7"`, "java.lang.Integer", int32(7)},
		{`1e3`, "int", int32(1000)},
		{`9007199254740993`, "long", int64(9007199254740993)},
		{`"-9223372036854775808"`, "java.lang.Long", int64(math.MinInt64)},
		{`-3`, "short", int16(-3)},
		{`127`, "byte", int8(127)},
		{`1.5`, "double", 1.5},
		{`"2.5"`, "java.lang.Double", 2.5},
		{`1.5`, "float", float32(1.5)},
		{`true`, "boolean", true},
		{`"false"`, "java.lang.Boolean", false},
		{`"x"`, "char", "x"},
		{`"héllo"`, "java.lang.String", "héllo"},
		{`42`, "java.lang.String", "42"},
		{`null`, "java.lang.String", nil},
		{`"aGk="`, "byte[]", []byte("hi")},
		{`[1, 2]`, "int[]", []int32{1, 2}},
		{`[1, 2]`, "long[]", []int64{1, 2}},
		{`["a", "b"]`, "java.lang.String[]", []string{"a", "b"}},
		{`[1, "a", null]`, "java.util.List", []any{int64(1), "a", nil}},
		{`{"a": 1, "b": [true]}`, "java.util.Map", map[any]any{"a": int64(1), "b": []any{true}}},
		{`{"id": "u1", "age": 3}`, "org.example.User", map[any]any{"id": "u1", "age": int64(3), "class": "org.example.User"}},
		{`{"class": "org.example.Admin", "id": "u1"}`, "org.example.User", map[any]any{"id": "u1", "class": "org.example.Admin"}},
		{`"RED"`, "org.example.Color", "RED"},
		{`[{"id": "a"}]`, "org.example.User[]", []any{map[any]any{"id": "a", "class": "org.example.User"}}},
		{`[{"id": 1}]`, "java.util.List<org.example.User>", []any{map[any]any{"id": int64(1), "class": "org.example.User"}}},
		{`{"1": [2]}`, "java.util.Map<java.lang.Long, java.util.List<java.lang.Integer>>", map[any]any{int64(1): []any{int32(2)}}},
		{`{"a": {"b": 1.5}}`, "java.util.Map<java.lang.String,java.util.Map<java.lang.String,java.lang.Float>>", map[any]any{"a": map[any]any{"b": float32(1.5)}}},
		{`12`, "", int64(12)},
		{`1.25`, "java.lang.Object", 1.25},
		{`{"k": {"n": null}}`, "", map[any]any{"k": map[any]any{"n": nil}}},
	}
	for _, tt := range tests {
		t.Run(tt.typ+" "+tt.json, func(t *testing.T) {
			got, err := ToHessian(decodeJSON(t, tt.json), tt.typ)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestToHessian_TypedValues(t *testing.T) {
	d, err := ToHessian(decodeJSON(t, `"1234567890.0123456789"`), "java.math.BigDecimal")
	if err != nil {
		t.Fatal(err)
	}
	if s := d.(*gxbig.Decimal).String(); s != "1234567890.0123456789" {
		t.Errorf("BigDecimal %s", s)
	}
	i, err := ToHessian(decodeJSON(t, `123456789012345678901234567890`), "java.math.BigInteger")
	if err != nil {
		t.Fatal(err)
	}
	if s := i.(*gxbig.Integer).String(); s != "123456789012345678901234567890" {
		t.Errorf("BigInteger %s", s)
	}
	for in, want := range map[string]time.Time{
		`"2024-02-29T10:11:12.5Z"`:    time.Date(2024, 2, 29, 10, 11, 12, 5e8, time.UTC),
		`"2024-02-29T10:11:12+02:00"`: time.Date(2024, 2, 29, 8, 11, 12, 0, time.UTC),
		`"2024-02-29"`:                time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC),
		`1709201472000`:               time.UnixMilli(1709201472000),
		`"1709201472000"`:             time.UnixMilli(1709201472000),
	} {
		got, err := ToHessian(decodeJSON(t, in), "java.util.Date")
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if !got.(time.Time).Equal(want) {
			t.Errorf("%s: got %v, want %v", in, got, want)
		}
	}
}

func TestToHessian_Errors(t *testing.T) {
	tests := []struct{ json, typ, want string }{
		{`"x"`, "int", `"x" is not an integer`},
		{`2147483648`, "int", "out of range"},
		{`1.5`, "long", "is not an integer"},
		{`128`, "byte", "out of range"},
		{`null`, "int", "null for the primitive int"},
		{`"yes"`, "boolean", "invalid syntax"},
		{`[1]`, "boolean", "want a boolean, got an array"},
		{`"ab"`, "char", "one-character"},
		{`{}`, "java.lang.String", "want a string, got an object"},
		{`"nope"`, "java.util.Date", "neither ISO-8601"},
		{`"1.2.3"`, "java.math.BigDecimal", "not a decimal"},
		{`"%%%"`, "byte[]", "not base64"},
		{`{"a":1}`, "java.util.List", "want a JSON array"},
		{`[1]`, "java.util.Map", "want a JSON object"},
		{`["x"]`, "int[]", `[0]: "x" is not an integer`},
		{`3`, "org.example.User", "want a JSON object for org.example.User"},
		{`1e39`, "float", "out of a float's range"},
		{`{"x": 1}`, "java.util.Map<java.lang.Long,java.lang.String>", `key "x": "x" is not an integer`},
		{`{"aGk=": 1}`, "java.util.Map<byte[],java.lang.String>", `cannot key a map`},
		{`["x"]`, "java.util.List<java.lang.Integer>", `[0]: "x" is not an integer`},
	}
	for _, tt := range tests {
		t.Run(tt.typ+" "+tt.json, func(t *testing.T) {
			_, err := ToHessian(decodeJSON(t, tt.json), tt.typ)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want it to say %q", err, tt.want)
			}
		})
	}
}

func TestToHessian_DeepNestingRefused(t *testing.T) {
	s := strings.Repeat("[", 200) + strings.Repeat("]", 200)
	if _, err := ToHessian(decodeJSON(t, s), ""); err == nil || !strings.Contains(err.Error(), "too deep") {
		t.Errorf("error %v, want too deep", err)
	}
}

func TestEraseType(t *testing.T) {
	for in, want := range map[string]string{
		"java.util.List<org.x.User>":                                     "java.util.List",
		"java.util.Map<java.lang.String,java.util.List<java.lang.Long>>": "java.util.Map",
		"int":             "int",
		"org.x.Page<T>[]": "org.x.Page[]",
	} {
		if got := EraseType(in); got != want {
			t.Errorf("EraseType(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestInferType(t *testing.T) {
	for in, want := range map[string]string{
		`1`: "java.lang.Long", `1.5`: "java.lang.Double", `"s"`: "java.lang.String", `true`: "java.lang.Boolean",
		`[1]`: "java.util.List", `{"a":1}`: "java.util.Map", `{"class":"x.Y"}`: "x.Y", `null`: "java.lang.Object",
	} {
		if got := InferType(decodeJSON(t, in)); got != want {
			t.Errorf("InferType(%s) = %s, want %s", in, got, want)
		}
	}
}

type bean struct {
	UserID string `hessian:"userId"`
	Age    int32
	secret int // unexported: not in the JSON
}

func TestToJSON(t *testing.T) {
	dec := new(gxbig.Decimal)
	if err := dec.FromString("-12.340"); err != nil {
		t.Fatal(err)
	}
	when := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name string
		in   any
		o    JSONOptions
		want string
	}{
		{"pojo map drops class", map[any]any{"class": "x.User", "id": "u", "age": int32(3)}, JSONOptions{}, `{"age":3,"id":"u"}`},
		{"keep class", map[any]any{"class": "x.User", "id": "u"}, JSONOptions{KeepClass: true}, `{"class":"x.User","id":"u"}`},
		{"decoder's _class dropped", map[any]any{"_class": "x.User", "id": "u"}, JSONOptions{}, `{"id":"u"}`},
		{"decoder's _class kept as class", map[any]any{"_class": "x.User", "id": "u"}, JSONOptions{KeepClass: true}, `{"class":"x.User","id":"u"}`},
		{"non-string keys", map[any]any{int64(1): "a"}, JSONOptions{}, `{"1":"a"}`},
		{"nested list", []any{map[any]any{"d": when}, nil}, JSONOptions{}, `[{"d":"2024-01-02T03:04:05Z"},null]`},
		{"big long", int64(1 << 60), JSONOptions{}, `1152921504606846976`},
		{"big long as string", int64(1 << 60), JSONOptions{LongsAsStrings: true}, `"1152921504606846976"`},
		{"safe long stays a number", int64(1 << 52), JSONOptions{LongsAsStrings: true}, `4503599627370496`},
		{"decimal", dec, JSONOptions{}, `"-12.340"`},
		{"bytes", []byte("hi"), JSONOptions{}, `"aGk="`},
		{"typed slice", []int32{1, 2}, JSONOptions{}, `[1,2]`},
		{"NaN", math.NaN(), JSONOptions{}, `"NaN"`},
		{"struct", &bean{UserID: "u", Age: 4, secret: 1}, JSONOptions{}, `{"age":4,"userId":"u"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(ToJSON(tt.in, tt.o))
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("got %s, want %s", b, tt.want)
			}
		})
	}
}
