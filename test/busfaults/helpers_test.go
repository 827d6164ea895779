//go:build linux

package busfaults

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/plexbus/plex/bus"
	"github.com/plexbus/plex/test/busfaults/harness"
	"github.com/plexbus/plex/wire"
)

// connectBus opens the test's own bus connection: it reconnects forever,
// quickly, and is closed at cleanup.
func connectBus(t *testing.T, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	base := []nats.Option{nats.Name("test"), nats.MaxReconnects(-1), nats.ReconnectWait(20 * time.Millisecond),
		nats.ReconnectBufSize(64 << 20)}
	nc, err := nats.Connect(url, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// newFleet starts a device fleet closed at cleanup.
func newFleet(t *testing.T, cfg harness.FleetConfig) *harness.Fleet {
	t.Helper()
	f, err := harness.NewFleet(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

func uids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

func same(s string) string { return s }

// sources is how many loopback addresses a test's devices come from.
const sources = 250

// loginAll logs one device per uid in on addr with the dev verifier.
func loginAll(t *testing.T, f *harness.Fleet, addr string, users []string) []*harness.Conn {
	t.Helper()
	start := time.Now()
	conns, err := f.LoginAll(addr, users, same, 1000, sources, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d devices logged in in %s", len(conns), time.Since(start).Round(time.Millisecond))
	return conns
}

// pushEach publishes one push per connection's uid, body tagged.
func pushEach(t *testing.T, nc *nats.Conn, conns []*harness.Conn, tag string) {
	t.Helper()
	for _, c := range conns {
		if err := bus.Publish(nc, bus.Push{UID: c.UID, Body: []byte(tag + ":" + c.UID)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// waitPushes waits until every connection has received at least n pushes
// and the last one is tagged tag; it returns how long that took.
func waitPushes(t *testing.T, conns []*harness.Conn, n int64, tag string, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	next := 0
	for next < len(conns) {
		c := conns[next]
		if c.Pushes.Load() >= n {
			if b := c.LastBody.Load(); b == nil || *b != tag+":"+c.UID {
				t.Fatalf("%s: last push %q, want %q", c.UID, deref(b), tag+":"+c.UID)
			}
			next++
			continue
		}
		if c.PeerClosed.Load() {
			t.Fatalf("%s: connection closed by the edge: %v (reason %q)", c.UID, *c.CloseErr.Load(), c.FailReason())
		}
		if time.Since(start) > d {
			t.Fatalf("after %s only %d of %d devices had push %q (%s has %d pushes)", d, next, len(conns), tag, c.UID, c.Pushes.Load())
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Since(start)
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// noneClosed fails if the edge closed any of the connections.
func noneClosed(t *testing.T, conns []*harness.Conn) {
	t.Helper()
	for _, c := range conns {
		if c.PeerClosed.Load() || c.IsClosed() {
			t.Fatalf("%s: socket lost: %v (reason %q)", c.UID, deref(c.CloseErr.Load()), c.FailReason())
		}
	}
}

// expectAuthUnavailable dials a new device while the bus is down: it must
// get /auth/failed "auth unavailable" at once, then the close.
func expectAuthUnavailable(t *testing.T, edgeAddr string) time.Duration {
	t.Helper()
	r := harness.Dial(t, edgeAddr)
	start := time.Now()
	r.Send(wire.URIAuth, "newcomer")
	m := r.Expect(wire.URIAuthFailed, 2*time.Second)
	took := time.Since(start)
	if m.Body != wire.FailAuthUnavailable {
		t.Fatalf("login while the bus is down: /auth/failed %q, want %q", m.Body, wire.FailAuthUnavailable)
	}
	r.ExpectClosed(3 * time.Second)
	return took
}

// healthz returns the API's /healthz status code and body.
func healthz(t *testing.T, apiURL string) (int, string) {
	t.Helper()
	code, body, err := harness.HTTPGet(apiURL+"/healthz", "")
	if err != nil {
		t.Fatal(err)
	}
	return code, body
}

// waitHealth polls /healthz until it answers want.
func waitHealth(t *testing.T, apiURL string, want int, d time.Duration) string {
	t.Helper()
	var body string
	harness.WaitFor(t, d, fmt.Sprintf("/healthz %d", want), func() bool {
		var code int
		code, body = healthz(t, apiURL)
		return code == want
	})
	return body
}

// waitResyncs waits until the presence log holds a resync event for each
// of users from edge (the server may still be storing a burst), and
// returns the log's events and the resync count per uid.
func waitResyncs(t *testing.T, plog *harness.PresenceLog, edge string, users int) ([]bus.Presence, map[string]int) {
	t.Helper()
	var events []bus.Presence
	var rs map[string]int
	deadline := time.Now().Add(30 * time.Second)
	for {
		events = plog.Events(t)
		rs = resyncs(events, edge)
		if len(rs) >= users || time.Now().After(deadline) {
			return events, rs
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// resyncs picks the resync events of edge from a presence log: uid → count.
func resyncs(events []bus.Presence, edge string) map[string]int {
	out := map[string]int{}
	for _, p := range events {
		if p.Resync && p.Online && p.Edge == edge {
			out[p.UID]++
		}
	}
	return out
}

func mustContain(t *testing.T, s, sub, what string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Fatalf("%s: %q does not contain %q", what, s, sub)
	}
}
