package stats

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshgate/meshgate/server/cluster"
)

// istioLabels are Istio's standard metric labels
// (istio_requests_total and friends), in Istio's order.
var istioLabels = []string{
	"reporter",
	"source_workload", "source_workload_namespace", "source_principal", "source_app", "source_version", "source_cluster",
	"destination_workload", "destination_workload_namespace", "destination_principal", "destination_app", "destination_version",
	"destination_service", "destination_service_name", "destination_service_namespace", "destination_cluster",
	"request_protocol", "response_code", "grpc_response_status", "response_flags", "connection_security_policy",
}

// Workload is who the gateway is, for the source_* labels ("" values
// print as Istio's "unknown").
type Workload struct {
	Name, Namespace, App, Version, Principal, Cluster string
}

// Istio records Istio's standard request metrics, so that Istio's Grafana
// dashboards and Kiali show the gateway (as a reporter="source" proxy, as
// Istio's gateways report).
type Istio struct {
	source    Workload
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	reqBytes  *prometheus.HistogramVec
	respBytes *prometheus.HistogramVec
	// series caches each label combination's metrics: a request costs one
	// map lookup, not 21 label values hashed four times.
	series sync.Map // istioKey -> *istioSeries
}

type istioKey struct {
	cluster          string
	dest             cluster.Workload
	grpc             bool
	code, grpcStatus int
	flags            string
}

type istioSeries struct {
	requests                      prometheus.Counter
	duration, reqBytes, respBytes prometheus.Observer
}

// NewIstio registers Istio's request metrics in reg.
func NewIstio(reg prometheus.Registerer, source Workload) *Istio {
	m := &Istio{
		source: source,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "istio_requests_total", Help: "Requests through the gateway, with Istio's standard labels.",
		}, istioLabels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "istio_request_duration_milliseconds", Help: "Request duration in milliseconds, with Istio's standard labels.",
			Buckets: []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000},
		}, istioLabels),
		reqBytes: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "istio_request_bytes", Help: "Request body sizes in bytes, with Istio's standard labels.",
			Buckets: prometheus.ExponentialBuckets(1, 10, 9),
		}, istioLabels),
		respBytes: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "istio_response_bytes", Help: "Response body sizes in bytes, with Istio's standard labels.",
			Buckets: prometheus.ExponentialBuckets(1, 10, 9),
		}, istioLabels),
	}
	reg.MustRegister(m.requests, m.duration, m.reqBytes, m.respBytes)
	return m
}

// Record counts one finished request to a cluster (its Envoy/Istio name:
// outbound|port|subset|host names the destination service) and, when one
// was tried, a host (istiod's endpoint metadata names its workload).
func (m *Istio) Record(clusterName string, host *cluster.Host, grpc bool, code, grpcStatus int, flags []string, d time.Duration, reqBytes, respBytes int64) {
	k := istioKey{cluster: clusterName, grpc: grpc, code: code, grpcStatus: grpcStatus}
	if host != nil {
		k.dest = host.Spec().Workload
	}
	if len(flags) > 0 {
		k.flags = strings.Join(flags, ",")
	}
	s, ok := m.series.Load(k)
	if !ok {
		s, _ = m.series.LoadOrStore(k, m.newSeries(k))
	}
	ss := s.(*istioSeries)
	ss.requests.Inc()
	ss.duration.Observe(float64(d.Microseconds()) / 1000)
	ss.reqBytes.Observe(float64(reqBytes))
	ss.respBytes.Observe(float64(respBytes))
}

func (m *Istio) newSeries(k istioKey) *istioSeries {
	or := func(s string) string {
		if s == "" {
			return "unknown"
		}
		return s
	}
	svc, name, ns := destination(k.cluster)
	proto, gs, flags := "http", "", "-"
	if k.grpc {
		proto = "grpc"
		if k.grpcStatus >= 0 {
			gs = strconv.Itoa(k.grpcStatus)
		}
	}
	if k.flags != "" {
		flags = k.flags
	}
	src, dst := m.source, k.dest
	vals := []string{
		"source",
		or(src.Name), or(src.Namespace), or(src.Principal), or(src.App), or(src.Version), or(src.Cluster),
		or(dst.Name), or(dst.Namespace), "unknown", or(dst.App), or(dst.Version),
		or(svc), or(name), or(ns), or(dst.Cluster),
		proto, strconv.Itoa(k.code), gs, flags, "unknown",
	}
	return &istioSeries{
		requests:  m.requests.WithLabelValues(vals...),
		duration:  m.duration.WithLabelValues(vals...),
		reqBytes:  m.reqBytes.WithLabelValues(vals...),
		respBytes: m.respBytes.WithLabelValues(vals...),
	}
}

// destination reads the destination service from a cluster name: Istio's
// outbound|port|subset|host gives the host and, for a Kubernetes service
// name (name.namespace.svc...), its name and namespace; another cluster
// name stands for itself.
func destination(cluster string) (service, name, namespace string) {
	parts := strings.Split(cluster, "|")
	if len(parts) != 4 || (parts[0] != "outbound" && parts[0] != "inbound") {
		return cluster, cluster, ""
	}
	host := parts[3]
	labels := strings.Split(host, ".")
	if len(labels) >= 3 && labels[2] == "svc" {
		return host, labels[0], labels[1]
	}
	return host, host, ""
}
