//go:build clusterbench

// The measurements of BENCHMARKS.md's scale-out section, out of the default
// run because the second holds 15,000 sockets for a minute:
//
//	go test -tags clusterbench -run 'Bench' -v -count=1 -timeout 15m ./test/cluster/
//
// PLEX_BENCH_PUSHES (default 2000) and PLEX_BENCH_USERS (default 15000)
// change their sizes; PLEX_BENCH_PROBES=0 leaves out the pushes after the
// node loss (they load the machine the re-subscription runs on). Run them
// without -race: they measure time.

package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/plexbus/plex/bus"
	"github.com/plexbus/plex/edge"
	"github.com/plexbus/plex/wire"
)

func envInt(t testing.TB, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// summary is a latency distribution.
type summary struct {
	n                        int
	p50, p90, p99, max, mean time.Duration
}

func summarize(ds []time.Duration) summary {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return summary{}
	}
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return summary{n: len(s), p50: at(0.50), p90: at(0.90), p99: at(0.99), max: s[len(s)-1], mean: sum / time.Duration(len(s))}
}

func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond)) }

func (s summary) row(name string) string {
	return fmt.Sprintf("| %s | %d | %s | %s | %s | %s | %s |", name, s.n, us(s.p50), us(s.p90), us(s.p99), us(s.max), us(s.mean))
}

// TestBenchRouteLatency measures what a route adds to a push: one device
// on an edge attached to node 1; pushes published on node 1 (local) and on
// node 2 (one route hop), one at a time, alternating. "one-way" is publish
// to the frame read by the device; "request" is a request on the user's
// subject to the edge's {"delivered":1} reply (the route crossed twice).
func TestBenchRouteLatency(t *testing.T) {
	n := envInt(t, "PLEX_BENCH_PUSHES", 2000)
	nodes := startNodes(t, 3)
	startAuth(t, busConn(t, "plex-auth", clientURLs(nodes, 0)...))
	e := startEdge(t, "edge-1", clientURLs(nodes, 0), edge.Config{})
	d := login(t, e.srv.Addr().String(), "lat") // direct, not through the test's proxy
	pubs := map[string]*nats.Conn{
		"local (publisher on the edge's node)": busConn(t, "local", nodes[0].ClientURL()),
		"route (publisher on another node)":    busConn(t, "route", nodes[1].ClientURL()),
	}
	names := []string{"local (publisher on the edge's node)", "route (publisher on another node)"}
	for _, name := range names {
		pushUntilDelivered(t, pubs[name], d.uid, "warm", 5*time.Second)
		d.expectPush("warm")
	}
	oneWay := map[string][]time.Duration{}
	request := map[string][]time.Duration{}
	const warmup = 200
	for k := range n + warmup {
		for j := range names {
			name := names[(k+j)%2] // alternate who goes first
			pub := pubs[name]
			start := time.Now()
			if err := bus.Publish(pub, bus.Push{UID: d.uid, Body: []byte("x")}); err != nil {
				t.Fatal(err)
			}
			d.next(5 * time.Second)
			if k >= warmup {
				oneWay[name] = append(oneWay[name], time.Since(start))
			}
		}
	}
	for k := range n + warmup {
		for j := range names {
			name := names[(k+j)%2]
			start := time.Now()
			if _, err := pubs[name].Request(bus.UserPrefix+d.uid, []byte("y"), 5*time.Second); err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			d.next(5 * time.Second)
			if k >= warmup {
				request[name] = append(request[name], took)
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n| push, %d each | n | p50 | p90 | p99 | max | mean |\n| --- | --- | --- | --- | --- | --- | --- |\n", n)
	for _, kind := range []struct {
		name string
		m    map[string][]time.Duration
	}{{"one-way", oneWay}, {"request", request}} {
		l, r := summarize(kind.m[names[0]]), summarize(kind.m[names[1]])
		fmt.Fprintln(&b, l.row(kind.name+", "+names[0]))
		fmt.Fprintln(&b, r.row(kind.name+", "+names[1]))
		fmt.Fprintf(&b, "| %s, route − local | | %s | %s | %s | | %s |\n", kind.name, us(r.p50-l.p50), us(r.p90-l.p90), us(r.p99-l.p99), us(r.mean-l.mean))
	}
	t.Log(b.String())
}

// phase is the body of the probes of the current measurement; a device
// counts only those, not late copies of an earlier phase's.
var phase atomic.Pointer[string]

// benchDevice is one of many devices held by TestBenchResubscribe; its
// reader goroutine notes when the first push of a phase arrives.
type benchDevice struct {
	uid    string
	c      net.Conn
	got    atomic.Int64 // UnixNano of the first push since reset; 0 = none yet
	closed atomic.Bool  // the socket ended
}

// TestBenchResubscribe measures how long the users of an edge are out of
// reach when the edge's NATS node dies: PLEX_BENCH_USERS devices (default
// 15,000, held in this process) on one `plex edge` process attached to one
// of three `plex nats` nodes; that node is killed (SIGKILL); the edge fails
// over to another node and re-subscribes every user. Reported: when the
// edge noticed, when its new node saw its connection and all of its
// subscriptions, and when each device got a push published on the
// surviving nodes again (the devices keep their sockets throughout).
func TestBenchResubscribe(t *testing.T) {
	users := envInt(t, "PLEX_BENCH_USERS", 15000)
	n1 := startNATSProc(t, "n1")
	nodes := []*natsProc{n1, startNATSProc(t, "n2", n1), startNATSProc(t, "n3", n1)}
	conns := make([]*nats.Conn, len(nodes))
	for i, n := range nodes {
		conns[i] = busConn(t, "bench "+n.node, n.url)
	}
	waitMesh(t, conns)
	ep := startProc(t, "edge", "edge", "--nats", natsList(nodes, 0),
		"--port", "0", "--bind", "127.0.0.1", "--edge-id", "bench-edge",
		"--heartbeat", "10m", "--heartbeat-timeout", "20m", "--auth-timeout", "2m", "--stats-interval", "1s")
	addr := ep.WaitOut(edgeListenRe, 15*time.Second)[1]
	victim := -1
	waitFor(t, 10*time.Second, "the edge's node", func() bool {
		for k, n := range nodes {
			if found, _, err := n.edgeConn(); err == nil && found {
				victim = k
				return true
			}
		}
		return false
	})
	// The auth service on another node: it must outlive the node loss.
	authNode := (victim + 1) % len(nodes)
	startAuth(t, conns[authNode])
	var survivors []*natsProc
	var pubs []*nats.Conn
	for k, n := range nodes {
		if k != victim {
			survivors = append(survivors, n)
			pubs = append(pubs, conns[k])
		}
	}

	devs, loginTime := connectDevices(t, addr, users)
	t.Logf("%d devices logged in in %s (%.0f logins/s; edge on %s, auth on %s)",
		users, loginTime.Round(time.Millisecond), float64(users)/loginTime.Seconds(), nodes[victim].node, nodes[authNode].node)

	before := reachAll(t, pubs, devs, time.Now(), time.Minute)
	t.Logf("baseline, every node up: a round of pushes to all %d users reached the last one after %s", users, before.max.Round(time.Millisecond))

	watch := watchResubscribe(t, survivors, users)
	lost := time.Now()
	nodes[victim].Kill()
	killed := time.Since(lost)
	var after reached
	if os.Getenv("PLEX_BENCH_PROBES") != "0" {
		after = reachAll(t, pubs, devs, lost, 2*time.Minute)
	}
	rs := <-watch
	edgeLog := ep.Stderr()
	closed := 0
	for _, d := range devs {
		if d.closed.Load() {
			closed++
		}
	}
	t.Logf("\nnode %s (the edge's) killed at t=0, %d users:\n"+
		"| event | after the node loss |\n| --- | --- |\n"+
		"| the node's process reaped (SIGKILL) | %s |\n"+
		"| the edge logged \"bus disconnected\" | %s |\n"+
		"| its connection seen on a surviving node (/connz) | %s |\n"+
		"| the edge logged \"bus reconnected\" (subscriptions re-sent) | %s |\n"+
		"| all %d subscriptions held by that node (/connz) | %s |\n"+
		"| first user reached by a push from a surviving node | %s |\n"+
		"| half of the users reached (p50) | %s |\n"+
		"| p99 of the users reached | %s |\n"+
		"| all %d users reached | %s |\n"+
		"device sockets closed meanwhile: %d",
		nodes[victim].node, users, killed.Round(time.Millisecond), logTime(edgeLog, "bus disconnected", lost),
		rs.reconnected.Round(time.Millisecond), logTime(edgeLog, "bus reconnected", lost),
		users, rs.subscribed.Round(time.Millisecond),
		after.first.Round(time.Millisecond), after.p50.Round(time.Millisecond), after.p99.Round(time.Millisecond),
		users, after.max.Round(time.Millisecond), closed)
	if closed > 0 {
		t.Errorf("%d devices lost their socket during the node loss", closed)
	}
}

// connectDevices logs n devices in at addr, 256 at a time, from source
// addresses 127.0.0.1–8 so that ephemeral ports do not run out, and starts
// a reader goroutine for each. They are closed at cleanup.
func connectDevices(t *testing.T, addr string, n int) ([]*benchDevice, time.Duration) {
	t.Helper()
	devs := make([]*benchDevice, n)
	var wg sync.WaitGroup // readers
	t.Cleanup(func() {
		for _, d := range devs {
			if d != nil && d.c != nil {
				d.c.Close()
			}
		}
		wg.Wait()
	})
	sem := make(chan struct{}, 256)
	var lwg sync.WaitGroup
	var failed atomic.Int64
	var firstErr atomic.Pointer[error]
	start := time.Now()
	for i := range devs {
		d := &benchDevice{uid: fmt.Sprintf("u%05d", i)}
		devs[i] = d
		sem <- struct{}{}
		lwg.Go(func() {
			defer func() { <-sem }()
			r, err := d.login(addr, i)
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, &err)
				return
			}
			wg.Go(func() { d.read(r) })
		})
	}
	lwg.Wait()
	took := time.Since(start)
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d logins failed; first: %v", n, *firstErr.Load())
	}
	return devs, took
}

func (d *benchDevice) login(addr string, i int) (*wire.Reader, error) {
	dialer := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i%8))}}
	c, err := dialer.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	d.c = c
	if _, err := c.Write(wire.AppendFrame(nil, wire.BigEndian, &wire.Message{URI: wire.URIAuth, Body: d.uid})); err != nil {
		return nil, err
	}
	r := wire.NewReaderSize(c, wire.BigEndian, 0, 256)
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	var m wire.Message
	if err := r.ReadMessage(&m); err != nil {
		return nil, fmt.Errorf("login %s: %w", d.uid, err)
	}
	if m.URI != wire.URIAuthSuccess {
		return nil, fmt.Errorf("login %s: got %+v", d.uid, m)
	}
	_ = c.SetReadDeadline(time.Time{})
	return r, nil
}

// read notes the first push of each phase until the socket ends.
func (d *benchDevice) read(r *wire.Reader) {
	var m wire.Message
	for {
		if err := r.ReadMessage(&m); err != nil {
			d.closed.Store(true)
			return
		}
		if p := phase.Load(); m.URI == wire.URIPush && p != nil && m.Body == *p {
			d.got.CompareAndSwap(0, time.Now().UnixNano())
		}
	}
}

// reached is when the devices got their first push of a phase, from since.
type reached struct{ first, p50, p99, max time.Duration }

// reachAll publishes a push to every device that has not had one yet, in
// rounds at most every 20 ms, from each of pubs in turn, until all have
// one or within passes. Late copies of earlier rounds are not counted (see
// phase).
func reachAll(t *testing.T, pubs []*nats.Conn, devs []*benchDevice, since time.Time, within time.Duration) reached {
	t.Helper()
	body := fmt.Sprintf("phase-%d", since.UnixNano())
	for _, d := range devs {
		d.got.Store(0)
	}
	phase.Store(&body)
	for round := 0; ; round++ {
		roundStart := time.Now()
		pub := pubs[round%len(pubs)]
		pending := 0
		for _, d := range devs {
			if d.got.Load() != 0 {
				continue
			}
			pending++
			if err := bus.Publish(pub, bus.Push{UID: d.uid, Body: []byte(body)}); err != nil && !pub.IsReconnecting() {
				t.Fatal(err)
			}
		}
		if pending == 0 {
			break
		}
		if time.Since(since) > within {
			t.Fatalf("%d of %d devices got no push within %s", pending, len(devs), within)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = pub.FlushWithContext(ctx)
		cancel()
		time.Sleep(20*time.Millisecond - time.Since(roundStart))
	}
	ds := make([]time.Duration, len(devs))
	for i, d := range devs {
		ds[i] = time.Duration(d.got.Load() - since.UnixNano())
	}
	s := summarize(ds)
	return reached{first: slices.Min(ds), p50: s.p50, p99: s.p99, max: s.max}
}

// resubscribed is when the edge's connection showed up on a surviving node
// and when that node held all of its user subscriptions.
type resubscribed struct{ reconnected, subscribed time.Duration }

// watchResubscribe polls the surviving nodes' /connz every 2 ms from now
// on, for the edge's connection.
func watchResubscribe(t *testing.T, survivors []*natsProc, users int) <-chan resubscribed {
	ch := make(chan resubscribed, 1)
	stop, done := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(stop); <-done }) // if the test ends first
	start := time.Now()
	go func() {
		defer close(done)
		var rs resubscribed
		defer func() { ch <- rs }()
		for time.Since(start) < 2*time.Minute {
			select {
			case <-stop:
				return
			default:
			}
			for _, n := range survivors {
				found, subs, err := n.edgeConn()
				if err != nil || !found {
					continue
				}
				if rs.reconnected == 0 {
					rs.reconnected = time.Since(start)
				}
				if subs >= users {
					rs.subscribed = time.Since(start)
					return
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
		t.Errorf("the edge's subscriptions never all showed up on a surviving node")
	}()
	return ch
}

// logTime finds the first log line with msg="<msg>" and returns its time
// relative to since, or "?".
func logTime(log, msg string, since time.Time) string {
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, `msg="`+msg+`"`) {
			continue
		}
		ts, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || at.Before(since.Truncate(time.Millisecond)) {
			continue
		}
		return at.Sub(since).Round(time.Millisecond).String()
	}
	return "?"
}

// edgeConn looks for a plex edge's connection among this node's clients,
// from nats-server's /connz, and returns how many subscriptions it holds.
func (n *natsProc) edgeConn() (found bool, subs int, err error) {
	resp, err := http.Get(n.monitor + "/connz?limit=1024")
	if err != nil {
		return false, 0, err
	}
	defer resp.Body.Close()
	var cz struct {
		Connections []struct {
			Name string `json:"name"`
			Subs int    `json:"subscriptions"`
		} `json:"connections"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&cz); err != nil {
		return false, 0, err
	}
	for _, c := range cz.Connections {
		if strings.HasPrefix(c.Name, "plex-edge") {
			return true, c.Subs, nil
		}
	}
	return false, 0, nil
}
