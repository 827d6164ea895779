package hostile

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/plexbus/plex/bus"
	"github.com/plexbus/plex/edge"
	"github.com/plexbus/plex/embeddednats"
	"github.com/plexbus/plex/test/busfaults/harness"
)

// stack is an embedded NATS server with an auth responder: token
// "uid:<x>" logs in as x, anything else is refused with "bad token".
type stack struct {
	t         *testing.T
	ns        *embeddednats.Server
	nc        *nats.Conn // the test's own bus connection, for pushes
	authReqs  atomic.Int64
	asyncErrs atomic.Int64 // nats.go async errors (slow consumer) on any connection
}

func newStack(t *testing.T) *stack {
	t.Helper()
	st := &stack{t: t, ns: embeddednats.RunTest(t, embeddednats.Config{})}
	st.nc = st.connect()
	harness.ServeUIDAuth(t, st.connect(), func() { st.authReqs.Add(1) })
	return st
}

func (st *stack) connect() *nats.Conn {
	st.t.Helper()
	nc, err := st.ns.Connect(nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) { st.asyncErrs.Add(1) }))
	if err != nil {
		st.t.Fatal(err)
	}
	st.t.Cleanup(nc.Close)
	return nc
}

// url is the NATS URL for subprocesses.
func (st *stack) url() string { return st.ns.ClientURL() }

// push publishes body to uid.
func (st *stack) push(uid, body string) error {
	return st.nc.Publish(bus.UserPrefix+uid, []byte(body))
}

// inProcEdge is an edge running in the test process.
type inProcEdge struct {
	*edge.Server
	reg *prometheus.Registry
}

// edge starts an in-process edge on 127.0.0.1:0 with its own metrics
// registry; it is shut down (and must stop cleanly) at cleanup.
func (st *stack) edge(cfg edge.Config) *inProcEdge {
	st.t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	s, _ := harness.RunEdge(st.t, cfg, st.connect())
	return &inProcEdge{Server: s, reg: reg}
}

// metrics gathers the in-process edge's registry into a metricSet keyed
// as the text format writes series.
func (e *inProcEdge) metrics(t *testing.T) metricSet {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	m := metricSet{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			key := mf.GetName()
			if lp := mt.GetLabel(); len(lp) > 0 {
				var parts []string
				for _, l := range lp {
					parts = append(parts, l.GetName()+`="`+l.GetValue()+`"`)
				}
				key += "{" + strings.Join(parts, ",") + "}"
			}
			switch {
			case mt.Counter != nil:
				m[key] = mt.GetCounter().GetValue()
			case mt.Gauge != nil:
				m[key] = mt.GetGauge().GetValue()
			}
		}
	}
	return m
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
