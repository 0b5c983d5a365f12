package registry

import (
	"context"
	"net/http"
	"net/http/httptest"
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
			case !ok:
				http.Error(w, "config data not exist", http.StatusNotFound)
			default:
				w.Write([]byte(c))
			}
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
		{dataID: "gone.condition-router"}, // 404: no rule, no error
		{dataID: "broken", wantErr: true}, // a server error is not a deletion
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
