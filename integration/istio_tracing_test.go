package integration

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// istioTracingMesh: an OpenTelemetry extension provider, the mesh's
// default tracer, as Istio documents tracing with the Telemetry API.
const istioTracingMesh = `
extensionProviders:
- name: otel
  opentelemetry:
    service: otel-collector.example.com
    port: {{.Collector}}
defaultProviders:
  tracing: [otel]
`

// istioTracingConfig: the echo gateway, and the collector as a mesh
// service (its one endpoint is the test's OTLP receiver).
const istioTracingConfig = istioEchoGateway + `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: otel-collector, namespace: default }
spec:
  hosts: [otel-collector.example.com]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [ { number: {{.Collector}}, name: grpc, protocol: GRPC } ]
  endpoints: [ { address: 127.0.0.1 } ]
---
`

// Tracing configured the Istio way (meshConfig extensionProviders and
// defaultProviders): istiod puts envoy.tracers.opentelemetry in the
// gateway's connection manager with the collector's Envoy cluster; the
// gateway accepts the listener, continues a client's sampled W3C trace to
// the backend and exports its spans through that cluster to the collector.
func TestIstio_TracingFromMeshConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs Istio's discovery server; skipped with -short")
	}
	otlp := startOTLPReceiver(t)
	backend := startBackend(t, "v1")
	data := struct{ Port, Backend, Collector string }{port(freeAddr(t)), port(backend.HTTPAddr), port(otlp.addr)}
	ist := startIstiodWith(t, string(render(t, istioTracingConfig, data)), istiodOptions{Mesh: string(render(t, istioTracingMesh, data))})
	g := startIstioGateway(t, ist.xds, false)
	addr := g.listenerOn(t, data.Port)

	const traceID = "5b8efff798038103d269b633813fc60c"
	req, _ := http.NewRequest("GET", "http://"+addr+"/echo", nil)
	req.Host = "echo.example.com"
	req.Header.Set("Traceparent", "00-"+traceID+"-eee19b7ec3c1b174-01")
	resp, body := do(t, httpClient(t), req)
	var got echoed
	if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	tp := strings.Split(got.Headers["traceparent"], "-")
	if len(tp) != 4 || tp[1] != traceID || tp[2] == "eee19b7ec3c1b174" || tp[3] != "01" {
		t.Fatalf("the backend got traceparent %q, want the client's trace under a span of the gateway", got.Headers["traceparent"])
	}
	var spans []receivedSpan
	waitFor(t, "the gateway's spans at the collector (through istiod's collector cluster)", func() bool {
		spans = otlp.trace(traceID)
		return len(spans) >= 2
	})
	t.Logf("spans of the trace: %s", describeSpans(spans))
}
