package dubbo

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	hessian "github.com/apache/dubbo-go-hessian2"
	"github.com/apache/dubbo-go-hessian2/java_exception"
	gxbig "github.com/dubbogo/gost/math/big"
)

// ArgError is an argument that does not fit its declared type.
type ArgError struct {
	Index int
	Path  string // within the argument, e.g. ".items[2]"
	Type  string
	Err   error
}

func (e *ArgError) Error() string {
	return fmt.Sprintf("argument %d%s (%s): %v", e.Index, e.Path, e.Type, e.Err)
}

// ToHessian converts a JSON value (decoded with UseNumber: numbers are
// json.Number) into the Go value that hessian2 writes as javaType. An
// empty type or java.lang.Object infers one from the value. Strings are
// parsed for numeric, boolean and date types, so that path, query and
// header values fit any declared type.
func ToHessian(v any, javaType string) (any, error) {
	return toHessian(v, strings.TrimSpace(javaType), 0)
}

const maxDepth = 64

// EraseType drops a type's generic parameters ("java.util.List<x.User>"
// is "java.util.List"): what a generic call's type list names.
func EraseType(t string) string {
	if i := strings.IndexByte(t, '<'); i >= 0 {
		return strings.TrimSpace(t[:i]) + t[strings.LastIndexByte(t, '>')+1:]
	}
	return t
}

// typeParams splits "java.util.Map<K, java.util.List<V>>" into its base
// and its parameters.
func typeParams(t string) (string, []string) {
	i := strings.IndexByte(t, '<')
	j := strings.LastIndexByte(t, '>')
	if i < 0 || j < i || strings.TrimSpace(t[j+1:]) != "" {
		return t, nil
	}
	var params []string
	depth, start := 0, i+1
	for k := i + 1; k < j; k++ {
		switch t[k] {
		case '<':
			depth++
		case '>':
			depth--
		case ',':
			if depth == 0 {
				params = append(params, strings.TrimSpace(t[start:k]))
				start = k + 1
			}
		}
	}
	params = append(params, strings.TrimSpace(t[start:j]))
	return strings.TrimSpace(t[:i]), params
}

func toHessian(v any, t string, depth int) (any, error) {
	if depth > maxDepth {
		return nil, errors.New("nested too deep")
	}
	t, params := typeParams(t)
	if v == nil {
		if isPrimitive(t) {
			return nil, fmt.Errorf("null for the primitive %s", t)
		}
		return nil, nil
	}
	switch t {
	case "", "java.lang.Object", "java.io.Serializable":
		return infer(v, depth)
	case "int", "java.lang.Integer":
		n, err := integer(v, math.MinInt32, math.MaxInt32)
		return int32(n), err
	case "long", "java.lang.Long":
		return integer(v, math.MinInt64, math.MaxInt64)
	case "short", "java.lang.Short":
		n, err := integer(v, math.MinInt16, math.MaxInt16)
		return int16(n), err
	case "byte", "java.lang.Byte":
		n, err := integer(v, math.MinInt8, math.MaxInt8)
		return int8(n), err
	case "double", "java.lang.Double":
		return float(v)
	case "float", "java.lang.Float":
		f, err := float(v)
		if err == nil && !math.IsInf(f, 0) && math.Abs(f) > math.MaxFloat32 {
			return nil, fmt.Errorf("%v is out of a float's range", f)
		}
		return float32(f), err
	case "boolean", "java.lang.Boolean":
		switch b := v.(type) {
		case bool:
			return b, nil
		case string:
			return strconv.ParseBool(b)
		}
		return nil, wantGot("a boolean", v)
	case "char", "java.lang.Character":
		s, ok := v.(string)
		if !ok || utf8.RuneCountInString(s) != 1 {
			return nil, wantGot("a one-character string", v)
		}
		return s, nil
	case "java.lang.String", "java.lang.CharSequence":
		switch s := v.(type) {
		case string:
			return s, nil
		case json.Number:
			return s.String(), nil
		case bool:
			return strconv.FormatBool(s), nil
		}
		return nil, wantGot("a string", v)
	case "java.util.Date", "java.sql.Timestamp", "java.sql.Date":
		return date(v)
	case "java.math.BigDecimal":
		s, err := numeral(v)
		if err != nil {
			return nil, err
		}
		d := new(gxbig.Decimal)
		if err := d.FromString(s); err != nil {
			return nil, fmt.Errorf("%q is not a decimal", s)
		}
		return d, nil
	case "java.math.BigInteger":
		s, err := numeral(v)
		if err != nil {
			return nil, err
		}
		i := new(gxbig.Integer)
		if err := i.FromString(s); err != nil {
			return nil, fmt.Errorf("%q is not an integer", s)
		}
		return i, nil
	case "byte[]", "[B":
		s, ok := v.(string)
		if !ok {
			return nil, wantGot("base64 bytes", v)
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			if b, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "=")); err != nil {
				return nil, errors.New("not base64")
			}
		}
		return b, nil
	}
	if elem, ok := strings.CutSuffix(t, "[]"); ok {
		return array(v, elem, depth)
	}
	if isCollection(t) {
		list, ok := v.([]any)
		if !ok {
			return nil, wantGot("a JSON array", v)
		}
		elem := ""
		if len(params) == 1 {
			elem = params[0]
		}
		out := make([]any, len(list))
		for i, e := range list {
			x, err := toHessian(e, elem, depth+1)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out[i] = x
		}
		return out, nil
	}
	if isMap(t) {
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, wantGot("a JSON object", v)
		}
		if len(params) == 2 {
			return typedMap(obj, params[0], params[1], depth)
		}
		return object(obj, "", depth)
	}
	// Any other class: a POJO from an object (the provider's generic
	// invocation builds it from a map naming its class), an enum constant
	// from its name.
	switch x := v.(type) {
	case map[string]any:
		return object(x, t, depth)
	case string:
		return x, nil
	}
	return nil, wantGot("a JSON object for "+t, v)
}

func isPrimitive(t string) bool {
	switch t {
	case "int", "long", "short", "byte", "double", "float", "boolean", "char":
		return true
	}
	return false
}

func isCollection(t string) bool {
	switch t {
	case "java.util.List", "java.util.ArrayList", "java.util.LinkedList", "java.util.Collection",
		"java.util.Set", "java.util.HashSet", "java.util.LinkedHashSet", "java.util.TreeSet", "java.lang.Iterable":
		return true
	}
	return false
}

func isMap(t string) bool {
	switch t {
	case "java.util.Map", "java.util.HashMap", "java.util.LinkedHashMap", "java.util.TreeMap",
		"java.util.concurrent.ConcurrentHashMap":
		return true
	}
	return false
}

// object turns a JSON object into the map a generic call sends, with
// "class" naming the POJO when the type is known.
func object(obj map[string]any, class string, depth int) (map[any]any, error) {
	out := make(map[any]any, len(obj)+1)
	for k, e := range obj {
		x, err := infer(e, depth+1)
		if err != nil {
			return nil, fmt.Errorf(".%s: %w", k, err)
		}
		out[k] = x
	}
	if _, ok := obj["class"]; !ok && class != "" {
		out["class"] = class
	}
	return out, nil
}

// typedMap converts a JSON object to a Map<K, V>: keys (JSON strings)
// parsed as K, values converted as V.
func typedMap(obj map[string]any, kt, vt string, depth int) (map[any]any, error) {
	out := make(map[any]any, len(obj))
	for k, e := range obj {
		key, err := toHessian(k, kt, depth+1)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k, err)
		}
		if key == nil || !reflect.TypeOf(key).Comparable() {
			return nil, fmt.Errorf("key %q: %s cannot key a map", k, kt)
		}
		x, err := toHessian(e, vt, depth+1)
		if err != nil {
			return nil, fmt.Errorf(".%s: %w", k, err)
		}
		out[key] = x
	}
	return out, nil
}

// array converts a JSON array to a Java array of elem: primitive arrays
// as typed Go slices (hessian2 writes them as typed lists).
func array(v any, elem string, depth int) (any, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, wantGot("a JSON array", v)
	}
	var out reflect.Value
	switch elem {
	case "int":
		out = reflect.MakeSlice(reflect.TypeFor[[]int32](), len(list), len(list))
	case "long":
		out = reflect.MakeSlice(reflect.TypeFor[[]int64](), len(list), len(list))
	case "short":
		out = reflect.MakeSlice(reflect.TypeFor[[]int16](), len(list), len(list))
	case "double":
		out = reflect.MakeSlice(reflect.TypeFor[[]float64](), len(list), len(list))
	case "float":
		out = reflect.MakeSlice(reflect.TypeFor[[]float32](), len(list), len(list))
	case "boolean":
		out = reflect.MakeSlice(reflect.TypeFor[[]bool](), len(list), len(list))
	case "java.lang.String":
		out = reflect.MakeSlice(reflect.TypeFor[[]string](), len(list), len(list))
	default:
		out = reflect.MakeSlice(reflect.TypeFor[[]any](), len(list), len(list))
	}
	for i, e := range list {
		x, err := toHessian(e, elem, depth+1)
		if err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		if x != nil {
			out.Index(i).Set(reflect.ValueOf(x))
		}
	}
	return out.Interface(), nil
}

// infer picks the Java type of an untyped JSON value: integers as long,
// other numbers as double, objects as maps, arrays as lists.
func infer(v any, depth int) (any, error) {
	if depth > maxDepth {
		return nil, errors.New("nested too deep")
	}
	switch x := v.(type) {
	case nil, bool, string:
		return x, nil
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n, nil
		}
		return float(x)
	case float64:
		return x, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			y, err := infer(e, depth+1)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out[i] = y
		}
		return out, nil
	case map[string]any:
		return object(x, "", depth)
	}
	return nil, fmt.Errorf("unsupported JSON value %T", v)
}

// InferType names the Java type infer gives a JSON value, for the type
// list of a generic call when no signature is known.
func InferType(v any) string {
	switch x := v.(type) {
	case bool:
		return "java.lang.Boolean"
	case string:
		return "java.lang.String"
	case json.Number:
		if _, err := x.Int64(); err == nil {
			return "java.lang.Long"
		}
		return "java.lang.Double"
	case float64:
		return "java.lang.Double"
	case []any:
		return "java.util.List"
	case map[string]any:
		if c, ok := x["class"].(string); ok && c != "" {
			return c
		}
		return "java.util.Map"
	}
	return "java.lang.Object"
}

func integer(v any, lo, hi int64) (int64, error) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = strings.TrimSpace(x)
	case float64:
		if x != math.Trunc(x) || x < float64(lo) || x > float64(hi) {
			return 0, fmt.Errorf("%v is not an integer in [%d, %d]", x, lo, hi)
		}
		return int64(x), nil
	default:
		return 0, wantGot("an integer", v)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		// 1e3 or 5.0 are integers too, when exact.
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			return 0, fmt.Errorf("%q is not an integer", s)
		}
		n = int64(f)
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("%d is out of range [%d, %d]", n, lo, hi)
	}
	return n, nil
}

func float(v any) (float64, error) {
	switch x := v.(type) {
	case json.Number:
		return strconv.ParseFloat(x.String(), 64)
	case float64:
		return x, nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number", x)
		}
		return f, nil
	}
	return 0, wantGot("a number", v)
}

func numeral(v any) (string, error) {
	switch x := v.(type) {
	case json.Number:
		return x.String(), nil
	case string:
		return strings.TrimSpace(x), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	}
	return "", wantGot("a number or a numeric string", v)
}

// date reads ISO-8601 (RFC 3339, or a bare date) or epoch milliseconds.
func date(v any) (time.Time, error) {
	switch x := v.(type) {
	case json.Number:
		ms, err := x.Int64()
		if err != nil {
			return time.Time{}, fmt.Errorf("%s is not epoch milliseconds", x)
		}
		return time.UnixMilli(ms), nil
	case string:
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
			if t, err := time.Parse(layout, x); err == nil {
				return t, nil
			}
		}
		if ms, err := strconv.ParseInt(x, 10, 64); err == nil {
			return time.UnixMilli(ms), nil
		}
		return time.Time{}, fmt.Errorf("%q is neither ISO-8601 nor epoch milliseconds", x)
	}
	return time.Time{}, wantGot("a date (ISO-8601 or epoch milliseconds)", v)
}

func wantGot(want string, v any) error {
	got := "null"
	switch v.(type) {
	case bool:
		got = "a boolean"
	case string:
		got = "a string"
	case json.Number, float64:
		got = "a number"
	case []any:
		got = "an array"
	case map[string]any:
		got = "an object"
	}
	return fmt.Errorf("want %s, got %s", want, got)
}

// JSONOptions shape hessian values as JSON.
type JSONOptions struct {
	// KeepClass keeps the "class" key of POJO maps.
	KeepClass bool
	// LongsAsStrings writes integers beyond ±2^53 (where JavaScript
	// loses precision) as strings.
	LongsAsStrings bool
}

// ToJSON converts a decoded hessian2 value into one encoding/json writes
// faithfully: maps with string keys, dates as RFC 3339, big numbers as
// strings, exceptions as {class, message}.
func ToJSON(v any, o JSONOptions) any {
	return toJSON(v, o, 0)
}

func toJSON(v any, o JSONOptions, depth int) any {
	if depth > maxDepth {
		return "…"
	}
	switch x := v.(type) {
	case nil, bool, string, int32, int16, int8, int, uint8, uint16, uint32:
		return x
	case int64:
		if o.LongsAsStrings && (x > 1<<53 || x < -(1<<53)) {
			return strconv.FormatInt(x, 10)
		}
		return x
	case float64:
		return jsonFloat(x)
	case float32:
		return jsonFloat(float64(x))
	case []byte:
		return x // encoding/json writes base64
	case time.Time:
		return x.Format(time.RFC3339Nano)
	case *time.Time:
		if x == nil {
			return nil
		}
		return x.Format(time.RFC3339Nano)
	case *gxbig.Decimal:
		if x == nil {
			return nil
		}
		return x.String()
	case *gxbig.Integer:
		if x == nil {
			return nil
		}
		return x.String()
	case java_exception.Throwabler:
		return map[string]any{"class": x.JavaClassName(), "message": ExceptionMessage(x)}
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			ks := fmt.Sprint(k)
			if ks == "class" || ks == hessian.ClassKey {
				// A POJO's class: generic invocation's "class" key, or
				// the decoder's "_class" for an object of a class it
				// does not know.
				if o.KeepClass {
					out["class"] = toJSON(e, o, depth+1)
				}
				continue
			}
			out[ks] = toJSON(e, o, depth+1)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			if k == "class" || k == hessian.ClassKey {
				if o.KeepClass {
					out["class"] = toJSON(e, o, depth+1)
				}
				continue
			}
			out[k] = toJSON(e, o, depth+1)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = toJSON(e, o, depth+1)
		}
		return out
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer:
		if rv.IsNil() {
			return nil
		}
		return toJSON(rv.Elem().Interface(), o, depth+1)
	case reflect.Slice, reflect.Array:
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = toJSON(rv.Index(i).Interface(), o, depth+1)
		}
		return out
	case reflect.Map:
		out := make(map[string]any, rv.Len())
		it := rv.MapRange()
		for it.Next() {
			out[fmt.Sprint(it.Key().Interface())] = toJSON(it.Value().Interface(), o, depth+1)
		}
		return out
	case reflect.Struct:
		// A class the decoder knows as a Go struct: its exported fields,
		// named as Java beans name them.
		out := map[string]any{}
		rt := rv.Type()
		for i := range rt.NumField() {
			f := rt.Field(i)
			if !f.IsExported() {
				continue
			}
			name := f.Tag.Get("hessian")
			if name == "" {
				r, n := utf8.DecodeRuneInString(f.Name)
				name = string(unicode.ToLower(r)) + f.Name[n:]
			}
			out[name] = toJSON(rv.Field(i).Interface(), o, depth+1)
		}
		return out
	case reflect.Int64, reflect.Int, reflect.Int32, reflect.Int16, reflect.Int8:
		return toJSON(rv.Int(), o, depth)
	case reflect.Float64, reflect.Float32:
		return jsonFloat(rv.Float())
	case reflect.String:
		return rv.String()
	case reflect.Bool:
		return rv.Bool()
	}
	return fmt.Sprint(v)
}

// jsonFloat keeps NaN and infinities, which JSON has no numbers for, as
// the strings Java prints for them.
func jsonFloat(f float64) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return f
}

// ExceptionMessage is a Java exception's detail message.
func ExceptionMessage(t java_exception.Throwabler) string {
	rv := reflect.Indirect(reflect.ValueOf(t))
	if rv.Kind() == reflect.Struct {
		if f := rv.FieldByName("DetailMessage"); f.IsValid() && f.Kind() == reflect.String {
			return f.String()
		}
	}
	return t.Error()
}
