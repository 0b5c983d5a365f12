package registry

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

// A stand-in for Nacos's open API (the interop evidence is the
// integration tests against rnacos): configs by data ID, a user whose
// token the server may forget.
func fakeNacosConfigs(t *testing.T, configs map[string]string, user string) (addr string, forget func(), logins *atomic.Int32) {
	t.Helper()
	logins = &atomic.Int32{}
	var valid atomic.Value
	valid.Store("")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/nacos/v1/auth/users/login":
			if r.PostFormValue("username") != user || r.PostFormValue("password") != "pw" {
				http.Error(w, "unknown user", http.StatusForbidden)
				return
			}
			n := logins.Add(1)
			tok := "tok" + string(rune('0'+n))
			valid.Store(tok)
			w.Write([]byte(`{"accessToken":"` + tok + `","tokenTtl":18000}`))
		case "/nacos/v1/cs/configs":
			if user != "" && r.URL.Query().Get("accessToken") != valid.Load().(string) {
				http.Error(w, "token invalid", http.StatusForbidden)
				return
			}
			if r.URL.Query().Get("group") != "dubbo" || r.URL.Query().Get("tenant") != "ns1" {
				http.Error(w, "config data not exist", http.StatusNotFound)
				return
			}
			c, ok := configs[r.URL.Query().Get("dataId")]
			switch {
			case r.URL.Query().Get("dataId") == "broken":
				http.Error(w, "boom", http.StatusInternalServerError)
			case r.URL.Query().Get("dataId") == "proxied":
				http.Error(w, "404 page not found", http.StatusNotFound) // not Nacos's answer
			case !ok:
				http.Error(w, "config data not exist", http.StatusNotFound)
			default:
				w.Write([]byte(c))
			}
		case "/nacos/v1/cs/configs/listener":
			// Nacos answers at once with the keys whose MD5 differs (it
			// would hold the request when none does; here it answers empty).
			if r.Header.Get("Long-Pulling-Timeout") == "" {
				http.Error(w, "no long-poll timeout", http.StatusBadRequest)
				return
			}
			var changed []string
			for _, item := range strings.Split(r.PostFormValue("Listening-Configs"), "\x01") {
				f := strings.Split(item, "\x02")
				if len(f) < 3 {
					continue
				}
				var current []byte
				if c, ok := configs[f[0]]; ok {
					current = []byte(c)
				}
				if contentMD5(current) != f[2] {
					changed = append(changed, strings.Join(f, "\x02"))
				}
			}
			w.Write([]byte(url.QueryEscape(strings.Join(changed, "\x01")) + "\n"))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), func() { valid.Store("forgotten") }, logins
}

func TestNacosConfigReader(t *testing.T) {
	ctx := context.Background()
	addr, forget, logins := fakeNacosConfigs(t, map[string]string{"svc.condition-router": "rule text"}, "nacos")
	down := "127.0.0.1:1" // nothing listens: the next server is asked
	r := newNacosConfigReader(NacosOptions{Servers: []string{down, addr}, Namespace: "ns1", Username: "nacos", Password: "pw"})
	for _, tc := range []struct {
		dataID  string
		want    string
		wantErr bool
	}{
		{dataID: "svc.condition-router", want: "rule text"},
		{dataID: "gone.condition-router"},  // 404: no rule, no error
		{dataID: "broken", wantErr: true},  // a server error is not a deletion
		{dataID: "proxied", wantErr: true}, // nor a 404 that is not Nacos's "config data not exist"
	} {
		b, err := r.get(ctx, tc.dataID, "dubbo")
		if (err != nil) != tc.wantErr || string(b) != tc.want {
			t.Errorf("get(%q) = %q, %v; want %q, error %v", tc.dataID, b, err, tc.want, tc.wantErr)
		}
	}
	if n := logins.Load(); n != 1 {
		t.Errorf("logged in %d times for three reads, want once (the token kept)", n)
	}
	forget()
	if b, err := r.get(ctx, "svc.condition-router", "dubbo"); err != nil || string(b) != "rule text" {
		t.Errorf("after the server forgot the token: %q, %v", b, err)
	}
	if n := logins.Load(); n != 2 {
		t.Errorf("logged in %d times, want a second login after the 403", n)
	}

	bad := newNacosConfigReader(NacosOptions{Servers: []string{addr}, Namespace: "ns1", Username: "nacos", Password: "wrong"})
	if _, err := bad.get(ctx, "svc.condition-router", "dubbo"); err == nil || !strings.Contains(err.Error(), "logging in") {
		t.Errorf("a refused login: %v, want an error saying so", err)
	}
	none := newNacosConfigReader(NacosOptions{Servers: []string{down}})
	if _, err := none.get(ctx, "svc.condition-router", "dubbo"); err == nil {
		t.Error("no server up: want an error, not a missing rule")
	}
}

// The long poll names the configs whose content differs from what was
// last read: changed, deleted, or new where there was none.
func TestNacosConfigReader_Changed(t *testing.T) {
	addr, _, _ := fakeNacosConfigs(t, map[string]string{"a.tag-router": "new text", "b.tag-router": "same"}, "")
	r := newNacosConfigReader(NacosOptions{Servers: []string{addr}, Namespace: "ns1"})
	got, err := r.changed(context.Background(), "dubbo", map[string]string{
		"a.tag-router": contentMD5([]byte("old text")), // edited
		"b.tag-router": contentMD5([]byte("same")),     // as read
		"c.tag-router": contentMD5([]byte("gone")),     // deleted
		"d.tag-router": "",                             // still none
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := []string{"a.tag-router", "c.tag-router"}; !slices.Equal(got, want) {
		t.Errorf("changed = %v, want %v", got, want)
	}
}

// Whatever a Nacos server answers to the long poll, the reader returns
// data IDs (non-empty, without separators) or an error, and no panic.
func FuzzChangedKeys(f *testing.F) {
	f.Add([]byte(url.QueryEscape("a.tag-router\x02dubbo\x01b.condition-router\x02dubbo\x02ns1\x01") + "\n"))
	f.Add([]byte(""))
	f.Add([]byte("%zz"))
	f.Add([]byte("\x02\x01\x01x"))
	f.Fuzz(func(t *testing.T, body []byte) {
		ids, err := changedKeys(body)
		if err != nil {
			return
		}
		for _, id := range ids {
			if id == "" || strings.ContainsAny(id, "\x01\x02") {
				t.Fatalf("data ID %q from %q", id, body)
			}
		}
	})
}

// After a server answered, it is asked first (one that drops packets
// costs one timeout, not one per read); "public" is the "" namespace.
func TestNacosConfigReader_Order(t *testing.T) {
	r := newNacosConfigReader(NacosOptions{Servers: []string{"a:8848", "b:8848", "c:8848"}, Namespace: "public"})
	if got := r.order(); !slices.Equal(got, []string{"a:8848", "b:8848", "c:8848"}) {
		t.Errorf("first order %v", got)
	}
	r.answered("c:8848")
	if got := r.order(); !slices.Equal(got, []string{"c:8848", "a:8848", "b:8848"}) {
		t.Errorf("after c answered: %v, want c first", got)
	}
	if r.namespace != "" {
		t.Errorf("namespace %q, want \"\" for public", r.namespace)
	}
}
