package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/plexbus/plex/bus"
	"github.com/plexbus/plex/client"
	"github.com/plexbus/plex/wire"
)

// device is a raw protocol client, as a phone would be; the test reads it
// from one goroutine.
type device struct {
	t   testing.TB
	uid string
	c   net.Conn
	r   *wire.Reader
}

// login dials addr and logs in as uid (the dev verifier takes the body as
// the uid). The socket is closed at cleanup.
func login(t testing.TB, addr, uid string) *device {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	d := &device{t: t, uid: uid, c: c, r: wire.NewReader(c, wire.BigEndian, 0)}
	if _, err := c.Write(wire.AppendFrame(nil, wire.BigEndian, &wire.Message{URI: wire.URIAuth, Body: uid})); err != nil {
		t.Fatalf("login %s: %v", uid, err)
	}
	if m := d.next(5 * time.Second); m.URI != wire.URIAuthSuccess {
		t.Fatalf("login %s at %s: got %+v", uid, addr, m)
	}
	return d
}

func (d *device) read(timeout time.Duration) (wire.Message, error) {
	_ = d.c.SetReadDeadline(time.Now().Add(timeout))
	var m wire.Message
	err := d.r.ReadMessage(&m)
	return m, err
}

func (d *device) next(timeout time.Duration) wire.Message {
	d.t.Helper()
	m, err := d.read(timeout)
	if err != nil {
		d.t.Fatalf("device %s: read: %v", d.uid, err)
	}
	return m
}

// expectPush reads until a push with body arrives (earlier pushes, sent
// while interest was still spreading over the routes, are skipped).
func (d *device) expectPush(body string) {
	d.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		m, err := d.read(time.Until(deadline))
		if err != nil {
			d.t.Fatalf("device %s waiting for push %q: %v", d.uid, body, err)
		}
		if m.URI == wire.URIPush && m.Body == body {
			return
		}
		if m.URI != wire.URIPush {
			d.t.Fatalf("device %s waiting for push %q: got %+v", d.uid, body, m)
		}
	}
}

// expectFailed reads an /auth/failed frame with reason, then the close.
func (d *device) expectFailed(reason string) {
	d.t.Helper()
	if m := d.next(5 * time.Second); m.URI != wire.URIAuthFailed || m.Body != reason {
		d.t.Fatalf("device %s: got %+v, want /auth/failed %q", d.uid, m, reason)
	}
	if m, err := d.read(5 * time.Second); err == nil {
		d.t.Fatalf("device %s: frame %+v after /auth/failed", d.uid, m)
	} else if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		d.t.Fatalf("device %s: still open after /auth/failed", d.uid)
	}
}

// expectOpen checks that nothing arrives and the socket stays open for d.
func (d *device) expectOpen(dur time.Duration) {
	d.t.Helper()
	m, err := d.read(dur)
	if err == nil {
		d.t.Fatalf("device %s: unexpected frame %+v", d.uid, m)
	}
	if ne, ok := errors.AsType[net.Error](err); !ok || !ne.Timeout() {
		d.t.Fatalf("device %s: socket ended: %v", d.uid, err)
	}
}

// sdkDevice is a device using the Go client SDK, which finds its edge with
// /plex/v1/host before every connection attempt.
type sdkDevice struct {
	uid  string
	cl   *client.Client
	msgs chan client.Message
	done chan error

	mu          sync.Mutex
	addrs       []string // the edge of every login, oldest first
	disconnects int
}

// startSDK runs a client SDK device logging in as uid, discovering its edge
// at hostURL. It is closed at cleanup.
func startSDK(t testing.TB, hostURL, uid string) *sdkDevice {
	t.Helper()
	d := &sdkDevice{uid: uid, msgs: make(chan client.Message, 256), done: make(chan error, 1)}
	cl, err := client.New(client.Config{
		HostURL:        hostURL,
		Auth:           uid,
		ConnectTimeout: 2 * time.Second,
		Backoff:        client.Backoff{Base: 50 * time.Millisecond, Max: time.Second},
		Logger:         discard,
		OnConnect: func(ci client.ConnectInfo) {
			d.mu.Lock()
			d.addrs = append(d.addrs, ci.Addr)
			d.mu.Unlock()
		},
		OnDisconnect: func(client.DisconnectInfo) {
			d.mu.Lock()
			d.disconnects++
			d.mu.Unlock()
		},
		OnMessage: func(m client.Message) {
			select {
			case d.msgs <- m:
			default:
				t.Errorf("sdk device %s: message queue full", uid)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	d.cl = cl
	go func() { d.done <- cl.Run(context.Background()) }()
	t.Cleanup(func() {
		_ = cl.Close()
		if err := <-d.done; err != nil {
			t.Errorf("sdk device %s: Run: %v", uid, err)
		}
	})
	return d
}

// state returns the edge of the latest login ("" before the first) and the
// number of logins and disconnects so far.
func (d *sdkDevice) state() (addr string, logins, disconnects int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.addrs) > 0 {
		addr = d.addrs[len(d.addrs)-1]
	}
	return addr, len(d.addrs), d.disconnects
}

// connected reports whether the device is logged in (per the SDK).
func (d *sdkDevice) connected() bool { return d.cl.UID() != "" }

// waitLogin waits for the device's first login and returns its edge.
func (d *sdkDevice) waitLogin(t testing.TB) string {
	t.Helper()
	var addr string
	waitFor(t, 10*time.Second, d.uid+" logged in", func() bool {
		addr, _, _ = d.state()
		return addr != ""
	})
	return addr
}

// expectPush waits for a push with body.
func (d *sdkDevice) expectPush(t testing.TB, body string) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case m := <-d.msgs:
			if m.Body == body {
				return
			}
		case <-timeout:
			t.Fatalf("sdk device %s: no push %q", d.uid, body)
		}
	}
}

// pushUntilDelivered publishes a push on nc until an edge reports it
// written to a socket (interest in a user's subject reaches the other
// nodes of the cluster a moment after the login) and returns how long it
// took.
func pushUntilDelivered(t testing.TB, nc *nats.Conn, uid, body string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		n, err := bus.PublishWait(ctx, nc, bus.Push{UID: uid, Body: []byte(body)}, 20*time.Millisecond)
		cancel()
		if err == nil && n >= 1 {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("push %q to %s not delivered within %s (last: n=%d err=%v)", body, uid, within, n, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// presenceOf asks the edges, from nc's node, for uid's connections, until
// want(conns) holds.
func presenceOf(t testing.TB, nc *nats.Conn, uid string, what string, want func([]bus.ConnInfo) bool) []bus.ConnInfo {
	t.Helper()
	var conns []bus.ConnInfo
	var err error
	waitFor(t, 5*time.Second, what, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		conns, err = bus.QueryPresence(ctx, nc, uid, 20*time.Millisecond)
		return err == nil && want(conns)
	})
	return conns
}

// onEdge is a presence predicate: exactly one connection, on edge id.
func onEdge(id string) func([]bus.ConnInfo) bool {
	return func(c []bus.ConnInfo) bool { return len(c) == 1 && c[0].Edge == id }
}

// presenceLog records the presence events seen by one subscriber.
type presenceLog struct {
	mu     sync.Mutex
	events []bus.Presence
}

func subscribePresence(t testing.TB, nc *nats.Conn) *presenceLog {
	t.Helper()
	l := &presenceLog{}
	sub, err := bus.SubscribePresence(nc, func(p bus.Presence) {
		l.mu.Lock()
		l.events = append(l.events, p)
		l.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return l
}

// has reports whether an event matching f was seen.
func (l *presenceLog) has(f func(bus.Presence) bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.events {
		if f(p) {
			return true
		}
	}
	return false
}

// waitPresenceMesh waits until a presence event published on any node
// reaches every subscriber, so that none misses what follows. The probe
// events carry the uid "probe" and a stated reason.
func waitPresenceMesh(t testing.TB, pubs []*nats.Conn, logs []*presenceLog) {
	t.Helper()
	waitFor(t, 10*time.Second, "presence subscribers known on every node", func() bool {
		for i, nc := range pubs {
			_ = bus.PublishPresence(nc, bus.Presence{UID: "probe", Edge: fmt.Sprintf("node-%d", i), Reason: "probe"})
			_ = nc.Flush()
		}
		time.Sleep(5 * time.Millisecond)
		for _, l := range logs {
			for i := range pubs {
				edge := fmt.Sprintf("node-%d", i)
				if !l.has(func(p bus.Presence) bool { return p.UID == "probe" && p.Edge == edge }) {
					return false
				}
			}
		}
		return true
	})
}

// httpJSON sends a request to the API and decodes a JSON answer into out
// (if not nil); it returns the status.
func httpJSON(t testing.TB, method, url, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+apiPassword)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %d %q: %v", method, url, resp.StatusCode, data, err)
		}
	}
	return resp.StatusCode
}

// hostAnswer is GET /plex/v1/host.
func hostAnswer(apiURL string) (string, error) {
	resp, err := http.Get(apiURL + "/plex/v1/host")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var a struct {
		Host  string `json:"host"`
		Error string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("host: %d %s", resp.StatusCode, a.Error)
	}
	return a.Host, nil
}

// edgesAnswer is GET /plex/v1/edges.
type edgesAnswer struct {
	Edges []edgeInfo `json:"edges"`
}

type edgeInfo struct {
	ID       string    `json:"id"`
	Addr     string    `json:"addr"`
	Conns    int       `json:"conns"`
	Draining bool      `json:"draining"`
	LastSeen time.Time `json:"last_seen"`
}

// liveEdges returns the API's live edges: id → conns.
func liveEdges(t testing.TB, apiURL string) map[string]int {
	t.Helper()
	var a edgesAnswer
	if st := httpJSON(t, http.MethodGet, apiURL+"/plex/v1/edges", "", &a); st != http.StatusOK {
		t.Fatalf("edges: status %d", st)
	}
	m := make(map[string]int, len(a.Edges))
	for _, e := range a.Edges {
		m[e.ID] = e.Conns
	}
	return m
}

// onlineAnswer is GET /plex/v1/online/{uid}.
type onlineAnswer struct {
	UID    string         `json:"uid"`
	Online bool           `json:"online"`
	Conns  []bus.ConnInfo `json:"conns"`
}

// pushHTTP pushes body to uids through the API with ?wait=1 and returns
// how many connections it reached.
func pushHTTP(t testing.TB, apiURL string, uids []string, body string) int {
	t.Helper()
	req, _ := json.Marshal(map[string]any{"uids": uids, "body": body})
	var a struct {
		Delivered int `json:"delivered"`
	}
	if st := httpJSON(t, http.MethodPost, apiURL+"/plex/v1/push?wait=1", string(req), &a); st != http.StatusOK {
		t.Fatalf("push: status %d", st)
	}
	return a.Delivered
}

// waitFor polls cond every 5 ms until it holds, failing the test after d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
