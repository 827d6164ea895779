package client

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/plexbus/plex/bus"
	"github.com/plexbus/plex/edge"
	"github.com/plexbus/plex/embeddednats"
	"github.com/plexbus/plex/test/busfaults/harness"
	"github.com/plexbus/plex/wire"
)

// stack is an embedded NATS with a tiny auth responder: token "uid:<x>"
// logs in as x, anything else is refused with "bad token".
type stack struct {
	t  *testing.T
	ns *embeddednats.Server
	nc *nats.Conn // the test's own bus connection, for pushes
}

func newStack(t *testing.T) *stack {
	t.Helper()
	ns := embeddednats.RunTest(t, embeddednats.Config{})
	st := &stack{t: t, ns: ns}
	st.nc = st.connect()
	harness.ServeUIDAuth(t, st.connect(), nil)
	return st
}

func (st *stack) connect() *nats.Conn {
	st.t.Helper()
	nc, err := st.ns.Connect(nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		st.t.Fatal(err)
	}
	st.t.Cleanup(nc.Close)
	return nc
}

// push publishes a message for uid.
func (st *stack) push(uid, uri string, seq int64, body string) {
	st.t.Helper()
	if err := bus.Publish(st.nc, bus.Push{UID: uid, URI: uri, Seq: seq, Body: []byte(body)}); err != nil {
		st.t.Fatal(err)
	}
}

// runningEdge is an edge under test; stop shuts it down gracefully
// (clients get /reconnect) and waits.
type runningEdge struct {
	*edge.Server
	stop func()
}

// edge starts an edge on cfg.Addr (default 127.0.0.1:0); it is stopped at
// cleanup if the test has not stopped it.
func (st *stack) edge(cfg edge.Config) *runningEdge {
	st.t.Helper()
	s, stop := harness.RunEdge(st.t, cfg, st.connect())
	return &runningEdge{Server: s, stop: stop}
}

func (e *runningEdge) addr() string { return e.Addr().String() }

// event is one callback, recorded.
type event struct {
	kind string // connect, message, disconnect, connect_failed, auth_failed
	conn ConnectInfo
	msg  Message
	info DisconnectInfo
	at   time.Time
}

// recorder turns the callbacks into a stream of events.
type recorder struct {
	t  testing.TB
	ch chan event
}

func newRecorder(t testing.TB, cfg *Config) *recorder {
	r := &recorder{t: t, ch: make(chan event, 4096)}
	rec := func(e event) {
		e.at = time.Now()
		r.ch <- e
	}
	cfg.OnConnect = func(ci ConnectInfo) { rec(event{kind: "connect", conn: ci}) }
	cfg.OnMessage = func(m Message) { rec(event{kind: "message", msg: m}) }
	cfg.OnDisconnect = func(i DisconnectInfo) { rec(event{kind: "disconnect", info: i}) }
	cfg.OnConnectFailed = func(i DisconnectInfo) { rec(event{kind: "connect_failed", info: i}) }
	cfg.OnAuthFailed = func(i DisconnectInfo) { rec(event{kind: "auth_failed", info: i}) }
	return r
}

// wait returns the next event of kind, skipping others.
func (r *recorder) wait(kind string) event {
	r.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e := <-r.ch:
			if e.kind == kind {
				return e
			}
		case <-timeout:
			r.t.Fatalf("timed out waiting for %s", kind)
		}
	}
}

// next returns the next event, whatever it is.
func (r *recorder) next() event {
	r.t.Helper()
	select {
	case e := <-r.ch:
		return e
	case <-time.After(10 * time.Second):
		r.t.Fatal("timed out waiting for an event")
	}
	return event{}
}

// quiet fails if any event arrives within d.
func (r *recorder) quiet(d time.Duration) {
	r.t.Helper()
	select {
	case e := <-r.ch:
		r.t.Fatalf("unexpected %s event: %+v", e.kind, e)
	case <-time.After(d):
	}
}

// fastConfig has test-sized timings.
func fastConfig(addr, auth string) Config {
	return Config{
		Addr:           addr,
		Auth:           auth,
		Heartbeat:      100 * time.Millisecond,
		ConnectTimeout: 2 * time.Second,
		Backoff:        Backoff{Base: 20 * time.Millisecond, Factor: 2, Max: 200 * time.Millisecond},
	}
}

// running is a client whose Run runs in the background.
type running struct {
	*Client
	rec  *recorder
	done chan error
}

// start creates a client with a recorder and runs it; it is closed at
// cleanup.
func start(t *testing.T, cfg Config) *running {
	t.Helper()
	rec := newRecorder(t, &cfg)
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := &running{Client: c, rec: rec, done: make(chan error, 1)}
	go func() { r.done <- c.Run(context.Background()) }()
	t.Cleanup(func() { c.Close() })
	return r
}

// result waits for Run to return.
func (r *running) result(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	return nil
}

// peer is a fake edge on a real socket, run by handle for each connection.
type peer struct {
	ln     net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
	accept atomic.Int32
}

func newPeer(t *testing.T, handle func(n int, c net.Conn, r *wire.Reader)) *peer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{ln: ln}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := int(p.accept.Add(1))
			p.mu.Lock()
			p.conns = append(p.conns, c)
			p.mu.Unlock()
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				defer c.Close()
				handle(n, c, wire.NewReader(c, wire.BigEndian, 0))
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *peer) addr() string { return p.ln.Addr().String() }

// send writes one frame.
func send(c net.Conn, uri, body string) error {
	_, err := c.Write(wire.AppendFrame(nil, wire.BigEndian, &wire.Message{URI: uri, Body: body}))
	return err
}

// expectLogin reads the client's login frame.
func expectLogin(t testing.TB, r *wire.Reader) string {
	var m wire.Message
	if err := r.ReadMessage(&m); err != nil {
		t.Errorf("peer: read login: %v", err)
		return ""
	}
	if m.URI != wire.URIAuth {
		t.Errorf("peer: first frame %+v, want %s", m, wire.URIAuth)
	}
	return m.Body
}

// drain reads frames until the connection ends, counting heartbeats.
func drain(r *wire.Reader, heartbeats *atomic.Int32) {
	var m wire.Message
	for r.ReadMessage(&m) == nil {
		if m.URI == wire.URIHeartbeat && heartbeats != nil {
			heartbeats.Add(1)
		}
	}
}

// hostServer serves a host-discovery URL answering with *host, or 503
// when it is empty.
type hostServer struct {
	*httptest.Server
	host  atomic.Pointer[string]
	extra atomic.Pointer[string] // raw JSON members added to the reply
	asked atomic.Int32
}

func newHostServer(t *testing.T) *hostServer {
	h := &hostServer{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.asked.Add(1)
		w.Header().Set("Content-Type", "application/json")
		host := h.host.Load()
		if host == nil || *host == "" {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":"no edge available"}`))
			return
		}
		body := `{"host":` + strconvQuote(*host)
		if x := h.extra.Load(); x != nil {
			body += "," + *x
		}
		_, _ = w.Write([]byte(body + "}"))
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hostServer) set(host string) { h.host.Store(&host) }

func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// refusedAddr is a loopback address where nothing listens.
func refusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func mustAuthError(t *testing.T, err error) *AuthError {
	t.Helper()
	ae, ok := errors.AsType[*AuthError](err)
	if !ok {
		t.Fatalf("err = %v, want an *AuthError", err)
	}
	return ae
}
