// Package support knows, field by field, what meshgate's data plane does
// with the Envoy resources it reads, so that it never does less than a
// config says without saying so. For each listed message, each field is
// honoured (read and acted on, or refused by the compiler when it cannot
// be), harmless (not read, and that changes nothing a request gets),
// ignored (not read, and a request gets something other than Envoy would
// give: noted, logged once and shown in /config_dump) or refused (the
// resource fails with the reason).
//
// Check walks a resource and returns its notes and refusals; Markdown
// renders the table for the docs.
package support

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"
)

type kind uint8

const (
	kindHonoured kind = iota + 1
	kindHarmless
	kindIgnored
	kindRefused
)

// status is what becomes of one field.
type status struct {
	kind kind
	// leaf: honoured, and its contents are the compiler's business (not
	// walked).
	leaf bool
	// why says, for an ignored or refused field, what meshgate does
	// instead.
	why string
	// fine, when set, excuses values that mean what meshgate does anyway
	// (the field's default, most often).
	fine func(protoreflect.FieldDescriptor, protoreflect.Value) bool
}

var (
	ok       = status{kind: kindHonoured}
	leaf     = status{kind: kindHonoured, leaf: true}
	harmless = status{kind: kindHarmless}
)

func ignored(why string) status { return status{kind: kindIgnored, why: why} }

func ignoredUnless(why string, fine func(protoreflect.FieldDescriptor, protoreflect.Value) bool) status {
	return status{kind: kindIgnored, why: why, fine: fine}
}

func refused(why string) status { return status{kind: kindRefused, why: why} }

func refusedUnless(why string, fine func(protoreflect.FieldDescriptor, protoreflect.Value) bool) status {
	return status{kind: kindRefused, why: why, fine: fine}
}

// isZero: the value is its type's zero (for a message: nothing set in it,
// or a wrapper / duration holding zero).
func isZero(_ protoreflect.FieldDescriptor, v protoreflect.Value) bool { return zero(v) }

func zero(v protoreflect.Value) bool {
	switch x := v.Interface().(type) {
	case protoreflect.Message:
		empty := true
		x.Range(func(_ protoreflect.FieldDescriptor, fv protoreflect.Value) bool {
			empty = zero(fv)
			return empty
		})
		return empty
	case protoreflect.List:
		return x.Len() == 0
	case protoreflect.Map:
		return x.Len() == 0
	case bool:
		return !x
	case protoreflect.EnumNumber:
		return x == 0
	case string:
		return x == ""
	case []byte:
		return len(x) == 0
	case int32, int64, uint32, uint64, float32, float64:
		return fmt.Sprint(x) == "0"
	}
	return false
}

// isFalse: a bool or google.protobuf.BoolValue that is false.
func isFalse(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool { return zero(v) }

// isTrue: a bool or google.protobuf.BoolValue that is true.
func isTrue(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool { return !zero(v) }

// enumIs: an enum holding one of names.
func enumIs(names ...string) func(protoreflect.FieldDescriptor, protoreflect.Value) bool {
	return func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Enum() == nil {
			return false
		}
		ev := fd.Enum().Values().ByNumber(v.Enum())
		for _, n := range names {
			if ev != nil && string(ev.Name()) == n {
				return true
			}
		}
		return false
	}
}

// onlyFields: a message that sets no field but names (an unset or empty
// message too).
func onlyFields(names ...string) func(protoreflect.FieldDescriptor, protoreflect.Value) bool {
	return func(_ protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		m, ok := v.Interface().(protoreflect.Message)
		if !ok {
			return false
		}
		fine := true
		m.Range(func(fd protoreflect.FieldDescriptor, fv protoreflect.Value) bool {
			if zero(fv) {
				return true
			}
			fine = false
			for _, n := range names {
				if string(fd.Name()) == n {
					fine = true
				}
			}
			return fine
		})
		return fine
	}
}

// Check walks a resource (a Listener, RouteConfiguration, Cluster or
// ClusterLoadAssignment) and returns what of its config is ignored, as
// "path: what meshgate does instead" (sorted, each once), and an error
// naming every field that is refused.
func Check(m proto.Message) (notes []string, err error) {
	w := &walker{seen: map[string]bool{}}
	// One array for the path: each step is done before its sibling reuses it.
	w.message(m.ProtoReflect(), make([]step, 0, 16))
	sort.Strings(w.notes)
	return w.notes, errors.Join(w.errs...)
}

type walker struct {
	notes []string
	errs  []error
	seen  map[string]bool
}

// step is one step of the path to a field: the field's name, and for an
// element of a list or map, which one. Paths are spelled out only for
// what is noted, so that walking a large resource stays cheap.
type step struct {
	field string
	elem  protoreflect.Message // a list element, named by label
	key   string               // a map key
	inMap bool
}

func spell(path []step, field string) string {
	var b strings.Builder
	for _, s := range path {
		b.WriteString(s.field)
		switch {
		case s.inMap:
			b.WriteString("[" + s.key + "]")
		case s.elem != nil:
			b.WriteString(label(s.elem))
		}
		b.WriteByte('.')
	}
	b.WriteString(field)
	return b.String()
}

func (w *walker) note(line string) {
	if !w.seen[line] {
		w.seen[line] = true
		w.notes = append(w.notes, line)
	}
}

// fieldPlan is one field of a listed message that the walk must look at:
// one that is not simply honoured, or an honoured message field whose type
// is listed too (walked into).
type fieldPlan struct {
	fd protoreflect.FieldDescriptor
	st status
}

// plans are, by message name, the fields the walk looks at. Worked out
// once from the table and the registered descriptors (a pure cache of the
// table: nothing changes it after).
var plans = sync.OnceValue(func() map[protoreflect.FullName][]fieldPlan {
	out := make(map[protoreflect.FullName][]fieldPlan, len(table))
	for name, fields := range table {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
		if err != nil {
			continue
		}
		md, isMsg := d.(protoreflect.MessageDescriptor)
		if !isMsg {
			continue
		}
		var list []fieldPlan
		for i := 0; i < md.Fields().Len(); i++ {
			fd := md.Fields().Get(i)
			st, known := fields[string(fd.Name())]
			if !known {
				// A field newer than this table: say so rather than pass over it.
				st = ignored("not known to this version of meshgate; ignored")
			}
			switch {
			case st.kind == kindHarmless:
				continue
			case st.kind == kindHonoured && (st.leaf || !walkable(fd)):
				continue
			}
			list = append(list, fieldPlan{fd: fd, st: st})
		}
		out[md.FullName()] = list
	}
	return out
})

// walkable reports whether a field holds messages the walk may enter: a
// listed type, an Any, or a map of either.
func walkable(fd protoreflect.FieldDescriptor) bool {
	md := fd.Message()
	if fd.IsMap() {
		md = fd.MapValue().Message()
	}
	if md == nil {
		return false
	}
	if md.FullName() == "google.protobuf.Any" {
		return true
	}
	_, listed := table[string(md.FullName())]
	return listed
}

func (w *walker) message(m protoreflect.Message, path []step) {
	list, listed := plans()[m.Descriptor().FullName()]
	if !listed {
		return
	}
	for _, f := range list {
		fd, st := f.fd, f.st
		if !m.Has(fd) {
			continue
		}
		v := m.Get(fd)
		name := string(fd.Name())
		if st.kind == kindIgnored || st.kind == kindRefused {
			// A value that asks for nothing more than meshgate does is fine:
			// the zero value, or what fine accepts when the field has a say.
			if st.fine != nil && st.fine(fd, v) || st.fine == nil && zero(v) {
				continue
			}
			if st.kind == kindRefused {
				w.errs = append(w.errs, fmt.Errorf("%s: %s", spell(path, name), st.why))
			} else {
				w.note(spell(path, name) + ": " + st.why)
			}
			continue
		}
		switch {
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				e := l.Get(i).Message()
				w.value(e, append(path, step{field: name, elem: e}))
			}
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				w.value(mv.Message(), append(path, step{field: name, key: k.String(), inMap: true}))
				return true
			})
		default:
			w.value(v.Message(), append(path, step{field: name}))
		}
	}
}

// value walks a message, unpacking an Any whose type is listed.
func (w *walker) value(m protoreflect.Message, path []step) {
	if a, isAny := m.Interface().(*anypb.Any); isAny {
		mt, err := protoregistry.GlobalTypes.FindMessageByURL(a.GetTypeUrl())
		if err != nil {
			return // a type this binary does not know: the compiler decides
		}
		if _, listed := table[string(mt.Descriptor().FullName())]; !listed {
			return
		}
		inner := mt.New()
		if proto.Unmarshal(a.GetValue(), inner.Interface()) != nil {
			return
		}
		m = inner
	}
	w.message(m, path)
}

// label names a list element in a path: by its name when it has one.
func label(m protoreflect.Message) string {
	if fd := m.Descriptor().Fields().ByName("name"); fd != nil && fd.Kind() == protoreflect.StringKind {
		if n := m.Get(fd).String(); n != "" {
			return "[" + n + "]"
		}
	}
	return "[*]"
}

// Markdown renders the table: per message, the fields honoured, ignored
// (with what meshgate does instead) and refused, and those that change
// nothing.
func Markdown() string {
	var b strings.Builder
	names := make([]string, 0, len(table))
	for n := range table {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fields := table[n]
		fmt.Fprintf(&b, "### %s\n\n", n)
		var honoured, harmless []string
		var ignoredRows, refusedRows []string
		for _, f := range sortedKeys(fields) {
			st := fields[f]
			switch st.kind {
			case kindHonoured:
				honoured = append(honoured, "`"+f+"`")
			case kindHarmless:
				harmless = append(harmless, "`"+f+"`")
			case kindIgnored:
				ignoredRows = append(ignoredRows, fmt.Sprintf("| `%s` | %s%s |", f, st.why, unlessText(st)))
			case kindRefused:
				refusedRows = append(refusedRows, fmt.Sprintf("| `%s` | %s%s |", f, st.why, unlessText(st)))
			}
		}
		if len(honoured) > 0 {
			fmt.Fprintf(&b, "Honoured: %s.\n\n", strings.Join(honoured, ", "))
		}
		if len(refusedRows) > 0 {
			fmt.Fprintf(&b, "| refused when set | why |\n|---|---|\n%s\n\n", strings.Join(refusedRows, "\n"))
		}
		if len(ignoredRows) > 0 {
			fmt.Fprintf(&b, "| accepted, not done (logged, in /config_dump) | what meshgate does instead |\n|---|---|\n%s\n\n", strings.Join(ignoredRows, "\n"))
		}
		if len(harmless) > 0 {
			fmt.Fprintf(&b, "Read past (no effect on traffic): %s.\n\n", strings.Join(harmless, ", "))
		}
	}
	return b.String()
}

func unlessText(st status) string {
	if st.fine != nil {
		return " (only when set to a value that asks for more)"
	}
	return ""
}

func sortedKeys(m map[string]status) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
