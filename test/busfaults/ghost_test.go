//go:build linux

package busfaults

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/plexbus/plex/bus"
	"github.com/plexbus/plex/embeddednats"
	"github.com/plexbus/plex/presence"
	"github.com/plexbus/plex/test/busfaults/harness"
)

// TestEdgeSIGKILLNoGhost: an edge killed with SIGKILL says no goodbye: no
// offline presence is published. Nothing keeps its users online for long:
// Plex-Op: presence queries answer offline at once (its NATS
// subscriptions died with its connection), the API stops listing it after
// three stats intervals, and a presence.Tracker marks its users offline
// within the same bound. Another edge's users are not touched.
func TestEdgeSIGKILLNoGhost(t *testing.T) {
	const (
		devices  = 20
		interval = 500 * time.Millisecond
		missed   = 3
	)
	ns := embeddednats.RunTest(t, embeddednats.Config{})
	url := ns.ClientURL()
	nc := connectBus(t, url)
	tracker, err := presence.Watch(nc, presence.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer tracker.Close()
	var offlineEvents atomic.Int64
	psub, err := bus.SubscribePresence(nc, func(p bus.Presence) {
		if !p.Online && p.Edge == "doomed" {
			offlineEvents.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer psub.Unsubscribe()

	harness.StartDevAuth(t, url)
	_, apiURL := harness.StartAPI(t, nil, "--nats", url, "--inner-password", "ops-secret")
	args := []string{"--nats", url, "--stats-interval", interval.String()}
	doomed := harness.StartEdge(t, nil, append(args, "--edge-id", "doomed")...)
	other := harness.StartEdge(t, nil, append(args, "--edge-id", "other")...)
	waitEdges(t, apiURL, "doomed", "other")

	fleet := newFleet(t, harness.FleetConfig{})
	conns := loginAll(t, fleet, doomed.Addr, uids("g", devices))
	survivor := harness.Dial(t, other.Addr)
	survivor.Login("alive")
	harness.WaitFor(t, 5*time.Second, "tracker sees everyone", func() bool { u, _ := tracker.Count(); return u == devices+1 })
	if conns, err := queryPresence(nc, "g0"); err != nil || len(conns) != 1 || conns[0].Edge != "doomed" {
		t.Fatalf("presence of g0 before the kill: %v, %v", conns, err)
	}

	killed := doomed.Kill()

	// Presence queries: the edge's subscriptions went with its connection.
	gone := waitSince(t, killed, 2*time.Second, "presence queries answering offline", func() bool {
		c, err := queryPresence(nc, "g0")
		return err == nil && len(c) == 0
	})
	for _, c := range conns {
		if got, err := queryPresence(nc, c.UID); err != nil || len(got) != 0 {
			t.Fatalf("presence of %s after the kill: %v, %v", c.UID, got, err)
		}
	}
	t.Logf("MEASURED: Plex-Op: presence answered offline %s after SIGKILL", gone.Round(time.Millisecond))

	// The tracker and the API: after three missed intervals, not at once.
	bound := missed*interval + time.Second // the rule, plus delivery and polling slack
	trackerGone := waitSince(t, killed, bound, "tracker marking the killed edge's users offline", func() bool {
		for _, c := range conns {
			if tracker.Online(c.UID) {
				return false
			}
		}
		return true
	})
	apiGone := waitSince(t, killed, bound, "the API dropping the killed edge", func() bool {
		code, body, err := harness.HTTPGet(apiURL+"/plex/v1/edges", "ops-secret")
		return err == nil && code == 200 && !strings.Contains(body, `"id":"doomed"`) && strings.Contains(body, `"id":"other"`)
	})
	t.Logf("MEASURED: stats interval %s: tracker offline after %s, API stopped listing the edge after %s (rule: %d intervals = %s)",
		interval, trackerGone.Round(time.Millisecond), apiGone.Round(time.Millisecond), missed, missed*interval)
	if n := offlineEvents.Load(); n != 0 {
		t.Fatalf("%d offline events from a SIGKILLed edge: the tracker was not tested by the rule", n)
	}
	if !tracker.Online("alive") {
		t.Fatal("the other edge's user went offline")
	}
	if c, err := queryPresence(nc, "alive"); err != nil || len(c) != 1 {
		t.Fatalf("presence of the other edge's user: %v, %v", c, err)
	}
	for _, e := range tracker.Edges() {
		if e.Gone != (e.ID == "doomed") {
			t.Fatalf("tracker edges: %+v", tracker.Edges())
		}
	}
	// The devices saw their sockets close and may reconnect elsewhere.
	harness.WaitFor(t, 5*time.Second, "devices seeing the close", func() bool {
		for _, c := range conns {
			if !c.PeerClosed.Load() {
				return false
			}
		}
		return true
	})
}

// queryPresence asks the edges for uid's connections (Plex-Op: presence).
func queryPresence(nc *nats.Conn, uid string) ([]bus.ConnInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return bus.QueryPresence(ctx, nc, uid, 20*time.Millisecond)
}

// waitSince polls cond until it holds and returns the time since t0;
// it fails the test if that exceeds bound.
func waitSince(t *testing.T, t0 time.Time, bound time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	harness.WaitFor(t, bound-time.Since(t0), what, cond)
	return time.Since(t0)
}
