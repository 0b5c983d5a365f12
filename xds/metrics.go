package xds

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	updates    *prometheus.CounterVec
	rejected   *prometheus.GaugeVec
	connected  prometheus.Gauge
	reconnects prometheus.Counter
}

func newMetrics(r prometheus.Registerer) *metrics {
	m := &metrics{
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshgate_xds_updates_total",
			Help: "xDS responses by type (lds, rds, cds, eds) and result (ack, nack).",
		}, []string{"type", "result"}),
		rejected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshgate_xds_rejected_resources",
			Help: "Resources whose last version from the control plane was rejected, by type (lds, rds, cds, eds).",
		}, []string{"type"}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshgate_xds_connected",
			Help: "1 while the ADS stream to the control plane is up.",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshgate_xds_reconnects_total",
			Help: "ADS streams that ended and were retried.",
		}),
	}
	if r != nil {
		r.MustRegister(m.updates, m.rejected, m.connected, m.reconnects)
	}
	return m
}
