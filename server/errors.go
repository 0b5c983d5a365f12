package server

import "google.golang.org/grpc/codes"

// Codes used in error answers; the names gRPC gives them.
const (
	codeCancelled         = codes.Canceled
	codeUnknown           = codes.Unknown
	codeDeadlineExceeded  = codes.DeadlineExceeded
	codeResourceExhausted = codes.ResourceExhausted
	codeUnimplemented     = codes.Unimplemented
	codeInternal          = codes.Internal
	codeUnavailable       = codes.Unavailable
)
