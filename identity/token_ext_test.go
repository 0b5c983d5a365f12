package identity_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshgate/meshgate/identity"
)

func TestTokenCredentials(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content *string // nil: no file
		want    string
		wantErr string
	}{
		{"token", ptr("eyJhbGciOi.payload.sig"), "Bearer eyJhbGciOi.payload.sig", ""},
		{"trailing newline", ptr("tok\n"), "Bearer tok", ""},
		{"missing file", nil, "", "no such file"},
		{"empty", ptr(" \n"), "", "is empty"},
		{"two lines", ptr("a\nb\n"), "", "more than one line"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(dir, "token-"+string(rune('a'+i)))
			if tt.content != nil {
				writeFile(t, file, []byte(*tt.content))
			}
			creds := identity.TokenCredentials(file)
			md, err := creds.GetRequestMetadata(context.Background(), "https://istiod:15012")
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("GetRequestMetadata() error = %v, want one about %q", err, tt.wantErr)
			}
			if got := md["authorization"]; got != tt.want {
				t.Errorf("GetRequestMetadata() authorization = %q, want %q", got, tt.want)
			}
			if !creds.RequireTransportSecurity() {
				t.Error("RequireTransportSecurity() = false, want true: the token is a credential")
			}
		})
	}
}

// Projected tokens rotate in place: each call reads the file.
func TestTokenCredentials_Rotation(t *testing.T) {
	file := filepath.Join(t.TempDir(), "istio-token")
	creds := identity.TokenCredentials(file)
	for _, tok := range []string{"first", "second"} {
		writeFile(t, file, []byte(tok))
		md, err := creds.GetRequestMetadata(context.Background())
		if err != nil || md["authorization"] != "Bearer "+tok {
			t.Errorf("after writing %q: GetRequestMetadata() = %v, %v", tok, md, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := creds.GetRequestMetadata(ctx); err == nil {
		t.Error("GetRequestMetadata(cancelled context) succeeded")
	}
}

func ptr(s string) *string { return &s }
