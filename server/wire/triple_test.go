package wire

import (
	"encoding/json"
	"net/http/httptest"
	"testing"

	"google.golang.org/grpc/codes"
)

// TestWriteTripleError: Triple's statuses are dubbo-go's triple_protocol
// codeToHTTP (protocol_triple.go), not Connect's.
func TestWriteTripleError(t *testing.T) {
	tests := []struct {
		code     codes.Code
		status   int
		codeName string
	}{
		{codes.Canceled, 408, "canceled"},
		{codes.DeadlineExceeded, 408, "deadline_exceeded"},
		{codes.InvalidArgument, 400, "invalid_argument"},
		{codes.NotFound, 404, "not_found"},
		{codes.Unimplemented, 404, "unimplemented"},
		{codes.FailedPrecondition, 412, "failed_precondition"},
		{codes.ResourceExhausted, 429, "resource_exhausted"},
		{codes.Unavailable, 503, "unavailable"},
		{codes.Unauthenticated, 401, "unauthenticated"},
		{codes.DataLoss, 500, "data_loss"},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		WriteTripleError(rec, tt.code, "why")
		var body struct{ Code, Message string }
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("%v: body %q: %v", tt.code, rec.Body, err)
		}
		if rec.Code != tt.status || body.Code != tt.codeName || body.Message != "why" {
			t.Errorf("%v: answered %d %+v, want %d with code %q", tt.code, rec.Code, body, tt.status, tt.codeName)
		}
	}
}
