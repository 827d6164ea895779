package cluster

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/plexbus/plex/bus"
	"github.com/plexbus/plex/embeddednats"
	"github.com/plexbus/plex/test/busfaults/harness"
	"github.com/plexbus/plex/wire"
)

// statsIntervalCLI is the --stats-interval of the edges run as processes.
const statsIntervalCLI = 200 * time.Millisecond

var (
	edgeListenRe = regexp.MustCompile(`edge \S+ listening on \S+ \(advertised (\S+)\)`)
	apiListenRe  = regexp.MustCompile(`api listening on (http://\S+)`)
	authReadyRe  = regexp.MustCompile(`answering plex\.auth on (\S+)`)
	devNATSRe    = regexp.MustCompile(`nats   (nats://127\.0\.0\.1:\d+)`)
	devEdgeRe    = regexp.MustCompile(`edge   (127\.0\.0\.1:\d+)`)
	devAPIRe     = regexp.MustCompile(`api    (http://127\.0\.0\.1:\d+)`)
)

// natsList is the --nats value of a part attached to nodes[first].
func natsList(nodes []*natsProc, first int) string {
	urls := make([]string, 0, len(nodes))
	for i := range nodes {
		urls = append(urls, nodes[(first+i)%len(nodes)].url)
	}
	return strings.Join(urls, ",")
}

// waitMesh waits until a message published on any node reaches a
// subscriber on every other node: the routes form a full mesh.
func waitMesh(t testing.TB, conns []*nats.Conn) {
	t.Helper()
	got := make([]chan struct{}, len(conns))
	for j, nc := range conns {
		ch := make(chan struct{}, 64)
		got[j] = ch
		sub, err := nc.Subscribe(fmt.Sprintf("test.mesh.%d", j), func(*nats.Msg) {
			select {
			case ch <- struct{}{}:
			default:
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	for i, from := range conns {
		for j := range conns {
			if i == j {
				continue
			}
			waitFor(t, 10*time.Second, fmt.Sprintf("a route from node %d to node %d", i+1, j+1), func() bool {
				_ = from.Publish(fmt.Sprintf("test.mesh.%d", j), nil)
				_ = from.Flush()
				select {
				case <-got[j]:
					return true
				case <-time.After(20 * time.Millisecond):
					return false
				}
			})
		}
	}
}

// cliEdge is a `plex edge` process.
type cliEdge struct {
	*proc
	id, addr string
}

// TestClusterProcesses runs the Scale-out topology as separate processes of
// the plex binary: three `plex nats` nodes joined with --cluster-name and
// --routes, three `plex edge`, `plex auth` and `plex api`, each with a
// --nats list of all three nodes. It checks the cluster behaves as one
// system, then SIGKILLs the NATS node of edge-1, then edge-2, and stops
// edge-3 with SIGTERM.
func TestClusterProcesses(t *testing.T) {
	n1 := startNATSProc(t, "n1")
	nodes := []*natsProc{n1, startNATSProc(t, "n2", n1), startNATSProc(t, "n3", n1)}
	pubs := make([]*nats.Conn, len(nodes))
	for i, n := range nodes {
		pubs[i] = busConn(t, "test "+n.node, n.url)
	}
	waitMesh(t, pubs)

	startProc(t, "auth", "auth", "--verifier", "dev", "--allow-dev", "--nats", natsList(nodes, 1)).
		WaitOut(authReadyRe, 15*time.Second)
	apiURL := startProc(t, "api", "api", "--nats", natsList(nodes, 2), "--inner-password", apiPassword,
		"--http-port", "0", "--http-bind", "127.0.0.1", "--backoff-base", "50ms", "--backoff-max", "1s").
		WaitOut(apiListenRe, 15*time.Second)[1]
	edges := make([]*cliEdge, len(nodes))
	for i := range edges {
		id := fmt.Sprintf("edge-%d", i+1)
		p := startProc(t, id, "edge", "--nats", natsList(nodes, i), "--port", "0", "--bind", "127.0.0.1",
			"--edge-id", id, "--stats-interval", statsIntervalCLI.String(), "--duplicate-login", "kick-old", "--drain-timeout", "5s")
		edges[i] = &cliEdge{proc: p, id: id, addr: p.WaitOut(edgeListenRe, 15*time.Second)[1]}
	}
	waitFor(t, 10*time.Second, "three edges in the API's table", func() bool { return len(liveEdges(t, apiURL)) == 3 })

	// Which node did each edge attach to? nats.go shuffles a --nats list
	// (see TestEdgeNATSOrder), so ask the nodes.
	attached := make([]int, len(edges))
	for i, e := range edges {
		d := login(t, e.addr, "where-"+e.id)
		waitFor(t, 5*time.Second, e.id+"'s node", func() bool {
			for k, n := range nodes {
				if ok, err := n.holds(bus.UserPrefix + d.uid); err == nil && ok {
					attached[i] = k
					return true
				}
			}
			return false
		})
		t.Logf("%s (--nats %s) is attached to %s", e.id, natsList(nodes, i), nodes[attached[i]].node)
	}

	// Six devices find their edge with /plex/v1/host: two on each.
	var fleet []*sdkDevice
	perEdge := map[string]int{}
	for k := range 6 {
		d := startSDK(t, apiURL+"/plex/v1/host", fmt.Sprintf("dev-%d", k+1))
		addr := d.waitLogin(t)
		perEdge[addr]++
		fleet = append(fleet, d)
	}
	for _, e := range edges {
		if n := perEdge[e.addr]; n < 1 || n > 3 {
			t.Errorf("/plex/v1/host placed %d of 6 devices on %s, want 1..3 (placement %v)", n, e.id, perEdge)
		}
	}

	t.Run("push from any node reaches a device on any edge", func(t *testing.T) {
		for i, pub := range pubs {
			for _, d := range fleet {
				body := fmt.Sprintf("from %s", nodes[i].node)
				pushUntilDelivered(t, pub, d.uid, body, 5*time.Second)
				d.expectPush(t, body)
			}
		}
	})
	t.Run("presence from every edge is seen on every node", func(t *testing.T) {
		logs := make([]*presenceLog, len(pubs))
		for i, pub := range pubs {
			logs[i] = subscribePresence(t, pub)
		}
		waitPresenceMesh(t, pubs, logs)
		for _, e := range edges {
			login(t, e.addr, "pres-"+e.id)
		}
		for i, l := range logs {
			for _, e := range edges {
				waitFor(t, 5*time.Second, fmt.Sprintf("online from %s seen on %s", e.id, nodes[i].node), func() bool {
					return l.has(func(p bus.Presence) bool { return p.UID == "pres-"+e.id && p.Online && p.Edge == e.id })
				})
			}
		}
	})
	t.Run("online and Plex-Op presence find a device on any edge", func(t *testing.T) {
		for _, e := range edges {
			uid := "where-" + e.id
			for _, pub := range pubs {
				presenceOf(t, pub, uid, uid, onEdge(e.id))
			}
			var a onlineAnswer
			if st := httpJSON(t, http.MethodGet, apiURL+"/plex/v1/online/"+uid, "", &a); st != http.StatusOK || !a.Online || len(a.Conns) != 1 || a.Conns[0].Edge != e.id {
				t.Fatalf("online %s: %d %+v", uid, st, a)
			}
		}
	})
	t.Run("kick-old across edges", func(t *testing.T) {
		old := login(t, edges[0].addr, "kick")
		for _, pub := range pubs {
			presenceOf(t, pub, "kick", "the first login seen from every node", onEdge(edges[0].id))
		}
		cur := login(t, edges[2].addr, "kick")
		old.expectFailed(wire.FailKicked)
		cur.expectOpen(100 * time.Millisecond)
	})

	t.Log("step: SIGKILL the NATS node of edge-1")
	victimNode := attached[0]
	survivor := pubs[(victimNode+1)%len(pubs)]
	onEdge1 := onAddr(fleet, edges[0].addr)
	if len(onEdge1) == 0 {
		t.Fatal("no device on edge-1")
	}
	lost := time.Now()
	nodes[victimNode].Kill()
	recovered := probeUntilReceived(t, survivor, onEdge1[0], lost, 10*time.Second)
	t.Logf("%s killed: a push from another node reached a device on edge-1 %s after", nodes[victimNode].node, recovered.Round(time.Millisecond))
	for _, d := range onEdge1 {
		pushUntilDelivered(t, survivor, d.uid, "after node loss", 5*time.Second)
		d.expectPush(t, "after node loss")
		if _, logins, disc := d.state(); logins != 1 || disc != 0 {
			t.Errorf("%s: %d logins, %d disconnects; want its first connection kept", d.uid, logins, disc)
		}
	}
	// Every part attached to the dead node (edges, auth, API) is back:
	// pushes through the API reach all devices, and logins work.
	waitFor(t, 10*time.Second, "the API reaching all six devices", func() bool {
		return pushHTTP(t, apiURL, uids(fleet), "all after node loss") == len(fleet)
	})
	for _, e := range edges {
		login(t, e.addr, "after-node-loss-"+e.id).c.Close()
	}

	t.Log("step: SIGKILL edge-2")
	dead := edges[1]
	onDead := onAddr(fleet, dead.addr)
	lost = time.Now()
	dead.Kill()
	watch := watchEdge(t, apiURL, dead.id, dead.addr, 3*time.Second)
	back := waitMoved(t, onDead, lost, func(addr string) bool { return addr != dead.addr })
	ew := <-watch
	t.Logf("edge-2 killed: dropped from the API's edge table %s after (last handed out %s after); its %d devices logged in elsewhere %s after",
		ew.dropped.Round(time.Millisecond), ew.lastHanded.Round(time.Millisecond), len(onDead), back.Round(time.Millisecond))
	if ew.dropped > 3*statsIntervalCLI+time.Second || ew.draining {
		t.Errorf("the dead edge was listed %s after it was killed (draining: %v), want about 3 stats intervals (%s)", ew.dropped, ew.draining, 3*statsIntervalCLI)
	}

	t.Log("step: SIGTERM edge-3")
	gone := edges[2]
	onGone := onAddr(fleet, gone.addr)
	lost = time.Now()
	var wg sync.WaitGroup
	wg.Go(gone.stop)
	watch = watchEdge(t, apiURL, gone.id, gone.addr, 2*time.Second)
	back = waitMoved(t, onGone, lost, func(addr string) bool { return addr == edges[0].addr })
	wg.Wait()
	exited := time.Since(lost)
	ew = <-watch
	t.Logf("edge-3 stopped: last handed out %s after SIGTERM; its %d devices logged in at edge-1 %s after; the process exited %s after",
		ew.lastHanded.Round(time.Millisecond), len(onGone), back.Round(time.Millisecond), exited.Round(time.Millisecond))
	if !ew.draining || ew.lastHanded > time.Second {
		t.Errorf("edge-3 listed as draining: %v; last handed out %s after SIGTERM", ew.draining, ew.lastHanded)
	}
	if n := pushHTTP(t, apiURL, uids(fleet), "the end"); n != len(fleet) {
		t.Fatalf("push to the fleet reached %d, want %d", n, len(fleet))
	}
}

// onAddr returns the devices of the fleet logged in at addr.
func onAddr(fleet []*sdkDevice, addr string) []*sdkDevice {
	var out []*sdkDevice
	for _, d := range fleet {
		if a, _, _ := d.state(); a == addr {
			out = append(out, d)
		}
	}
	return out
}

// TestDevJoinsCluster: `plex dev` with --cluster-name, --cluster-listen and
// --routes joins a `plex nats` node; an edge attached to that node and the
// dev box's own edge are one system to its API.
func TestDevJoinsCluster(t *testing.T) {
	n1 := startNATSProc(t, "n1")
	dev := startProc(t, "dev", "dev", "--nats-port", "0", "--port", "0", "--http-port", "0",
		"--server-name", "dev", "--cluster-name", "plex", "--cluster-listen", "127.0.0.1:0", "--routes", n1.route,
		"--inner-password", apiPassword, "--stats-interval", statsIntervalCLI.String())
	devNATS := dev.WaitOut(devNATSRe, 15*time.Second)[1]
	devEdge := dev.WaitOut(devEdgeRe, time.Second)[1]
	devAPI := dev.WaitOut(devAPIRe, time.Second)[1]
	other := startProc(t, "edge", "edge", "--nats", n1.url, "--port", "0", "--bind", "127.0.0.1",
		"--edge-id", "edge-n1", "--stats-interval", statsIntervalCLI.String())
	otherAddr := other.WaitOut(edgeListenRe, 15*time.Second)[1]
	onN1, onDev := busConn(t, "test n1", n1.url), busConn(t, "test dev", devNATS)
	waitMesh(t, []*nats.Conn{onN1, onDev})

	// The dev box's API sees the stats of the edge on n1 (and auth, in the
	// dev process, answers that edge's logins).
	waitFor(t, 10*time.Second, "both edges in the dev API's table", func() bool { return len(liveEdges(t, devAPI)) == 2 })
	a := login(t, devEdge, "on-dev")
	b := login(t, otherAddr, "on-n1")
	pushUntilDelivered(t, onN1, "on-dev", "from n1", 5*time.Second)
	a.expectPush("from n1")
	pushUntilDelivered(t, onDev, "on-n1", "from dev", 5*time.Second)
	b.expectPush("from dev")
	waitFor(t, 5*time.Second, "the dev API reaching both", func() bool {
		return pushHTTP(t, devAPI, []string{"on-dev", "on-n1"}, "via the dev api") == 2
	})
}

// TestEdgeNATSOrder: `plex edge --nats n1,n2,n3 --nats-no-randomize`
// attaches to n1, and to n2 when n1 is lost. Without such a flag nats.go
// shuffles the list, so "an edge attached to its own node" (a zone's, a
// site's) cannot be expressed with a list of several URLs.
func TestEdgeNATSOrder(t *testing.T) {
	help, err := execOutput(harness.Plex(t), "edge", "--help")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(help, "--nats-no-randomize") {
		t.Fatal("plex edge has no --nats-no-randomize flag: a --nats list is shuffled by nats.go, so an edge " +
			"cannot be attached to a chosen node while keeping the others for failover " +
			"(wanted: bus.ConnConfig.NoRandomize → nats.DontRandomize(), and the flag in cmd/plex/flags_bus.go)")
	}
	nodes := startNodes(t, 3)
	list := strings.Join(clientURLs(nodes, 0), ",")
	for i := range 3 {
		startProc(t, fmt.Sprintf("edge-%d", i+1), "edge", "--nats", list, "--nats-no-randomize",
			"--port", "0", "--bind", "127.0.0.1", "--edge-id", fmt.Sprintf("edge-%d", i+1)).
			WaitOut(edgeListenRe, 15*time.Second)
	}
	if n := edgesOn(t, nodes[0]); n != 3 {
		t.Fatalf("%d of 3 edges attached to n1, the first of --nats %s", n, list)
	}
	nodes[0].Shutdown()
	waitFor(t, 10*time.Second, "all three edges on n2, the next in the list", func() bool { return edgesOn(t, nodes[1]) == 3 })
}

// edgesOn counts the plex edge connections of an embedded node.
func edgesOn(t testing.TB, s *embeddednats.Server) int {
	t.Helper()
	cz, err := s.NATS().Connz(&server.ConnzOptions{Limit: 1024})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range cz.Conns {
		if strings.HasPrefix(c.Name, "plex-edge") {
			n++
		}
	}
	return n
}
