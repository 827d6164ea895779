package pushapi

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/plexbus/plex/edge"
	"github.com/plexbus/plex/embeddednats"
	"github.com/plexbus/plex/test/busfaults/harness"
	"github.com/plexbus/plex/wire"
)

const testPassword = "s3cret-inner"

// stack is a real Plex: embedded NATS, an auth responder (token "uid:<x>"
// logs in as x), edges started on demand, and the API on httptest.
type stack struct {
	t     *testing.T
	ns    *embeddednats.Server
	nc    *nats.Conn // the API's bus connection
	reg   *prometheus.Registry
	edges *Edges
	srv   *httptest.Server
}

func newStack(t *testing.T, cfg Config) *stack {
	t.Helper()
	ns := embeddednats.RunTest(t, embeddednats.Config{})
	st := &stack{t: t, ns: ns, reg: prometheus.NewRegistry()}
	harness.ServeUIDAuth(t, busConn(t, ns), nil)
	st.nc = busConn(t, ns)
	// Generous expiry: edges publish every 50 ms, and a loaded -race run
	// must not see one flap. Expiry itself is tested on a fake clock.
	edges, err := WatchEdges(st.nc, EdgesConfig{Missed: 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := edges.Close(); err != nil {
			t.Errorf("edges.Close: %v", err)
		}
	})
	st.edges = edges
	if cfg.InnerPassword == "" {
		cfg.InnerPassword = testPassword
	}
	if cfg.Registerer == nil {
		cfg.Registerer = st.reg
	}
	h, err := New(cfg, st.nc, edges)
	if err != nil {
		t.Fatal(err)
	}
	st.srv = httptest.NewServer(h)
	t.Cleanup(st.srv.Close)
	return st
}

func busConn(t *testing.T, ns *embeddednats.Server) *nats.Conn {
	t.Helper()
	nc, err := ns.Connect(nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// edge starts an edge publishing stats every 50 ms; it stops at cleanup.
func (st *stack) edge(cfg edge.Config) *edge.Server {
	st.t.Helper()
	if cfg.StatsInterval == 0 {
		cfg.StatsInterval = 50 * time.Millisecond
	}
	s, _ := harness.RunEdge(st.t, cfg, busConn(st.t, st.ns))
	return s
}

// resp is an HTTP answer.
type resp struct {
	code int
	hdr  http.Header
	body []byte
}

// call makes a request; token "" sends no Authorization.
func (st *stack) call(method, path, token, body string) resp {
	st.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, st.srv.URL+path, rd)
	if err != nil {
		st.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := st.srv.Client().Do(req)
	if err != nil {
		st.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		st.t.Fatalf("%s %s: read: %v", method, path, err)
	}
	return resp{code: res.StatusCode, hdr: res.Header, body: data}
}

func (st *stack) get(path string) resp { st.t.Helper(); return st.call("GET", path, "", "") }
func (st *stack) getAuth(path string) resp {
	st.t.Helper()
	return st.call("GET", path, testPassword, "")
}
func (st *stack) postPush(query, body string) resp {
	st.t.Helper()
	return st.call("POST", "/plex/v1/push"+query, testPassword, body)
}

// want checks the status and decodes the JSON answer into v (if not nil).
func (r resp) want(t *testing.T, code int, v any) {
	t.Helper()
	if r.code != code {
		t.Fatalf("status %d, want %d; body %s", r.code, code, r.body)
	}
	if ct := r.hdr.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type %q; body %s", ct, r.body)
	}
	if v != nil {
		if err := json.Unmarshal(r.body, v); err != nil {
			t.Fatalf("decode %s: %v", r.body, err)
		}
	}
}

// wantError checks a JSON error answer and returns its message.
func (r resp) wantError(t *testing.T, code int) string {
	t.Helper()
	var e map[string]any
	r.want(t, code, &e)
	msg, ok := e["error"].(string)
	if !ok || msg == "" {
		t.Fatalf("no error message in %s", r.body)
	}
	return msg
}

// device is a raw protocol client, as a phone would be.
type device struct {
	t  *testing.T
	c  net.Conn
	r  *wire.Reader
	mu sync.Mutex
}

func dial(t *testing.T, s *edge.Server) *device {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.Addr().String(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &device{t: t, c: c, r: wire.NewReader(c, wire.BigEndian, 0)}
}

// login dials s and logs in as uid.
func login(t *testing.T, s *edge.Server, uid string) *device {
	t.Helper()
	d := dial(t, s)
	d.send(wire.URIAuth, "uid:"+uid)
	d.expect(wire.URIAuthSuccess)
	return d
}

func (d *device) send(uri, body string) {
	d.t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.c.Write(wire.AppendFrame(nil, wire.BigEndian, &wire.Message{URI: uri, Body: body})); err != nil {
		d.t.Fatalf("send %s: %v", uri, err)
	}
}

func (d *device) expect(uri string) wire.Message {
	d.t.Helper()
	_ = d.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var m wire.Message
	if err := d.r.ReadMessage(&m); err != nil {
		d.t.Fatalf("waiting for %s: %v", uri, err)
	}
	if m.URI != uri {
		d.t.Fatalf("got %+v, want uri %s", m, uri)
	}
	return m
}

// waitFor polls cond every 5 ms until it holds or d passes.
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

// waitConns waits until the table reports conns for every edge given.
func (st *stack) waitConns(want map[*edge.Server]int) {
	st.t.Helper()
	waitFor(st.t, 5*time.Second, "edge stats", func() bool {
		got := map[string]int{}
		for _, e := range st.edges.List() {
			got[e.ID] = e.Conns
		}
		for s, n := range want {
			if c, ok := got[s.ID()]; !ok || c != n {
				return false
			}
		}
		return true
	})
}

// fakeClock is a settable clock for Edges.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
