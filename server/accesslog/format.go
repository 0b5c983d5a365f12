// Package accesslog writes access logs as Envoy does: its format strings
// (%START_TIME%, %REQ(:PATH)%, %RESPONSE_FLAGS%, ...) as text or JSON, to
// a file or stdout, from a goroutine of its own so that a slow disk never
// holds a request.
package accesslog

import (
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
)

// DefaultFormat is Envoy's default access log format.
const DefaultFormat = `[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" ` +
	`%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% ` +
	`"%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"` + "\n"

// Entry is one finished request, as the formats read it.
type Entry struct {
	Start    time.Time
	Duration time.Duration
	// Method, Path, Authority and Protocol are the request's (Protocol as
	// Envoy names it: HTTP/1.1, HTTP/2).
	Method, Path, Authority, Protocol  string
	ReqHeader, RespHeader, RespTrailer http.Header
	Status                             int // 0: no answer was sent
	GRPCStatus                         int // -1: none
	// Flags are Envoy's response flags (UH, UF, UT, NR, ...), in order.
	Flags                         []string
	BytesReceived, BytesSent      int64
	UpstreamHost, UpstreamCluster string
	RouteName                     string
	DownstreamRemote              string // host:port
	DownstreamLocal               string // host:port
	ServerName                    string // the TLS SNI
	Details                       string // RESPONSE_CODE_DETAILS
	FailureReason                 string // UPSTREAM_TRANSPORT_FAILURE_REASON
	Attempts                      int    // upstream attempts made
}

// value is one command's output: missing (Envoy prints "-", JSON null),
// a number (n), a time (t in layout), or a string. Numbers and times are
// appended to the line as they are, without a string of their own.
type value struct {
	s       string
	n       int64
	num     bool
	t       time.Time
	layout  string
	missing bool
}

// appendTo appends v's text (v not missing).
func (v value) appendTo(b []byte) []byte {
	switch {
	case v.num:
		return strconv.AppendInt(b, v.n, 10)
	case v.layout != "":
		return v.t.AppendFormat(b, v.layout)
	}
	return append(b, v.s...)
}

// command formats one %COMMAND%.
type command func(e *Entry) value

// op is a literal or a command of a compiled format.
type op struct {
	lit string
	cmd command
}

// Format is a compiled access log format.
type Format struct {
	text []op
	// keys and fields: a JSON format's keys, sorted, and their values.
	keys   []string
	fields [][]op
	// respHeaders: it reads response headers or trailers (other than
	// x-envoy-upstream-service-time, which meshgate does not set).
	respHeaders bool
	// blank are the commands it names that meshgate knows but does not
	// fill: they print "-" (Unfilled lists them for a config note).
	blank []string
}

// Unfilled lists the format's commands that always print "-" in meshgate
// (Envoy's commands meshgate has no value for).
func (f *Format) Unfilled() []string { return f.blank }

// unfilled are Envoy commands a format may name (istiod's default format
// does) that meshgate has no value for: accepted, printed as "-".
var unfilled = map[string]bool{
	"CONNECTION_TERMINATION_DETAILS": true, "UPSTREAM_LOCAL_ADDRESS": true, "UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT": true,
	"UPSTREAM_REMOTE_ADDRESS": true, "DYNAMIC_METADATA": true, "FILTER_STATE": true, "CONNECTION_ID": true,
	"UPSTREAM_CONNECTION_ID": true, "REQUEST_DURATION": true, "RESPONSE_DURATION": true, "RESPONSE_TX_DURATION": true,
	"UPSTREAM_WIRE_BYTES_SENT": true, "UPSTREAM_WIRE_BYTES_RECEIVED": true, "DOWNSTREAM_TLS_VERSION": true,
	"DOWNSTREAM_TLS_CIPHER": true, "DOWNSTREAM_TLS_SESSION_ID": true, "DOWNSTREAM_PEER_URI_SAN": true,
	"DOWNSTREAM_LOCAL_URI_SAN": true, "DOWNSTREAM_PEER_SUBJECT": true, "DOWNSTREAM_PEER_ISSUER": true,
	"DOWNSTREAM_PEER_FINGERPRINT_256": true, "DOWNSTREAM_PEER_SERIAL": true, "UPSTREAM_PEER_URI_SAN": true,
	"UPSTREAM_TLS_VERSION": true, "UPSTREAM_FILTER_STATE": true, "METADATA": true, "CEL": true, "ENVIRONMENT": true,
}

// ReadsResponseHeaders reports whether the format reads response headers
// or trailers (RESP, TRAILER).
func (f *Format) ReadsResponseHeaders() bool { return f.respHeaders }

var respCommand = regexp.MustCompile(`%(?:RESP|TRAILER)\(([^)]*)\)`)

// readsResponse reports whether a format string reads response headers.
func readsResponse(s string) bool {
	for _, m := range respCommand.FindAllStringSubmatch(s, -1) {
		for _, name := range strings.Split(m[1], "?") {
			if !strings.EqualFold(name, "x-envoy-upstream-service-time") {
				return true
			}
		}
	}
	return false
}

// ParseText compiles an Envoy text format string.
func ParseText(s string) (*Format, error) {
	ops, err := parse(s)
	if err != nil {
		return nil, err
	}
	return &Format{text: ops, respHeaders: readsResponse(s), blank: unfilledIn(s)}, nil
}

var commandName = regexp.MustCompile(`%([A-Z_0-9]+)`)

// unfilledIn lists the unfilled commands a format string names.
func unfilledIn(s string) []string {
	var out []string
	for _, m := range commandName.FindAllStringSubmatch(s, -1) {
		if unfilled[m[1]] && !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
	}
	return out
}

// ParseJSON compiles Envoy's json_format: each key's value is a format
// string; one that is a single command keeps its type (a number, or null
// when missing), as Envoy's does.
func ParseJSON(m map[string]string) (*Format, error) {
	f := &Format{}
	for k := range m {
		f.keys = append(f.keys, k)
	}
	sort.Strings(f.keys)
	for _, k := range f.keys {
		ops, err := parse(m[k])
		if err != nil {
			return nil, fmt.Errorf("json_format[%q]: %w", k, err)
		}
		f.fields = append(f.fields, ops)
		f.respHeaders = f.respHeaders || readsResponse(m[k])
		for _, c := range unfilledIn(m[k]) {
			if !slices.Contains(f.blank, c) {
				f.blank = append(f.blank, c)
			}
		}
	}
	return f, nil
}

// Append formats e onto b: a text line, or a JSON object and a newline.
func (f *Format) Append(b []byte, e *Entry) []byte {
	if f.keys == nil {
		for _, o := range f.text {
			if o.cmd == nil {
				b = append(b, o.lit...)
				continue
			}
			v := o.cmd(e)
			if v.missing {
				b = append(b, '-')
			} else {
				b = v.appendTo(b)
			}
		}
		return b
	}
	b = append(b, '{')
	for i, k := range f.keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		ops := f.fields[i]
		if len(ops) == 1 && ops[0].cmd != nil {
			v := ops[0].cmd(e)
			switch {
			case v.missing:
				b = append(b, "null"...)
			case v.num:
				b = v.appendTo(b)
			default:
				b = appendJSONString(b, string(v.appendTo(nil)))
			}
			continue
		}
		var s strings.Builder
		for _, o := range ops {
			if o.cmd == nil {
				s.WriteString(o.lit)
				continue
			}
			if v := o.cmd(e); v.missing {
				s.WriteByte('-')
			} else {
				s.Write(v.appendTo(nil))
			}
		}
		b = appendJSONString(b, s.String())
	}
	return append(b, '}', '\n')
}

func appendJSONString(b []byte, s string) []byte {
	// strconv's quoting is not JSON's (\x escapes); json.Marshal's is, but
	// it escapes <, > and & for HTML, which Envoy's log lines do not.
	b = append(b, '"')
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r < 0x20:
			b = append(b, `\u00`...)
			b = append(b, hexDigits[r>>4], hexDigits[r&0xf])
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...) // invalid UTF-8, as json.Marshal writes it
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// parse splits a format string into literals and commands.
func parse(s string) ([]op, error) {
	var ops []op
	var lit strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			lit.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '%' { // %% is a literal %
			lit.WriteByte('%')
			i++
			continue
		}
		end := strings.IndexByte(s[i+1:], '%')
		if strings.HasPrefix(s[i+1:], "START_TIME(") {
			// Its strftime layout has %s of its own: it ends at ")%".
			if e := strings.Index(s[i+1:], ")%"); e >= 0 {
				end = e + 1
			}
		}
		if end < 0 {
			return nil, fmt.Errorf("%q: a %% without its closing %%", s[i:])
		}
		spec := s[i+1 : i+1+end]
		cmd, err := compile(spec)
		if err != nil {
			return nil, err
		}
		if lit.Len() > 0 {
			ops = append(ops, op{lit: lit.String()})
			lit.Reset()
		}
		ops = append(ops, op{cmd: cmd})
		i += end + 1
	}
	if lit.Len() > 0 {
		ops = append(ops, op{lit: lit.String()})
	}
	return ops, nil
}

func str(s string) value {
	if s == "" {
		return value{missing: true}
	}
	return value{s: s}
}

func num(n int64) value { return value{n: n, num: true} }

// compile turns one command (without its %s) into its formatter.
func compile(spec string) (command, error) {
	name, arg, maxLen := spec, "", -1
	if open := strings.IndexByte(spec, '('); open >= 0 {
		close := strings.LastIndexByte(spec, ')')
		if close < open {
			return nil, fmt.Errorf("%%%s%%: unbalanced parentheses", spec)
		}
		name, arg = spec[:open], spec[open+1:close]
		if rest := spec[close+1:]; rest != "" {
			n, err := strconv.Atoi(strings.TrimPrefix(rest, ":"))
			if !strings.HasPrefix(rest, ":") || err != nil || n < 0 {
				return nil, fmt.Errorf("%%%s%%: %q is not a :LENGTH", spec, rest)
			}
			maxLen = n
		}
	}
	c, err := command0(name, arg, spec)
	if err != nil || maxLen < 0 {
		return c, err
	}
	return func(e *Entry) value {
		v := c(e)
		if v.num || v.layout != "" {
			v = value{s: string(v.appendTo(nil))}
		}
		if len(v.s) > maxLen {
			v.s = v.s[:maxLen]
		}
		return v
	}, nil
}

func command0(name, arg, spec string) (command, error) {
	noArg := func(c command) (command, error) {
		if arg != "" && name != "START_TIME" {
			return nil, fmt.Errorf("%%%s%% takes no argument", spec)
		}
		return c, nil
	}
	switch name {
	case "START_TIME":
		layout := "2006-01-02T15:04:05.000Z"
		if arg != "" {
			layout = strftime(arg)
		}
		return func(e *Entry) value { return value{t: e.Start.UTC(), layout: layout} }, nil
	case "REQ", "RESP", "TRAILER":
		if arg == "" {
			return nil, fmt.Errorf("%%%s%% needs a header name", spec)
		}
		main, alt, _ := strings.Cut(arg, "?")
		return headerCommand(name, main, alt), nil
	case "PROTOCOL":
		return noArg(func(e *Entry) value { return str(e.Protocol) })
	case "RESPONSE_CODE":
		return noArg(func(e *Entry) value { return num(int64(e.Status)) })
	case "RESPONSE_CODE_DETAILS":
		return noArg(func(e *Entry) value { return str(e.Details) })
	case "RESPONSE_FLAGS":
		return noArg(func(e *Entry) value { return str(strings.Join(e.Flags, ",")) })
	case "BYTES_RECEIVED":
		return noArg(func(e *Entry) value { return num(e.BytesReceived) })
	case "BYTES_SENT":
		return noArg(func(e *Entry) value { return num(e.BytesSent) })
	case "DURATION":
		return noArg(func(e *Entry) value { return num(e.Duration.Milliseconds()) })
	case "UPSTREAM_HOST":
		return noArg(func(e *Entry) value { return str(e.UpstreamHost) })
	case "UPSTREAM_CLUSTER", "UPSTREAM_CLUSTER_RAW":
		return noArg(func(e *Entry) value { return str(e.UpstreamCluster) })
	case "UPSTREAM_TRANSPORT_FAILURE_REASON":
		return noArg(func(e *Entry) value { return str(e.FailureReason) })
	case "UPSTREAM_REQUEST_ATTEMPT_COUNT":
		return noArg(func(e *Entry) value { return num(int64(e.Attempts)) })
	case "HOSTNAME":
		host, _ := os.Hostname()
		return noArg(func(*Entry) value { return str(host) })
	case "REQ_WITHOUT_QUERY":
		if arg == "" {
			return nil, fmt.Errorf("%%%s%% needs a header name", spec)
		}
		main, alt, _ := strings.Cut(arg, "?")
		h := headerCommand("REQ", main, alt)
		return func(e *Entry) value {
			v := h(e)
			if i := strings.IndexByte(v.s, '?'); i >= 0 {
				v.s = v.s[:i]
			}
			return v
		}, nil
	case "ROUTE_NAME":
		return noArg(func(e *Entry) value { return str(e.RouteName) })
	case "DOWNSTREAM_REMOTE_ADDRESS", "DOWNSTREAM_PEER_ADDRESS":
		return noArg(func(e *Entry) value { return str(e.DownstreamRemote) })
	case "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT":
		return noArg(func(e *Entry) value { return str(hostOf(e.DownstreamRemote)) })
	case "DOWNSTREAM_LOCAL_ADDRESS":
		return noArg(func(e *Entry) value { return str(e.DownstreamLocal) })
	case "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT":
		return noArg(func(e *Entry) value { return str(hostOf(e.DownstreamLocal)) })
	case "REQUESTED_SERVER_NAME":
		return noArg(func(e *Entry) value { return str(e.ServerName) })
	case "GRPC_STATUS":
		style := arg
		switch style {
		case "", "CAMEL_STRING", "SNAKE_STRING", "NUMBER":
		default:
			return nil, fmt.Errorf("%%%s%%: the style is CAMEL_STRING, SNAKE_STRING or NUMBER", spec)
		}
		return func(e *Entry) value {
			if e.GRPCStatus < 0 {
				return value{missing: true}
			}
			c := codes.Code(e.GRPCStatus)
			switch style {
			case "NUMBER":
				return num(int64(e.GRPCStatus))
			case "SNAKE_STRING":
				return value{s: snake(c.String())}
			}
			return value{s: c.String()}
		}, nil
	case "GRPC_STATUS_NUMBER":
		return noArg(func(e *Entry) value {
			if e.GRPCStatus < 0 {
				return value{missing: true}
			}
			return num(int64(e.GRPCStatus))
		})
	}
	if unfilled[name] {
		return func(*Entry) value { return value{missing: true} }, nil
	}
	return nil, fmt.Errorf("%%%s%%: not a command meshgate knows (see docs/config.md for the list)", spec)
}

// headerCommand reads a request (REQ), response (RESP) or trailer header;
// alt is read when main is absent; :method, :path, :authority and
// :scheme are the request's pseudo-headers.
func headerCommand(kind, main, alt string) command {
	get := header(kind, main)
	if alt == "" {
		return func(e *Entry) value { return get(e) }
	}
	orElse := header(kind, alt)
	return func(e *Entry) value {
		if v := get(e); !v.missing {
			return v
		}
		return orElse(e)
	}
}

// header reads one header (or pseudo-header) of a kind; the map key is
// canonical once, here, not at every line.
func header(kind, name string) command {
	lname := strings.ToLower(name)
	key := http.CanonicalHeaderKey(name)
	first := func(h http.Header) value {
		if vs := h[key]; len(vs) > 0 {
			return str(vs[0])
		}
		return value{missing: true}
	}
	switch {
	case kind == "REQ" && lname == ":method":
		return func(e *Entry) value { return str(e.Method) }
	case kind == "REQ" && lname == ":path":
		return func(e *Entry) value { return str(e.Path) }
	case kind == "REQ" && lname == ":authority":
		return func(e *Entry) value { return str(e.Authority) }
	case kind == "REQ":
		return func(e *Entry) value { return first(e.ReqHeader) }
	case kind == "RESP" && lname == ":status":
		return func(e *Entry) value {
			if e.Status == 0 {
				return value{missing: true}
			}
			return num(int64(e.Status))
		}
	case kind == "RESP":
		return func(e *Entry) value { return first(e.RespHeader) }
	}
	// A trailer is in RespTrailer, or, as the handler path keeps trailers,
	// in RespHeader under net/http's TrailerPrefix.
	tkey := http.TrailerPrefix + key
	return func(e *Entry) value {
		if v := first(e.RespTrailer); !v.missing {
			return v
		}
		if vs := e.RespHeader[tkey]; len(vs) > 0 {
			return str(vs[0])
		}
		return value{missing: true}
	}
}

func hostOf(hostport string) string {
	if i := strings.LastIndexByte(hostport, ':'); i >= 0 {
		return strings.Trim(hostport[:i], "[]")
	}
	return hostport
}

// snake turns a gRPC code's name (NotFound) into NOT_FOUND.
func snake(camel string) string {
	if camel == "OK" {
		return "OK"
	}
	var b strings.Builder
	for i, r := range camel {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

// strftime turns the strftime specifiers Envoy's START_TIME takes into a Go
// layout (the common ones; %E3S/%f are milliseconds etc.).
func strftime(f string) string {
	r := strings.NewReplacer("%Y", "2006", "%m", "01", "%d", "02", "%H", "15", "%M", "04", "%S", "05",
		"%E3S", "05.000", "%E6S", "05.000000", "%E9S", "05.000000000", "%3f", "000", "%6f", "000000", "%9f", "000000000",
		"%z", "-0700", "%Z", "MST", "%b", "Jan", "%a", "Mon", "%y", "06", "%F", "2006-01-02", "%T", "15:04:05")
	return r.Replace(f)
}
