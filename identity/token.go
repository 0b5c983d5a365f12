package identity

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc/credentials"
)

// TokenCredentials sends the token in file as "authorization: Bearer
// <token>" on every call, reading the file each time: Kubernetes rotates
// projected service-account tokens in place. It refuses plaintext
// connections (the token would travel in clear). istiod's secure ports
// (15012: xDS and CA) want it; xds.Options.Token takes it.
func TokenCredentials(file string) credentials.PerRPCCredentials {
	return tokenCredentials{file: file}
}

type tokenCredentials struct{ file string }

var _ credentials.PerRPCCredentials = tokenCredentials{}

// GetRequestMetadata reads the token. gRPC calls it for each call, from
// the calling goroutine.
func (t tokenCredentials) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	tok, err := readToken(t.file)
	if err != nil {
		return nil, err
	}
	return map[string]string{"authorization": "Bearer " + tok}, nil
}

// RequireTransportSecurity is true: the token is a credential.
func (tokenCredentials) RequireTransportSecurity() bool { return true }

func readToken(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("identity: token: %w", err)
	}
	tok := string(bytes.TrimSpace(b))
	if tok == "" {
		return "", fmt.Errorf("identity: token file %s is empty", file)
	}
	if bytes.ContainsAny([]byte(tok), "\r\n") {
		return "", errors.New("identity: token file " + file + " holds more than one line")
	}
	return tok, nil
}
