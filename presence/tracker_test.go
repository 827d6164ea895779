package presence

import (
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/plexbus/plex/bus"
	"github.com/plexbus/plex/embeddednats"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a settable clock for the tracker under test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// fixture is a tracker on a fake clock with helpers that speak as edges.
// The edges' clock is the same fake clock.
type fixture struct {
	t   *testing.T
	clk *clock
	tr  *Tracker
}

func newFixture(t *testing.T, cfg Config) *fixture {
	clk := newClock()
	cfg.Now = clk.Now
	return &fixture{t: t, clk: clk, tr: New(cfg)}
}

func (f *fixture) online(edge, conn, uid string) {
	f.tr.ObservePresence(bus.Presence{UID: uid, Online: true, Edge: edge, Conn: conn, At: f.clk.Now()})
}

func (f *fixture) resync(edge, conn, uid string) {
	f.tr.ObservePresence(bus.Presence{UID: uid, Online: true, Edge: edge, Conn: conn, At: f.clk.Now(), Resync: true})
}

func (f *fixture) offline(edge, conn, uid string) {
	f.tr.ObservePresence(bus.Presence{UID: uid, Edge: edge, Conn: conn, At: f.clk.Now(), Reason: "client_closed"})
}

func (f *fixture) stats(edge string, started time.Time, interval time.Duration) {
	f.tr.ObserveStats(bus.EdgeStats{ID: edge, Addr: edge + ":9578", Started: started, IntervalMS: interval.Milliseconds()})
}

func (f *fixture) wantOnline(uid string, want bool) {
	f.t.Helper()
	if got := f.tr.Online(uid); got != want {
		f.t.Fatalf("Online(%q) = %v, want %v (conns %v)", uid, got, want, f.tr.Conns(uid))
	}
}

func (f *fixture) wantConns(uid string, ids ...string) {
	f.t.Helper()
	got := f.tr.Conns(uid)
	if len(got) != len(ids) {
		f.t.Fatalf("Conns(%q) = %v, want %v", uid, got, ids)
	}
	for i, c := range got {
		if c.ID != ids[i] {
			f.t.Fatalf("Conns(%q) = %v, want %v", uid, got, ids)
		}
	}
}

func TestOnlineOffline(t *testing.T) {
	f := newFixture(t, Config{})
	started := f.clk.Now()
	f.stats("e1", started, time.Second)
	f.stats("e2", started, time.Second)
	f.wantOnline("42", false)

	f.online("e1", "e1-1", "42")
	f.online("e2", "e2-1", "42")
	f.online("e1", "e1-2", "7")
	f.wantConns("42", "e1-1", "e2-1")
	if u, c := f.tr.Count(); u != 2 || c != 3 {
		t.Fatalf("Count() = %d users, %d conns; want 2, 3", u, c)
	}
	f.offline("e1", "e1-1", "42")
	f.wantConns("42", "e2-1")
	f.offline("e2", "e2-1", "42")
	f.wantOnline("42", false)
	f.offline("e2", "e2-9", "42") // an unknown connection: nothing to do
	if u, c := f.tr.Count(); u != 1 || c != 1 {
		t.Fatalf("Count() = %d users, %d conns; want 1, 1", u, c)
	}
	got := f.tr.Conns("7")
	if len(got) != 1 || got[0].Edge != "e1" || !got[0].Since.Equal(started) {
		t.Fatalf("Conns(7) = %+v", got)
	}
}

// TestEdgeGoneAfterMissedIntervals is the ghost rule: an edge whose stats
// stopped for Missed of its intervals has gone, and its users with it;
// not a moment earlier.
func TestEdgeGoneAfterMissedIntervals(t *testing.T) {
	tests := map[string]struct {
		cfg      Config
		interval time.Duration // in the stats; 0 = none (default applies)
		noStats  bool          // the edge is known from presence only
		ttl      time.Duration // when it counts as gone
	}{
		"three of its intervals":    {interval: time.Second, ttl: 3 * time.Second},
		"missed configured":         {cfg: Config{Missed: 5}, interval: time.Second, ttl: 5 * time.Second},
		"default interval":          {ttl: 15 * time.Second},
		"configured default":        {cfg: Config{DefaultInterval: 2 * time.Second}, ttl: 6 * time.Second},
		"presence only":             {noStats: true, ttl: 15 * time.Second},
		"bogus interval is capped":  {interval: 100 * time.Hour, ttl: 15 * time.Minute},
		"long interval, still gone": {interval: time.Minute, ttl: 3 * time.Minute},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, tc.cfg)
			if !tc.noStats {
				f.stats("e1", f.clk.Now(), tc.interval)
			}
			f.online("e1", "e1-1", "42")
			f.clk.add(tc.ttl)
			f.wantOnline("42", true)
			f.clk.add(time.Millisecond)
			f.wantOnline("42", false)
			if u, c := f.tr.Count(); u != 0 || c != 0 {
				t.Fatalf("Count() = %d, %d after the edge went", u, c)
			}
			if e := f.tr.Edges(); len(e) != 1 || !e[0].Gone || e[0].Conns != 1 {
				t.Fatalf("Edges() = %+v", e)
			}
		})
	}
}

// TestStatsKeepEdgeAlive: regular stats keep the users online indefinitely.
func TestStatsKeepEdgeAlive(t *testing.T) {
	f := newFixture(t, Config{})
	started := f.clk.Now()
	f.stats("e1", started, time.Second)
	f.online("e1", "e1-1", "42")
	for range 100 {
		f.clk.add(time.Second)
		f.stats("e1", started, time.Second)
		f.wantOnline("42", true)
	}
}

// TestEdgeBack: a gone edge whose stats resume (same process: a partition
// or a long pause) never closed its connections: they count again.
func TestEdgeBack(t *testing.T) {
	f := newFixture(t, Config{})
	started := f.clk.Now()
	f.stats("e1", started, time.Second)
	f.online("e1", "e1-1", "42")
	f.clk.add(10 * time.Second)
	f.tr.Sweep()
	f.wantOnline("42", false)
	f.stats("e1", started, time.Second)
	f.wantOnline("42", true)
	if e := f.tr.Edges(); len(e) != 1 || e[0].Gone {
		t.Fatalf("Edges() = %+v", e)
	}
}

// TestEdgeRestart: stats with a new start time end the previous process's
// connections at once, even before the missed intervals; the new process's
// connections, whichever event came first, stay.
func TestEdgeRestart(t *testing.T) {
	f := newFixture(t, Config{})
	f.stats("e1", f.clk.Now(), time.Second)
	f.online("e1", "e1-1", "old")
	f.online("e1", "e1-2", "old2")
	f.offline("e1", "e1-2", "old2")
	f.clk.add(500 * time.Millisecond)
	restart := f.clk.Now()
	f.clk.add(100 * time.Millisecond)
	f.online("e1", "e1-1", "new") // the new process reuses the id, before its stats arrive
	f.wantOnline("new", true)
	f.stats("e1", restart, time.Second)
	f.wantOnline("old", false)
	f.wantOnline("new", true)
	f.online("e1", "e1-2", "new2") // an id that ended in the old process is new here
	f.wantOnline("new2", true)
	// A straggler from the old process is ignored.
	f.tr.ObservePresence(bus.Presence{UID: "old", Online: true, Edge: "e1", Conn: "e1-9", At: restart.Add(-time.Second), Resync: true})
	f.wantOnline("old", false)
}

func TestResync(t *testing.T) {
	t.Run("rebuilds a view that missed the logins", func(t *testing.T) {
		f := newFixture(t, Config{})
		f.stats("e1", f.clk.Now(), time.Second)
		f.clk.add(time.Second)
		for _, uid := range []string{"1", "2", "3"} {
			f.resync("e1", "e1-"+uid, uid)
		}
		if u, c := f.tr.Count(); u != 3 || c != 3 {
			t.Fatalf("Count() = %d, %d after resync", u, c)
		}
		f.resync("e1", "e1-1", "1") // repeated: idempotent
		if u, c := f.tr.Count(); u != 3 || c != 3 {
			t.Fatalf("Count() = %d, %d after a repeated resync", u, c)
		}
	})
	t.Run("re-adds connections of an edge that was gone", func(t *testing.T) {
		f := newFixture(t, Config{Forget: time.Minute})
		started := f.clk.Now()
		f.stats("e1", started, time.Second)
		f.online("e1", "e1-1", "42")
		f.clk.add(2 * time.Minute) // partitioned long enough to be forgotten
		f.tr.Sweep()
		if len(f.tr.Edges()) != 0 {
			t.Fatalf("edge not forgotten: %+v", f.tr.Edges())
		}
		f.resync("e1", "e1-1", "42") // the edge reconnected to the bus
		f.stats("e1", started, time.Second)
		f.wantConns("42", "e1-1")
	})
	t.Run("a resync racing with the offline event does not revive", func(t *testing.T) {
		f := newFixture(t, Config{})
		started := f.clk.Now()
		f.stats("e1", started, time.Second)
		f.online("e1", "e1-1", "42")
		f.offline("e1", "e1-1", "42")
		f.resync("e1", "e1-1", "42")
		f.wantOnline("42", false)
		// The memory of ended connections is bounded in time.
		f.clk.add(endedMemory + time.Second)
		f.stats("e1", started, time.Second)
		f.tr.mu.RLock()
		n := len(f.tr.edges["e1"].ended)
		f.tr.mu.RUnlock()
		if n != 0 {
			t.Fatalf("%d ended ids still remembered", n)
		}
	})
}

// TestForget: a gone edge and its connections leave memory after Forget;
// a live edge's stay.
func TestForget(t *testing.T) {
	f := newFixture(t, Config{Forget: time.Minute})
	started := f.clk.Now()
	f.stats("e1", started, time.Second)
	f.stats("e2", started, time.Second)
	for _, id := range []string{"1", "2"} {
		f.online("e1", "e1-"+id, "u"+id)
	}
	f.online("e2", "e2-1", "u1")
	f.clk.add(30 * time.Second)
	f.tr.Sweep()
	if len(f.tr.Edges()) != 2 {
		t.Fatalf("forgotten too early: %+v", f.tr.Edges())
	}
	f.clk.add(31 * time.Second)
	f.stats("e2", started, time.Second) // e2 is back; stats sweep too
	f.tr.mu.RLock()
	users, edges := len(f.tr.users), len(f.tr.edges)
	f.tr.mu.RUnlock()
	if edges != 1 || users != 1 {
		t.Fatalf("after Forget: %d edges, %d users in memory; want 1, 1", edges, users)
	}
	f.wantConns("u1", "e2-1")
	f.wantOnline("u2", false)
}

func TestConnIDReused(t *testing.T) {
	f := newFixture(t, Config{})
	f.stats("e1", f.clk.Now(), time.Second)
	f.online("e1", "e1-1", "a")
	f.online("e1", "e1-1", "b") // the same id for another user replaces it
	f.wantOnline("a", false)
	f.wantOnline("b", true)
}

func TestMalformedIgnored(t *testing.T) {
	f := newFixture(t, Config{})
	f.tr.ObservePresence(bus.Presence{Online: true, Edge: "e", Conn: "c"})
	f.tr.ObservePresence(bus.Presence{UID: "1", Online: true, Conn: "c"})
	f.tr.ObservePresence(bus.Presence{UID: "1", Online: true, Edge: "e"})
	f.tr.ObserveStats(bus.EdgeStats{Addr: "x:1"})
	if u, c := f.tr.Count(); u != 0 || c != 0 || len(f.tr.Edges()) != 0 {
		t.Fatalf("malformed events changed the view: %d %d %v", u, c, f.tr.Edges())
	}
}

// TestWatch feeds a tracker over a real bus with the bus helpers the edges use.
func TestWatch(t *testing.T) {
	ns := embeddednats.RunTest(t, embeddednats.Config{})
	nc, err := ns.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	tr, err := Watch(nc, Config{})
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now().UTC()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(bus.PublishEdgeStats(nc, bus.EdgeStats{ID: "e1", Addr: "127.0.0.1:1", Started: started, IntervalMS: 1000}))
	must(bus.PublishPresence(nc, bus.Presence{UID: "42", Online: true, Edge: "e1", Conn: "e1-1", At: time.Now().UTC()}))
	must(nc.Publish(bus.SubjectPresence, []byte("not json")))
	waitFor(t, "42 online", func() bool { return tr.Online("42") })
	must(bus.PublishPresence(nc, bus.Presence{UID: "42", Edge: "e1", Conn: "e1-1", At: time.Now().UTC()}))
	waitFor(t, "42 offline", func() bool { return !tr.Online("42") })
	if tr.Dropped() != 0 {
		t.Fatalf("dropped %d", tr.Dropped())
	}
	must(tr.Close())
	must(tr.Close())
	// A callback already running when Close returns is ignored too.
	tr.ObservePresence(bus.Presence{UID: "43", Online: true, Edge: "e1", Conn: "e1-2", At: time.Now().UTC()})
	if tr.Online("43") {
		t.Fatal("event applied after Close")
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
