// Package stats holds meshgate's Prometheus metrics. Each Server gets its own
// registry (no global state), exposed by the admin endpoint.
package stats

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/meshgate/meshgate/server/cluster"
)

// Metrics are the gateway's counters and histograms.
type Metrics struct {
	Registry *prometheus.Registry

	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	Panics        prometheus.Counter
	ConfigUpdates *prometheus.CounterVec
	Connections   *prometheus.GaugeVec
	// Unimplemented counts, by resource type, the parts of the running
	// config that are accepted but not done (see /config_dump).
	Unimplemented *prometheus.GaugeVec
	// AccessLogDropped counts access log lines dropped because the writer
	// fell behind (the request never waits for the disk).
	AccessLogDropped prometheus.Counter

	// handles keeps each label set's counter and histogram (requestKey →
	// requestHandles): looking them up in the vectors hashed and checked
	// five label values twice per request, 4% of a relayed gRPC call.
	// Label sets are never deleted from the vectors, so neither are they
	// here.
	handles sync.Map
}

type requestKey struct {
	listener, route, cluster string
	code, grpcStatus         int
}

type requestHandles struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// latencyBuckets reach down to 50µs: a gateway's added latency lives there.
var latencyBuckets = []float64{
	0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
}

// New registers the gateway's metrics, the Go runtime's and the process's
// in a new registry. clusters is called at scrape time to read cluster
// counters.
func New(clusters func() []*cluster.Cluster) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshgate_http_requests_total",
			Help: "Downstream requests by listener, route, cluster, HTTP status and gRPC status (\"\" for non-gRPC).",
		}, []string{"listener", "route", "cluster", "code", "grpc_status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "meshgate_http_request_duration_seconds",
			Help:    "Downstream request duration, first byte in to last byte out, by listener, route and cluster.",
			Buckets: latencyBuckets,
		}, []string{"listener", "route", "cluster"}),
		Panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshgate_request_panics_total",
			Help: "Requests whose handling panicked; the panic was recovered.",
		}),
		ConfigUpdates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshgate_config_updates_total",
			Help: "Configuration updates by result (accepted, rejected).",
		}, []string{"result"}),
		Connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshgate_downstream_connections_active",
			Help: "Open downstream connections by listener.",
		}, []string{"listener"}),
		Unimplemented: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshgate_config_unimplemented_fields",
			Help: "Parts of the running config that are accepted but not done, by resource type (listed in /config_dump, logged once at WARN).",
		}, []string{"type"}),
		AccessLogDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshgate_access_log_dropped_total",
			Help: "Access log lines dropped because the writer fell behind (requests never wait for the disk).",
		}),
	}
	m.Registry.MustRegister(m.requests, m.duration, m.Panics, m.ConfigUpdates, m.Connections, m.Unimplemented, m.AccessLogDropped,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&clusterCollector{clusters: clusters})
	return m
}

// Request records one finished downstream request. grpcStatus is -1 for a
// non-gRPC request.
func (m *Metrics) Request(listener, route, clusterName string, code, grpcStatus int, d time.Duration) {
	key := requestKey{listener: listener, route: route, cluster: clusterName, code: code, grpcStatus: max(grpcStatus, -1)}
	v, ok := m.handles.Load(key)
	if !ok {
		gs := ""
		if grpcStatus >= 0 {
			gs = strconv.Itoa(grpcStatus)
		}
		v, _ = m.handles.LoadOrStore(key, &requestHandles{
			requests: m.requests.WithLabelValues(listener, route, clusterName, statusText(code), gs),
			duration: m.duration.WithLabelValues(listener, route, clusterName),
		})
	}
	h := v.(*requestHandles)
	h.requests.Inc()
	h.duration.Observe(d.Seconds())
}

// statusText avoids an allocation for common codes.
func statusText(code int) string {
	switch code {
	case 200:
		return "200"
	case 404:
		return "404"
	case 503:
		return "503"
	}
	return strconv.Itoa(code)
}

var (
	descRq = prometheus.NewDesc("meshgate_cluster_upstream_rq_total",
		"Requests sent to a cluster.", []string{"cluster"}, nil)
	descRqActive = prometheus.NewDesc("meshgate_cluster_upstream_rq_active",
		"Requests in flight to a cluster.", []string{"cluster"}, nil)
	descRqTimeout = prometheus.NewDesc("meshgate_cluster_upstream_rq_timeout_total",
		"Requests to a cluster that timed out.", []string{"cluster"}, nil)
	descRq5xx = prometheus.NewDesc("meshgate_cluster_upstream_rq_5xx_total",
		"Requests to a cluster that failed with a 5xx or could not be sent.", []string{"cluster"}, nil)
	descCx = prometheus.NewDesc("meshgate_cluster_upstream_cx_total",
		"Connections opened to a cluster.", []string{"cluster"}, nil)
	descCxActive = prometheus.NewDesc("meshgate_cluster_upstream_cx_active",
		"Open connections to a cluster.", []string{"cluster"}, nil)
	descCxFail = prometheus.NewDesc("meshgate_cluster_upstream_cx_connect_fail_total",
		"Failed connection attempts to a cluster.", []string{"cluster"}, nil)
	descNoHealthy = prometheus.NewDesc("meshgate_cluster_upstream_no_healthy_total",
		"Requests that found no healthy host in a cluster.", []string{"cluster"}, nil)
	descMembers = prometheus.NewDesc("meshgate_cluster_membership_hosts",
		"Hosts in a cluster (Envoy's membership_total; Prometheus keeps _total for counters).", []string{"cluster"}, nil)
	descHealthy = prometheus.NewDesc("meshgate_cluster_membership_healthy",
		"Hosts in a cluster that take traffic outside panic mode.", []string{"cluster"}, nil)
	descOverflow = prometheus.NewDesc("meshgate_cluster_upstream_rq_overflow_total",
		"Requests refused by a circuit breaker threshold, by which (max_requests, max_pending_requests).", []string{"cluster", "threshold"}, nil)
	descRetry = prometheus.NewDesc("meshgate_cluster_upstream_rq_retry_total",
		"Retries sent.", []string{"cluster"}, nil)
	descRetrySuccess = prometheus.NewDesc("meshgate_cluster_upstream_rq_retry_success_total",
		"Requests that succeeded on a retry.", []string{"cluster"}, nil)
	descRelayed = prometheus.NewDesc("meshgate_cluster_upstream_rq_relayed_total",
		"Requests the HTTP/2 server relayed frame by frame (no handler), of upstream_rq_total.", []string{"cluster"}, nil)
	descRetryOverflow = prometheus.NewDesc("meshgate_cluster_upstream_rq_retry_overflow_total",
		"Retries not sent because of max_retries or the retry budget.", []string{"cluster"}, nil)
	descEjections = prometheus.NewDesc("meshgate_cluster_outlier_ejections_enforced_total",
		"Outlier ejections by kind.", []string{"cluster", "kind"}, nil)
	descEjectionsActive = prometheus.NewDesc("meshgate_cluster_outlier_ejections_active",
		"Hosts ejected now.", []string{"cluster"}, nil)
	descBreakerOpens = prometheus.NewDesc("meshgate_cluster_endpoint_breaker_opens_total",
		"Times an endpoint breaker tripped open, summed over the cluster's hosts.", []string{"cluster"}, nil)
	descHealthChecks = prometheus.NewDesc("meshgate_cluster_health_check_total",
		"Active health checks by result (success, failure).", []string{"cluster", "result"}, nil)
	descBreakersOpen = prometheus.NewDesc("meshgate_cluster_endpoint_breakers_open",
		"Hosts whose endpoint breaker is open now.", []string{"cluster"}, nil)
)

// clusterCollector reads the clusters' own atomic counters at scrape time,
// so the request path pays nothing for them.
type clusterCollector struct {
	clusters func() []*cluster.Cluster
}

func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRq, descRqActive, descRqTimeout, descRq5xx, descCx, descCxActive, descCxFail,
		descNoHealthy, descMembers, descHealthy, descOverflow, descRetry, descRetrySuccess, descRetryOverflow, descRelayed,
		descEjections, descEjectionsActive, descBreakerOpens, descBreakersOpen, descHealthChecks} {
		ch <- d
	}
}

func (c *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	for _, cl := range c.clusters() {
		s := &cl.Stats
		counter := func(d *prometheus.Desc, v uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), cl.Name)
		}
		gauge := func(d *prometheus.Desc, v int64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), cl.Name)
		}
		counter(descRq, s.RqTotal.Load())
		gauge(descRqActive, s.RqActive.Load())
		counter(descRqTimeout, s.RqTimeout.Load())
		counter(descRq5xx, s.Rq5xx.Load())
		counter(descCx, s.CxTotal.Load())
		gauge(descCxActive, s.CxActive.Load())
		counter(descCxFail, s.CxConnectFail.Load())
		counter(descNoHealthy, s.NoHealthyUpstrm.Load())
		gauge(descMembers, s.MembershipTotal.Load())
		ch <- prometheus.MustNewConstMetric(descOverflow, prometheus.CounterValue, float64(s.RqOverflow.Load()), cl.Name, "max_requests")
		ch <- prometheus.MustNewConstMetric(descOverflow, prometheus.CounterValue, float64(s.RqPendingOverflow.Load()), cl.Name, "max_pending_requests")
		counter(descRetry, s.RqRetry.Load())
		counter(descRetrySuccess, s.RqRetrySuccess.Load())
		counter(descRetryOverflow, s.RetryOverflow.Load())
		counter(descRelayed, s.RqRelayed.Load())
		var healthy, opens, open int64
		for _, h := range cl.Hosts() {
			if h.Healthy() {
				healthy++
			}
			opens += int64(h.BreakerOpens())
			if h.BreakerState() == "open" {
				open++
			}
		}
		gauge(descHealthy, healthy)
		counter(descBreakerOpens, uint64(opens))
		gauge(descBreakersOpen, open)
		if _, okN, failN, has := cl.HealthCheckStats(); has {
			ch <- prometheus.MustNewConstMetric(descHealthChecks, prometheus.CounterValue, float64(okN), cl.Name, "success")
			ch <- prometheus.MustNewConstMetric(descHealthChecks, prometheus.CounterValue, float64(failN), cl.Name, "failure")
		}
		if ej, active := cl.OutlierStats(); ej != nil {
			for kind, n := range ej {
				ch <- prometheus.MustNewConstMetric(descEjections, prometheus.CounterValue, float64(n), cl.Name, kind)
			}
			gauge(descEjectionsActive, active)
		}
	}
}
