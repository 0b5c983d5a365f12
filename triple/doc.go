// Package triple holds Triple's wire forms beyond plain gRPC (which the
// data plane passes through as gRPC): the wrapper messages of non-IDL
// Triple, whose arguments and result travel hessian2-serialized inside
// protobuf, and the unary call that carries them to a provider.
package triple
