package pushapi

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Route labels of the metrics; fixed, so their series start at zero.
var routeLabels = []string{routeHost, routeHosts, routePush, routeOnline, routeEdges, routeHealth, routeMetrics, routeUnmatched}

// Host answer sources.
const (
	sourceEdge     = "edge"
	sourceFallback = "fallback"
	sourceNone     = "none"
)

// metrics are the API's Prometheus collectors.
type metrics struct {
	requests     *prometheus.CounterVec   // route, code
	duration     *prometheus.HistogramVec // route
	pushes       prometheus.Counter       // messages accepted by the bus
	delivered    prometheus.Counter       // connections reached, as reported with ?wait=1
	pushDuration *prometheus.HistogramVec // wait: true, false
	authFailures *prometheus.CounterVec   // reason: missing, invalid
	hostAnswers  *prometheus.CounterVec   // source: edge, fallback, none
	liveEdges    prometheus.GaugeFunc
	collectors   []prometheus.Collector
}

func newMetrics(liveEdges func() float64) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plex_api_http_requests_total", Help: "HTTP requests by route pattern and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "plex_api_http_request_seconds", Help: "HTTP request handling time by route pattern.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 15),
		}, []string{"route"}),
		pushes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "plex_api_pushes_accepted_total", Help: "Push messages (one per uid) accepted by the bus.",
		}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "plex_api_push_delivered_total", Help: "Connections reached by pushes sent with ?wait=1.",
		}),
		pushDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "plex_api_push_seconds", Help: "Time to handle a valid push request, by whether it waited for deliveries.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 15),
		}, []string{"wait"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plex_api_auth_failures_total", Help: "Operator requests refused: bearer missing or invalid.",
		}, []string{"reason"}),
		hostAnswers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plex_api_host_answers_total", Help: "Host discovery answers by source: a live edge, the OuterServers fallback, or none (503).",
		}, []string{"source"}),
		liveEdges: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "plex_api_live_edges", Help: "Edges whose stats are current, draining ones included.",
		}, liveEdges),
	}
	for _, r := range routeLabels {
		m.duration.WithLabelValues(r)
	}
	for _, w := range []string{"true", "false"} {
		m.pushDuration.WithLabelValues(w)
	}
	for _, r := range []string{"missing", "invalid"} {
		m.authFailures.WithLabelValues(r)
	}
	for _, s := range []string{sourceEdge, sourceFallback, sourceNone} {
		m.hostAnswers.WithLabelValues(s)
	}
	m.collectors = []prometheus.Collector{m.requests, m.duration, m.pushes, m.delivered,
		m.pushDuration, m.authFailures, m.hostAnswers, m.liveEdges}
	return m
}

// register registers every collector, undoing it all on failure.
func (m *metrics) register(r prometheus.Registerer) error {
	if r == nil {
		return nil
	}
	for i, c := range m.collectors {
		if err := r.Register(c); err != nil {
			for _, done := range m.collectors[:i] {
				r.Unregister(done)
			}
			return err
		}
	}
	return nil
}
