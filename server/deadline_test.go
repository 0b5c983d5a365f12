package server

import (
	"net/http"
	"testing"
)

// A gRPC call whose deadline is gone before its first attempt (a client's
// grpc-timeout of 1ns, on the handler path) is answered DEADLINE_EXCEEDED,
// not an internal error: with no attempt made there is no host to name.
func TestForward_DeadlineGoneBeforeFirstAttempt(t *testing.T) {
	addr := limitsGateway(t, "")
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/demo.v1.DemoService/Echo", http.NoBody)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Grpc-Timeout", "1n")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	st := resp.Header.Get("Grpc-Status")
	if st == "" {
		st = resp.Trailer.Get("Grpc-Status")
	}
	if st != "4" {
		t.Errorf("grpc-status %q (%s), HTTP %d; want 4 (DEADLINE_EXCEEDED)", st, resp.Header.Get("Grpc-Message")+resp.Trailer.Get("Grpc-Message"), resp.StatusCode)
	}
}
