package pixiu

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// node is one mapping of the Pixiu YAML that remembers which keys the
// converter read, so that every key it did not read can be reported instead
// of being dropped silently.
type node struct {
	path string
	m    map[string]any
	read map[string]bool
	kids map[string]*node
}

// asNode wraps v when it is a mapping; a missing or empty value is an empty
// node (Pixiu writes `config:` with nothing after it).
func asNode(path string, v any) *node {
	m, _ := v.(map[string]any)
	if m == nil {
		m = map[string]any{}
	}
	return &node{path: path, m: m, read: map[string]bool{}, kids: map[string]*node{}}
}

// get returns the value of the first key present, compared without case:
// Pixiu's own loaders accept several spellings (statintervalinms,
// statIntervalInMs).
func (n *node) get(keys ...string) any {
	for _, want := range keys {
		for k, v := range n.m {
			if strings.EqualFold(k, want) {
				n.read[k] = true
				return v
			}
		}
	}
	return nil
}

func (n *node) has(key string) bool { return !isEmpty(n.get(key)) }

func (n *node) str(keys ...string) string { return scalar(n.get(keys...)) }

func (n *node) boolean(key string) bool {
	b, _ := strconv.ParseBool(n.str(key))
	return b
}

// child returns the same node for the same key, so that what one reader
// marks as read stays read for the next.
func (n *node) child(key string) *node {
	if k, ok := n.kids[key]; ok {
		return k
	}
	k := asNode(n.path+"."+key, n.get(key))
	n.kids[key] = k
	return k
}

// skip marks keys as read: they change nothing meshgate does (identifiers,
// descriptions) or were reported already.
func (n *node) skip(keys ...string) {
	for _, k := range keys {
		n.get(k)
	}
}

// list returns a sequence; a lone mapping counts as a list of one (Pixiu
// accepts filter_chains both ways).
func (n *node) list(key string) []any {
	switch v := n.get(key).(type) {
	case []any:
		return v
	case map[string]any:
		return []any{v}
	}
	return nil
}

// strings returns a sequence of scalars, or a comma separated scalar.
func (n *node) strings(key string) []string {
	var out []string
	switch v := n.get(key).(type) {
	case []any:
		for _, e := range v {
			if s := strings.TrimSpace(scalar(e)); s != "" {
				out = append(out, s)
			}
		}
	default:
		for _, s := range strings.Split(scalar(v), ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// unread lists the keys with a value that nothing read, sorted.
func (n *node) unread() []string {
	var out []string
	for k, v := range n.m {
		if !n.read[k] && !isEmpty(v) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func scalar(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	default:
		return fmt.Sprint(v)
	}
}

// isEmpty is true for what Pixiu treats as not set: nothing, "", false, 0,
// and empty lists or mappings.
func isEmpty(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return v == ""
	case bool:
		return !v
	case float64:
		return v == 0
	case []any:
		return len(v) == 0
	case map[string]any:
		for _, e := range v {
			if !isEmpty(e) {
				return false
			}
		}
		return true
	}
	return false
}
