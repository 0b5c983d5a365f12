// Package governance holds the policies that decide where a request goes and
// whether it may go at all: load balancers now; circuit breakers, outlier
// detection, retries and health checks as they land.
//
// Balancers follow grpc-go's picker pattern: a Builder makes an immutable
// Picker from an endpoint set, the data plane swaps in a new Picker whenever
// the set changes, and Pick never blocks.
package governance
