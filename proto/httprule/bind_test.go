package httprule_test

import (
	"context"
	"encoding/json"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/meshgate/meshgate/proto/descriptors"
	"github.com/meshgate/meshgate/proto/httprule"
)

// library compiles the REST test service and builds its rule table.
func library(t testing.TB) (*httprule.Table, protoreflect.ServiceDescriptor) {
	t.Helper()
	set, err := descriptors.Compile(context.Background(), []string{".."}, []string{"../resttest/v1/library.proto"})
	if err != nil {
		t.Fatal(err)
	}
	files, err := descriptors.Files(set)
	if err != nil {
		t.Fatal(err)
	}
	d, err := files.FindDescriptorByName("resttest.v1.LibraryService")
	if err != nil {
		t.Fatal(err)
	}
	sd := d.(protoreflect.ServiceDescriptor)
	rules, err := httprule.Rules(sd)
	if err != nil {
		t.Fatal(err)
	}
	table, err := httprule.NewTable(rules)
	if err != nil {
		t.Fatal(err)
	}
	return table, sd
}

func TestRules_FromAnnotations(t *testing.T) {
	table, _ := library(t)
	var got []string
	for _, r := range table.Rules() {
		got = append(got, r.Method+" "+r.Template.String()+" -> "+string(r.RPC.Name()))
	}
	// 11 annotated methods, one with an additional binding; Ping has none.
	if len(got) != 12 {
		t.Fatalf("%d rules: %v", len(got), got)
	}
	for _, want := range []string{"GET /v1/books -> ListBooks", "SEARCH /v1/books -> Search", "POST /v1/{name=shelves/*/books/*}:move -> MoveBook"} {
		found := false
		for _, g := range got {
			found = found || g == want
		}
		if !found {
			t.Errorf("no rule %q in %v", want, got)
		}
	}
}

// TestRequest maps HTTP requests onto request messages; the expected
// messages are written by hand in proto3 JSON.
func TestRequest(t *testing.T) {
	table, _ := library(t)
	for _, tc := range []struct {
		method, target, body, ctype string
		rpc                         string
		want                        string // the request message, proto3 JSON
		wantErr                     string
	}{
		{method: "GET", target: "/v1/shelves/s1/books/b1", rpc: "GetBook", want: `{"name":"shelves/s1/books/b1"}`},
		{method: "GET", target: "/v1/shelves/s1/books?pageSize=2&filter.author=Eco&genres=GENRE_HISTORY&genres=1", rpc: "ListBooks",
			want: `{"parent":"shelves/s1","pageSize":2,"filter":{"author":"Eco"},"genres":["GENRE_HISTORY","GENRE_FICTION"]}`},
		{method: "GET", target: "/v1/books?page_size=3&filter.after=2020-01-02T03:04:05Z", rpc: "ListBooks",
			want: `{"pageSize":3,"filter":{"after":"2020-01-02T03:04:05Z"}}`},
		{method: "GET", target: "/v1/books?pageSize=x", wantErr: `"x" is not a int32`},
		{method: "GET", target: "/v1/books?genres=GENRE_NONE", wantErr: "no such value"},
		{method: "GET", target: "/v1/books?nope=1", wantErr: `has no field "nope"`},
		{method: "GET", target: "/v1/books?filter=1", wantErr: "a message cannot come from text"},
		{method: "GET", target: "/v1/books?pageSize=1&pageSize=2", wantErr: "not repeated"},
		// The path wins over the query for the same field.
		{method: "GET", target: "/v1/shelves/s1/books?parent=shelves/s2", rpc: "ListBooks", want: `{"parent":"shelves/s1"}`},
		{method: "POST", target: "/v1/shelves/s1/books?bookId=b9", body: `{"title":"T","pages":"12"}`, rpc: "CreateBook",
			want: `{"parent":"shelves/s1","bookId":"b9","book":{"title":"T","pages":"12"}}`},
		{method: "POST", target: "/v1/shelves/s1/books", body: `{"title":5}`, wantErr: "not a resttest.v1.Book in JSON"},
		{method: "POST", target: "/v1/shelves/s1/books", body: `{"nope":5}`, wantErr: "unknown field"},
		// A nested path variable fills the body's message.
		{method: "PATCH", target: "/v1/shelves/s1/books/b1", body: `{"title":"New"}`, rpc: "UpdateBook",
			want: `{"book":{"name":"shelves/s1/books/b1","title":"New"}}`},
		// body "*": everything not in the path from the body; the query is not read.
		{method: "POST", target: "/v1/shelves/s1/books/b1:move?toShelf=ignored", body: `{"toShelf":"shelves/s2"}`, rpc: "MoveBook",
			want: `{"name":"shelves/s1/books/b1","toShelf":"shelves/s2"}`},
		{method: "GET", target: "/v1/titles/shelves/s1/x%2Fy", rpc: "ListTitles", want: `{"parent":"shelves/s1/x%2Fy"}`},
		{method: "PUT", target: "/v1/shelves/s1/books/b1/cover", body: "\x89PNG", ctype: "image/png", rpc: "PutCover",
			want: `{"name":"shelves/s1/books/b1","cover":{"contentType":"image/png","data":"iVBORw=="}}`},
		{method: "SEARCH", target: "/v1/books?pageSize=1", body: `{"author":"Eco"}`, rpc: "Search",
			want: `{"pageSize":1,"filter":{"author":"Eco"}}`},
		{method: "GET", target: "/v1/shelves/s1/books:watch", rpc: "WatchBooks", want: `{"parent":"shelves/s1"}`},
	} {
		name := tc.method + " " + tc.target
		u, err := url.Parse(tc.target)
		if err != nil {
			t.Fatal(err)
		}
		rule, bindings := table.Match(tc.method, u.EscapedPath())
		if rule == nil {
			t.Errorf("%s: no rule", name)
			continue
		}
		if tc.rpc != "" && string(rule.RPC.Name()) != tc.rpc {
			t.Errorf("%s: rule of %s, want %s", name, rule.RPC.Name(), tc.rpc)
			continue
		}
		msg, err := rule.Request(bindings, u.Query(), []byte(tc.body), tc.ctype, httprule.RequestOptions{})
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: error %v, want one with %q", name, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		want := dynamicpb.NewMessage(rule.RPC.Input())
		if err := protojson.Unmarshal([]byte(tc.want), want); err != nil {
			t.Fatalf("%s: the expected message: %v", name, err)
		}
		if !equalJSON(t, msg, want) {
			got, _ := protojson.Marshal(msg)
			t.Errorf("%s: %s, want %s", name, got, tc.want)
		}
	}
}

func TestRequest_Options(t *testing.T) {
	table, _ := library(t)
	rule, b := table.Match("GET", "/v1/books")
	if _, err := rule.Request(b, url.Values{"nope": {"1"}, "pageSize": {"4"}}, nil, "", httprule.RequestOptions{IgnoreUnknownQuery: true}); err != nil {
		t.Errorf("unknown query parameter with IgnoreUnknownQuery: %v", err)
	}
	rule, b = table.Match("POST", "/v1/shelves/s/books")
	if _, err := rule.Request(b, nil, []byte(`{"nope":1}`), "", httprule.RequestOptions{DiscardUnknown: true}); err != nil {
		t.Errorf("unknown body field with DiscardUnknown: %v", err)
	}
}

func TestTable_Match(t *testing.T) {
	table, _ := library(t)
	for _, tc := range []struct{ method, path, rpc string }{
		{"GET", "/v1/books", "ListBooks"},
		{"SEARCH", "/v1/books", "Search"},
		{"GET", "/v1/shelves/s/books/b", "GetBook"},
		{"GET", "/v1/shelves/s/books/b/cover", "GetCover"},
		{"DELETE", "/v1/shelves/s/books/b", "DeleteBook"},
		{"GET", "/v1/shelves/s/books:watch", "WatchBooks"},
		{"GET", "/v1/shelves/s/books", "ListBooks"},
		{"POST", "/v1/shelves/s/books/b:move", "MoveBook"},
		{"POST", "/v1/shelves/s/books/b", ""}, // no POST there
		{"GET", "/v2/books", ""},
		{"GET", "/v1/shelves/s/books/b/c", ""},
	} {
		rule, _ := table.Match(tc.method, tc.path)
		got := ""
		if rule != nil {
			got = string(rule.RPC.Name())
		}
		if got != tc.rpc {
			t.Errorf("%s %s: %q, want %q", tc.method, tc.path, got, tc.rpc)
		}
	}
}

func TestNewTable_Conflict(t *testing.T) {
	table, _ := library(t)
	rules := table.Rules()
	if _, err := httprule.NewTable(append(rules, rules[0])); err == nil {
		t.Error("two rules with the same method and template accepted")
	}
}

func TestResponse(t *testing.T) {
	table, sd := library(t)
	out := func(rpc, js string) protoreflect.Message {
		m := dynamicpb.NewMessage(sd.Methods().ByName(protoreflect.Name(rpc)).Output())
		if err := protojson.Unmarshal([]byte(js), m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	rule, _ := table.Match("GET", "/v1/titles/x")
	ct, body, err := rule.Response(out("ListTitles", `{"books":[{"name":"a"}],"titles":["A","B"]}`), protojson.MarshalOptions{})
	if err != nil || ct != "application/json" || string(body) != `["A","B"]` {
		t.Errorf("response_body titles: %s %s %v", ct, body, err)
	}
	ct, body, err = rule.Response(out("ListTitles", `{}`), protojson.MarshalOptions{})
	if err != nil || string(body) != `[]` {
		t.Errorf("response_body of an empty list: %s %s %v", ct, body, err)
	}
	rule, _ = table.Match("GET", "/v1/shelves/s/books/b/cover")
	ct, body, err = rule.Response(out("GetCover", `{"contentType":"image/png","data":"iVBORw=="}`), protojson.MarshalOptions{})
	if err != nil || ct != "image/png" || string(body) != "\x89PNG" {
		t.Errorf("HttpBody: %q %q %v", ct, body, err)
	}
	rule, _ = table.Match("GET", "/v1/shelves/s/books/b")
	ct, body, err = rule.Response(out("GetBook", `{"name":"n","coverBytes":"3"}`), protojson.MarshalOptions{UseProtoNames: true})
	if err != nil || ct != "application/json" || !sameJSON(body, `{"name":"n","cover_bytes":"3"}`) {
		t.Errorf("whole message: %s %s %v", ct, body, err)
	}
}

// equalJSON compares two messages by their proto3 JSON.
func equalJSON(t *testing.T, a, b protoreflect.ProtoMessage) bool {
	t.Helper()
	var x, y any
	ja, _ := protojson.Marshal(a)
	jb, _ := protojson.Marshal(b)
	if err := json.Unmarshal(ja, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(jb, &y); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(x, y)
}

func sameJSON(a []byte, b string) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal([]byte(b), &y) == nil && reflect.DeepEqual(x, y)
}

// FuzzRequest feeds arbitrary paths, queries and bodies through the
// library's rules: an error is fine, a panic is not.
func FuzzRequest(f *testing.F) {
	table, _ := library(f)
	f.Add("GET", "/v1/shelves/s1/books", "pageSize=2&filter.after=2020-01-02T03:04:05Z&genres=1", "")
	f.Add("PATCH", "/v1/shelves/s1/books/b1", "", `{"title":"x","tags":["a"]}`)
	f.Add("GET", "/v1/titles/a%2F/b", "filter.author=%zz", "")
	f.Add("POST", "/v1/shelves/s1/books/b1:move", "", `{"toShelf":5}`)
	f.Fuzz(func(t *testing.T, method, path, query, body string) {
		rule, bindings := table.Match(method, path)
		if rule == nil {
			return
		}
		q, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		_, _ = rule.Request(bindings, q, []byte(body), "application/json", httprule.RequestOptions{})
	})
}
