// Package dubbo will hold the Dubbo2 frame codec (on dubbo-go-hessian2), the
// multiplexed TCP connection pool and generic invocation. Nothing is
// implemented here yet; see the Dubbo2 bridge issue.
package dubbo
