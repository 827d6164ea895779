package edge

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/plexbus/plex/bus"
	"github.com/plexbus/plex/embeddednats"
	"github.com/plexbus/plex/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestPushReachesUser(t *testing.T) {
	eachReadPath(t, func(t *testing.T) {
		st := newStack(t)
		e := st.edge(Config{})
		a := dial(t, e)
		a.login("42")
		a2 := dial(t, e)
		a2.login("42")
		b := dial(t, e)
		b.login("7")

		m := nats.NewMsg("plex.user.42")
		m.Data = []byte("hello")
		m.Header.Set(bus.HeaderURI, "/notify")
		m.Header.Set(bus.HeaderSeq, "99")
		if err := st.nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
		for _, c := range []*client{a, a2} {
			got := c.expect("/notify")
			if got.Body != "hello" || got.Seq != 99 {
				t.Fatalf("got %+v", got)
			}
		}
		for i := 1; i <= 3; i++ {
			if err := st.nc.Publish("plex.user.42", []byte("n"+strconv.Itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
		for i := 1; i <= 3; i++ {
			got := a.expect(wire.URIPush)
			if got.Body != "n"+strconv.Itoa(i) || got.Seq != int64(i) {
				t.Fatalf("push %d: default uri/seq/order: %+v", i, got)
			}
		}
		b.expectSilence(100 * time.Millisecond)
	})
}

func TestAuthSuccessBody(t *testing.T) {
	st := newStack(t)
	e := st.edge(Config{Heartbeat: 45 * time.Second})
	c := dial(t, e)
	c.send(wire.URIAuth, "uid:u@x")
	m := c.expect(wire.URIAuthSuccess)
	var body struct {
		UID       string `json:"uid"`
		Heartbeat int    `json:"heartbeat"`
	}
	if err := json.Unmarshal([]byte(m.Body), &body); err != nil || body.UID != "u@x" || body.Heartbeat != 45 {
		t.Fatalf("success body %q: %+v %v", m.Body, body, err)
	}
}

// TestPushAcrossNodes: the user sits on edge B, attached to NATS node 2;
// the publisher is attached to node 1, where edge A also lives.
func TestPushAcrossNodes(t *testing.T) {
	n1 := embeddednats.RunTest(t, embeddednats.Config{ClusterName: "c", ServerName: "n1"})
	n2 := embeddednats.RunTest(t, embeddednats.Config{ClusterName: "c", ServerName: "n2", Routes: []string{n1.ClusterURL()}})
	waitFor(t, 5*time.Second, "route", func() bool { return n1.NumRoutes() > 0 && n2.NumRoutes() > 0 })
	st1 := &stack{t: t, ns: n1, nc: st0connect(t, n1)}
	st1.startAuth()
	st2 := &stack{t: t, ns: n2, nc: st0connect(t, n2)}
	ea := st1.edge(Config{ID: "edge-a"})
	eb := st2.edge(Config{ID: "edge-b"})
	onA := dial(t, ea)
	onA.login("1")
	onB := dial(t, eb) // auth request crosses the route to the responder on n1
	onB.login("2")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var n int
	var err error
	waitFor(t, 5*time.Second, "interest across the route", func() bool {
		n, err = bus.PublishWait(ctx, st1.nc, bus.Push{UID: "2", Body: []byte("cross")}, 50*time.Millisecond)
		return err == nil && n == 1
	})
	if got := onB.expect(wire.URIPush); got.Body != "cross" {
		t.Fatalf("got %+v", got)
	}
	// nats req-style: the reply names how many sockets it reached.
	reply, err := st1.nc.Request("plex.user.2", []byte("req"), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var d bus.Delivered
	if err := json.Unmarshal(reply.Data, &d); err != nil || d.Delivered != 1 || d.Edge != "edge-b" {
		t.Fatalf("reply %q: %+v %v", reply.Data, d, err)
	}
	onB.expect(wire.URIPush)
	// An offline uid: no responders.
	if _, err := st1.nc.Request("plex.user.nobody", []byte("x"), 2*time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("offline: %v", err)
	}
	onA.expectSilence(50 * time.Millisecond)
}

func TestAuthFailures(t *testing.T) {
	eachReadPath(t, func(t *testing.T) {
		st := newStack(t)
		e := st.edge(Config{AuthTimeout: 300 * time.Millisecond, AuthRequestTimeout: 200 * time.Millisecond})

		t.Run("refused", func(t *testing.T) {
			c := dial(t, e)
			c.send(wire.URIAuth, "wrong")
			if m := c.expect(wire.URIAuthFailed); m.Body != "bad token" {
				t.Fatalf("reason %q", m.Body)
			}
			c.expectClosed(2 * time.Second)
		})
		t.Run("garbage reply", func(t *testing.T) {
			c := dial(t, e)
			c.send(wire.URIAuth, "garbage")
			if m := c.expect(wire.URIAuthFailed); m.Body != "auth unavailable" {
				t.Fatalf("reason %q", m.Body)
			}
			c.expectClosed(2 * time.Second)
		})
		t.Run("slow auth service", func(t *testing.T) {
			c := dial(t, e)
			start := time.Now()
			c.send(wire.URIAuth, "slow:1s")
			if m := c.expect(wire.URIAuthFailed); m.Body != "auth timed out" {
				t.Fatalf("reason %q", m.Body)
			}
			if d := time.Since(start); d > 900*time.Millisecond {
				t.Fatalf("failure took %s, beyond the auth timeout", d)
			}
			c.expectClosed(2 * time.Second)
		})
		t.Run("auth timeout", func(t *testing.T) {
			c := dial(t, e)
			if m := c.expect(wire.URIAuthFailed); m.Body != "auth timeout" {
				t.Fatalf("reason %q", m.Body)
			}
			c.expectClosed(2 * time.Second)
		})
		t.Run("data before auth", func(t *testing.T) {
			c := dial(t, e)
			c.send("/app/data", "x")
			if m := c.expect(wire.URIAuthFailed); m.Body != "not authenticated" {
				t.Fatalf("reason %q", m.Body)
			}
			c.expectClosed(2 * time.Second)
		})
		t.Run("heartbeat before auth", func(t *testing.T) {
			c := dial(t, e)
			c.send(wire.URIHeartbeat, "")
			c.expect(wire.URIAuthFailed)
			c.expectClosed(2 * time.Second)
		})
	})
}

func TestAuthServiceAbsent(t *testing.T) {
	st := newStack(t)
	if err := st.auth.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	e := st.edge(Config{})
	c := dial(t, e)
	start := time.Now()
	c.send(wire.URIAuth, "uid:1")
	if m := c.expect(wire.URIAuthFailed); m.Body != "auth unavailable" {
		t.Fatalf("reason %q", m.Body)
	}
	if time.Since(start) > time.Second {
		t.Fatalf("no-responders took %s", time.Since(start))
	}
	c.expectClosed(2 * time.Second)
}

func TestHeartbeat(t *testing.T) {
	eachReadPath(t, func(t *testing.T) {
		st := newStack(t)
		e := st.edge(Config{Heartbeat: 100 * time.Millisecond, HeartbeatTimeout: 300 * time.Millisecond})
		alive := dial(t, e)
		alive.login("a")
		silent := dial(t, e)
		silent.login("s")
		start := time.Now()
		for time.Since(start) < 900*time.Millisecond {
			alive.send(wire.URIHeartbeat, "")
			alive.expect(wire.URIHeartbeat)
			time.Sleep(100 * time.Millisecond)
		}
		silent.expectClosed(time.Second)
		// The live one still gets pushes.
		if err := st.nc.Publish("plex.user.a", []byte("still here")); err != nil {
			t.Fatal(err)
		}
		if m := alive.expect(wire.URIPush); m.Body != "still here" {
			t.Fatalf("got %+v", m)
		}
	})
}

func TestPresenceEvents(t *testing.T) {
	st := newStack(t)
	events := make(chan bus.Presence, 100)
	sub, err := bus.SubscribePresence(st.nc, func(p bus.Presence) { events <- p })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := st.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	e := st.edge(Config{ID: "pe"})
	refused := dial(t, e) // a refused login produces no presence
	refused.send(wire.URIAuth, "nope")
	refused.expect(wire.URIAuthFailed)
	c1 := dial(t, e)
	c1.login("p")
	c2 := dial(t, e)
	c2.login("p")
	c1.c.Close()
	c2.c.Close()

	got := map[string][]bool{}
	timeout := time.After(5 * time.Second)
	for n := 0; n < 4; n++ {
		select {
		case p := <-events:
			if p.UID != "p" || p.Edge != "pe" || p.Conn == "" || p.At.IsZero() {
				t.Fatalf("event %+v", p)
			}
			got[p.Conn] = append(got[p.Conn], p.Online)
		case <-timeout:
			t.Fatalf("events so far %v", got)
		}
	}
	if len(got) != 2 {
		t.Fatalf("events for %d conns: %v", len(got), got)
	}
	for conn, seq := range got {
		if len(seq) != 2 || !seq[0] || seq[1] {
			t.Fatalf("conn %s: events %v, want [online offline]", conn, seq)
		}
	}
	select {
	case p := <-events:
		t.Fatalf("extra event %+v", p)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestDuplicatePolicies(t *testing.T) {
	t.Run("multi", func(t *testing.T) {
		st := newStack(t)
		e := st.edge(Config{})
		a, b := dial(t, e), dial(t, e)
		a.login("d")
		b.login("d")
		_ = st.nc.Publish("plex.user.d", []byte("both"))
		a.expect(wire.URIPush)
		b.expect(wire.URIPush)
	})
	t.Run("kick-old across edges", func(t *testing.T) {
		st := newStack(t)
		e1 := st.edge(Config{DuplicateLogin: DuplicateKickOld})
		e2 := st.edge(Config{DuplicateLogin: DuplicateKickOld})
		old := dial(t, e1)
		old.login("d")
		same := dial(t, e1)
		same.login("d") // kicks old on the same edge
		if m := old.expect(wire.URIAuthFailed); m.Body != "kicked: logged in elsewhere" {
			t.Fatalf("kick reason %q", m.Body)
		}
		old.expectClosed(2 * time.Second)
		newer := dial(t, e2)
		newer.login("d") // kicks same on the other edge
		same.expect(wire.URIAuthFailed)
		same.expectClosed(2 * time.Second)
		_ = st.nc.Publish("plex.user.d", []byte("only newest"))
		if m := newer.expect(wire.URIPush); m.Body != "only newest" {
			t.Fatalf("got %+v", m)
		}
		waitFor(t, 2*time.Second, "edge 1 unsubscribed", func() bool { return e1.NumUsers() == 0 })
	})
	t.Run("reject-new across edges", func(t *testing.T) {
		st := newStack(t)
		e1 := st.edge(Config{DuplicateLogin: DuplicateRejectNew})
		e2 := st.edge(Config{DuplicateLogin: DuplicateRejectNew})
		first := dial(t, e1)
		first.login("d")
		for _, e := range []*Server{e1, e2} {
			c := dial(t, e)
			c.send(wire.URIAuth, "uid:d")
			if m := c.expect(wire.URIAuthFailed); m.Body != "already logged in" {
				t.Fatalf("reason %q", m.Body)
			}
		}
		_ = st.nc.Publish("plex.user.d", []byte("first keeps it"))
		first.expect(wire.URIPush)
	})
}

func TestMaxConnections(t *testing.T) {
	eachReadPath(t, func(t *testing.T) {
		st := newStack(t)
		e := st.edge(Config{MaxConnections: 2})
		a, b := dial(t, e), dial(t, e)
		a.login("1")
		b.login("2")
		c := dial(t, e)
		if m := c.expect(wire.URIAuthFailed); m.Body != "server full" {
			t.Fatalf("reason %q", m.Body)
		}
		c.expectClosed(2 * time.Second)
		a.c.Close()
		waitFor(t, 2*time.Second, "slot freed", func() bool { return e.NumConns() == 1 })
		d := dial(t, e)
		d.login("3")
	})
}

func TestKick(t *testing.T) {
	st := newStack(t)
	e := st.edge(Config{})
	a, b, other := dial(t, e), dial(t, e), dial(t, e)
	a.login("k")
	b.login("k")
	other.login("o")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n, err := bus.KickWait(ctx, st.nc, "k", "", 50*time.Millisecond)
	if err != nil || n != 2 {
		t.Fatalf("kicked %d, %v", n, err)
	}
	a.expect(wire.URIAuthFailed)
	b.expect(wire.URIAuthFailed)
	a.expectClosed(2 * time.Second)
	b.expectClosed(2 * time.Second)
	_ = st.nc.Publish("plex.user.o", []byte("unaffected"))
	other.expect(wire.URIPush)
}

func TestPresenceQuery(t *testing.T) {
	st := newStack(t)
	e := st.edge(Config{ID: "q"})
	a, b := dial(t, e), dial(t, e)
	a.login("q1")
	b.login("q1")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conns, err := bus.QueryPresence(ctx, st.nc, "q1", 50*time.Millisecond)
	if err != nil || len(conns) != 2 || conns[0].Edge != "q" || conns[0].Remote == "" {
		t.Fatalf("conns %+v, %v", conns, err)
	}
	conns, err = bus.QueryPresence(ctx, st.nc, "nobody", 0)
	if err != nil || len(conns) != 0 {
		t.Fatalf("offline: %+v, %v", conns, err)
	}
	// A presence query is not delivered as a push.
	a.expectSilence(50 * time.Millisecond)
}

func TestLittleEndian(t *testing.T) {
	st := newStack(t)
	e := st.edge(Config{ByteOrder: wire.LittleEndian})
	c := dialAddr(t, e.Addr().String(), wire.LittleEndian)
	c.login("le")
	_ = st.nc.Publish("plex.user.le", []byte("little"))
	if m := c.expect(wire.URIPush); m.Body != "little" {
		t.Fatalf("got %+v", m)
	}
}

func TestStatsPublished(t *testing.T) {
	st := newStack(t)
	got := make(chan bus.EdgeStats, 10)
	sub, err := bus.SubscribeEdgeStats(st.nc, func(s bus.EdgeStats) { got <- s })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	_ = st.nc.Flush()
	e := st.edge(Config{ID: "s1", StatsInterval: 50 * time.Millisecond, MaxConnections: 10, Advertise: "10.0.0.1:9578"})
	c := dial(t, e)
	c.login("x")
	deadline := time.After(3 * time.Second)
	for {
		select {
		case s := <-got:
			if s.ID != "s1" || s.Addr != "10.0.0.1:9578" || s.MaxConns != 10 || s.IntervalMS != 50 {
				t.Fatalf("stats %+v", s)
			}
			if s.Conns == 1 {
				return
			}
		case <-deadline:
			t.Fatal("no stats with the connection counted")
		}
	}
}

func TestGracefulShutdown(t *testing.T) {
	eachReadPath(t, func(t *testing.T) {
		st := newStack(t)
		events := make(chan bus.Presence, 10)
		sub, _ := bus.SubscribePresence(st.nc, func(p bus.Presence) {
			if !p.Online {
				events <- p
			}
		})
		defer sub.Unsubscribe()
		_ = st.nc.Flush()
		nc := st0connect(t, st.ns)
		e, err := New(Config{Addr: "127.0.0.1:0", GoroutinePerConn: goroutinePerConn}, nc)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.Run(ctx) }()
		a, b := dial(t, e), dial(t, e)
		a.login("g1")
		b.login("g2")
		cancel()
		a.expect(wire.URIReconnect)
		b.expect(wire.URIReconnect)
		a.expectClosed(2 * time.Second)
		b.c.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return")
		}
		for i := 0; i < 2; i++ {
			select {
			case p := <-events:
				if p.Reason != string(ReasonShutdown) {
					t.Fatalf("offline reason %q", p.Reason)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("missing offline presence")
			}
		}
		if _, err := dialRaw(e.Addr().String()); err == nil {
			t.Fatal("still accepting after shutdown")
		}
	})
}

func TestConfigValidation(t *testing.T) {
	st := newStack(t)
	for name, cfg := range map[string]Config{
		"timeout below heartbeat": {Heartbeat: time.Minute, HeartbeatTimeout: time.Second},
		"tiny frames":             {MaxFrameSize: 10},
		"queue below a frame":     {SendQueueBytes: 100},
		"bad policy":              {DuplicateLogin: "sometimes"},
		"negative":                {MaxConnections: -1},
	} {
		cfg.Addr = "127.0.0.1:0"
		if s, err := New(cfg, st.nc); err == nil {
			s.Close()
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := New(Config{}, nil); err == nil {
		t.Error("nil bus accepted")
	}
}
