// Package dubbo speaks the Dubbo2 protocol: its 16-byte framing, hessian2
// bodies (with github.com/apache/dubbo-go-hessian2) and calls. The registry
// uses it to ask a provider's MetadataService for the provider's metadata;
// the Dubbo2 bridge builds on it.
package dubbo
