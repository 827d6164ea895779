package cluster

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/plexbus/plex/bus"
	"github.com/plexbus/plex/edge"
	"github.com/plexbus/plex/embeddednats"
	"github.com/plexbus/plex/wire"
)

// statsInterval of the edges under test: an edge is gone from the API's
// table three intervals after its last stats.
const statsInterval = 100 * time.Millisecond

// world is the topology of the design's "Scale-out" section in one process:
// three NATS nodes with routes, edge i attached to node i (and failing over
// to the next ones), the auth service on node 2, the HTTP API on node 3,
// and a publisher and a presence subscriber of the test's on every node.
type world struct {
	nodes []*embeddednats.Server
	edges []*edgeNode
	api   *api
	pubs  []*nats.Conn   // the test's connection to each node (only that node)
	logs  []*presenceLog // presence seen by a subscriber on each node
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{nodes: startNodes(t, 3)}
	startAuth(t, busConn(t, "plex-auth", clientURLs(w.nodes, 1)...))
	w.api = startAPI(t, busConn(t, "plex-api", clientURLs(w.nodes, 2)...))
	for i, n := range w.nodes {
		nc := busConn(t, fmt.Sprintf("test n%d", i+1), n.ClientURL())
		w.pubs = append(w.pubs, nc)
		w.logs = append(w.logs, subscribePresence(t, nc))
	}
	for i := range w.nodes {
		w.edges = append(w.edges, startEdge(t, fmt.Sprintf("edge-%d", i+1), clientURLs(w.nodes, i), edge.Config{
			StatsInterval:  statsInterval,
			DuplicateLogin: edge.DuplicateKickOld,
			DrainTimeout:   5 * time.Second,
		}))
	}
	waitFor(t, 5*time.Second, "three edges in the API's table", func() bool { return len(liveEdges(t, w.api.url)) == 3 })
	waitPresenceMesh(t, w.pubs, w.logs)
	return w
}

// edgeByAddr returns the edge devices reach at addr.
func (w *world) edgeByAddr(addr string) *edgeNode {
	for _, e := range w.edges {
		if e.addr == addr {
			return e
		}
	}
	return nil
}

// TestCluster covers every promise of the Scale-out section on one
// topology, in order: the steps at the end take a node and then two edges
// away.
func TestCluster(t *testing.T) {
	w := newWorld(t)

	t.Run("push from any node reaches a user on any edge", func(t *testing.T) {
		devs := make([]*device, len(w.edges))
		for j, e := range w.edges {
			devs[j] = login(t, e.addr, fmt.Sprintf("push-%d", j+1))
		}
		for i, pub := range w.pubs {
			for j, d := range devs {
				body := fmt.Sprintf("n%d to %s", i+1, w.edges[j].id)
				pushUntilDelivered(t, pub, d.uid, body, 5*time.Second)
				d.expectPush(body)
			}
		}
		// Through the API (on node 3), one request for users on all three edges.
		if n := pushHTTP(t, w.api.url, []string{"push-1", "push-2", "push-3"}, "over http"); n != 3 {
			t.Fatalf("HTTP push reached %d connections, want 3", n)
		}
		for _, d := range devs {
			d.expectPush("over http")
		}
	})

	t.Run("presence from every edge is seen on every node", func(t *testing.T) {
		devs := make([]*device, len(w.edges))
		for j, e := range w.edges {
			devs[j] = login(t, e.addr, fmt.Sprintf("pres-%d", j+1))
		}
		for i, l := range w.logs {
			for j, e := range w.edges {
				uid := devs[j].uid
				waitFor(t, 5*time.Second, fmt.Sprintf("online %s from %s seen on n%d", uid, e.id, i+1), func() bool {
					return l.has(func(p bus.Presence) bool { return p.UID == uid && p.Online && p.Edge == e.id && !p.Resync })
				})
			}
		}
		for _, d := range devs {
			d.c.Close()
		}
		for i, l := range w.logs {
			for j, e := range w.edges {
				uid := devs[j].uid
				waitFor(t, 5*time.Second, fmt.Sprintf("offline %s from %s seen on n%d", uid, e.id, i+1), func() bool {
					return l.has(func(p bus.Presence) bool { return p.UID == uid && !p.Online && p.Edge == e.id })
				})
			}
		}
	})

	t.Run("online and Plex-Op presence find a user on any edge", func(t *testing.T) {
		for j, e := range w.edges {
			uid := fmt.Sprintf("online-%d", j+1)
			login(t, e.addr, uid)
			for i, pub := range w.pubs {
				presenceOf(t, pub, uid, fmt.Sprintf("%s on %s, asked from n%d", uid, e.id, i+1), onEdge(e.id))
			}
			var a onlineAnswer
			if st := httpJSON(t, http.MethodGet, w.api.url+"/plex/v1/online/"+uid, "", &a); st != http.StatusOK || !a.Online || len(a.Conns) != 1 || a.Conns[0].Edge != e.id {
				t.Fatalf("online %s: %d %+v, want one connection on %s", uid, st, a, e.id)
			}
		}
		var a onlineAnswer
		if st := httpJSON(t, http.MethodGet, w.api.url+"/plex/v1/online/nobody", "", &a); st != http.StatusOK || a.Online {
			t.Fatalf("online nobody: %d %+v", st, a)
		}
	})

	t.Run("kick-old kicks an older login held by another edge", func(t *testing.T) {
		first, second := w.edges[0], w.edges[2]
		old := login(t, first.addr, "kick")
		// The new login's edge (on node 3) publishes the kick: wait until
		// node 3 knows the old login's edge holds the user.
		presenceOf(t, w.pubs[2], "kick", "the first login seen from n3", onEdge(first.id))
		cur := login(t, second.addr, "kick")
		old.expectFailed(wire.FailKicked)
		cur.expectOpen(100 * time.Millisecond)
		for i, pub := range w.pubs {
			presenceOf(t, pub, "kick", fmt.Sprintf("only the new login, asked from n%d", i+1), onEdge(second.id))
		}
	})

	// The steps below share one fleet of devices and take parts of the
	// cluster away, so they run in order in this test, not as subtests.
	load, fleet := placeByLoad(t, w)
	loseNode(t, w, load, fleet)
	crashEdge(t, w, fleet)
	stopEdge(t, w, load, fleet)
}

// placeByLoad checks that /plex/v1/host hands out the least-loaded edge:
// edge-1 starts three connections ahead, then 12 devices find their edge
// one after the other. It returns the devices, which live until the end of
// the test.
func placeByLoad(t *testing.T, w *world) (load []*device, fleet []*sdkDevice) {
	t.Log("step: /plex/v1/host balances across the three edges by load")
	waitFor(t, 5*time.Second, "every edge reporting 0 connections", func() bool {
		m := liveEdges(t, w.api.url)
		return len(m) == 3 && m["edge-1"] == 0 && m["edge-2"] == 0 && m["edge-3"] == 0
	})
	for k := range 3 {
		load = append(load, login(t, w.edges[0].addr, fmt.Sprintf("load-%d", k+1)))
	}
	waitFor(t, 5*time.Second, "edge-1 reporting 3 connections", func() bool { return liveEdges(t, w.api.url)["edge-1"] == 3 })
	// Least-loaded first gives 2 / 5 / 5 devices (edge-1 / edge-2 /
	// edge-3): 5 connections on each edge.
	perEdge := map[string]int{}
	for k := range 12 {
		d := startSDK(t, w.api.url+"/plex/v1/host", fmt.Sprintf("fleet-%02d", k+1))
		addr := d.waitLogin(t)
		perEdge[w.edgeByAddr(addr).id]++
		fleet = append(fleet, d)
	}
	t.Logf("devices placed by /plex/v1/host: %v (edge-1 had 3 connections already)", perEdge)
	if n := perEdge["edge-1"]; n < 1 || n > 3 {
		t.Errorf("edge-1 got %d devices, want 1..3 (it started 3 ahead)", n)
	}
	for _, id := range []string{"edge-2", "edge-3"} {
		if n := perEdge[id]; n < 4 || n > 6 {
			t.Errorf("%s got %d devices, want 4..6", id, n)
		}
	}
	if n := pushHTTP(t, w.api.url, uids(fleet), "fleet hello"); n != len(fleet) {
		t.Fatalf("push to the fleet reached %d, want %d", n, len(fleet))
	}
	for _, d := range fleet {
		d.expectPush(t, "fleet hello")
	}
	return load, fleet
}

// on returns the devices of the fleet logged in at edge e.
func on(fleet []*sdkDevice, e *edgeNode) []*sdkDevice {
	var out []*sdkDevice
	for _, d := range fleet {
		if addr, _, _ := d.state(); addr == e.addr {
			out = append(out, d)
		}
	}
	return out
}

// loseNode shuts NATS node 1 down: edge-1, attached to it, fails over and
// re-subscribes; its devices keep their sockets and get pushes from the
// other nodes again.
func loseNode(t *testing.T, w *world, load []*device, fleet []*sdkDevice) {
	t.Log("step: losing NATS node 1, where edge-1 is attached")
	victim := w.edges[0]
	onVictim := on(fleet, victim)
	if len(onVictim) == 0 {
		t.Fatal("no sdk device on edge-1")
	}
	lost := time.Now()
	w.nodes[0].Shutdown()
	// Node 3's publisher: the push crosses a route to wherever edge-1 went.
	recovered := probeUntilReceived(t, w.pubs[2], onVictim[0], lost, 10*time.Second)
	t.Logf("NATS node 1 lost: a push from node 3 reached a device on edge-1 %s after", recovered.Round(time.Millisecond))
	if recovered > 5*time.Second {
		t.Errorf("recovery took %s, want under 5s", recovered)
	}
	if got := victim.nc.ConnectedUrl(); got == w.nodes[0].ClientURL() || got == "" {
		t.Fatalf("edge-1 on %q after losing node 1", got)
	}
	// The raw devices kept their sockets: the pushes arrive on them.
	for i, d := range load {
		body := fmt.Sprintf("from n2 after node loss %d", i)
		pushUntilDelivered(t, w.pubs[1], d.uid, body, 5*time.Second)
		d.expectPush(body)
	}
	for _, d := range onVictim {
		pushUntilDelivered(t, w.pubs[1], d.uid, "sdk after node loss", 5*time.Second)
		d.expectPush(t, "sdk after node loss")
		if _, logins, disc := d.state(); logins != 1 || disc != 0 {
			t.Errorf("sdk device %s: %d logins, %d disconnects; want its first connection kept", d.uid, logins, disc)
		}
	}
	// Edge-1 re-announced its connections, seen on node 3, and its stats
	// reach the API again.
	waitFor(t, 5*time.Second, "edge-1's presence resync seen on n3", func() bool {
		return w.logs[2].has(func(p bus.Presence) bool { return p.UID == "load-1" && p.Resync && p.Edge == victim.id })
	})
	waitFor(t, 5*time.Second, "fresh stats of edge-1 after the node loss", func() bool {
		var a edgesAnswer
		httpJSON(t, http.MethodGet, w.api.url+"/plex/v1/edges", "", &a)
		for _, e := range a.Edges {
			if e.ID == victim.id && e.LastSeen.After(lost) {
				return true
			}
		}
		return false
	})
	// Logins on edge-1 still reach the auth service (node 2).
	d := login(t, victim.addr, "after-failover")
	d.c.Close()
}

// crashEdge kills edge-2 without a goodbye: /plex/v1/host stops handing it
// out within three stats intervals and its devices reconnect elsewhere.
func crashEdge(t *testing.T, w *world, fleet []*sdkDevice) {
	t.Log("step: edge-2 crashes")
	victim := w.edges[1]
	onVictim := on(fleet, victim)
	if len(onVictim) == 0 {
		t.Fatal("no device on edge-2")
	}
	lost := time.Now()
	victim.kill()
	watch := watchEdge(t, w.api.url, victim.id, victim.addr, 3*time.Second)
	back := waitMoved(t, onVictim, lost, func(addr string) bool { return addr != victim.addr })
	ew := <-watch
	t.Logf("edge-2 crashed: dropped from the API's edge table %s after (last handed out by /plex/v1/host %s after); its %d devices all logged in elsewhere %s after",
		ew.dropped.Round(time.Millisecond), ew.lastHanded.Round(time.Millisecond), len(onVictim), back.Round(time.Millisecond))
	if ew.dropped > 3*statsInterval+time.Second {
		t.Errorf("the dead edge was listed %s after its crash, want about 3 stats intervals (%s)", ew.dropped, 3*statsInterval)
	}
	if ew.draining {
		t.Error("a crashed edge was listed as draining")
	}
	if n := pushHTTP(t, w.api.url, uids(onVictim), "after edge crash"); n != len(onVictim) {
		t.Fatalf("push reached %d, want %d", n, len(onVictim))
	}
	for _, d := range onVictim {
		d.expectPush(t, "after edge crash")
	}
	waitFor(t, 5*time.Second, "edge-2 gone from /plex/v1/edges", func() bool {
		_, ok := liveEdges(t, w.api.url)["edge-2"]
		return !ok
	})
}

// stopEdge shuts edge-3 down gracefully: it is not handed out from the
// moment it drains, and its devices move to edge-1, the last one standing.
func stopEdge(t *testing.T, w *world, load []*device, fleet []*sdkDevice) {
	t.Log("step: edge-3 shuts down gracefully")
	victim, survivor := w.edges[2], w.edges[0]
	onVictim := on(fleet, victim)
	lost := time.Now()
	var wg sync.WaitGroup
	wg.Go(victim.stop)
	watch := watchEdge(t, w.api.url, victim.id, victim.addr, 2*time.Second)
	back := waitMoved(t, onVictim, lost, func(addr string) bool { return addr == survivor.addr })
	wg.Wait()
	ew := <-watch
	t.Logf("edge-3 shut down: last handed out by /plex/v1/host %s after, dropped from the API's edge table %s after; its %d devices all logged in at edge-1 %s after",
		ew.lastHanded.Round(time.Millisecond), ew.dropped.Round(time.Millisecond), len(onVictim), back.Round(time.Millisecond))
	// Not handed out because it said it was draining, not because its
	// stats stopped: it was listed as draining meanwhile.
	if !ew.draining || ew.lastHanded > time.Second {
		t.Errorf("edge-3 listed as draining: %v; last handed out %s after its shutdown began", ew.draining, ew.lastHanded)
	}
	all := uids(fleet)
	for _, d := range load {
		all = append(all, d.uid)
	}
	if n := pushHTTP(t, w.api.url, all, "the end"); n != len(all) {
		t.Fatalf("push to everyone reached %d, want %d", n, len(all))
	}
}

// probeUntilReceived publishes a push to d every 5 ms until one arrives
// and returns when it did, measured from since.
func probeUntilReceived(t *testing.T, pub *nats.Conn, d *sdkDevice, since time.Time, within time.Duration) time.Duration {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for k := 0; ; k++ {
		if err := bus.Publish(pub, bus.Push{UID: d.uid, Body: []byte(fmt.Sprintf("probe-%d", k))}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-d.msgs:
			return time.Since(since)
		case <-tick.C:
		}
		if time.Since(since) > within {
			t.Fatalf("no push reached %s within %s", d.uid, within)
		}
	}
}

// edgeWatch is what watchEdge saw of an edge that went away.
type edgeWatch struct {
	lastHanded time.Duration // when /plex/v1/host last answered the edge (0: never)
	dropped    time.Duration // when /plex/v1/edges first did not list it
	draining   bool          // /plex/v1/edges listed it as draining
}

// watchEdge asks /plex/v1/host and /plex/v1/edges every 5 ms for d, from
// now, and then reports what it saw of edge id (at addr). After the edge table dropped e,
// the host answer must never name it again.
func watchEdge(t *testing.T, apiURL, id, addr string, d time.Duration) <-chan edgeWatch {
	ch := make(chan edgeWatch, 1)
	stop, done := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(stop); <-done }) // if the test ends first
	start := time.Now()
	go func() {
		defer close(done)
		var ew edgeWatch
		defer func() { ch <- ew }()
		for time.Since(start) < d {
			select {
			case <-stop:
				return
			default:
			}
			host, err := hostAnswer(apiURL)
			if err != nil {
				t.Errorf("host: %v", err)
				return
			}
			if host == addr {
				ew.lastHanded = time.Since(start)
				if ew.dropped > 0 {
					t.Errorf("%s handed out %s after the edge table dropped it", id, ew.lastHanded-ew.dropped)
				}
			}
			if ew.dropped == 0 {
				switch listed(t, apiURL, id) {
				case notListed:
					ew.dropped = time.Since(start)
				case listedDraining:
					ew.draining = true
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		if ew.dropped == 0 {
			t.Errorf("%s still listed %s after it went away", id, d)
		}
	}()
	return ch
}

// How /plex/v1/edges lists an edge.
const (
	listedLive = iota
	listedDraining
	notListed
)

// listed reports how /plex/v1/edges lists edge id. It must not fail the
// test: it runs on watchEdge's goroutine.
func listed(t *testing.T, apiURL, id string) int {
	req, _ := http.NewRequest(http.MethodGet, apiURL+"/plex/v1/edges", nil)
	req.Header.Set("Authorization", "Bearer "+apiPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("edges: %v", err)
		return listedLive
	}
	defer resp.Body.Close()
	var a edgesAnswer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Errorf("edges: %v", err)
		return listedLive
	}
	i := slices.IndexFunc(a.Edges, func(x edgeInfo) bool { return x.ID == id })
	switch {
	case i < 0:
		return notListed
	case a.Edges[i].Draining:
		return listedDraining
	}
	return listedLive
}

// waitMoved waits until every device has logged in again at an edge for
// which where holds, and returns how long after since the last one did.
func waitMoved(t *testing.T, ds []*sdkDevice, since time.Time, where func(addr string) bool) time.Duration {
	t.Helper()
	for _, d := range ds {
		waitFor(t, 10*time.Second, d.uid+" logged in again elsewhere", func() bool {
			addr, _, _ := d.state()
			return where(addr) && d.connected()
		})
	}
	return time.Since(since)
}

func uids(ds []*sdkDevice) []string {
	out := make([]string, 0, len(ds))
	for _, d := range ds {
		out = append(out, d.uid)
	}
	return slices.Clip(out)
}
