package rbac

import (
	"encoding/json"
	"fmt"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/meshgate/meshgate/server/httpfilter"
	"github.com/meshgate/meshgate/server/router"
)

// metadataMatcher is a compiled Envoy MetadataMatcher over the request's
// dynamic metadata: the value at path under namespace filter, matched by
// value, the result inverted by invert.
type metadataMatcher struct {
	filter string
	path   []string
	value  valueMatcher
	invert bool
}

func (m *metadataMatcher) match(s *httpfilter.Stream) bool {
	v, ok := lookup(s.Metadata(m.filter), m.path)
	return m.value.match(v, ok) != m.invert
}

// lookup walks path down nested maps, as Envoy's Metadata::metadataValue
// does: false when a key is missing or a value on the way is no map (Envoy's
// unset value, which only an inverted matcher matches).
func lookup(md map[string]any, path []string) (any, bool) {
	if md == nil {
		return nil, false
	}
	var cur any = md
	for _, k := range path {
		switch m := unwrap(cur).(type) {
		case map[string]any:
			v, ok := m[k]
			if !ok {
				return nil, false
			}
			cur = v
		case *structpb.Struct:
			v, ok := m.GetFields()[k]
			if !ok {
				return nil, false
			}
			cur = v
		default:
			return nil, false
		}
	}
	if v, ok := cur.(*structpb.Value); ok && v.GetKind() == nil {
		return nil, false // a Value with no kind is unset
	}
	return unwrap(cur), true
}

// unwrap turns a structpb.Value (which a filter may record) into the Go
// value it holds: nil for null, string, float64, bool, or the struct or list.
func unwrap(v any) any {
	pv, ok := v.(*structpb.Value)
	if !ok {
		return v
	}
	switch k := pv.GetKind().(type) {
	case *structpb.Value_StringValue:
		return k.StringValue
	case *structpb.Value_NumberValue:
		return k.NumberValue
	case *structpb.Value_BoolValue:
		return k.BoolValue
	case *structpb.Value_StructValue:
		return k.StructValue
	case *structpb.Value_ListValue:
		return k.ListValue
	}
	return nil
}

type valueKind uint8

const (
	valueNull valueKind = iota
	valueDouble
	valueString
	valueBool
	valuePresent
	valueList
	valueOr
)

// valueMatcher is a compiled Envoy ValueMatcher.
type valueMatcher struct {
	kind      valueKind
	exact     bool    // double: exact, else the range [lo, hi)
	d, lo, hi float64 // double
	str       *router.StringMatcher
	b         bool           // bool_match, present_match
	subs      []valueMatcher // list: one (one_of); or: all
}

// match follows Envoy's ValueMatcher implementations: each matches only a
// value of its own kind; an unset value (set false: missing) matches none,
// not even present_match false (Envoy's PresentMatcher is "matcher_ && the
// value is set"), nor null_match.
func (m *valueMatcher) match(v any, set bool) bool {
	if !set {
		return false
	}
	v = unwrap(v)
	switch m.kind {
	case valueNull:
		return v == nil
	case valuePresent:
		return m.b
	case valueBool:
		b, ok := v.(bool)
		return ok && b == m.b
	case valueString:
		s, ok := v.(string)
		return ok && m.str.Match(s)
	case valueDouble:
		f, ok := number(v)
		if !ok {
			return false
		}
		if m.exact {
			return f == m.d
		}
		return m.lo <= f && f < m.hi
	case valueList:
		one := &m.subs[0]
		switch l := v.(type) {
		case []any:
			for _, e := range l {
				if one.match(e, true) {
					return true
				}
			}
		case []string:
			for _, e := range l {
				if one.match(e, true) {
					return true
				}
			}
		case *structpb.ListValue:
			for _, e := range l.GetValues() {
				if e.GetKind() != nil && one.match(e, true) {
					return true
				}
			}
		}
		return false
	case valueOr:
		for i := range m.subs {
			if m.subs[i].match(v, true) {
				return true
			}
		}
	}
	return false
}

// number is v as a JSON number (Envoy's number_value), of whichever Go type
// a filter recorded it as.
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint32:
		return float64(n), true
	case uint64:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

func compileMetadata(mm *matcherv3.MetadataMatcher, at string) (*metadataMatcher, error) {
	switch {
	case mm == nil:
		return nil, fmt.Errorf("%s: missing", at)
	case mm.GetFilter() == "":
		return nil, fmt.Errorf("%s.filter: required", at)
	case len(mm.GetPath()) == 0:
		return nil, fmt.Errorf("%s.path: at least one segment is required", at)
	}
	out := &metadataMatcher{filter: mm.GetFilter(), invert: mm.GetInvert()}
	for i, seg := range mm.GetPath() {
		k, ok := seg.GetSegment().(*matcherv3.MetadataMatcher_PathSegment_Key)
		if !ok || k.Key == "" {
			return nil, fmt.Errorf("%s.path[%d].key: required", at, i)
		}
		out.path = append(out.path, k.Key)
	}
	v, err := compileValue(mm.GetValue(), at+".value")
	if err != nil {
		return nil, err
	}
	out.value = v
	return out, nil
}

func compileValue(vm *matcherv3.ValueMatcher, at string) (valueMatcher, error) {
	switch p := vm.GetMatchPattern().(type) {
	case *matcherv3.ValueMatcher_NullMatch_:
		return valueMatcher{kind: valueNull}, nil
	case *matcherv3.ValueMatcher_DoubleMatch:
		switch d := p.DoubleMatch.GetMatchPattern().(type) {
		case *matcherv3.DoubleMatcher_Exact:
			return valueMatcher{kind: valueDouble, exact: true, d: d.Exact}, nil
		case *matcherv3.DoubleMatcher_Range:
			return valueMatcher{kind: valueDouble, lo: d.Range.GetStart(), hi: d.Range.GetEnd()}, nil
		}
		return valueMatcher{}, fmt.Errorf("%s.double_match: needs exact or range", at)
	case *matcherv3.ValueMatcher_StringMatch:
		sm, err := compileString(p.StringMatch, at+".string_match")
		return valueMatcher{kind: valueString, str: sm}, err
	case *matcherv3.ValueMatcher_BoolMatch:
		return valueMatcher{kind: valueBool, b: p.BoolMatch}, nil
	case *matcherv3.ValueMatcher_PresentMatch:
		return valueMatcher{kind: valuePresent, b: p.PresentMatch}, nil
	case *matcherv3.ValueMatcher_ListMatch:
		one := p.ListMatch.GetOneOf()
		if one == nil {
			return valueMatcher{}, fmt.Errorf("%s.list_match.one_of: required", at)
		}
		sub, err := compileValue(one, at+".list_match.one_of")
		if err != nil {
			return valueMatcher{}, err
		}
		return valueMatcher{kind: valueList, subs: []valueMatcher{sub}}, nil
	case *matcherv3.ValueMatcher_OrMatch:
		vms := p.OrMatch.GetValueMatchers()
		if len(vms) == 0 {
			return valueMatcher{}, fmt.Errorf("%s.or_match.value_matchers: required", at)
		}
		out := valueMatcher{kind: valueOr}
		for i, sub := range vms {
			c, err := compileValue(sub, fmt.Sprintf("%s.or_match.value_matchers[%d]", at, i))
			if err != nil {
				return valueMatcher{}, err
			}
			out.subs = append(out.subs, c)
		}
		return out, nil
	case nil:
		return valueMatcher{}, fmt.Errorf("%s: no match pattern set", at)
	default:
		return valueMatcher{}, fmt.Errorf("%s: unsupported match pattern %T", at, p)
	}
}
