package edge

import (
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/plexbus/plex/wire"
)

func TestFrameFloodClosed(t *testing.T) {
	eachReadPath(t, func(t *testing.T) {
		st := newStack(t)
		e := st.edge(Config{ClientFrameRate: 5, ClientFrameBurst: 10, Registerer: prometheus.NewRegistry()})
		flood := dial(t, e)
		flood.login("flood")
		calm := dial(t, e)
		calm.login("calm")
		var burst []byte
		for i := 0; i < 40; i++ {
			burst = wire.AppendFrame(burst, wire.BigEndian, &wire.Message{URI: "/app/data", Body: "x"})
		}
		if _, err := flood.c.Write(burst); err != nil {
			t.Fatal(err)
		}
		flood.expectClosed(2 * time.Second)
		if n := testutil.ToFloat64(e.metrics.limited.WithLabelValues("frame_rate")); n != 1 {
			t.Fatalf("frame_rate limited %v", n)
		}
		// A client within the limit is untouched.
		for i := 0; i < 5; i++ {
			calm.send(wire.URIHeartbeat, "")
			calm.expect(wire.URIHeartbeat)
		}
	})
}

func TestFailedAuthLimitPerIP(t *testing.T) {
	st := newStack(t)
	e := st.edge(Config{FailedAuthRate: 0.5, FailedAuthBurst: 3, Registerer: prometheus.NewRegistry()})
	for i := 0; i < 3; i++ {
		c := dial(t, e)
		c.send(wire.URIAuth, "bad token")
		c.expect(wire.URIAuthFailed)
		c.expectClosed(2 * time.Second)
	}
	// The address has spent its failures: turned away at accept, and the
	// auth service is not asked.
	c := dial(t, e)
	if m := c.expect(wire.URIAuthFailed); m.Body != wire.FailTooManyFailures {
		t.Fatalf("reason %q", m.Body)
	}
	c.expectClosed(2 * time.Second)
	if n := testutil.ToFloat64(e.metrics.limited.WithLabelValues("failed_auth_ip")); n != 1 {
		t.Fatalf("failed_auth_ip limited %v", n)
	}
	if !wire.TemporaryFailure(wire.FailTooManyFailures) {
		t.Fatal("clients should retry this one later")
	}
	// After a refill a good login gets in.
	time.Sleep(2100 * time.Millisecond)
	ok := dial(t, e)
	ok.login("fine")
}

func TestIPLimiterBounded(t *testing.T) {
	l := newIPLimiter(1, 2)
	l.max = 10
	now := time.Now()
	for i := 0; i < 100; i++ {
		l.take(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), now)
	}
	if len(l.m) > 10 {
		t.Fatalf("tracked %d addresses, max 10", len(l.m))
	}
	ip := netip.AddrFrom4([4]byte{10, 0, 0, 1})
	if !l.take(ip, now) || l.take(ip, now) {
		t.Fatal("burst 2 with one token spent: one more take, then none")
	}
	l.refund(ip, now) // that login succeeded
	if !l.take(ip, now) {
		t.Fatal("a refunded token should be taken again")
	}
	if l.take(ip, now.Add(500*time.Millisecond)) {
		t.Fatal("half a token is not a token")
	}
	if !l.take(ip, now.Add(1100*time.Millisecond)) {
		t.Fatal("a refilled token should be taken")
	}
	l.sweep(now.Add(time.Hour))
	if len(l.m) != 0 {
		t.Fatalf("sweep left %d", len(l.m))
	}
	var nilL *ipLimiter
	if !nilL.take(ip, now) {
		t.Fatal("a disabled limiter refuses")
	}
	nilL.refund(ip, now)
}

// TestFailedAuthLimitConcurrent: many bad logins in flight at once from one
// address cannot all pass on the last remaining tokens.
func TestFailedAuthLimitConcurrent(t *testing.T) {
	st := newStack(t)
	e := st.edge(Config{FailedAuthRate: 0.01, FailedAuthBurst: 5, Registerer: prometheus.NewRegistry()})
	var cs []*client
	for i := 0; i < 20; i++ {
		cs = append(cs, dial(t, e))
	}
	refusedAtAccept := 0
	for _, c := range cs {
		c.send(wire.URIAuth, "bad token")
	}
	for _, c := range cs {
		if m := c.expect(wire.URIAuthFailed); m.Body == wire.FailTooManyFailures {
			refusedAtAccept++
		}
	}
	if refusedAtAccept != 15 {
		t.Fatalf("%d of 20 turned away at accept, want 15 (burst 5)", refusedAtAccept)
	}
}
