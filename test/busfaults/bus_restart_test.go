//go:build linux

package busfaults

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/plexbus/plex/embeddednats"
	"github.com/plexbus/plex/presence"
	"github.com/plexbus/plex/test/busfaults/harness"
	"github.com/plexbus/plex/wire"
)

// TestEmbeddedNATSRestart: the embedded NATS server is shut down and
// started again on the same port. The edge keeps every client socket,
// refuses new logins with "auth unavailable" at once while the bus is
// away, the API's /healthz answers 503, and after the restart the edge
// re-subscribes every online user, re-announces them with resync presence
// events, and pushes reach everyone again.
func TestEmbeddedNATSRestart(t *testing.T) {
	const users = 300
	store := t.TempDir()
	ns, err := embeddednats.Start(embeddednats.Config{JetStream: true, StoreDir: store})
	if err != nil {
		t.Fatal(err)
	}
	port := ns.Port()
	t.Cleanup(func() { ns.Shutdown() })
	url := ns.ClientURL()
	nc := connectBus(t, url)
	plog := harness.RecordPresence(t, nc)
	tracker, err := presence.Watch(nc, presence.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tracker.Close() })

	harness.StartDevAuth(t, url)
	_, apiURL := harness.StartAPI(t, nil, "--nats", url, "--inner-password", "ops-secret")
	metrics := "127.0.0.1:" + strconv.Itoa(harness.FreePort(t))
	edge := harness.StartEdge(t, nil, "--nats", url, "--stats-interval", "200ms", "--metrics-addr", metrics)

	fleet := newFleet(t, harness.FleetConfig{})
	conns := loginAll(t, fleet, edge.Addr, uids("u", users))
	pushEach(t, nc, conns, "before")
	waitPushes(t, conns, 1, "before", 10*time.Second)
	harness.WaitFor(t, 5*time.Second, "tracker sees every user", func() bool { u, _ := tracker.Count(); return u == users })
	subsBefore := edgeSubs(t, ns.NATS())
	if subsBefore < users {
		t.Fatalf("edge holds %d subscriptions for %d users", subsBefore, users)
	}

	// The bus goes away.
	ns.Shutdown()
	body := waitHealth(t, apiURL, http.StatusServiceUnavailable, 5*time.Second)
	mustContain(t, body, "bus not connected", "/healthz while the bus is down")
	took := expectAuthUnavailable(t, edge.Addr)
	t.Logf("login while the bus is down: /auth/failed %q after %s", wire.FailAuthUnavailable, took.Round(time.Microsecond))
	// The edge keeps serving its devices: heartbeats are answered.
	hb := conns[0].Heartbeats.Load()
	if err := conns[0].Send(wire.URIHeartbeat, ""); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, 2*time.Second, "heartbeat answered while the bus is down", func() bool { return conns[0].Heartbeats.Load() > hb })
	time.Sleep(300 * time.Millisecond) // an outage longer than the edge's reconnect wait
	noneClosed(t, conns)

	// It comes back on the same port, with the same JetStream store.
	ns, err = embeddednats.Start(embeddednats.Config{Port: port, JetStream: true, StoreDir: store})
	if err != nil {
		t.Fatal(err)
	}
	up := time.Now()
	resub := harness.WaitFor(t, 15*time.Second, "the edge's subscriptions back", func() bool {
		return edgeSubs(t, ns.NATS()) >= subsBefore
	})
	harness.WaitFor(t, 5*time.Second, "test connection back", nc.IsConnected)
	pushEach(t, nc, conns, "after")
	waitPushes(t, conns, 2, "after", 10*time.Second)
	t.Logf("embedded NATS restart, %d users: subscriptions back %s after the server, a push reached every user %s after",
		users, resub.Round(time.Millisecond), time.Since(up).Round(time.Millisecond))
	noneClosed(t, conns)

	// Resync: every connection re-announced once, and a consumer that saw
	// nothing before can rebuild the whole view from them.
	events, rs := waitResyncs(t, plog, edge.ID, users)
	fresh := presence.New(presence.Config{})
	for _, p := range events {
		if p.Resync {
			fresh.ObservePresence(p)
		}
	}
	for _, c := range conns {
		if rs[c.UID] != 1 {
			t.Fatalf("%s re-announced %d times, want once (%d resync events in all)", c.UID, rs[c.UID], len(rs))
		}
	}
	if u, c := fresh.Count(); u != users || c != users {
		t.Fatalf("view rebuilt from resync events: %d users, %d conns; want %d", u, c, users)
	}
	harness.WaitFor(t, 5*time.Second, "live tracker sees every user after the restart", func() bool { u, _ := tracker.Count(); return u == users })
	if n, err := harness.Metric("http://"+metrics+"/metrics", "plex_edge_bus_resyncs_total"); err != nil || n != 1 {
		t.Fatalf("plex_edge_bus_resyncs_total = %v, %v; want 1", n, err)
	}

	// Everything works again.
	waitHealth(t, apiURL, http.StatusOK, 5*time.Second)
	r := harness.Dial(t, edge.Addr)
	r.Login("newcomer")
}

// edgeSubs is the subscription count of the server's edge connections
// (named "plex-edge <id>").
func edgeSubs(t *testing.T, s *server.Server) int {
	t.Helper()
	cz, err := s.Connz(&server.ConnzOptions{Limit: 4096})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range cz.Conns {
		if strings.HasPrefix(c.Name, "plex-edge") {
			n += int(c.NumSubs)
		}
	}
	return n
}

// bigUsers is the size of the re-subscribe measurement; PLEX_FAULTS_USERS
// overrides it.
func bigUsers(t *testing.T) int {
	n := 15000
	if v := os.Getenv("PLEX_FAULTS_USERS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			t.Fatalf("PLEX_FAULTS_USERS=%q", v)
		}
	}
	return n
}

// TestNATSProcessKilled: a standalone `plex nats` is killed with SIGKILL
// under 15,000 online users and started again on the same port. It
// measures how long the edge takes to re-subscribe them all and until a
// push reaches every one of them, from the moment the server is back.
func TestNATSProcessKilled(t *testing.T) {
	users := bigUsers(t)
	natsPort, monPort := harness.FreePort(t), harness.FreePort(t)
	dataDir := t.TempDir()
	natsArgs := []string{"--nats-port", strconv.Itoa(natsPort), "--nats-monitor-port", strconv.Itoa(monPort),
		"--jetstream", "--data-dir", dataDir}
	natsProc, url := harness.StartNATS(t, nil, natsArgs...)
	mon := fmt.Sprintf("http://127.0.0.1:%d", monPort)
	nc := connectBus(t, url)
	plog := harness.RecordPresence(t, nc)

	harness.StartDevAuth(t, url)
	_, apiURL := harness.StartAPI(t, nil, "--nats", url, "--inner-password", "ops-secret")
	edge := harness.StartEdge(t, nil, "--nats", url)

	fleet := newFleet(t, harness.FleetConfig{})
	conns := loginAll(t, fleet, edge.Addr, uids("u", users))
	pushEach(t, nc, conns, "before")
	took := waitPushes(t, conns, 1, "before", 30*time.Second)
	t.Logf("%d pushes, one per user, delivered in %s", users, took.Round(time.Millisecond))
	_, subsBefore, err := harness.ConnSubs(mon, "plex-edge")
	if err != nil || subsBefore < users {
		t.Fatalf("edge subscriptions before: %d, %v", subsBefore, err)
	}

	killed := natsProc.Kill()
	waitHealth(t, apiURL, http.StatusServiceUnavailable, 5*time.Second)
	expectAuthUnavailable(t, edge.Addr)
	noneClosed(t, conns)

	harness.StartNATS(t, nil, natsArgs...)
	up := time.Now() // the banner is printed once the server accepts clients
	t.Logf("NATS down for %s (restart included)", up.Sub(killed).Round(time.Millisecond))
	var subs, edgeConns int
	reconnected := harness.WaitFor(t, 60*time.Second, "the edge reconnected", func() bool {
		edgeConns, subs, err = harness.ConnSubs(mon, "plex-edge")
		return err == nil && edgeConns > 0
	})
	resub := reconnected + harness.WaitFor(t, 60*time.Second, "the edge's subscriptions back", func() bool {
		_, subs, err = harness.ConnSubs(mon, "plex-edge")
		return err == nil && subs >= subsBefore
	})
	harness.WaitFor(t, 10*time.Second, "test connection back", nc.IsConnected)
	pushEach(t, nc, conns, "after")
	waitPushes(t, conns, 2, "after", 60*time.Second)
	reach := time.Since(up)
	t.Logf("MEASURED: NATS process restart with %d online users: the edge reconnected %s after the server was up "+
		"(its reconnect wait), its %d subscriptions were back %s after, a push reached every user %s after",
		users, reconnected.Round(time.Millisecond), subs, resub.Round(time.Millisecond), reach.Round(time.Millisecond))
	noneClosed(t, conns)

	_, rs := waitResyncs(t, plog, edge.ID, users)
	if len(rs) != users {
		t.Fatalf("%d users re-announced with resync, want %d", len(rs), users)
	}
	waitHealth(t, apiURL, http.StatusOK, 5*time.Second)
	r := harness.Dial(t, edge.Addr)
	r.Login("newcomer")
}
