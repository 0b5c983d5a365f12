package registry

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	events    *prometheus.CounterVec
	resyncs   *prometheus.CounterVec
	errors    *prometheus.CounterVec
	connected *prometheus.GaugeVec
}

// newMetrics registers the registry metrics once per registerer; watchers
// of several registries share them by label.
func newMetrics(r prometheus.Registerer) *metrics {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshgate_registry_watch_events_total", Help: "Watch notifications from a registry.",
		}, []string{"registry"}),
		resyncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshgate_registry_resyncs_total", Help: "Full re-reads of a registry.",
		}, []string{"registry"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshgate_registry_errors_total", Help: "Registry errors by kind (read, metadata, apply).",
		}, []string{"registry", "kind"}),
		connected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshgate_registry_connected", Help: "1 while the registry session is up.",
		}, []string{"registry"}),
	}
	if r != nil {
		for _, c := range []prometheus.Collector{m.events, m.resyncs, m.errors, m.connected} {
			if err := r.Register(c); err != nil {
				if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
					switch c {
					case m.events:
						m.events = are.ExistingCollector.(*prometheus.CounterVec)
					case m.resyncs:
						m.resyncs = are.ExistingCollector.(*prometheus.CounterVec)
					case m.errors:
						m.errors = are.ExistingCollector.(*prometheus.CounterVec)
					case m.connected:
						m.connected = are.ExistingCollector.(*prometheus.GaugeVec)
					}
				}
			}
		}
	}
	return m
}
