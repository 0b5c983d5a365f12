// Package integration holds end-to-end tests that run meshgate against real
// peers. The tests of the foundation use real grpc-go and net/http
// backends (internal/demo) and real grpc-go and net/http clients; later
// suites add ZooKeeper, Nacos, dubbo-go, an xDS control plane and Chromium.
package integration
