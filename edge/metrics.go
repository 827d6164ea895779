package edge

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the edge's Prometheus collectors. Label values are fixed
// sets, created at zero so dashboards see every series from the start.
type metrics struct {
	conns         prometheus.GaugeFunc
	accepted      prometheus.Counter
	auths         *prometheus.CounterVec // result: ok, refused, unavailable, timeout, busy, duplicate
	authLatency   prometheus.Histogram
	disconnects   *prometheus.CounterVec // reason
	pushesIn      prometheus.Counter     // bus messages to deliver
	pushesOut     prometheus.Counter     // frames queued to sockets
	pushLatency   prometheus.Histogram   // bus message arrival to socket write
	queueDrops    *prometheus.CounterVec // where: bus (dispatcher queue full), conn (slow consumer)
	badFrames     *prometheus.CounterVec // kind: too_large, bad_payload
	innerPushes   prometheus.Counter
	refusedPushes prometheus.Counter // reserved uri or larger than a frame
	busResyncs    prometheus.Counter
	limited       *prometheus.CounterVec // limit: max_conns, failed_auth_ip, frame_rate, pending_auth, fds
	socketWrites  prometheus.Counter     // write calls to client sockets (frames per write = pushes_out / this)
	batches       prometheus.Histogram   // bus messages per dispatcher batch
	collectors    []prometheus.Collector
}

var authResults = []string{"ok", "refused", "unavailable", "timeout", "busy", "duplicate"}

func newMetrics(connCount func() float64) *metrics {
	m := &metrics{
		conns: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "plex_edge_connections", Help: "Open client connections (authenticated or not).",
		}, connCount),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "plex_edge_accepted_total", Help: "TCP connections accepted.",
		}),
		auths: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plex_edge_auths_total", Help: "Login attempts by result.",
		}, []string{"result"}),
		authLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "plex_edge_auth_seconds", Help: "Time from the login frame to the auth service's answer.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plex_edge_disconnects_total", Help: "Closed connections by reason.",
		}, []string{"reason"}),
		pushesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "plex_edge_pushes_in_total", Help: "Push messages received from the bus.",
		}),
		pushesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "plex_edge_pushes_out_total", Help: "Push frames queued to client sockets.",
		}),
		pushLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "plex_edge_push_seconds", Help: "Time from a push leaving the bus queue to its socket write.",
			Buckets: prometheus.ExponentialBuckets(0.00001, 4, 10),
		}),
		queueDrops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plex_edge_queue_drops_total", Help: "Messages dropped: bus = dispatcher queue full, conn = a slow consumer's queue.",
		}, []string{"queue"}),
		badFrames: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "plex_edge_bad_frames_total", Help: "Protocol errors from clients.",
		}, []string{"kind"}),
		innerPushes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "plex_edge_inner_pushes_total", Help: "Pushes received over the original inner push protocol.",
		}),
		refusedPushes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "plex_edge_pushes_refused_total", Help: "Pushes not delivered: a reserved uri, or larger than MaxFrameSize.",
		}),
		busResyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "plex_edge_bus_resyncs_total", Help: "Presence re-announcements after a bus reconnect.",
		}),
	}
	m.socketWrites = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "plex_edge_socket_writes_total", Help: "Write calls to client sockets; pushes and control frames per call show how well writes batch.",
	})
	m.batches = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "plex_edge_dispatch_batch_messages", Help: "Bus messages taken per dispatcher batch.",
		Buckets: prometheus.ExponentialBuckets(1, 4, 7),
	})
	m.limited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "plex_edge_limited_total", Help: "Connections turned away or closed by a limit.",
	}, []string{"limit"})
	for _, l := range []string{"max_conns", "failed_auth_ip", "frame_rate", "pending_auth", "fds"} {
		m.limited.WithLabelValues(l)
	}
	for _, r := range authResults {
		m.auths.WithLabelValues(r)
	}
	for _, r := range allReasons {
		m.disconnects.WithLabelValues(string(r))
	}
	for _, q := range []string{"bus", "conn"} {
		m.queueDrops.WithLabelValues(q)
	}
	for _, k := range []string{"too_large", "bad_payload"} {
		m.badFrames.WithLabelValues(k)
	}
	m.collectors = []prometheus.Collector{m.conns, m.accepted, m.auths, m.authLatency, m.disconnects,
		m.pushesIn, m.pushesOut, m.pushLatency, m.queueDrops, m.badFrames, m.innerPushes, m.refusedPushes, m.busResyncs, m.limited, m.socketWrites, m.batches}
	return m
}

func (m *metrics) register(r prometheus.Registerer) error {
	if r == nil {
		return nil
	}
	for _, c := range m.collectors {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func (m *metrics) unregister(r prometheus.Registerer) {
	if r == nil {
		return
	}
	for _, c := range m.collectors {
		r.Unregister(c)
	}
}

func (m *metrics) observeAuth(result string, since time.Time) {
	m.auths.WithLabelValues(result).Inc()
	m.authLatency.Observe(time.Since(since).Seconds())
}
