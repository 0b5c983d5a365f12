package integration

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	demov1 "github.com/meshgate/meshgate/proto/demo/v1"
)

const grpcWebConfig = `
listeners:
  - name: main
    address: 127.0.0.1:0
    virtual_hosts:
      - cors: { allow_origins: [ "http://app.test", "regex:http://.*\\.dev\\.test" ], max_age: 600s }
        routes:
          - match: { prefix: /demo.v1.DemoService/, grpc: true }
            cluster: grpc
            timeout: 10s
clusters:
  - { name: grpc, protocol: grpc, endpoints: [ "{{.}}" ] }
`

// grpcWebCall is one gRPC-Web call over HTTP/1.1 as a browser makes it:
// the message framed (base64 for text), the answer's frames and its
// trailers (from the flagged frame, or the headers when trailers-only).
func grpcWebCall(t *testing.T, c *http.Client, url string, text bool, req proto.Message, hdr ...string) (msgs [][]byte, trailers map[string]string, status int) {
	t.Helper()
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	frame := make([]byte, 5+len(b))
	binary.BigEndian.PutUint32(frame[1:], uint32(len(b)))
	copy(frame[5:], b)
	ct := "application/grpc-web+proto"
	body := frame
	if text {
		ct = "application/grpc-web-text"
		body = []byte(base64.StdEncoding.EncodeToString(frame))
	}
	hr, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	hr.Header.Set("Content-Type", ct)
	hr.Header.Set("X-Grpc-Web", "1")
	for i := 0; i+1 < len(hdr); i += 2 {
		hr.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	wantCT := "application/grpc-web+proto"
	if text || strings.Contains(hr.Header.Get("Accept"), "grpc-web-text") {
		wantCT = "application/grpc-web-text"
		if !text {
			wantCT += "+proto"
		}
		if raw, err = decodeGRPCWebText(raw); err != nil {
			t.Fatalf("text answer: %v", err)
		}
	}
	if resp.Header.Get("Content-Type") != wantCT {
		t.Errorf("answer content type %q, want %q", resp.Header.Get("Content-Type"), wantCT)
	}
	trailers = map[string]string{}
	if s := resp.Header.Get("Grpc-Status"); s != "" {
		trailers["grpc-status"], trailers["grpc-message"] = s, resp.Header.Get("Grpc-Message")
	}
	for len(raw) > 0 {
		if len(raw) < 5 {
			t.Fatalf("a cut frame: %x", raw)
		}
		n := int(binary.BigEndian.Uint32(raw[1:5]))
		if len(raw) < 5+n {
			t.Fatalf("a frame of %d bytes in %d", n, len(raw)-5)
		}
		if raw[0]&0x80 != 0 {
			sc := bufio.NewScanner(bytes.NewReader(raw[5 : 5+n]))
			for sc.Scan() {
				k, v, _ := strings.Cut(strings.TrimSpace(sc.Text()), ":")
				trailers[strings.ToLower(k)] = strings.TrimSpace(v)
			}
		} else {
			msgs = append(msgs, raw[5:5+n])
		}
		raw = raw[5+n:]
	}
	return msgs, trailers, resp.StatusCode
}

// decodeGRPCWebText decodes base64 written chunk by chunk (each padded).
func decodeGRPCWebText(b []byte) ([]byte, error) {
	var out []byte
	for len(b) > 0 {
		i := bytes.IndexByte(b, '=')
		end := len(b)
		if i >= 0 {
			end = i
			for end < len(b) && b[end] == '=' {
				end++
			}
		}
		d, err := base64.StdEncoding.DecodeString(string(b[:end]))
		if err != nil {
			return nil, err
		}
		out, b = append(out, d...), b[end:]
	}
	return out, nil
}

// gRPC-Web callers (binary and text, over HTTP/1.1) reach a real grpc-go
// backend through the gateway: unary, server streaming, errors and
// deadlines, the trailers in the body's last frame.
func TestGRPCWeb_ThroughGateway(t *testing.T) {
	b := startBackend(t, "web")
	g := startGateway(t, render(t, grpcWebConfig, b.GRPCAddr))
	c := httpClient(t)
	base := "http://" + g.addr("main") + "/demo.v1.DemoService/"
	for _, text := range []bool{false, true} {
		t.Run(fmt.Sprintf("text=%v", text), func(t *testing.T) {
			msgs, tr, status := grpcWebCall(t, c, base+"Echo", text, &demov1.EchoRequest{Message: "web"}, "X-Trace", "t1")
			var resp demov1.EchoResponse
			if status != 200 || len(msgs) != 1 || proto.Unmarshal(msgs[0], &resp) != nil || resp.GetMessage() != "web" || tr["grpc-status"] != "0" {
				t.Errorf("unary: %d %d messages, %v, trailers %v", status, len(msgs), &resp, tr)
			}
			if resp.GetMetadata()["x-trace"] != "t1" {
				t.Errorf("metadata the backend saw: %v", resp.GetMetadata())
			}
			msgs, tr, _ = grpcWebCall(t, c, base+"ServerStream", text, &demov1.ServerStreamRequest{Message: "s", Count: 3})
			if len(msgs) != 3 || tr["grpc-status"] != "0" {
				t.Errorf("server streaming: %d messages, trailers %v", len(msgs), tr)
			}
			msgs, tr, _ = grpcWebCall(t, c, base+"ServerStream", text, &demov1.ServerStreamRequest{Message: "s", Count: 2, FailCode: 5})
			if len(msgs) != 2 || tr["grpc-status"] != "5" {
				t.Errorf("a stream that fails after 2: %d messages, trailers %v", len(msgs), tr)
			}
			_, tr, _ = grpcWebCall(t, c, base+"Echo", text, &demov1.EchoRequest{FailCode: 7, FailMessage: "no way"})
			if tr["grpc-status"] != "7" || !strings.Contains(tr["grpc-message"], "no way") {
				t.Errorf("an error status: trailers %v", tr)
			}
			_, tr, _ = grpcWebCall(t, c, base+"Echo", text, &demov1.EchoRequest{DelayMs: 2000}, "Grpc-Timeout", "200m")
			if tr["grpc-status"] != "4" {
				t.Errorf("grpc-timeout: trailers %v, want DEADLINE_EXCEEDED", tr)
			}
		})
	}
	// Accept asks for text on a binary request: the answer is text.
	msgs, tr, _ := grpcWebCall(t, c, base+"Echo", false, &demov1.EchoRequest{Message: "x"}, "Accept", "application/grpc-web-text")
	if tr["grpc-status"] != "0" || len(msgs) != 1 {
		t.Errorf("binary call answered in text: %d messages, %v", len(msgs), tr)
	}
	// A text body that is not base64: an error status, not a hang.
	hr, _ := http.NewRequest(http.MethodPost, base+"Echo", strings.NewReader("not*base64"))
	hr.Header.Set("Content-Type", "application/grpc-web-text")
	resp, err := c.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	dec, _ := decodeGRPCWebText(body)
	if resp.Header.Get("Grpc-Status") == "0" || (resp.Header.Get("Grpc-Status") == "" && !bytes.Contains(dec, []byte("grpc-status: "))) ||
		bytes.Contains(dec, []byte("grpc-status: 0")) {
		t.Errorf("a bad text body answered %d %v %q", resp.StatusCode, resp.Header, dec)
	}
}

// CORS for browser callers: the virtual host's policy answers the preflight
// of a gRPC-only route (which the OPTIONS request cannot match), and the
// actual call's answer carries the allow and expose headers gRPC-Web needs.
func TestGRPCWeb_CORS(t *testing.T) {
	b := startBackend(t, "cors")
	g := startGateway(t, render(t, grpcWebConfig, b.GRPCAddr))
	c := httpClient(t)
	url := "http://" + g.addr("main") + "/demo.v1.DemoService/Echo"
	preflight := func(origin string) *http.Response {
		req, _ := http.NewRequest(http.MethodOptions, url, nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type,x-grpc-web,x-user-agent")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, origin := range []string{"http://app.test", "http://ui.dev.test"} {
		resp := preflight(origin)
		h := resp.Header
		if resp.StatusCode != 200 || h.Get("Access-Control-Allow-Origin") != origin || !strings.Contains(h.Get("Access-Control-Allow-Headers"), "x-grpc-web") ||
			!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") || h.Get("Access-Control-Max-Age") != "600" {
			t.Errorf("preflight from %s: %d %v", origin, resp.StatusCode, h)
		}
	}
	// An origin the policy does not allow: no CORS headers (forwarded as
	// Envoy does; nothing routes an OPTIONS here).
	if resp := preflight("http://evil.test"); resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("a foreign origin's preflight was allowed: %v", resp.Header)
	}

	b2, _ := proto.Marshal(&demov1.EchoRequest{Message: "cors"})
	frame := append([]byte{0, 0, 0, 0, byte(len(b2))}, b2...)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(frame))
	req.Header.Set("Content-Type", "application/grpc-web+proto")
	req.Header.Set("Origin", "http://app.test")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") != "http://app.test" || !strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "grpc-status") {
		t.Errorf("the call's answer lacks CORS headers: %v", resp.Header)
	}
}

// Connect callers (the proto codec, unary and server streaming, as
// connect-web sends them) reach the grpc-go backend through the gateway.
func TestConnect_ThroughGateway(t *testing.T) {
	b := startBackend(t, "connect")
	g := startGateway(t, render(t, grpcWebConfig, b.GRPCAddr))
	c := httpClient(t)
	base := "http://" + g.addr("main") + "/demo.v1.DemoService/"
	unary := func(req proto.Message, hdr ...string) (int, http.Header, []byte) {
		t.Helper()
		body, _ := proto.Marshal(req)
		hr, _ := http.NewRequest(http.MethodPost, base+"Echo", bytes.NewReader(body))
		hr.Header.Set("Content-Type", "application/proto")
		hr.Header.Set("Connect-Protocol-Version", "1")
		for i := 0; i+1 < len(hdr); i += 2 {
			hr.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := c.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, raw
	}
	status, h, raw := unary(&demov1.EchoRequest{Message: "connect"})
	var resp demov1.EchoResponse
	if status != 200 || h.Get("Content-Type") != "application/proto" || proto.Unmarshal(raw, &resp) != nil || resp.GetMessage() != "connect" {
		t.Errorf("unary: %d %v %q", status, h, raw)
	}
	for _, tc := range []struct {
		req    *demov1.EchoRequest
		hdr    []string
		status int
		code   string
	}{
		{&demov1.EchoRequest{FailCode: 5, FailMessage: "gone"}, nil, 404, `"code":"not_found"`},
		{&demov1.EchoRequest{FailCode: 3}, nil, 400, `"code":"invalid_argument"`},
		{&demov1.EchoRequest{DelayMs: 2000}, []string{"Connect-Timeout-Ms", "200"}, 504, `"code":"deadline_exceeded"`},
		{&demov1.EchoRequest{}, []string{"Connect-Timeout-Ms", "soon"}, 400, `"code":"invalid_argument"`},
	} {
		status, h, raw := unary(tc.req, tc.hdr...)
		if status != tc.status || h.Get("Content-Type") != "application/json" || !strings.Contains(string(raw), tc.code) {
			t.Errorf("%v: %d %q, want %d %s", tc.req, status, raw, tc.status, tc.code)
		}
	}

	// Server streaming: envelopes both ways, the end-of-stream message last.
	stream := func(req *demov1.ServerStreamRequest) (msgs int, end map[string]any) {
		t.Helper()
		b, _ := proto.Marshal(req)
		env := append([]byte{0, 0, 0, 0, byte(len(b))}, b...)
		hr, _ := http.NewRequest(http.MethodPost, base+"ServerStream", bytes.NewReader(env))
		hr.Header.Set("Content-Type", "application/connect+proto")
		resp, err := c.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.Header.Get("Content-Type") != "application/connect+proto" {
			t.Errorf("stream content type %q", resp.Header.Get("Content-Type"))
		}
		for len(raw) >= 5 {
			n := int(binary.BigEndian.Uint32(raw[1:5]))
			if raw[0]&0x02 != 0 {
				_ = json.Unmarshal(raw[5:5+n], &end)
			} else {
				msgs++
			}
			raw = raw[5+n:]
		}
		return msgs, end
	}
	if n, end := stream(&demov1.ServerStreamRequest{Message: "s", Count: 3}); n != 3 || end == nil || end["error"] != nil {
		t.Errorf("stream: %d messages, end %v", n, end)
	}
	if n, end := stream(&demov1.ServerStreamRequest{Message: "s", Count: 2, FailCode: 14}); n != 2 || !strings.Contains(fmt.Sprint(end["error"]), "unavailable") {
		t.Errorf("a failing stream: %d messages, end %v", n, end)
	}
}

const grpcJSONConfig = `
listeners:
  - name: main
    address: 127.0.0.1:0
    grpc_json: { proto_descriptor: "{{.Desc}}", services: [ demo.v1.DemoService ] }
    virtual_hosts:
      - routes:
          - match: { prefix: /demo.v1.DemoService/, grpc: true }
            cluster: grpc
            timeout: 1s
clusters:
  - { name: grpc, protocol: grpc, endpoints: [ "{{.GRPC}}" ] }
`

// JSON callers reach a real grpc-go backend's methods through the
// listener's gRPC-JSON transcoder (descriptors from a file): the request
// message in JSON, the answer in JSON, errors as google.rpc.Status.
// connectEnvelope frames one Connect streaming message.
func connectEnvelope(flags byte, msg string) []byte {
	b := make([]byte, 5+len(msg))
	b[0] = flags
	binary.BigEndian.PutUint32(b[1:5], uint32(len(msg)))
	copy(b[5:], msg)
	return b
}

func TestGRPCJSON_Transcoding(t *testing.T) {
	b := startBackend(t, "json")
	g := startGateway(t, render(t, grpcJSONConfig, map[string]string{"GRPC": b.GRPCAddr,
		"Desc": descriptorFile(t, demov1.File_demo_v1_demo_proto)}))
	c := httpClient(t)
	url := "http://" + g.addr("main") + "/demo.v1.DemoService/Echo"
	for _, tc := range []struct {
		body   string
		status int
		want   string
	}{
		{`{"message": "rest", "payload": "aGk="}`, 200, `"message":"rest"`},
		{`{"message": "rest"}`, 200, `"server":"json"`},
		{`{"nope": 1}`, 400, `"code":3`},
		{`{"message": 5}`, 400, `"code":3`},
		{`{"failCode": 5, "failMessage": "gone"}`, 404, `{"code":5,"message":"gone"}`},
		{`{"delayMs": "3000"}`, 504, `"code":4`},
	} {
		resp, err := c.Post(url, "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(string(raw), tc.want) || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %s, want %d with %s", tc.body, resp.StatusCode, raw, tc.status, tc.want)
		}
	}
	// A server stream as a JSON array; a failure after two messages closes
	// the array and leaves the status in the trailers.
	for _, tc := range []struct {
		body   string
		msgs   int
		status string
	}{
		{`{"message": "s", "count": "3"}`, 3, "0"},
		{`{"message": "s", "count": "2", "failCode": 14}`, 2, "14"},
	} {
		resp, err := c.Post("http://"+g.addr("main")+"/demo.v1.DemoService/ServerStream", "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		var got []map[string]any
		err = json.NewDecoder(resp.Body).Decode(&got)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || len(got) != tc.msgs || resp.Trailer.Get("Grpc-Status") != tc.status {
			t.Errorf("stream %s: %d, %d messages (%v), trailer status %q; want %d messages, status %s",
				tc.body, resp.StatusCode, len(got), err, resp.Trailer.Get("Grpc-Status"), tc.msgs, tc.status)
		}
	}

	// Connect's streaming protocol with the JSON codec: JSON envelopes,
	// then the end-of-stream message with the status.
	for _, tc := range []struct {
		body    []byte
		msgs    int
		errCode string
	}{
		{connectEnvelope(0, `{"message":"s","count":"3"}`), 3, ""},
		{connectEnvelope(0, `{"message":"s","count":"2","failCode":14}`), 2, "unavailable"},
		{connectEnvelope(0, `{"message":5}`), 0, "invalid_argument"},
		{connectEnvelope(1, `{}`), 0, "invalid_argument"}, // compressed
		{[]byte("{}"), 0, "invalid_argument"},             // no envelope
	} {
		req, _ := http.NewRequest("POST", "http://"+g.addr("main")+"/demo.v1.DemoService/ServerStream", bytes.NewReader(tc.body))
		req.Header.Set("Content-Type", "application/connect+json")
		req.Header.Set("Connect-Protocol-Version", "1")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var msgs []string
		var end map[string]any
		for len(raw) >= 5 {
			n := int(binary.BigEndian.Uint32(raw[1:5]))
			if len(raw) < 5+n {
				break
			}
			if raw[0] == 2 {
				_ = json.Unmarshal(raw[5:5+n], &end)
			} else {
				msgs = append(msgs, string(raw[5:5+n]))
			}
			raw = raw[5+n:]
		}
		gotCode := ""
		if e, ok := end["error"].(map[string]any); ok {
			gotCode, _ = e["code"].(string)
		}
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/connect+json" || end == nil ||
			len(msgs) != tc.msgs || gotCode != tc.errCode || len(raw) != 0 {
			t.Errorf("Connect JSON stream %q: %d %s, %d messages %v, end %v; want %d messages, error %q",
				tc.body, resp.StatusCode, resp.Header.Get("Content-Type"), len(msgs), msgs, end, tc.msgs, tc.errCode)
		}
		for _, m := range msgs {
			if !strings.Contains(m, `"message":"s"`) && !strings.Contains(m, `"message": "s"`) {
				t.Errorf("Connect JSON stream message %s", m)
			}
		}
	}

	// The OpenAPI document of what the transcoder takes.
	resp, err := c.Get("http://" + g.addr("main") + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]any `json:"paths"`
	}
	err = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || doc.Paths["/demo.v1.DemoService/Echo"] == nil {
		t.Errorf("/openapi.json: %d %v %v", resp.StatusCode, err, doc.Paths)
	}

	// Connect's JSON codec on the same transcoder: Connect's errors.
	for _, tc := range []struct {
		body, timeout string
		status        int
		want          string
	}{
		{`{"message": "connect-json"}`, "", 200, `"message":"connect-json"`},
		{`{"failCode": 5, "failMessage": "gone"}`, "", 404, `{"code":"not_found","message":"gone"}`},
		{`{"delayMs": "3000"}`, "200", 504, `"code":"deadline_exceeded"`},
		{`{"nope": 1}`, "", 400, `"code":"invalid_argument"`},
	} {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(tc.body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Connect-Protocol-Version", "1")
		if tc.timeout != "" {
			req.Header.Set("Connect-Timeout-Ms", tc.timeout)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(string(raw), tc.want) {
			t.Errorf("Connect JSON %s: %d %s, want %d with %s", tc.body, resp.StatusCode, raw, tc.status, tc.want)
		}
	}
}
