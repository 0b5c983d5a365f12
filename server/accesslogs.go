package server

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/meshgate/meshgate/server/accesslog"
	"github.com/meshgate/meshgate/server/h2"
	"github.com/meshgate/meshgate/server/router"
)

// accessLogger is one of a chain's access logs: a format and where it goes.
type accessLogger struct {
	format *accesslog.Format
	w      *accesslog.Writer
}

// compileAccessLogs builds an HCM's access_log list. A logger meshgate
// does not write (gRPC, OpenTelemetry, ...) or a filter it does not apply
// is a note; a bad format fails the listener.
func (s *Server) compileAccessLogs(logs []*accesslogv3.AccessLog) ([]accessLogger, []string, error) {
	var out []accessLogger
	var notes []string
	for i, al := range logs {
		where := fmt.Sprintf("access_log[%d]", i)
		var path string
		var lf *corev3.SubstitutionFormatString
		var legacyText string
		var legacyJSON *structpb.Struct
		switch tc := al.GetTypedConfig(); {
		case tc == nil:
			notes = append(notes, where+": no typed_config: nothing is written")
			continue
		case tc.MessageIs(&filev3.FileAccessLog{}):
			var f filev3.FileAccessLog
			if err := tc.UnmarshalTo(&f); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", where, err)
			}
			//lint:ignore SA1019 Envoy configs still carry the deprecated format fields; they are read as Envoy reads them.
			path, lf, legacyText, legacyJSON = f.GetPath(), f.GetLogFormat(), f.GetFormat(), f.GetJsonFormat()
			//lint:ignore SA1019 as above
			if tj := f.GetTypedJsonFormat(); tj != nil {
				legacyJSON = tj
			}
		case tc.MessageIs(&streamv3.StdoutAccessLog{}):
			var f streamv3.StdoutAccessLog
			if err := tc.UnmarshalTo(&f); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", where, err)
			}
			path, lf = "/dev/stdout", f.GetLogFormat()
		case tc.MessageIs(&streamv3.StderrAccessLog{}):
			var f streamv3.StderrAccessLog
			if err := tc.UnmarshalTo(&f); err != nil {
				return nil, nil, fmt.Errorf("%s: %w", where, err)
			}
			path, lf = "/dev/stderr", f.GetLogFormat()
		default:
			notes = append(notes, fmt.Sprintf("%s: %s (%s) is not written: only file, stdout and stderr access logs are", where, al.GetName(), tc.GetTypeUrl()))
			continue
		}
		if path == "" {
			return nil, nil, fmt.Errorf("%s: the file access log needs a path", where)
		}
		format, err := accessLogFormat(lf, legacyText, legacyJSON)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", where, err)
		}
		if blank := format.Unfilled(); len(blank) > 0 {
			notes = append(notes, fmt.Sprintf("%s.log_format: %%%s%% always print \"-\": meshgate has no value for them", where, strings.Join(blank, "%, %")))
		}
		if al.GetFilter() != nil {
			notes = append(notes, where+".filter: not applied: every request is logged")
		}
		if lf.GetOmitEmptyValues() || len(lf.GetFormatters()) > 0 || lf.GetJsonFormatOptions() != nil {
			notes = append(notes, where+".log_format: omit_empty_values, formatters and json_format_options are not applied")
		}
		w, err := s.accessLogWriter(path)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", where, err)
		}
		out = append(out, accessLogger{format: format, w: w})
	}
	return out, notes, nil
}

// accessLogFormat compiles a log_format (or the deprecated format /
// json_format fields); none is Envoy's default format.
func accessLogFormat(lf *corev3.SubstitutionFormatString, legacyText string, legacyJSON *structpb.Struct) (*accesslog.Format, error) {
	text, js := legacyText, legacyJSON
	//lint:ignore SA1019 the deprecated text_format is read as Envoy reads it
	deprecatedText := lf.GetTextFormat()
	switch {
	case deprecatedText != "":
		text = deprecatedText
	case lf.GetTextFormatSource() != nil:
		src := lf.GetTextFormatSource()
		switch {
		case src.GetInlineString() != "":
			text = src.GetInlineString()
		case len(src.GetInlineBytes()) > 0:
			text = string(src.GetInlineBytes())
		default:
			return nil, errors.New("log_format.text_format_source: only inline_string and inline_bytes are read")
		}
	case lf.GetJsonFormat() != nil:
		js = lf.GetJsonFormat()
	}
	if js != nil {
		m := map[string]string{}
		for k, v := range js.GetFields() {
			sv, ok := v.GetKind().(*structpb.Value_StringValue)
			if !ok {
				return nil, fmt.Errorf("json_format[%q]: only string values (format strings) are read", k)
			}
			m[k] = sv.StringValue
		}
		return accesslog.ParseJSON(m)
	}
	if text == "" {
		text = accesslog.DefaultFormat
	}
	return accesslog.ParseText(text)
}

// accessLogWriter is the one writer of a path, opened on first use and
// kept for the process (a reload that keeps the path keeps the file).
// Validate opens none (nil). Called with s.mu held.
func (s *Server) accessLogWriter(path string) (*accesslog.Writer, error) {
	if w := s.logWriters[path]; w != nil || s.validating {
		return w, nil
	}
	w, err := accesslog.Open(path, func() { s.metrics.AccessLogDropped.Inc() })
	if err != nil {
		return nil, err
	}
	if s.logWriters == nil {
		s.logWriters = map[string]*accesslog.Writer{}
	}
	s.logWriters[path] = w
	return w, nil
}

// ReopenAccessLogs reopens every access log file (after rotation: the
// command calls it on SIGUSR1).
func (s *Server) ReopenAccessLogs() error {
	// Reopened outside s.mu: a slow disk must not hold readiness and
	// reloads (a writer closed meanwhile answers Reopen with an error).
	s.mu.Lock()
	writers := slices.Collect(maps.Values(s.logWriters))
	s.mu.Unlock()
	var errs []error
	for _, w := range writers {
		if err := w.Reopen(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// closeAccessLogs flushes and closes the writers (Shutdown; s.mu held).
func (s *Server) closeAccessLogs() {
	for _, w := range s.logWriters {
		w.Close()
	}
	s.logWriters = nil
}

// logAccess writes e to each of the chain's access logs.
func (ch *chain) logAccess(e *accesslog.Entry) {
	for _, l := range ch.accessLogs {
		b := l.w.Buffer()
		*b = l.format.Append(*b, e)
		l.w.Write(b)
	}
}

// accessEntry fills what every access log entry takes from the request.
func accessEntry(e *accesslog.Entry, r *http.Request, start time.Time) {
	e.Start, e.Duration = start, time.Since(start)
	e.Method, e.Path, e.Authority = r.Method, r.RequestURI, r.Host
	if e.Path == "" || e.Path[0] != '/' { // not as sent: rebuilt from the URL
		e.Path = r.URL.RequestURI()
	}
	e.Protocol = r.Proto
	if r.ProtoMajor == 2 {
		e.Protocol = "HTTP/2"
	}
	e.ReqHeader = r.Header
	e.DownstreamRemote = r.RemoteAddr
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		e.DownstreamLocal = la.String()
	}
	if r.TLS != nil {
		e.ServerName = r.TLS.ServerName
	}
}

// codeDetails is RESPONSE_CODE_DETAILS in Envoy's words, from the
// response flags (the first one's reason) or, for an answer that came
// from upstream, via_upstream.
func codeDetails(flags []string, status int, upstream string) string {
	if len(flags) > 0 {
		switch flags[0] {
		case "NR":
			return "route_not_found"
		case "NC":
			return "cluster_not_found"
		case "UH":
			return "no_healthy_upstream"
		case "UO":
			return "upstream_overflow"
		case "UF":
			return "upstream_reset_before_response_started{connection_failure}"
		case "UR":
			return "upstream_reset_before_response_started{remote_reset}"
		case "UT":
			return "upstream_response_timeout"
		case "SI":
			return "stream_idle_timeout"
		case "DC":
			return "downstream_remote_disconnect"
		case "OM":
			return "overload"
		}
		return ""
	}
	if status != 0 && upstream != "" {
		return "via_upstream"
	}
	return ""
}

// relayFlags are the response flags of a relayed call that ended without
// the upstream's answer.
func relayFlags(e h2.RelayEnd) []string {
	switch {
	case e.ClientGone:
		return []string{"DC"}
	case errors.Is(e.Err, h2.ErrRelayIdle):
		return []string{"SI"}
	case errors.Is(e.Err, h2.ErrRelayTimeout), errors.Is(e.Err, h2.ErrRelayPerTryTimeout):
		return []string{"UT"}
	case errors.Is(e.Err, h2.ErrRelayMessageTooLarge):
		return nil // the gateway's own answer to the client's message
	case e.Err != nil:
		return []string{"UR"} // the upstream reset the stream or its connection went
	}
	return nil
}

// countingBody counts a request body's bytes (BYTES_RECEIVED).
type countingBody struct {
	io.ReadCloser
	n int64
}

// Buffered forwards the wrapped body's (see h2.BufferedBody).
func (b *countingBody) Buffered() (int, bool) { return bufferedOf(b.ReadCloser) }

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}

// recordCall writes a handler-path request to the access logs and Istio's
// metrics.
func (ch *chain) recordCall(c *call, r *http.Request, route string, start time.Time) {
	status, flags := 0, c.flags
	if c.wroteHeader {
		status = c.status
	} else if !slices.Contains(flags, "DC") {
		flags = append(flags, "DC") // the client went before an answer
	}
	var in int64
	if c.in != nil {
		in = c.in.n
	}
	gs := c.grpcStatus(r)
	if ist := ch.srv.istio; ist != nil {
		ist.Record(c.s.Cluster, c.host, router.IsGRPC(r), status, gs, flags, time.Since(start), in, c.bytesOut)
	}
	if len(ch.accessLogs) == 0 {
		return
	}
	var e accesslog.Entry
	accessEntry(&e, r, start)
	e.Status, e.GRPCStatus, e.Flags = status, gs, flags
	e.RespHeader = c.ResponseWriter.Header()
	e.UpstreamCluster, e.RouteName = c.s.Cluster, route
	if c.host != nil {
		e.UpstreamHost = c.host.Address
	}
	e.Attempts, e.FailureReason = c.attempts, c.failReason
	e.Details = codeDetails(e.Flags, e.Status, e.UpstreamHost)
	e.BytesReceived, e.BytesSent = in, c.bytesOut
	ch.logAccess(&e)
}
