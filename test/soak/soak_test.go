//go:build soak && linux

package soak

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/plexbus/plex/bus"
	"github.com/plexbus/plex/test/busfaults/harness"
	"github.com/plexbus/plex/wire"
)

func TestMain(m *testing.M) {
	code := m.Run()
	harness.Cleanup()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

type params struct {
	duration  time.Duration
	conns     int
	pushRate  int // pushes per second
	churnRate int // reconnects per second
}

func loadParams(t *testing.T) params {
	p := params{duration: 3 * time.Minute, conns: 10000, pushRate: 2000, churnRate: 100}
	if v := os.Getenv("PLEX_SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 30*time.Second {
			t.Fatalf("PLEX_SOAK_DURATION=%q: want a duration of at least 30s", v)
		}
		p.duration = d
	}
	for _, e := range []struct {
		name string
		dst  *int
	}{{"PLEX_SOAK_CONNS", &p.conns}, {"PLEX_SOAK_PUSH_RATE", &p.pushRate}, {"PLEX_SOAK_CHURN_RATE", &p.churnRate}} {
		if v := os.Getenv(e.name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				t.Fatalf("%s=%q", e.name, v)
			}
			*e.dst = n
		}
	}
	return p
}

// gen is one connection of a slot: from its login to its close.
type gen struct {
	c        *harness.Conn
	closedAt atomic.Int64 // unix nanos; 0 = open
	retryAt  time.Time    // after a failed login; guarded by the slot's mu
}

// slot is one simulated device (one uid) that reconnects over and over.
type slot struct {
	uid string

	mu   sync.Mutex
	gens []*gen // every connection the slot had
	cur  *gen   // the newest
}

// push is one published push.
type push struct {
	slot int32
	at   int64 // unix nanos, just before Publish
}

// soak is the run's shared state.
type soak struct {
	t     *testing.T
	p     params
	edge  *harness.Edge
	fleet *harness.Fleet
	slots []*slot

	pmu    sync.Mutex
	pushes []push // by id; appended by the publisher only

	amu       sync.Mutex      // accounting, from the fleet's loop
	received  []uint8         // by push id: deliveries
	latency   []time.Duration // by push id: publish to first delivery
	lastID    []int64         // by slot: the last push id received (order check)
	reordered int
	unknown   int

	peerClosed  atomic.Int64 // closes by the edge outside the bus outage
	loginFailed sync.Map     // reason → *atomic.Int64
	logins      atomic.Int64
	churned     atomic.Int64
	heartbeats  atomic.Int64
}

func (s *soak) onPush(c *harness.Conn, m wire.Message) {
	id, err := strconv.ParseInt(m.Body, 10, 64)
	now := time.Now().UnixNano()
	s.pmu.Lock()
	var p push
	ok := err == nil && id >= 0 && id < int64(len(s.pushes))
	if ok {
		p = s.pushes[id]
	}
	s.pmu.Unlock()
	s.amu.Lock()
	defer s.amu.Unlock()
	if !ok || int(p.slot) != c.ID {
		s.unknown++
		return
	}
	for int64(len(s.received)) <= id {
		s.received = append(s.received, 0)
		s.latency = append(s.latency, 0)
	}
	s.received[id]++
	if s.received[id] == 1 {
		s.latency[id] = time.Duration(now - p.at)
	}
	if id <= s.lastID[c.ID] {
		s.reordered++
	}
	s.lastID[c.ID] = id
}

func (s *soak) onClose(c *harness.Conn, err error) {
	sl := s.slots[c.ID]
	sl.mu.Lock()
	defer sl.mu.Unlock()
	for _, g := range sl.gens {
		if g.c == c && g.closedAt.Load() == 0 {
			g.closedAt.Store(time.Now().UnixNano())
		}
	}
	if r := c.FailReason(); r != "" {
		v, _ := s.loginFailed.LoadOrStore(r, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
		return
	}
	if c.Authed.Load() {
		s.peerClosed.Add(1)
	}
}

// connect opens a new connection for slot i and sends its login; the
// fleet's loop sees the answer.
func (s *soak) connect(i int) error {
	sl := s.slots[i]
	c, err := s.fleet.Dial(s.edge.Addr, harness.Source(rand.IntN(250), 250), i, sl.uid)
	if err != nil {
		return err
	}
	g := &gen{c: c}
	sl.mu.Lock()
	sl.gens = append(sl.gens, g)
	sl.cur = g
	sl.mu.Unlock()
	s.logins.Add(1)
	return c.Send(wire.URIAuth, sl.uid)
}

// maintain reconnects slots whose connection is gone: at once after a
// churn close, 200 ms after a failed login. It runs until ctx ends.
func (s *soak) maintain(ctx context.Context) {
	for ctx.Err() == nil {
		now := time.Now()
		for i, sl := range s.slots {
			sl.mu.Lock()
			g := sl.cur
			need := false
			if g.c.IsClosed() {
				switch {
				case g.c.Authed.Load():
					need = true
				case g.retryAt.IsZero():
					g.retryAt = now.Add(200 * time.Millisecond)
				default:
					need = now.After(g.retryAt)
				}
			}
			sl.mu.Unlock()
			if need {
				if err := s.connect(i); err != nil {
					s.t.Logf("reconnect %s: %v", sl.uid, err)
				}
			}
		}
		sleepCtx(ctx, 50*time.Millisecond)
	}
}

// churn closes random logged-in connections from the device side at the
// churn rate; maintain brings them back.
func (s *soak) churn(ctx context.Context) {
	t := time.NewTicker(time.Second / time.Duration(s.p.churnRate))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sl := s.slots[rand.IntN(len(s.slots))]
		sl.mu.Lock()
		g := sl.cur
		sl.mu.Unlock()
		if g == nil || !g.c.Authed.Load() || g.c.IsClosed() {
			continue
		}
		g.closedAt.Store(time.Now().UnixNano())
		g.c.Close()
		s.churned.Add(1)
	}
}

// heartbeat sends /heartbeat on every open connection every 30 s, spread
// over the interval.
func (s *soak) heartbeat(ctx context.Context) {
	const period, steps = 30 * time.Second, 30
	t := time.NewTicker(period / steps)
	defer t.Stop()
	for k := 0; ; k = (k + 1) % steps {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for i := k; i < len(s.slots); i += steps {
			sl := s.slots[i]
			sl.mu.Lock()
			g := sl.cur
			sl.mu.Unlock()
			if g != nil && g.c.Authed.Load() && !g.c.IsClosed() {
				if g.c.Send(wire.URIHeartbeat, "") == nil {
					s.heartbeats.Add(1)
				}
			}
		}
	}
}

// publish pushes to random slots at the push rate until ctx ends.
func (s *soak) publish(ctx context.Context, nc *nats.Conn) {
	const tick = 10 * time.Millisecond
	per := max(1, s.p.pushRate*int(tick)/int(time.Second))
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for range per {
			i := rand.IntN(len(s.slots))
			s.pmu.Lock()
			id := len(s.pushes)
			s.pushes = append(s.pushes, push{slot: int32(i), at: time.Now().UnixNano()})
			s.pmu.Unlock()
			if err := bus.Publish(nc, bus.Push{UID: s.slots[i].uid, Body: []byte(strconv.Itoa(id))}); err != nil {
				s.t.Logf("publish: %v", err)
			}
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// sample is the edge process's footprint at one moment.
type sample struct {
	at         time.Duration
	rss        int64
	goroutines float64
	fds        int
	conns      float64
}

func (s *soak) sample(metrics string, start time.Time) sample {
	rss, err := harness.RSS(s.edge.Pid())
	if err != nil {
		s.t.Fatal(err)
	}
	g, err := harness.Metric(metrics, "go_goroutines")
	if err != nil {
		s.t.Fatal(err)
	}
	c, err := harness.Metric(metrics, "plex_edge_connections")
	if err != nil {
		c = -1
	}
	fds, _ := harness.OpenFDs(s.edge.Pid())
	return sample{at: time.Since(start).Round(time.Second), rss: rss, goroutines: g, fds: fds, conns: c}
}

// TestSoak: see the package documentation.
func TestSoak(t *testing.T) {
	p := loadParams(t)
	t.Logf("SOAK: %s, %d connections, %d pushes/s, %d reconnects/s, one NATS restart at half time, GOMAXPROCS %d",
		p.duration, p.conns, p.pushRate, p.churnRate, runtime.GOMAXPROCS(0))
	natsPort, monPort, metricsPort := harness.FreePort(t), harness.FreePort(t), harness.FreePort(t)
	natsArgs := []string{"--nats-port", strconv.Itoa(natsPort), "--nats-monitor-port", strconv.Itoa(monPort)}
	natsProc, url := harness.StartNATS(t, nil, natsArgs...)
	mon := fmt.Sprintf("http://127.0.0.1:%d", monPort)
	metrics := fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)
	harness.StartDevAuth(t, url)
	edge := harness.StartEdge(t, nil, "--nats", url, "--stats-interval", "1s",
		"--metrics-addr", "127.0.0.1:"+strconv.Itoa(metricsPort))

	nc, err := nats.Connect(url, nats.Name("soak-publisher"), nats.MaxReconnects(-1),
		nats.ReconnectWait(50*time.Millisecond), nats.ReconnectBufSize(64<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var statsSeen atomic.Int64 // unix nanos of the edge's last stats
	ssub, err := bus.SubscribeEdgeStats(nc, func(st bus.EdgeStats) {
		if st.ID == edge.ID {
			statsSeen.Store(time.Now().UnixNano())
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ssub.Unsubscribe()

	s := &soak{t: t, p: p, edge: edge, slots: make([]*slot, p.conns), lastID: make([]int64, p.conns)}
	for i := range s.slots {
		s.slots[i] = &slot{uid: "soak" + strconv.Itoa(i)}
		s.lastID[i] = -1
	}
	s.fleet, err = harness.NewFleet(harness.FleetConfig{OnPush: s.onPush, OnClose: s.onClose})
	if err != nil {
		t.Fatal(err)
	}
	defer s.fleet.Close()
	baseTestGoroutines := runtime.NumGoroutine()

	// Warm up: everyone logs in before the clock starts.
	loginStart := time.Now()
	for i := range s.slots {
		if err := s.connect(i); err != nil {
			t.Fatal(err)
		}
		if i%1000 == 999 {
			harness.WaitFor(t, time.Minute, "logins", func() bool { return s.slots[i].cur.c.Authed.Load() })
		}
	}
	harness.WaitFor(t, time.Minute, "every device logged in", func() bool {
		for _, sl := range s.slots {
			if !sl.cur.c.Authed.Load() {
				return false
			}
		}
		return true
	})
	t.Logf("SOAK: %d devices logged in in %s", p.conns, time.Since(loginStart).Round(time.Millisecond))

	ctx, cancel := context.WithCancel(context.Background())
	pubCtx, stopPub := context.WithCancel(ctx)
	var wg sync.WaitGroup
	run := func(f func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	start := time.Now()
	run(s.maintain)
	run(s.churn)
	run(s.heartbeat)
	wg.Add(1)
	go func() { defer wg.Done(); s.publish(pubCtx, nc) }()
	defer func() { cancel(); wg.Wait() }()

	var samples []sample
	var baseline sample
	var downAt, upAt time.Time
	var upConfirmed int64
	var reconnected, resubscribed time.Duration
	next := 10 * time.Second
	for time.Since(start) < p.duration {
		time.Sleep(250 * time.Millisecond)
		el := time.Since(start)
		if el >= next {
			samples = append(samples, s.sample(metrics, start))
			next += 10 * time.Second
		}
		if baseline.at == 0 && el >= p.duration/4 {
			baseline = s.sample(metrics, start)
		}
		if downAt.IsZero() && el >= p.duration/2 {
			_, subsBefore, err := harness.ConnSubs(mon, "plex-edge")
			if err != nil {
				t.Fatal(err)
			}
			downAt = time.Now()
			natsProc.Signal(syscall.SIGTERM)
			if code, _ := natsProc.Wait(10 * time.Second); code != 0 {
				t.Fatalf("plex nats exit %d", code)
			}
			time.Sleep(2 * time.Second)
			natsProc, _ = harness.StartNATS(t, nil, natsArgs...)
			upAt = time.Now()
			var subs int
			reconnected = harness.WaitFor(t, time.Minute, "the edge back on the bus", func() bool {
				n, sb, err := harness.ConnSubs(mon, "plex-edge")
				subs = sb
				return err == nil && n > 0
			})
			resubscribed = harness.WaitFor(t, time.Minute, "the edge re-subscribed", func() bool {
				_, sb, err := harness.ConnSubs(mon, "plex-edge")
				subs = sb
				return err == nil && sb >= subsBefore*9/10
			}) + reconnected
			harness.WaitFor(t, time.Minute, "the edge's stats after the restart", func() bool {
				return statsSeen.Load() > upAt.UnixNano()
			})
			upConfirmed = statsSeen.Load()
			t.Logf("SOAK: NATS down %s; edge reconnected %s after the restart, %d subscriptions (%d before) %s after, "+
				"bus confirmed up %s after", upAt.Sub(downAt).Round(time.Millisecond), reconnected.Round(time.Millisecond),
				subs, subsBefore, resubscribed.Round(time.Millisecond), time.Duration(upConfirmed-upAt.UnixNano()).Round(time.Millisecond))
		}
	}
	stopPub()
	publishEnd := time.Now()
	time.Sleep(3 * time.Second) // deliveries in flight
	cancel()
	wg.Wait()
	// Let reconnects and closes settle so the end sample compares the
	// same number of connections as the baseline.
	for i := range s.slots {
		sl := s.slots[i]
		if sl.cur.c.IsClosed() {
			if err := s.connect(i); err != nil {
				t.Fatal(err)
			}
		}
	}
	harness.WaitFor(t, time.Minute, "every device logged in again", func() bool {
		for _, sl := range s.slots {
			if !sl.cur.c.Authed.Load() {
				return false
			}
		}
		return true
	})
	runtime.GC()
	time.Sleep(2 * time.Second)
	end := s.sample(metrics, start)

	// Accounting.
	grace := int64(2 * time.Second)
	s.pmu.Lock()
	pushes := slices.Clone(s.pushes)
	s.pmu.Unlock()
	s.amu.Lock()
	received := slices.Clone(s.received)
	latency := slices.Clone(s.latency)
	reordered, unknown := s.reordered, s.unknown
	s.amu.Unlock()
	for len(received) < len(pushes) {
		received = append(received, 0)
		latency = append(latency, 0)
	}
	var lat []time.Duration // of the expected pushes
	var expected, lost, dup, deliveredAll, duringOutage int
	var lostSamples []string
	for id, ps := range pushes {
		if received[id] > 0 {
			deliveredAll++
		}
		if received[id] > 1 {
			dup++
		}
		if ps.at >= downAt.UnixNano() && ps.at <= upConfirmed {
			duringOutage++
			continue
		}
		sl := s.slots[ps.slot]
		sl.mu.Lock()
		stayed := false
		for _, g := range sl.gens {
			a, c := g.c.AuthedAt.Load(), g.closedAt.Load()
			if a != 0 && a < ps.at && (c == 0 || c > ps.at+grace) {
				stayed = true
				break
			}
		}
		sl.mu.Unlock()
		if !stayed {
			continue
		}
		expected++
		if received[id] > 0 {
			lat = append(lat, latency[id])
		}
		if received[id] == 0 {
			lost++
			if len(lostSamples) < 10 {
				lostSamples = append(lostSamples, fmt.Sprintf("#%d to %s at +%s", id, sl.uid, time.Duration(ps.at-start.UnixNano()).Round(time.Millisecond)))
			}
		}
	}
	slices.Sort(lat)
	pct := func(q float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(q*float64(len(lat))))].Round(10 * time.Microsecond)
	}
	failed := map[string]int64{}
	s.loginFailed.Range(func(k, v any) bool { failed[k.(string)] = v.(*atomic.Int64).Load(); return true })

	t.Logf("SOAK: ran %s; published %d pushes (%.0f/s), %d to devices connected throughout, %d during the outage window, %d delivered in all",
		publishEnd.Sub(start).Round(time.Second), len(pushes), float64(len(pushes))/publishEnd.Sub(start).Seconds(), expected, duringOutage, deliveredAll)
	t.Logf("SOAK: lost %d, duplicated %d, out of order %d, unknown %d; latency of those pushes p50 %s p99 %s p99.9 %s max %s",
		lost, dup, reordered, unknown, pct(0.5), pct(0.99), pct(0.999), pct(1))
	t.Logf("SOAK: logins %d, device-side closes (churn) %d, failed logins by reason %v, closed by the edge %d, heartbeats %d",
		s.logins.Load(), s.churned.Load(), failed, s.peerClosed.Load(), s.heartbeats.Load())
	for _, sm := range samples {
		t.Logf("SOAK: t=%-5s edge rss %6.1f MiB, goroutines %4.0f, fds %5d, conns %5.0f", sm.at, mib(sm.rss), sm.goroutines, sm.fds, sm.conns)
	}
	t.Logf("SOAK: baseline (t=%s) rss %.1f MiB, goroutines %.0f, fds %d; end rss %.1f MiB (%+.1f%%), goroutines %.0f, fds %d; test process goroutines %d → %d",
		baseline.at, mib(baseline.rss), baseline.goroutines, baseline.fds, mib(end.rss),
		100*float64(end.rss-baseline.rss)/float64(baseline.rss), end.goroutines, end.fds, baseTestGoroutines, runtime.NumGoroutine())

	if lost > 0 {
		t.Errorf("%d pushes lost for devices that stayed connected while the bus was up, e.g. %v", lost, lostSamples)
	}
	if dup > 0 || reordered > 0 || unknown > 0 {
		t.Errorf("duplicated %d, out of order %d, unknown %d", dup, reordered, unknown)
	}
	if n := s.peerClosed.Load(); n > 0 {
		t.Errorf("the edge closed %d logged-in connections", n)
	}
	if end.goroutines > baseline.goroutines+10 {
		t.Errorf("edge goroutines grew from %.0f to %.0f", baseline.goroutines, end.goroutines)
	}
	if limit := baseline.rss + max(baseline.rss/4, 32<<20); end.rss > limit {
		t.Errorf("edge RSS grew from %.1f MiB to %.1f MiB (bound %.1f MiB)", mib(baseline.rss), mib(end.rss), mib(limit))
	}
	if end.fds > baseline.fds+50 {
		t.Errorf("edge file descriptors grew from %d to %d", baseline.fds, end.fds)
	}

	// Drain: SIGTERM with every device connected.
	sigterm := time.Now()
	edge.Signal(syscall.SIGTERM)
	if code, at := edge.Wait(30 * time.Second); code != 0 {
		t.Errorf("edge exit %d after SIGTERM", code)
	} else {
		t.Logf("SOAK: SIGTERM drain of %d connections: exited 0 after %s", p.conns, at.Sub(sigterm).Round(time.Millisecond))
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
