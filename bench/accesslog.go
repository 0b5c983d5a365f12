package main

import (
	"fmt"
	"os"
	"path/filepath"
)

// accessLogGatewayConfig is the shared gateway's gRPC route alone, with
// Envoy's default access log format written to a file.
const accessLogGatewayConfig = `
admin: { address: "127.0.0.1:%d" }
drain_period: 0s
listeners:
  - name: bench-log
    address: "127.0.0.1:%d"
    access_log: [ { path: %q } ]
    virtual_hosts:
      - routes:
          - match: { prefix: /demo.v1.DemoService/ }
            cluster: grpc
            timeout: 0s
clusters:
  - { name: grpc, protocol: grpc, endpoints: [ %q ] }
`

// startAccessLogGateway starts a second gateway process whose listener
// writes an access log line per request.
func startAccessLogGateway(bin, backendAddr string) (*gateway, error) {
	return startFileGateway(bin, "bench-log", func(adminPort, port int, dir string) []byte {
		return fmt.Appendf(nil, accessLogGatewayConfig, adminPort, port, filepath.Join(dir, "access.log"), backendAddr)
	})
}

// startFileGateway starts a gateway process on the config that config
// writes for its two free ports (admin, listener) and its own directory.
func startFileGateway(bin, name string, config func(adminPort, port int, dir string) []byte) (*gateway, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "meshgate-"+name)
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(cfg, config(ports[0], ports[1], dir), 0o600); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return launchGateway(bin, cfg, dir, fmt.Sprintf("127.0.0.1:%d", ports[1]), fmt.Sprintf("127.0.0.1:%d", ports[0]))
}
