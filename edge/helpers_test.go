package edge

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/plexbus/plex/bus"
	"github.com/plexbus/plex/embeddednats"
	"github.com/plexbus/plex/wire"
)

// stack is an embedded NATS with an auth responder, for edges under test.
type stack struct {
	t    *testing.T
	ns   *embeddednats.Server
	auth *nats.Subscription
	nc   *nats.Conn // the test's own bus connection
}

// authRules: token "uid:<x>" logs in as x; "slow:<d>" sleeps; anything else is refused.
func newStack(t *testing.T) *stack {
	t.Helper()
	ns := embeddednats.RunTest(t, embeddednats.Config{})
	st := &stack{t: t, ns: ns, nc: st0connect(t, ns)}
	st.startAuth()
	return st
}

func st0connect(t *testing.T, ns *embeddednats.Server) *nats.Conn {
	t.Helper()
	nc, err := ns.Connect(nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func (st *stack) startAuth() {
	anc := st0connect(st.t, st.ns)
	sub, err := anc.QueueSubscribe(bus.SubjectAuth, bus.QueueAuth, func(m *nats.Msg) {
		var req bus.AuthRequest
		_ = json.Unmarshal(m.Data, &req)
		rep := bus.AuthReply{Reason: "bad token"}
		switch {
		case strings.HasPrefix(req.Body, "uid:"):
			rep = bus.AuthReply{OK: true, UID: strings.TrimPrefix(req.Body, "uid:")}
		case strings.HasPrefix(req.Body, "slow:"):
			d, _ := time.ParseDuration(strings.TrimPrefix(req.Body, "slow:"))
			time.Sleep(d)
			rep = bus.AuthReply{OK: true, UID: "slow"}
		case req.Body == "garbage":
			_ = m.Respond([]byte("not json"))
			return
		}
		data, _ := json.Marshal(rep)
		_ = m.Respond(data)
	})
	if err != nil {
		st.t.Fatal(err)
	}
	if err := anc.Flush(); err != nil {
		st.t.Fatal(err)
	}
	st.auth = sub
}

// goroutinePerConn selects the read path of the edges tests start; see eachReadPath.
var goroutinePerConn bool

// eachReadPath runs f once with the epoll read path and once with a reader
// goroutine per connection: every protocol behaviour must hold on both.
func eachReadPath(t *testing.T, f func(t *testing.T)) {
	for _, mode := range []struct {
		name      string
		goroutine bool
	}{{"epoll", false}, {"goroutine", true}} {
		t.Run(mode.name, func(t *testing.T) {
			goroutinePerConn = mode.goroutine
			defer func() { goroutinePerConn = false }()
			f(t)
		})
	}
}

// edge starts an edge on the stack; it is shut down at cleanup.
func (st *stack) edge(cfg Config) *Server {
	st.t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	cfg.GoroutinePerConn = cfg.GoroutinePerConn || goroutinePerConn
	nc := st0connect(st.t, st.ns)
	s, err := New(cfg, nc)
	if err != nil {
		st.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	st.t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				st.t.Errorf("edge Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			st.t.Error("edge did not stop")
		}
	})
	return s
}

// client is a raw protocol client, as a device would be.
type client struct {
	t     *testing.T
	c     net.Conn
	r     *wire.Reader
	order wire.Order
	mu    sync.Mutex
}

func dial(t *testing.T, s *Server) *client {
	t.Helper()
	return dialAddr(t, s.Addr().String(), wire.BigEndian)
}

func dialAddr(t *testing.T, addr string, order wire.Order) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, r: wire.NewReader(c, order, 0), order: order}
}

func (c *client) send(uri, body string) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.c.Write(wire.AppendFrame(nil, c.order, &wire.Message{URI: uri, Body: body})); err != nil {
		c.t.Fatalf("send %s: %v", uri, err)
	}
}

func (c *client) read(timeout time.Duration) (wire.Message, error) {
	_ = c.c.SetReadDeadline(time.Now().Add(timeout))
	var m wire.Message
	err := c.r.ReadMessage(&m)
	return m, err
}

func (c *client) expect(uri string) wire.Message {
	c.t.Helper()
	m, err := c.read(5 * time.Second)
	if err != nil {
		c.t.Fatalf("waiting for %s: %v", uri, err)
	}
	if m.URI != uri {
		c.t.Fatalf("got %+v, want uri %s", m, uri)
	}
	return m
}

// expectClosed reads until the edge closes the connection.
func (c *client) expectClosed(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		_, err := c.read(time.Until(deadline))
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			break
		}
		return // EOF, reset, truncated: closed
	}
	c.t.Fatal("connection still open")
}

func (c *client) expectSilence(d time.Duration) {
	c.t.Helper()
	m, err := c.read(d)
	var ne net.Error
	if err == nil {
		c.t.Fatalf("unexpected frame %+v", m)
	}
	if !errors.As(err, &ne) || !ne.Timeout() {
		if !errors.Is(err, io.EOF) {
			c.t.Fatalf("unexpected error %v", err)
		}
		c.t.Fatal("connection closed")
	}
}

// login authenticates as uid and returns the success body.
func (c *client) login(uid string) {
	c.t.Helper()
	c.send(wire.URIAuth, "uid:"+uid)
	c.expect(wire.URIAuthSuccess)
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func dialRaw(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err == nil {
		c.Close()
	}
	return c, err
}
