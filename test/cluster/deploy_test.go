package cluster

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/plexbus/plex/bus"
	"github.com/plexbus/plex/edge"
	"github.com/plexbus/plex/wire"
)

// docBlock returns the fenced block that follows the marker
// "<!-- test/cluster: name -->" in docs/deploy.md.
func docBlock(t testing.TB, name string) string {
	t.Helper()
	_, here, _, _ := runtime.Caller(0) // this file, wherever the test binary runs
	data, err := os.ReadFile(filepath.Join(filepath.Dir(here), "..", "..", "docs", "deploy.md"))
	if err != nil {
		t.Fatal(err)
	}
	marker := "<!-- test/cluster: " + name + " -->"
	_, rest, ok := strings.Cut(string(data), marker)
	if !ok {
		t.Fatalf("docs/deploy.md has no %s", marker)
	}
	_, rest, ok = strings.Cut(rest, "```conf\n")
	if !ok {
		t.Fatalf("docs/deploy.md: no ```conf block after %s", marker)
	}
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatalf("docs/deploy.md: unterminated block after %s", marker)
	}
	return block
}

// startConfNode runs a nats-server from a configuration file, as
// production does, and shuts it down at cleanup.
func startConfNode(t testing.TB, path string) (*server.Server, *server.Options) {
	t.Helper()
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	opts.NoSigs, opts.NoLog = true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	s.Start()
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatalf("%s: server not ready", path)
	}
	return s, opts
}

// busErrors records the asynchronous errors of a bus connection, such as
// the server's permission violations.
type busErrors struct {
	mu   sync.Mutex
	errs []string
}

func (b *busErrors) add(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.errs = append(b.errs, err.Error())
}

func (b *busErrors) list() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errs...)
}

// roleConn connects to url as a role's user and records its async errors.
func roleConn(t testing.TB, user, url string) (*nats.Conn, *busErrors) {
	t.Helper()
	be := &busErrors{}
	nc, err := bus.Connect(bus.ConnConfig{
		URLs: url, Name: "plex-" + user, User: user, Password: rolePassword(user),
		ReconnectWait: 50 * time.Millisecond,
	}, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { be.add(err) }))
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	return nc, be
}

func rolePassword(user string) string { return "pw-of-" + user }

// denied waits for a permission violation on be that names subject.
func denied(t testing.TB, be *busErrors, what, subject string) {
	t.Helper()
	waitFor(t, 5*time.Second, what+" denied", func() bool {
		for _, e := range be.list() {
			if strings.Contains(e, "Permissions Violation") && strings.Contains(e, subject) {
				return true
			}
		}
		return false
	})
}

// TestDeployPermissions runs Plex under the per-role users of
// docs/deploy.md (its plex-accounts.conf block, verbatim), on a hub node
// and a leaf node of an edge site: every part does its job, with nothing
// refused, and each role is refused what it must not do.
func TestDeployPermissions(t *testing.T) {
	for _, role := range []string{"edge", "auth", "api", "pusher", "presence"} {
		t.Setenv("PLEX_"+strings.ToUpper(role)+"_PASSWORD", rolePassword(role))
	}
	t.Setenv("PLEX_LEAF_PASSWORD", "pw-of-site")
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("plex-accounts.conf", docBlock(t, "plex-accounts.conf"))
	// The hub and the leaf as in docs/deploy.md, on loopback, without TLS.
	hub, hubOpts := startConfNode(t, write("hub.conf", `
listen: "127.0.0.1:-1"
leafnodes {
  listen: "127.0.0.1:-1"
  authorization {
    users: [ { user: site, password: $PLEX_LEAF_PASSWORD, account: PLEX } ]
  }
}
include plex-accounts.conf
`))
	leaf, _ := startConfNode(t, write("leaf.conf", fmt.Sprintf(`
listen: "127.0.0.1:-1"
leafnodes {
  remotes: [ { urls: ["nats-leaf://site:pw-of-site@127.0.0.1:%d"], account: PLEX } ]
}
include plex-accounts.conf
`, hubOpts.LeafNode.Port)))
	waitFor(t, 10*time.Second, "the leaf node connected to the hub", func() bool { return hub.NumLeafNodes() == 1 })

	// The parts: auth, the API, a pusher and edge-hub on the hub; edge-site
	// and a presence consumer on the leaf.
	authNC, authErrs := roleConn(t, "auth", hub.ClientURL())
	startAuth(t, authNC)
	apiNC, apiErrs := roleConn(t, "api", hub.ClientURL())
	a := startAPI(t, apiNC)
	pusher, pusherErrs := roleConn(t, "pusher", hub.ClientURL())
	presNC, presErrs := roleConn(t, "presence", leaf.ClientURL())
	pres := subscribePresence(t, presNC)
	edgeCfg := edge.Config{StatsInterval: statsInterval, DuplicateLogin: edge.DuplicateKickOld, InnerPassword: "inner-secret"}
	hubNC, hubErrs := roleConn(t, "edge", hub.ClientURL())
	siteNC, siteErrs := roleConn(t, "edge", leaf.ClientURL())
	edges := []*edgeNode{startEdgeOn(t, "edge-hub", hubNC, edgeCfg), startEdgeOn(t, "edge-site", siteNC, edgeCfg)}
	waitFor(t, 5*time.Second, "both edges in the API's table", func() bool { return len(liveEdges(t, a.url)) == 2 })

	for _, e := range edges {
		uid := "user-" + e.id
		d := login(t, e.addr, uid)
		pushUntilDelivered(t, pusher, uid, "hello", 5*time.Second) // a request: the edge replies
		d.expectPush("hello")
		waitFor(t, 5*time.Second, "presence of "+uid+" at the site", func() bool {
			return pres.has(func(p bus.Presence) bool { return p.UID == uid && p.Online && p.Edge == e.id })
		})
		var on onlineAnswer
		if st := httpJSON(t, http.MethodGet, a.url+"/plex/v1/online/"+uid, "", &on); st != http.StatusOK || !on.Online || on.Conns[0].Edge != e.id {
			t.Fatalf("online %s: %d %+v", uid, st, on)
		}
		if n := pushHTTP(t, a.url, []string{uid}, "via api"); n != 1 {
			t.Fatalf("API push to %s reached %d", uid, n)
		}
		d.expectPush("via api")
	}
	if _, err := hostAnswer(a.url); err != nil {
		t.Fatal(err)
	}
	// kick-old from the site's edge to the hub's; the original push client
	// publishing on the hub's edge for a user at the site.
	old := login(t, edges[0].addr, "kick")
	presenceOf(t, pusher, "kick", "the first login", onEdge("edge-hub"))
	cur := login(t, edges[1].addr, "kick")
	old.expectFailed(wire.FailKicked)
	presenceOf(t, pusher, "kick", "the second login only", onEdge("edge-site"))
	innerPush(t, edges[0].addr, "inner-secret", `{"uid":"kick","body":"from the push client"}`)
	cur.expectPush("from the push client")

	for name, be := range map[string]*busErrors{"auth": authErrs, "api": apiErrs, "pusher": pusherErrs,
		"presence": presErrs, "edge-hub": hubErrs, "edge-site": siteErrs} {
		if errs := be.list(); len(errs) > 0 {
			t.Errorf("%s got errors doing its job: %v", name, errs)
		}
	}

	// What each role must not do.
	intruder := func(user string) (*nats.Conn, *busErrors) { return roleConn(t, user, hub.ClientURL()) }
	nc, be := intruder("pusher")
	_ = nc.Publish(bus.SubjectAuth, []byte(`{"body":"steal"}`))
	denied(t, be, "a pusher publishing on plex.auth", bus.SubjectAuth)
	nc, be = intruder("pusher")
	_ = nc.Publish(bus.SubjectPresence, []byte(`{}`))
	denied(t, be, "a pusher faking presence", bus.SubjectPresence)
	nc, be = intruder("api")
	if _, err := nc.Subscribe(bus.SubjectAuth, func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	denied(t, be, "the API reading login tokens", bus.SubjectAuth)
	nc, be = intruder("edge")
	if _, err := nc.QueueSubscribe(bus.SubjectAuth, bus.QueueAuth, func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	denied(t, be, "an edge answering logins", bus.SubjectAuth)
	nc, be = intruder("auth")
	if _, err := nc.Subscribe(bus.SubjectAuth, func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	denied(t, be, "auth outside its queue group", bus.SubjectAuth)
	nc, be = intruder("auth")
	_ = nc.Publish("plex.user.42", []byte("x"))
	denied(t, be, "auth pushing", "plex.user.42")
	nc, be = intruder("presence")
	_ = nc.Publish("plex.user.42", []byte("x"))
	denied(t, be, "a presence consumer pushing", "plex.user.42")
}

// innerPush logs in at addr as the original framework's push client and
// sends one /logic/send/msg.
func innerPush(t testing.TB, addr, password, msg string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d := &device{t: t, uid: "push client", c: c, r: wire.NewReader(c, wire.BigEndian, 0)}
	frames := wire.AppendFrame(nil, wire.BigEndian, &wire.Message{URI: wire.URIInnerAuth, Body: password})
	if _, err := c.Write(frames); err != nil {
		t.Fatal(err)
	}
	if m := d.next(5 * time.Second); m.URI != wire.URIAuthSuccess {
		t.Fatalf("inner login: got %+v", m)
	}
	if _, err := c.Write(wire.AppendFrame(nil, wire.BigEndian, &wire.Message{URI: wire.URIInnerSend, Body: msg})); err != nil {
		t.Fatal(err)
	}
}
