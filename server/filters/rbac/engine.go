package rbac

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/meshgate/meshgate/server/httpfilter"
	"github.com/meshgate/meshgate/server/router"
)

// engine is a compiled envoy.config.rbac.v3.RBAC: its action and its
// policies, in the lexicographic order of their names (Envoy's: the first
// that matches is the effective policy).
type engine struct {
	allowIfMatched bool // ALLOW; DENY is false
	log            bool // LOG: never denies
	policies       []policy
}

// policy matches when any of its permissions and any of its principals do.
type policy struct {
	name        string
	permissions []matcher
	principals  []matcher
}

// match reports whether a policy matches, and the first one that does.
func (e *engine) match(q *request) (string, bool) {
	for i := range e.policies {
		p := &e.policies[i]
		if anyMatch(p.permissions, q) && anyMatch(p.principals, q) {
			return p.name, true
		}
	}
	return "", false
}

// allows is the action's decision given whether a policy matched.
func (e *engine) allows(matched bool) bool {
	if e.log {
		return true
	}
	return matched == e.allowIfMatched
}

func compileEngine(r *rbacv3.RBAC, at string) (*engine, error) {
	e := &engine{}
	switch r.GetAction() {
	case rbacv3.RBAC_ALLOW:
		e.allowIfMatched = true
	case rbacv3.RBAC_DENY:
	case rbacv3.RBAC_LOG:
		e.log = true
	default:
		return nil, fmt.Errorf("%s.action: unknown action %v", at, r.GetAction())
	}
	names := make([]string, 0, len(r.GetPolicies()))
	for name := range r.GetPolicies() {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p, err := compilePolicy(r.GetPolicies()[name], fmt.Sprintf("%s.policies[%q]", at, name))
		if err != nil {
			return nil, err
		}
		p.name = name
		e.policies = append(e.policies, p)
	}
	return e, nil
}

func compilePolicy(p *rbacv3.Policy, at string) (policy, error) {
	var out policy
	switch {
	case p.GetCondition() != nil:
		return out, fmt.Errorf("%s.condition: CEL conditions are not supported", at)
	case p.GetCheckedCondition() != nil:
		return out, fmt.Errorf("%s.checked_condition: CEL conditions are not supported", at)
	case p.GetCelConfig() != nil:
		return out, fmt.Errorf("%s.cel_config: CEL conditions are not supported", at)
	case len(p.GetPermissions()) == 0:
		return out, fmt.Errorf("%s.permissions: at least one is required", at)
	case len(p.GetPrincipals()) == 0:
		return out, fmt.Errorf("%s.principals: at least one is required", at)
	}
	for i, pm := range p.GetPermissions() {
		m, err := compilePermission(pm, fmt.Sprintf("%s.permissions[%d]", at, i))
		if err != nil {
			return out, err
		}
		out.permissions = append(out.permissions, m)
	}
	for i, pr := range p.GetPrincipals() {
		m, err := compilePrincipal(pr, fmt.Sprintf("%s.principals[%d]", at, i))
		if err != nil {
			return out, err
		}
		out.principals = append(out.principals, m)
	}
	return out, nil
}

// kind is what a matcher reads.
type kind uint8

const (
	kindAny kind = iota
	kindAnd
	kindOr
	kindNot
	kindHeader               // a request header or pseudo-header
	kindURLPath              // :path without query and fragment
	kindDestinationIP        // the local address
	kindDestinationPort      // the local port
	kindDestinationPortRange // the local port, in [lo, hi)
	kindServerName           // the TLS SNI ("" in plaintext)
	kindMetadata             // dynamic metadata
	kindAuthenticated        // the TLS peer's certificate
	kindRemoteIP             // the peer address
	kindPeerPrincipal        // Istio's io.istio.peer_principal filter state
)

// matcher is a compiled permission or principal. It is a tagged struct, not
// an interface, so that the request it reads does not escape to the heap.
type matcher struct {
	kind   kind
	subs   []matcher // and, or; not has one
	header *router.HeaderMatcher
	str    *router.StringMatcher // url_path, SNI, principal name (nil: any TLS peer)
	cidr   netip.Prefix
	lo, hi uint32 // ports, [lo, hi)
	meta   *metadataMatcher
}

func anyMatch(ms []matcher, q *request) bool {
	for i := range ms {
		if ms[i].match(q) {
			return true
		}
	}
	return false
}

func (m *matcher) match(q *request) bool {
	switch m.kind {
	case kindAny:
		return true
	case kindAnd:
		for i := range m.subs {
			if !m.subs[i].match(q) {
				return false
			}
		}
		return true
	case kindOr:
		return anyMatch(m.subs, q)
	case kindNot:
		return !m.subs[0].match(q)
	case kindHeader:
		return m.header.Match(q.s.R)
	case kindURLPath:
		p, ok := urlPath(q.s.R)
		return ok && m.str.Match(p)
	case kindDestinationIP:
		a, ok := q.local()
		return ok && m.cidr.Contains(a.Addr())
	case kindDestinationPort, kindDestinationPortRange:
		a, ok := q.local()
		return ok && uint32(a.Port()) >= m.lo && uint32(a.Port()) < m.hi
	case kindServerName:
		sni := ""
		if q.s.R.TLS != nil {
			sni = q.s.R.TLS.ServerName
		}
		return m.str.Match(sni)
	case kindMetadata:
		return m.meta.match(q.s)
	case kindAuthenticated:
		return matchAuthenticated(m.str, q.s.R)
	case kindRemoteIP:
		a, ok := q.remote()
		return ok && m.cidr.Contains(a.Addr())
	case kindPeerPrincipal:
		p, ok := peerPrincipal(q.s.R)
		return ok && m.str.Match(p)
	}
	return false
}

func compilePermission(p *rbacv3.Permission, at string) (matcher, error) {
	switch r := p.GetRule().(type) {
	case *rbacv3.Permission_Any:
		if !r.Any {
			return matcher{}, fmt.Errorf("%s.any: must be true", at)
		}
		return matcher{kind: kindAny}, nil
	case *rbacv3.Permission_AndRules:
		return compilePermissions(kindAnd, r.AndRules.GetRules(), at+".and_rules.rules")
	case *rbacv3.Permission_OrRules:
		return compilePermissions(kindOr, r.OrRules.GetRules(), at+".or_rules.rules")
	case *rbacv3.Permission_NotRule:
		sub, err := compilePermission(r.NotRule, at+".not_rule")
		if err != nil {
			return matcher{}, err
		}
		return matcher{kind: kindNot, subs: []matcher{sub}}, nil
	case *rbacv3.Permission_Header:
		return compileHeader(r.Header, at+".header")
	case *rbacv3.Permission_UrlPath:
		return compileURLPath(r.UrlPath, at+".url_path")
	case *rbacv3.Permission_DestinationIp:
		cidr, err := compileCIDR(r.DestinationIp, at+".destination_ip")
		return matcher{kind: kindDestinationIP, cidr: cidr}, err
	case *rbacv3.Permission_DestinationPort:
		if r.DestinationPort > 65535 {
			return matcher{}, fmt.Errorf("%s.destination_port: %d is not a port", at, r.DestinationPort)
		}
		return matcher{kind: kindDestinationPort, lo: r.DestinationPort, hi: r.DestinationPort + 1}, nil
	case *rbacv3.Permission_DestinationPortRange:
		// Envoy's PortRangeMatcher: 0 <= start < end <= 65536, end excluded.
		lo, hi := r.DestinationPortRange.GetStart(), r.DestinationPortRange.GetEnd()
		if lo < 0 || lo > 65536 || hi < 0 || hi > 65536 || lo >= hi {
			return matcher{}, fmt.Errorf("%s.destination_port_range: [%d, %d) is not a port range", at, lo, hi)
		}
		return matcher{kind: kindDestinationPortRange, lo: uint32(lo), hi: uint32(hi)}, nil
	case *rbacv3.Permission_RequestedServerName:
		sm, err := compileString(r.RequestedServerName, at+".requested_server_name")
		return matcher{kind: kindServerName, str: sm}, err
	case *rbacv3.Permission_Metadata:
		//lint:ignore SA1019 Envoy still takes metadata (Istio renders it for JWT claims).
		mm, err := compileMetadata(r.Metadata, at+".metadata")
		return matcher{kind: kindMetadata, meta: mm}, err
	case *rbacv3.Permission_Matcher:
		return matcher{}, fmt.Errorf("%s.matcher: custom RBAC matcher extensions are not supported", at)
	case *rbacv3.Permission_UriTemplate:
		return matcher{}, fmt.Errorf("%s.uri_template: URI template path matching is not supported", at)
	case *rbacv3.Permission_SourcedMetadata:
		return matcher{}, fmt.Errorf("%s.sourced_metadata: not supported; use metadata", at)
	case nil:
		return matcher{}, fmt.Errorf("%s: no rule set", at)
	default:
		return matcher{}, fmt.Errorf("%s: unsupported rule %T", at, r)
	}
}

func compilePermissions(k kind, ps []*rbacv3.Permission, at string) (matcher, error) {
	if len(ps) == 0 {
		return matcher{}, fmt.Errorf("%s: at least one is required", at)
	}
	out := matcher{kind: k, subs: make([]matcher, 0, len(ps))}
	for i, p := range ps {
		m, err := compilePermission(p, fmt.Sprintf("%s[%d]", at, i))
		if err != nil {
			return matcher{}, err
		}
		out.subs = append(out.subs, m)
	}
	return out, nil
}

// istioPeerPrincipal is the filter state key Istio's waypoints match the
// peer's identity by (pilot/pkg/security/authz/model), the only one
// meshgate knows: it is the TLS peer's SPIFFE ID, its URI SAN.
const istioPeerPrincipal = "io.istio.peer_principal"

func compilePrincipal(p *rbacv3.Principal, at string) (matcher, error) {
	switch id := p.GetIdentifier().(type) {
	case *rbacv3.Principal_Any:
		if !id.Any {
			return matcher{}, fmt.Errorf("%s.any: must be true", at)
		}
		return matcher{kind: kindAny}, nil
	case *rbacv3.Principal_AndIds:
		return compilePrincipals(kindAnd, id.AndIds.GetIds(), at+".and_ids.ids")
	case *rbacv3.Principal_OrIds:
		return compilePrincipals(kindOr, id.OrIds.GetIds(), at+".or_ids.ids")
	case *rbacv3.Principal_NotId:
		sub, err := compilePrincipal(id.NotId, at+".not_id")
		if err != nil {
			return matcher{}, err
		}
		return matcher{kind: kindNot, subs: []matcher{sub}}, nil
	case *rbacv3.Principal_Authenticated_:
		out := matcher{kind: kindAuthenticated}
		if pn := id.Authenticated.GetPrincipalName(); pn != nil {
			sm, err := compileString(pn, at+".authenticated.principal_name")
			if err != nil {
				return matcher{}, err
			}
			out.str = sm
		}
		return out, nil
	case *rbacv3.Principal_SourceIp:
		// Envoy: the connection's peer (after the PROXY protocol, before
		// X-Forwarded-For). meshgate takes no PROXY protocol: the peer.
		//lint:ignore SA1019 Envoy still takes source_ip.
		cidr, err := compileCIDR(id.SourceIp, at+".source_ip")
		return matcher{kind: kindRemoteIP, cidr: cidr}, err
	case *rbacv3.Principal_DirectRemoteIp:
		cidr, err := compileCIDR(id.DirectRemoteIp, at+".direct_remote_ip")
		return matcher{kind: kindRemoteIP, cidr: cidr}, err
	case *rbacv3.Principal_RemoteIp:
		// Envoy: the downstream remote address, which the HTTP connection
		// manager may take from X-Forwarded-For (xff_num_trusted_hops) or
		// an original-IP detection extension. meshgate's does not derive
		// one yet: the remote address is the connection's peer, as with
		// Envoy's defaults (use_remote_address false, no trusted hops).
		cidr, err := compileCIDR(id.RemoteIp, at+".remote_ip")
		return matcher{kind: kindRemoteIP, cidr: cidr}, err
	case *rbacv3.Principal_Header:
		return compileHeader(id.Header, at+".header")
	case *rbacv3.Principal_UrlPath:
		return compileURLPath(id.UrlPath, at+".url_path")
	case *rbacv3.Principal_Metadata:
		//lint:ignore SA1019 Envoy still takes metadata (Istio renders it for JWT claims).
		mm, err := compileMetadata(id.Metadata, at+".metadata")
		return matcher{kind: kindMetadata, meta: mm}, err
	case *rbacv3.Principal_FilterState:
		return compileFilterState(id.FilterState, at+".filter_state")
	case *rbacv3.Principal_SourcedMetadata:
		return matcher{}, fmt.Errorf("%s.sourced_metadata: not supported; use metadata", at)
	case *rbacv3.Principal_Custom:
		return matcher{}, fmt.Errorf("%s.custom: custom principal extensions are not supported", at)
	case nil:
		return matcher{}, fmt.Errorf("%s: no identifier set", at)
	default:
		return matcher{}, fmt.Errorf("%s: unsupported identifier %T", at, id)
	}
}

func compilePrincipals(k kind, ps []*rbacv3.Principal, at string) (matcher, error) {
	if len(ps) == 0 {
		return matcher{}, fmt.Errorf("%s: at least one is required", at)
	}
	out := matcher{kind: k, subs: make([]matcher, 0, len(ps))}
	for i, p := range ps {
		m, err := compilePrincipal(p, fmt.Sprintf("%s[%d]", at, i))
		if err != nil {
			return matcher{}, err
		}
		out.subs = append(out.subs, m)
	}
	return out, nil
}

// compileFilterState takes only Istio's peer principal, as a string: the
// filter state objects other filters would set do not exist in meshgate,
// and a matcher on one would never match (for a DENY, failing open).
func compileFilterState(fs *matcherv3.FilterStateMatcher, at string) (matcher, error) {
	if fs.GetKey() != istioPeerPrincipal {
		return matcher{}, fmt.Errorf("%s.key: filter state %q is not supported (only %s)", at, fs.GetKey(), istioPeerPrincipal)
	}
	sm := fs.GetStringMatch()
	if sm == nil {
		return matcher{}, fmt.Errorf("%s: %s is matched by string_match only", at, istioPeerPrincipal)
	}
	str, err := compileString(sm, at+".string_match")
	return matcher{kind: kindPeerPrincipal, str: str}, err
}

func compileHeader(h *routev3.HeaderMatcher, at string) (matcher, error) {
	if h == nil {
		return matcher{}, fmt.Errorf("%s: missing", at)
	}
	c, err := router.CompileHeaderMatcher(h)
	if err != nil {
		return matcher{}, fmt.Errorf("%s: %w", at, err)
	}
	return matcher{kind: kindHeader, header: &c}, nil
}

func compileURLPath(p *matcherv3.PathMatcher, at string) (matcher, error) {
	sm := p.GetPath()
	if sm == nil {
		return matcher{}, fmt.Errorf("%s.path: required", at)
	}
	str, err := compileString(sm, at+".path")
	return matcher{kind: kindURLPath, str: str}, err
}

func compileString(sm *matcherv3.StringMatcher, at string) (*router.StringMatcher, error) {
	c, err := router.CompileStringMatcher(sm)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", at, err)
	}
	return &c, nil
}

// compileCIDR parses a CidrRange as Envoy does: prefix_len absent is 0, the
// address is masked to the prefix; an address that does not parse or a
// length over its family's bits is refused.
func compileCIDR(c *corev3.CidrRange, at string) (netip.Prefix, error) {
	addr, err := netip.ParseAddr(c.GetAddressPrefix())
	if err != nil || addr.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%s.address_prefix: %q is not an IP address", at, c.GetAddressPrefix())
	}
	bits := c.GetPrefixLen().GetValue()
	if bits > uint32(addr.BitLen()) {
		return netip.Prefix{}, fmt.Errorf("%s.prefix_len: %d is over the %d bits of %s", at, bits, addr.BitLen(), addr)
	}
	return netip.PrefixFrom(addr, int(bits)).Masked(), nil
}

// request is what matchers read of one request: the stream, and the
// connection's addresses, parsed once when first needed.
type request struct {
	s *httpfilter.Stream

	localAddr, remoteAddr netip.AddrPort
	localDone, remoteDone bool
	localOK, remoteOK     bool
}

// local is the address the request arrived at (http.LocalAddrContextKey).
func (q *request) local() (netip.AddrPort, bool) {
	if !q.localDone {
		q.localDone = true
		q.localAddr, q.localOK = localAddr(q.s.R)
	}
	return q.localAddr, q.localOK
}

// remote is the connection's peer (Request.RemoteAddr).
func (q *request) remote() (netip.AddrPort, bool) {
	if !q.remoteDone {
		q.remoteDone = true
		ap, err := netip.ParseAddrPort(q.s.R.RemoteAddr)
		if err == nil {
			q.remoteAddr, q.remoteOK = normalize(ap), true
		}
	}
	return q.remoteAddr, q.remoteOK
}

func localAddr(r *http.Request) (netip.AddrPort, bool) {
	switch a := r.Context().Value(http.LocalAddrContextKey).(type) {
	case *net.TCPAddr:
		ap := a.AddrPort()
		return normalize(ap), ap.Addr().IsValid()
	case net.Addr:
		ap, err := netip.ParseAddrPort(a.String())
		return normalize(ap), err == nil
	}
	return netip.AddrPort{}, false
}

// normalize drops an address's zone (a prefix never contains a zoned
// address) and unmaps an IPv4-mapped IPv6 address (a dual-stack socket's
// view of an IPv4 peer), so that IPv4 ranges match it.
func normalize(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().WithZone("").Unmap(), ap.Port())
}

// urlPath is the request's :path without query and fragment, as Envoy's
// PathMatcher reads it; false when the request has no path (CONNECT).
func urlPath(r *http.Request) (string, bool) {
	p := r.RequestURI
	if p == "" || p[0] != '/' {
		if r.Method == http.MethodConnect {
			return "", false
		}
		if p != "*" {
			p = r.URL.RequestURI()
		}
	}
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	return p, true
}

// matchAuthenticated is Envoy's AuthenticatedMatcher: a plaintext request
// never matches; without a principal_name any TLS connection does (Envoy:
// "any user that is allowed by the downstream TLS configuration"). With
// one, the peer certificate's URI SANs, then its DNS SANs, then its subject
// are tried.
func matchAuthenticated(name *router.StringMatcher, r *http.Request) bool {
	if r.TLS == nil {
		return false
	}
	if name == nil {
		return true
	}
	var cert *x509.Certificate
	if len(r.TLS.PeerCertificates) > 0 {
		cert = r.TLS.PeerCertificates[0]
	}
	if cert != nil {
		for _, u := range cert.URIs {
			if name.Match(u.String()) {
				return true
			}
		}
		for _, d := range cert.DNSNames {
			if name.Match(d) {
				return true
			}
		}
	}
	return name.Match(subject(cert))
}

// subject is the certificate's subject as Envoy prints it (RFC 2253, in the
// certificate's own order of attributes); "" with no certificate.
func subject(cert *x509.Certificate) string {
	if cert == nil {
		return ""
	}
	var rdns pkix.RDNSequence
	if rest, err := asn1.Unmarshal(cert.RawSubject, &rdns); err != nil || len(rest) != 0 {
		return cert.Subject.String()
	}
	return rdns.String()
}

// peerPrincipal is what Istio's io.istio.peer_principal filter state holds:
// the TLS peer's identity, the first URI SAN of its certificate.
func peerPrincipal(r *http.Request) (string, bool) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return "", false
	}
	cert := r.TLS.PeerCertificates[0]
	if len(cert.URIs) == 0 {
		return "", false
	}
	return cert.URIs[0].String(), true
}
