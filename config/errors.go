package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ResourceError is a problem with one resource: it does not validate, does
// not compile, or cannot be made live (its port is taken). Sources that
// accept resources one by one (xDS) reject that resource and keep the rest.
type ResourceError struct {
	TypeURL string
	Name    string
	Err     error
}

func (e *ResourceError) Error() string {
	prefix := fmt.Sprintf("%s %q: ", kind(e.TypeURL), e.Name)
	msg := e.Err.Error()
	if strings.HasPrefix(msg, prefix) { // the compiler named it already
		return msg
	}
	return prefix + msg
}

func (e *ResourceError) Unwrap() error { return e.Err }

// ResourceErrors are the problems of an update, each tied to the resource
// it is about. It is what Store.Apply and the data plane return when every
// problem can be named by resource.
type ResourceErrors []*ResourceError

func (es ResourceErrors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

// Sorted returns the errors ordered by type (in ResourceTypes order), then
// name, so that messages are stable.
func (es ResourceErrors) Sorted() ResourceErrors {
	out := append(ResourceErrors(nil), es...)
	rank := map[string]int{}
	for i, t := range ResourceTypes {
		rank[t] = i
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].TypeURL != out[j].TypeURL {
			return rank[out[i].TypeURL] < rank[out[j].TypeURL]
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// ByResource splits err into the errors tied to resources (type URL ->
// name -> error) and whatever is not tied to one (nil if every part is).
func ByResource(err error) (map[string]map[string]error, error) {
	if err == nil {
		return nil, nil
	}
	out := map[string]map[string]error{}
	var rest []error
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case ResourceErrors:
			for _, one := range e {
				walk(one)
			}
		case *ResourceError:
			if out[e.TypeURL] == nil {
				out[e.TypeURL] = map[string]error{}
			}
			if prev := out[e.TypeURL][e.Name]; prev != nil {
				out[e.TypeURL][e.Name] = errors.Join(prev, e.Err)
			} else {
				out[e.TypeURL][e.Name] = e.Err
			}
		case interface{ Unwrap() []error }:
			for _, one := range e.Unwrap() {
				walk(one)
			}
		default:
			rest = append(rest, err)
		}
	}
	walk(err)
	return out, errors.Join(rest...)
}
