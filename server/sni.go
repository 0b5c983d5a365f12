package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
)

// tlsChain is a filter chain that terminates TLS, for the server names
// its filter_chain_match lists (none: any name).
type tlsChain struct {
	names []string
	ch    *chain
	conf  *tls.Config
}

// addTLSChain adds a TLS chain, refusing one whose server names another
// chain already claims (Envoy refuses such a listener too).
func (st *listenerState) addTLSChain(tc tlsChain) error {
	for _, o := range st.tls {
		if len(o.names) == 0 && len(tc.names) == 0 {
			return errors.New("a second TLS chain for any server name (no filter_chain_match.server_names)")
		}
		for _, a := range o.names {
			for _, b := range tc.names {
				if strings.EqualFold(a, b) {
					return fmt.Errorf("server name %q is matched by two TLS chains", b)
				}
			}
		}
	}
	st.tls = append(st.tls, tc)
	return nil
}

// tlsChainFor picks the TLS chain of a server name (SNI) as Envoy does:
// an exact name first, then the longest wildcard suffix (*.example.com),
// then the chain without server names. nil: no chain serves the name.
func (st *listenerState) tlsChainFor(sni string) *tlsChain {
	sni = strings.ToLower(strings.TrimSuffix(sni, "."))
	var best, any *tlsChain
	bestLen := -1
	for i := range st.tls {
		tc := &st.tls[i]
		if len(tc.names) == 0 {
			any = tc
			continue
		}
		for _, n := range tc.names {
			n = strings.ToLower(n)
			switch {
			case n == sni && sni != "":
				return tc
			case strings.HasPrefix(n, "*.") && sni != "" && strings.HasSuffix(sni, n[1:]) && len(n) > bestLen:
				best, bestLen = tc, len(n)
			}
		}
	}
	if best != nil {
		return best
	}
	return any
}

// chains lists the listener's HTTP filter chains, cleartext first.
func (st *listenerState) chains() []*chain {
	var out []*chain
	if st.plain != nil {
		out = append(out, st.plain)
	}
	for _, tc := range st.tls {
		out = append(out, tc.ch)
	}
	return out
}
