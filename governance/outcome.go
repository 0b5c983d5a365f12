package governance

// LocalFailure is a request failure on the gateway's side of the upstream
// connection, with no response from the host ("local origin" in Envoy's
// outlier detection).
type LocalFailure uint8

const (
	// NoLocalFailure: the host answered (Status says how).
	NoLocalFailure LocalFailure = iota
	// ConnectFailure: the connection could not be made.
	ConnectFailure
	// Timeout: the host did not answer in time.
	Timeout
	// Reset: the stream or connection was reset before an answer.
	Reset
)

// Outcome is how one request to a host ended, reported to the host's
// outlier detector and breaker.
type Outcome struct {
	// Status is the HTTP status of the answer; for gRPC, the grpc-status
	// mapped to HTTP as Envoy maps it (UNAVAILABLE 503, INTERNAL 500, ...).
	// 0 when the host did not answer.
	Status int
	Local  LocalFailure
}

// Failed reports whether the outcome counts against the host: a 5xx
// answer or a local failure.
func (o Outcome) Failed() bool { return o.Status >= 500 || o.Local != NoLocalFailure }

// gatewayFailure is Envoy's "gateway error": 502, 503, 504, or a local
// failure.
func (o Outcome) gatewayFailure() bool {
	return o.Status == 502 || o.Status == 503 || o.Status == 504 || o.Local != NoLocalFailure
}
