package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/plexbus/plex/authsvc"
	"github.com/plexbus/plex/bus"
	"github.com/plexbus/plex/edge"
	"github.com/plexbus/plex/embeddednats"
	"github.com/plexbus/plex/pushapi"
)

// apiPassword is the bearer password of the API under test.
const apiPassword = "cluster-test-password"

// discard is the logger of every in-process part (their logs are not
// asserted; turn one on here when a test needs debugging).
var discard = slog.New(slog.DiscardHandler)

// startNodes starts n embedded nats-servers in one cluster: nodes 2..n
// route to node 1 and nats-server's gossip completes the full mesh, which
// this waits for. They are shut down at cleanup (Shutdown is idempotent, so
// a test may kill one earlier).
func startNodes(t testing.TB, n int) []*embeddednats.Server {
	t.Helper()
	nodes := make([]*embeddednats.Server, n)
	for i := range nodes {
		cfg := embeddednats.Config{ClusterName: "plex", ServerName: fmt.Sprintf("n%d", i+1)}
		if i > 0 {
			cfg.Routes = []string{nodes[0].ClusterURL()}
		}
		nodes[i] = embeddednats.RunTest(t, cfg)
	}
	waitFor(t, 10*time.Second, "a full mesh of routes", func() bool {
		for _, s := range nodes {
			if s.NATS().NumRemotes() != n-1 {
				return false
			}
		}
		return true
	})
	return nodes
}

// clientURLs lists the nodes' client URLs, starting with node first: the
// --nats list of a part attached to that node, with the others to fail
// over to.
func clientURLs(nodes []*embeddednats.Server, first int) []string {
	urls := make([]string, 0, len(nodes))
	for i := range nodes {
		urls = append(urls, nodes[(first+i)%len(nodes)].ClientURL())
	}
	return urls
}

// busConn connects to the bus the way the plex parts do (bus.Connect:
// reconnect forever, short reconnect wait), keeping the URL order so the
// part attaches to the first and fails over to the next. Closed at cleanup.
func busConn(t testing.TB, name string, urls ...string) *nats.Conn {
	t.Helper()
	nc, err := bus.Connect(bus.ConnConfig{
		URLs: strings.Join(urls, ","), Name: name,
		ReconnectWait: 50 * time.Millisecond, ConnectTimeout: time.Second,
	}, nats.DontRandomize())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// startAuth runs the auth service with the dev verifier (the auth body is
// the uid) on nc.
func startAuth(t testing.TB, nc *nats.Conn) *authsvc.Service {
	t.Helper()
	v, err := authsvc.NewDev(authsvc.DevConfig{Insecure: true, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := authsvc.New(authsvc.Config{Logger: discard}, nc, v)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := svc.Stop(); err != nil {
			t.Errorf("auth service stop: %v", err)
		}
	})
	return svc
}

// api is the HTTP API under test, on an httptest server.
type api struct {
	url   string
	edges *pushapi.Edges
}

// startAPI serves the HTTP API on nc. Devices are told to back off 50 ms
// at first, so reconnects in tests are quick.
func startAPI(t testing.TB, nc *nats.Conn) *api {
	t.Helper()
	table, err := pushapi.WatchEdges(nc, pushapi.EdgesConfig{Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	h, err := pushapi.New(pushapi.Config{
		InnerPassword: apiPassword,
		Backoff:       pushapi.Backoff{Base: 50 * time.Millisecond, Max: time.Second},
		Logger:        discard,
	}, nc, table)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		if err := table.Close(); err != nil {
			t.Errorf("edge table close: %v", err)
		}
	})
	return &api{url: srv.URL, edges: table}
}

// edgeNode is an edge in this process, reached by devices through a TCP
// proxy so that a crash can be imitated: see kill.
type edgeNode struct {
	t     testing.TB
	id    string
	srv   *edge.Server
	nc    *nats.Conn
	proxy *proxy
	// addr is what devices dial and what the edge advertises: the proxy.
	addr string

	cancel   context.CancelFunc
	done     chan error
	stopOnce sync.Once
}

// startEdge runs an edge on a bus connection to urls (attached to the
// first). cfg.ID, Addr and Advertise are set here. The edge is stopped
// gracefully at cleanup unless the test stopped it.
func startEdge(t testing.TB, id string, urls []string, cfg edge.Config) *edgeNode {
	t.Helper()
	return startEdgeOn(t, id, busConn(t, "plex-edge "+id, urls...), cfg)
}

// startEdgeOn is startEdge on a given bus connection.
func startEdgeOn(t testing.TB, id string, nc *nats.Conn, cfg edge.Config) *edgeNode {
	t.Helper()
	p := newProxy(t)
	cfg.ID, cfg.Addr, cfg.Advertise = id, "127.0.0.1:0", p.addr()
	if cfg.Logger == nil {
		cfg.Logger = discard
	}
	srv, err := edge.New(cfg, nc)
	if err != nil {
		t.Fatal(err)
	}
	p.start(srv.Addr().String())
	ctx, cancel := context.WithCancel(context.Background())
	e := &edgeNode{t: t, id: id, srv: srv, nc: nc, proxy: p, addr: p.addr(), cancel: cancel, done: make(chan error, 1)}
	go func() { e.done <- srv.Run(ctx) }()
	t.Cleanup(e.stop)
	return e
}

// stop shuts the edge down gracefully (draining stats, /reconnect to its
// devices, offline presence) and waits for Run to return. Idempotent.
func (e *edgeNode) stop() {
	e.stopOnce.Do(func() {
		e.cancel()
		select {
		case err := <-e.done:
			if err != nil {
				e.t.Errorf("edge %s Run: %v", e.id, err)
			}
		case <-time.After(20 * time.Second):
			e.t.Errorf("edge %s did not stop", e.id)
		}
	})
}

// kill imitates a crash of the edge's process: its bus connection goes
// away at once (no draining stats, no offline presence, its stats stop)
// and every device's socket is reset. The edge's goroutines live on,
// talking to a closed bus and to dead sockets, until stop at cleanup.
func (e *edgeNode) kill() {
	e.nc.Close()
	e.proxy.kill()
}
