package accesslog

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func entry() *Entry {
	return &Entry{
		Start:    time.Date(2026, 12, 6, 3, 4, 5, 678_000_000, time.UTC),
		Duration: 12345 * time.Microsecond,
		Method:   "POST", Path: "/demo.v1.DemoService/Echo?x=1", Authority: "gw.example", Protocol: "HTTP/2",
		ReqHeader:  http.Header{"X-Request-Id": {"req-1"}, "User-Agent": {"grpc-go/1.70"}, "X-Forwarded-For": {"10.0.0.1"}},
		RespHeader: http.Header{"Content-Type": {"application/grpc"}}, RespTrailer: http.Header{"Grpc-Message": {"gone"}},
		Status: 200, GRPCStatus: 14, Flags: []string{"UF", "URX"},
		BytesReceived: 17, BytesSent: 5, UpstreamHost: "10.1.2.3:8080", UpstreamCluster: "grpc", RouteName: "echo",
		DownstreamRemote: "192.0.2.7:54321", DownstreamLocal: "127.0.0.1:8080", ServerName: "gw.example",
	}
}

// Envoy's default format, and each command, formatted as Envoy does
// (missing values as "-"). The expected lines are written out by hand.
func TestFormat_Text(t *testing.T) {
	tests := []struct {
		name, format string
		edit         func(*Entry)
		want         string
	}{
		{name: "Envoy's default", format: DefaultFormat,
			want: `[2026-12-06T03:04:05.678Z] "POST /demo.v1.DemoService/Echo?x=1 HTTP/2" 200 UF,URX 17 5 12 - "10.0.0.1" "grpc-go/1.70" "req-1" "gw.example" "10.1.2.3:8080"` + "\n"},
		{name: "no answer, no flags, no upstream", format: DefaultFormat,
			edit: func(e *Entry) { e.Status, e.Flags, e.UpstreamHost, e.ReqHeader = 0, nil, "", http.Header{} },
			want: `[2026-12-06T03:04:05.678Z] "POST /demo.v1.DemoService/Echo?x=1 HTTP/2" 0 - 17 5 12 - "-" "-" "-" "gw.example" "-"` + "\n"},
		{name: "alternative header", format: `%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %REQ(:PATH?X-NONE)%`,
			want: `/demo.v1.DemoService/Echo?x=1 /demo.v1.DemoService/Echo?x=1`},
		{name: "max length", format: `%REQ(USER-AGENT):4%|%REQ(X-REQUEST-ID):3%`, want: `grpc|req`},
		{name: "gRPC status styles", format: `%GRPC_STATUS% %GRPC_STATUS(SNAKE_STRING)% %GRPC_STATUS(NUMBER)% %GRPC_STATUS_NUMBER%`,
			want: `Unavailable UNAVAILABLE 14 14`},
		{name: "no gRPC status", format: `%GRPC_STATUS%`, edit: func(e *Entry) { e.GRPCStatus = -1 }, want: `-`},
		{name: "addresses and names", format: `%DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %DOWNSTREAM_LOCAL_ADDRESS% %REQUESTED_SERVER_NAME% %UPSTREAM_CLUSTER% %ROUTE_NAME%`,
			want: `192.0.2.7:54321 192.0.2.7 127.0.0.1:8080 gw.example grpc echo`},
		{name: "response headers and trailers", format: `%RESP(content-type)% %RESP(:STATUS)% %TRAILER(GRPC-MESSAGE)% %RESP(X-NONE)%`,
			want: `application/grpc 200 gone -`},
		{name: "trailers as the handler path keeps them", format: `%TRAILER(GRPC-MESSAGE)% %TRAILER(X-NONE)%`,
			edit: func(e *Entry) {
				e.RespTrailer = nil
				e.RespHeader = http.Header{http.TrailerPrefix + "Grpc-Message": {"late"}}
			},
			want: `late -`},
		{name: "start time layout", format: `%START_TIME(%Y/%m/%d %H:%M:%S)%`, want: `2026/12/06 03:04:05`},
		{name: "literal percent", format: `100%% %RESPONSE_CODE%`, want: `100% 200`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := ParseText(tc.format)
			if err != nil {
				t.Fatal(err)
			}
			e := entry()
			if tc.edit != nil {
				tc.edit(e)
			}
			if got := string(f.Append(nil, e)); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// A JSON format keeps a lone command's type: numbers, null when missing.
func TestFormat_JSON(t *testing.T) {
	f, err := ParseJSON(map[string]string{
		"code": "%RESPONSE_CODE%", "flags": "%RESPONSE_FLAGS%", "path": "%REQ(:PATH)%", "ua": "%REQ(X-NONE)%",
		"duration": "%DURATION%", "grpc": "%GRPC_STATUS(NUMBER)%", "mixed": "%REQ(:METHOD)% %RESPONSE_CODE%",
	})
	if err != nil {
		t.Fatal(err)
	}
	line := f.Append(nil, entry())
	if !strings.HasSuffix(string(line), "}\n") {
		t.Fatalf("%q: want one JSON object and a newline", line)
	}
	var got map[string]any
	if err := json.Unmarshal(line, &got); err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	want := map[string]any{"code": 200.0, "flags": "UF,URX", "path": "/demo.v1.DemoService/Echo?x=1", "ua": nil,
		"duration": 12.0, "grpc": 14.0, "mixed": "POST 200"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %#v, want %#v (line %s)", k, got[k], v, line)
		}
	}
}

// Formats Envoy would refuse are refused, naming the command.
func TestFormat_Errors(t *testing.T) {
	for _, f := range []string{`%NOPE%`, `%REQ()%`, `%RESPONSE_CODE`, `%GRPC_STATUS(LOUD)%`, `%REQ(X):x%`, `%DURATION(x)%`} {
		if _, err := ParseText(f); err == nil {
			t.Errorf("%s: accepted", f)
		}
	}
	if _, err := ParseJSON(map[string]string{"k": "%NOPE%"}); err == nil || !strings.Contains(err.Error(), `"k"`) {
		t.Errorf("a bad JSON value: %v, want an error naming its key", err)
	}
}

func TestFormat_ReadsResponseHeaders(t *testing.T) {
	for f, want := range map[string]bool{DefaultFormat: false, `%RESP(content-type)%`: true, `%TRAILER(grpc-status)%`: true, `%REQ(:PATH)%`: false} {
		pf, err := ParseText(f)
		if err != nil {
			t.Fatal(err)
		}
		if pf.ReadsResponseHeaders() != want {
			t.Errorf("%q: reads response headers %v, want %v", f, pf.ReadsResponseHeaders(), want)
		}
	}
}

// istiod's default access log format (meshConfig accessLogFile) parses:
// the commands meshgate has no value for print "-" and are listed.
func TestFormat_IstioDefault(t *testing.T) {
	const istio = `[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%` + "\n"
	f, err := ParseText(istio)
	if err != nil {
		t.Fatal(err)
	}
	e := entry()
	e.Details, e.Attempts = "via_upstream", 1
	want := `[2026-12-06T03:04:05.678Z] "POST /demo.v1.DemoService/Echo?x=1 HTTP/2" 200 UF,URX via_upstream - "-" 17 5 12 - "10.0.0.1" "grpc-go/1.70" "req-1" "gw.example" "10.1.2.3:8080" grpc - 127.0.0.1:8080 192.0.2.7:54321 gw.example echo` + "\n"
	if got := string(f.Append(nil, e)); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if got := f.Unfilled(); !slices.Equal(got, []string{"CONNECTION_TERMINATION_DETAILS", "UPSTREAM_LOCAL_ADDRESS"}) {
		t.Errorf("Unfilled = %v", got)
	}
}

// A JSON field's string is valid JSON that reads back as the value, with
// &, < and > as they are (as Envoy writes them, not HTML-escaped).
func TestAppendJSONString(t *testing.T) {
	for _, v := range []string{"", "/a?x=1&y=<2>", `quote " and \ back`, "tab\tnl\n\x01", "日本", "bad \xff byte"} {
		out := appendJSONString(nil, v)
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Errorf("%q -> %s: not JSON: %v", v, out, err)
			continue
		}
		if want := strings.ToValidUTF8(v, "\uFFFD"); back != want {
			t.Errorf("%q -> %s reads back %q", v, out, back)
		}
		if strings.Contains(v, "&") && !strings.Contains(string(out), "&") {
			t.Errorf("%q -> %s: & escaped", v, out)
		}
	}
}
