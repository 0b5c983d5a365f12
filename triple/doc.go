// Package triple will hold Triple's wire forms (the gRPC-compatible one,
// which the data plane already passes through as gRPC, and the unary HTTP
// form) and the Triple upstream client. Nothing is implemented here yet;
// see the Triple issue.
package triple
