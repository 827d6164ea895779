package client

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plexbus/plex/edge"
	"github.com/plexbus/plex/wire"
)

func TestReceivePushes(t *testing.T) {
	st := newStack(t)
	e := st.edge(edge.Config{})
	c := start(t, fastConfig(e.addr(), "uid:42"))

	ci := c.rec.wait("connect").conn
	if ci.UID != "42" || ci.Addr != e.addr() || ci.Heartbeat != 100*time.Millisecond {
		t.Fatalf("connect info %+v", ci)
	}
	if got := c.UID(); got != "42" {
		t.Fatalf("UID() = %q", got)
	}
	st.push("42", "/notify", 7, "first")
	st.push("42", "", 0, `{"json":"body"}`)
	if m := c.rec.next(); m.kind != "message" || m.msg != (Message{Seq: 7, URI: "/notify", Body: "first"}) {
		t.Fatalf("first event %+v", m)
	}
	if m := c.rec.next(); m.kind != "message" || m.msg.URI != wire.URIPush || m.msg.Body != `{"json":"body"}` {
		t.Fatalf("second event %+v", m)
	}
	if err := c.Send(context.Background(), "/app/ping", "hi"); err != nil {
		t.Fatalf("Send: %v", err)
	}
	// Several heartbeat intervals: the heartbeats are answered, nothing drops.
	c.rec.quiet(400 * time.Millisecond)
	st.push("42", "/later", 0, "still here")
	if m := c.rec.next(); m.kind != "message" || m.msg.Body != "still here" {
		t.Fatalf("after heartbeats: %+v", m)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.result(t); err != nil {
		t.Fatalf("Run after Close = %v, want nil", err)
	}
	if c.UID() != "" {
		t.Fatal("UID() after Close")
	}
}

func TestReconnectAfterEdgeRestart(t *testing.T) {
	st := newStack(t)
	e1 := st.edge(edge.Config{})
	addr := e1.addr()
	c := start(t, fastConfig(addr, "uid:r"))
	c.rec.wait("connect")
	st.push("r", "/a", 1, "one")
	if m := c.rec.wait("message"); m.msg.Body != "one" {
		t.Fatalf("got %+v", m)
	}

	c.rec.quiet(150 * time.Millisecond) // up for more than a heartbeat interval
	e1.stop()
	d := c.rec.wait("disconnect").info
	if !errors.Is(d.Err, ErrServerReconnect) || !d.Reconnect {
		t.Fatalf("disconnect %+v, want ErrServerReconnect and a reconnect", d)
	}
	if d.Delay > 20*time.Millisecond*3/10 {
		t.Fatalf("delay after /reconnect %s, want at most Base·Jitter", d.Delay)
	}
	// The edge is down for a while: attempts fail and back off.
	f := c.rec.wait("connect_failed").info
	if !f.Reconnect || f.Delay <= 0 {
		t.Fatalf("connect failed %+v", f)
	}

	st.edge(edge.Config{Addr: addr})
	if ci := c.rec.wait("connect").conn; ci.UID != "r" || ci.Addr != addr {
		t.Fatalf("reconnect info %+v", ci)
	}
	st.push("r", "/a", 2, "two")
	if m := c.rec.wait("message"); m.msg.Body != "two" {
		t.Fatalf("got %+v", m)
	}
}

func TestHostURLFollowsLiveEdge(t *testing.T) {
	st := newStack(t)
	a := st.edge(edge.Config{})
	b := st.edge(edge.Config{})
	hs := newHostServer(t)
	hs.set(a.addr())

	cfg := fastConfig("", "uid:h")
	cfg.HostURL = hs.URL + "/plex/v1/host"
	c := start(t, cfg)
	if ci := c.rec.wait("connect").conn; ci.Addr != a.addr() {
		t.Fatalf("connected to %s, want edge a %s", ci.Addr, a.addr())
	}

	hs.set(b.addr())
	a.stop()
	if d := c.rec.wait("disconnect").info; !errors.Is(d.Err, ErrServerReconnect) {
		t.Fatalf("disconnect %+v", d)
	}
	if ci := c.rec.wait("connect").conn; ci.Addr != b.addr() {
		t.Fatalf("reconnected to %s, want edge b %s", ci.Addr, b.addr())
	}
	st.push("h", "/x", 0, "via b")
	if m := c.rec.wait("message"); m.msg.Body != "via b" {
		t.Fatalf("got %+v", m)
	}
	if n := hs.asked.Load(); n < 2 {
		t.Fatalf("host URL asked %d times, want one per connection", n)
	}
}

func TestHostDiscovery(t *testing.T) {
	t.Run("reply overrides heartbeat and backoff", func(t *testing.T) {
		// An old edge: /auth/success without a body, so the host reply's
		// heartbeat applies.
		p := newPeer(t, func(n int, c net.Conn, r *wire.Reader) {
			expectLogin(t, r)
			if send(c, wire.URIAuthSuccess, "") == nil {
				drain(r, nil)
			}
		})
		hs := newHostServer(t)
		hs.set(p.addr())
		hs.extra.Store(ptr(`"heartbeat":0.25,"backoff":{"base":0.01,"factor":2,"jitter":0,"max":0.04}`))
		cfg := fastConfig("", "uid:x")
		cfg.HostURL = hs.URL
		cfg.Heartbeat = 0
		cfg.Backoff = Backoff{Base: time.Hour, Max: time.Hour} // the host's values win
		c := start(t, cfg)
		if ci := c.rec.wait("connect").conn; ci.Heartbeat != 250*time.Millisecond || ci.UID != "" {
			t.Fatalf("connect info %+v", ci)
		}
		hs.set(refusedAddr(t))
		p.ln.Close()
		p.mu.Lock()
		for _, pc := range p.conns {
			pc.Close()
		}
		p.mu.Unlock()
		if d := c.rec.wait("disconnect").info; d.Delay != 10*time.Millisecond {
			t.Fatalf("first delay %s, want the host's base 10ms", d.Delay)
		}
		for _, want := range []time.Duration{20, 40, 40} {
			if f := c.rec.wait("connect_failed").info; f.Delay != want*time.Millisecond {
				t.Fatalf("delay %s, want %dms", f.Delay, want)
			}
		}
	})

	t.Run("503 falls back to Addr", func(t *testing.T) {
		st := newStack(t)
		e := st.edge(edge.Config{})
		hs := newHostServer(t) // no host: 503
		cfg := fastConfig(e.addr(), "uid:f")
		cfg.HostURL = hs.URL
		c := start(t, cfg)
		if ci := c.rec.wait("connect").conn; ci.Addr != e.addr() {
			t.Fatalf("connect info %+v", ci)
		}
	})

	t.Run("503 without fallback", func(t *testing.T) {
		hs := newHostServer(t)
		cfg := fastConfig("", "uid:f")
		cfg.HostURL = hs.URL
		cfg.Reconnect = ReconnectNever
		c := start(t, cfg)
		f := c.rec.wait("connect_failed").info
		if !errors.Is(f.Err, ErrNoHost) || !strings.Contains(f.Err.Error(), "no edge available") || f.Reconnect {
			t.Fatalf("connect failed %+v", f)
		}
		if err := c.result(t); !errors.Is(err, ErrNoHost) {
			t.Fatalf("Run = %v", err)
		}
	})
}

func ptr[T any](v T) *T { return &v }

func TestHeartbeatTimeout(t *testing.T) {
	var heartbeats atomic.Int32
	// The peer logs the client in and then goes silent: it reads, never writes.
	p := newPeer(t, func(n int, c net.Conn, r *wire.Reader) {
		expectLogin(t, r)
		if send(c, wire.URIAuthSuccess, `{"uid":"s","heartbeat":60}`) == nil {
			drain(r, &heartbeats)
		}
	})
	cfg := fastConfig(p.addr(), "uid:s")
	cfg.Heartbeat = 50 * time.Millisecond
	c := start(t, cfg)
	up := c.rec.wait("connect")
	if up.conn.Heartbeat != 50*time.Millisecond {
		t.Fatalf("heartbeat %s: Config.Heartbeat must win over the server's", up.conn.Heartbeat)
	}
	d := c.rec.wait("disconnect")
	if !errors.Is(d.info.Err, ErrHeartbeatTimeout) || !d.info.Reconnect {
		t.Fatalf("disconnect %+v", d.info)
	}
	if el := d.at.Sub(up.at); el < 100*time.Millisecond || el > 2*time.Second {
		t.Fatalf("dead connection detected after %s, want about two intervals (100ms)", el)
	}
	if heartbeats.Load() == 0 {
		t.Fatal("the client sent no heartbeat")
	}
	c.rec.wait("connect") // and it comes back on its own
}

func TestAuthFailureStops(t *testing.T) {
	tests := map[string]struct {
		policy    ReconnectPolicy
		auth      string
		authFunc  func(n int) string // n = call number from 1
		wantCalls int32
	}{
		"never":                       {policy: ReconnectNever, auth: "bad"},
		"on-failure":                  {policy: ReconnectOnFailure, auth: "bad"},
		"always, static auth":         {policy: ReconnectAlways, auth: "bad"},
		"always, func with same data": {policy: ReconnectAlways, authFunc: func(int) string { return "bad" }, wantCalls: 2},
		"on-failure, fresh data":      {policy: ReconnectOnFailure, authFunc: func(n int) string { return "bad" + string(rune('0'+n)) }, wantCalls: 1},
		"never, fresh data":           {policy: ReconnectNever, authFunc: func(n int) string { return "bad" + string(rune('0'+n)) }, wantCalls: 1},
	}
	st := newStack(t)
	e := st.edge(edge.Config{})
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var dials, calls atomic.Int32
			cfg := fastConfig(e.addr(), tt.auth)
			cfg.Reconnect = tt.policy
			cfg.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				dials.Add(1)
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			}
			if tt.authFunc != nil {
				cfg.AuthFunc = func(context.Context) (string, error) { return tt.authFunc(int(calls.Add(1))), nil }
			}
			c := start(t, cfg)
			f := c.rec.wait("auth_failed").info
			if ae := mustAuthError(t, f.Err); ae.Reason != "bad token" || ae.Temporary || f.Reconnect {
				t.Fatalf("auth failed %+v (%+v)", f, ae)
			}
			err := c.result(t)
			if !errors.Is(err, ErrAuthFailed) {
				t.Fatalf("Run = %v, want ErrAuthFailed", err)
			}
			if n := dials.Load(); n != 1 {
				t.Fatalf("%d dials, want 1", n)
			}
			if n := calls.Load(); n != tt.wantCalls {
				t.Fatalf("AuthFunc called %d times, want %d", n, tt.wantCalls)
			}
		})
	}
}

func TestAuthFuncFreshDataRetries(t *testing.T) {
	st := newStack(t)
	e := st.edge(edge.Config{})
	var calls atomic.Int32
	cfg := fastConfig(e.addr(), "")
	cfg.AuthFunc = func(context.Context) (string, error) {
		if calls.Add(1) == 1 {
			return "expired", nil
		}
		return "uid:7", nil
	}
	c := start(t, cfg)
	f := c.rec.wait("auth_failed").info
	if !errors.Is(f.Err, ErrAuthFailed) || !f.Reconnect || f.Delay <= 0 {
		t.Fatalf("auth failed %+v: want a retry after a backoff delay", f)
	}
	if ci := c.rec.wait("connect").conn; ci.UID != "7" {
		t.Fatalf("connect info %+v", ci)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("AuthFunc called %d times, want 2 (fresh data is used, not fetched again)", n)
	}
}

func TestAuthFuncErrors(t *testing.T) {
	t.Run("temporary error is retried", func(t *testing.T) {
		st := newStack(t)
		e := st.edge(edge.Config{})
		var calls atomic.Int32
		cfg := fastConfig(e.addr(), "")
		cfg.AuthFunc = func(context.Context) (string, error) {
			if calls.Add(1) == 1 {
				return "", errors.New("token service unreachable")
			}
			return "uid:t", nil
		}
		c := start(t, cfg)
		if f := c.rec.wait("connect_failed").info; !f.Reconnect || !strings.Contains(f.Err.Error(), "unreachable") {
			t.Fatalf("connect failed %+v", f)
		}
		c.rec.wait("connect")
	})
	t.Run("ErrAuthFailed stops", func(t *testing.T) {
		cfg := fastConfig(refusedAddr(t), "")
		cfg.AuthFunc = func(context.Context) (string, error) { return "", ErrAuthFailed }
		c := start(t, cfg)
		if f := c.rec.wait("auth_failed").info; f.Reconnect {
			t.Fatalf("auth failed %+v", f)
		}
		if err := c.result(t); !errors.Is(err, ErrAuthFailed) {
			t.Fatalf("Run = %v", err)
		}
	})
}

// Two devices of one user under the kick-old policy: the older is kicked
// and stops, instead of the two kicking each other forever.
func TestKickedStops(t *testing.T) {
	st := newStack(t)
	e := st.edge(edge.Config{DuplicateLogin: edge.DuplicateKickOld})
	old := start(t, fastConfig(e.addr(), "uid:9"))
	old.rec.wait("connect")
	cur := start(t, fastConfig(e.addr(), "uid:9"))
	cur.rec.wait("connect")

	d := old.rec.next()
	if d.kind != "disconnect" || d.info.Reconnect {
		t.Fatalf("old device: %+v, want a final disconnect", d)
	}
	if ae := mustAuthError(t, d.info.Err); !ae.Kicked() {
		t.Fatalf("reason %q", ae.Reason)
	}
	if f := old.rec.next(); f.kind != "auth_failed" || f.info.Err != d.info.Err {
		t.Fatalf("after the disconnect: %+v, want auth_failed", f)
	}
	if err := old.result(t); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("old Run = %v", err)
	}
	cur.rec.quiet(300 * time.Millisecond)
	st.push("9", "", 0, "to the new one")
	if m := cur.rec.wait("message"); m.msg.Body != "to the new one" {
		t.Fatalf("got %+v", m)
	}
}

func TestTemporaryRefusalRetries(t *testing.T) {
	p := newPeer(t, func(n int, c net.Conn, r *wire.Reader) {
		expectLogin(t, r)
		if n == 1 {
			_ = send(c, wire.URIAuthFailed, "server busy, retry later")
			return
		}
		if send(c, wire.URIAuthSuccess, `{"uid":"b"}`) == nil {
			drain(r, nil)
		}
	})
	cfg := fastConfig(p.addr(), "uid:b")
	cfg.Reconnect = ReconnectOnFailure
	c := start(t, cfg)
	f := c.rec.wait("connect_failed").info
	if !errors.Is(f.Err, ErrUnavailable) || errors.Is(f.Err, ErrAuthFailed) || !f.Reconnect || f.Delay <= 0 {
		t.Fatalf("connect failed %+v", f)
	}
	if ci := c.rec.wait("connect").conn; ci.UID != "b" {
		t.Fatalf("connect info %+v", ci)
	}
}

func TestNeverStopsAfterDisconnect(t *testing.T) {
	st := newStack(t)
	e := st.edge(edge.Config{})
	cfg := fastConfig(e.addr(), "uid:n")
	cfg.Reconnect = ReconnectNever
	c := start(t, cfg)
	c.rec.wait("connect")
	e.stop()
	if d := c.rec.wait("disconnect").info; d.Reconnect {
		t.Fatalf("disconnect %+v", d)
	}
	if err := c.result(t); !errors.Is(err, ErrServerReconnect) {
		t.Fatalf("Run = %v", err)
	}
}

func TestProtocolError(t *testing.T) {
	p := newPeer(t, func(n int, c net.Conn, r *wire.Reader) {
		expectLogin(t, r)
		if send(c, wire.URIAuthSuccess, `{"uid":"p"}`) != nil {
			return
		}
		_, _ = c.Write([]byte{0x00, 0x10, 0x00, 0x00}) // a 1 MiB frame announced
		drain(r, nil)
	})
	cfg := fastConfig(p.addr(), "uid:p")
	cfg.Reconnect = ReconnectNever
	c := start(t, cfg)
	c.rec.wait("connect")
	if d := c.rec.wait("disconnect").info; !errors.Is(d.Err, ErrProtocol) || !errors.Is(d.Err, wire.ErrFrameTooLarge) {
		t.Fatalf("disconnect %+v", d)
	}
}

func TestLittleEndian(t *testing.T) {
	st := newStack(t)
	e := st.edge(edge.Config{ByteOrder: wire.LittleEndian})
	cfg := fastConfig(e.addr(), "uid:le")
	cfg.ByteOrder = wire.LittleEndian
	c := start(t, cfg)
	c.rec.wait("connect")
	st.push("le", "", 0, "little")
	if m := c.rec.wait("message"); m.msg.Body != "little" {
		t.Fatalf("got %+v", m)
	}
}

func TestConnectTimeout(t *testing.T) {
	// A peer that accepts and never answers the login.
	p := newPeer(t, func(n int, c net.Conn, r *wire.Reader) { drain(r, nil) })
	cfg := fastConfig(p.addr(), "uid:t")
	cfg.ConnectTimeout = 100 * time.Millisecond
	cfg.Reconnect = ReconnectNever
	c := start(t, cfg)
	f := c.rec.wait("connect_failed").info
	if !errors.Is(f.Err, context.DeadlineExceeded) {
		t.Fatalf("connect failed %+v", f)
	}
	if err := c.result(t); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v", err)
	}
}

func TestSend(t *testing.T) {
	c, err := New(fastConfig("127.0.0.1:1", "x"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Send(ctx, "/app", "x"); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Send without connection = %v", err)
	}
	for _, uri := range []string{"", wire.URIAuth, wire.URIHeartbeat, wire.URIReconnect} {
		if err := c.Send(ctx, uri, "x"); err == nil || !strings.Contains(err.Error(), "reserved") {
			t.Fatalf("Send(%q) = %v, want reserved", uri, err)
		}
	}
	if err := c.Send(ctx, "/app", strings.Repeat("x", wire.DefaultMaxFrameSize)); !errors.Is(err, wire.ErrFrameTooLarge) {
		t.Fatalf("Send too large = %v", err)
	}
}

func TestSendFromCallbackAndBusyHandler(t *testing.T) {
	// A handler slower than the heartbeat interval must not be taken for a
	// dead connection: the read deadline is off while Run is busy.
	st := newStack(t)
	e := st.edge(edge.Config{})
	cfg := fastConfig(e.addr(), "uid:slow")
	cfg.Heartbeat = 30 * time.Millisecond
	sent := make(chan error, 10)
	var c *Client
	got := make(chan Message, 10)
	cfg.OnMessage = func(m Message) {
		time.Sleep(150 * time.Millisecond)
		sent <- c.Send(context.Background(), "/app/ack", m.Body)
		got <- m
	}
	connected := make(chan struct{}, 10)
	disconnected := make(chan DisconnectInfo, 10)
	cfg.OnConnect = func(ConnectInfo) { connected <- struct{}{} }
	cfg.OnDisconnect = func(d DisconnectInfo) { disconnected <- d }
	var err error
	c, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	defer func() {
		c.Close()
		<-done
	}()
	<-connected
	for i := range 3 {
		st.push("slow", "", 0, string(rune('a'+i)))
	}
	for range 3 {
		select {
		case <-got:
		case d := <-disconnected:
			t.Fatalf("disconnected while the handler was busy: %v", d.Err)
		case <-time.After(5 * time.Second):
			t.Fatal("message not delivered")
		}
		if err := <-sent; err != nil {
			t.Fatalf("Send from OnMessage: %v", err)
		}
	}
}

func TestCloseFromCallback(t *testing.T) {
	st := newStack(t)
	e := st.edge(edge.Config{})
	cfg := fastConfig(e.addr(), "uid:cc")
	var c *Client
	var calls atomic.Int32
	cfg.OnMessage = func(Message) {
		calls.Add(1)
		c.Close() // must not deadlock
	}
	connected := make(chan struct{})
	cfg.OnConnect = func(ConnectInfo) { close(connected) }
	cfg.OnDisconnect = func(DisconnectInfo) { t.Error("OnDisconnect after Close") }
	var err error
	if c, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	<-connected
	st.push("cc", "", 0, "1")
	st.push("cc", "", 0, "2")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after Close from a callback")
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("OnMessage called %d times, want 1", n)
	}
	c.Close() // idempotent
}

func TestNoCallbackAfterClose(t *testing.T) {
	st := newStack(t)
	e := st.edge(edge.Config{})
	cfg := fastConfig(e.addr(), "uid:flood")
	var closed atomic.Bool
	var n atomic.Int32
	connected := make(chan struct{}, 1)
	cb := func() {
		if closed.Load() {
			t.Error("callback after Close returned")
		}
	}
	cfg.OnMessage = func(Message) { n.Add(1); cb() }
	cfg.OnConnect = func(ConnectInfo) { cb(); connected <- struct{}{} }
	cfg.OnDisconnect = func(DisconnectInfo) { cb() }
	cfg.OnConnectFailed = func(DisconnectInfo) { cb() }
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	<-connected
	stop := make(chan struct{})
	pushed := make(chan struct{})
	go func() {
		defer close(pushed)
		for {
			select {
			case <-stop:
				return
			default:
				st.push("flood", "", 0, "x")
			}
		}
	}()
	for n.Load() < 50 {
		time.Sleep(time.Millisecond)
	}
	c.Close()
	closed.Store(true)
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	time.Sleep(50 * time.Millisecond)
	close(stop)
	<-pushed
}

func TestRunLifecycle(t *testing.T) {
	c, err := New(fastConfig("127.0.0.1:1", "x"))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := c.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close = %v", err)
	}

	cfg := fastConfig(refusedAddr(t), "x")
	cfg.Backoff.Base, cfg.Backoff.Max = time.Hour, time.Hour
	c2, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c2.Run(ctx) }()
	for c2.runG.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	if err := c2.Run(ctx); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("second Run = %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel = %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	ok := Config{Addr: "127.0.0.1:9578", Auth: "t"}
	tests := map[string]struct {
		mod  func(*Config)
		want string // "" = valid
	}{
		"minimal":          {mod: func(*Config) {}},
		"host url only":    {mod: func(c *Config) { c.Addr, c.HostURL = "", "http://h/plex/v1/host" }},
		"auth func":        {mod: func(c *Config) { c.Auth, c.AuthFunc = "", func(context.Context) (string, error) { return "", nil } }},
		"no jitter":        {mod: func(c *Config) { c.Backoff.Jitter = -1 }},
		"no address":       {mod: func(c *Config) { c.Addr = "" }, want: "Addr or HostURL"},
		"bad address":      {mod: func(c *Config) { c.Addr = "nohostport" }, want: "Addr"},
		"bad host url":     {mod: func(c *Config) { c.HostURL = "ftp://x" }, want: "HostURL"},
		"no auth":          {mod: func(c *Config) { c.Auth = "" }, want: "Auth or AuthFunc"},
		"both auths":       {mod: func(c *Config) { c.AuthFunc = func(context.Context) (string, error) { return "", nil } }, want: "not both"},
		"negative timeout": {mod: func(c *Config) { c.ConnectTimeout = -1 }, want: "negative"},
		"bad policy":       {mod: func(c *Config) { c.Reconnect = 9 }, want: "Reconnect"},
		"bad order":        {mod: func(c *Config) { c.ByteOrder = 7 }, want: "ByteOrder"},
		"tiny frames":      {mod: func(c *Config) { c.MaxFrameSize = 10 }, want: "MaxFrameSize"},
		"factor below 1":   {mod: func(c *Config) { c.Backoff.Factor = 0.5 }, want: "Factor"},
		"jitter above 1":   {mod: func(c *Config) { c.Backoff.Jitter = 2 }, want: "Jitter"},
		"max below base":   {mod: func(c *Config) { c.Backoff.Base, c.Backoff.Max = time.Minute, time.Second }, want: "Max"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := ok
			tt.mod(&cfg)
			_, err := New(cfg)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("New = %v, want an error about %s", err, tt.want)
			}
		})
	}
}

func TestParseReconnectPolicy(t *testing.T) {
	for in, want := range map[string]ReconnectPolicy{"": ReconnectAlways, "Always": ReconnectAlways, "on-failure": ReconnectOnFailure, "never": ReconnectNever} {
		got, err := ParseReconnectPolicy(in)
		if err != nil || got != want {
			t.Fatalf("ParseReconnectPolicy(%q) = %v, %v", in, got, err)
		}
		if p, _ := ParseReconnectPolicy(got.String()); p != got {
			t.Fatalf("%v does not round-trip", got)
		}
	}
	if _, err := ParseReconnectPolicy("sometimes"); err == nil {
		t.Fatal("accepted sometimes")
	}
}

func TestRefusalClassification(t *testing.T) {
	for reason, temp := range map[string]bool{
		"bad token":                   false,
		"kicked: logged in elsewhere": false,
		"already logged in":           false,
		"":                            false,
		"auth unavailable":            true,
		"auth timed out":              true,
		"auth timeout":                true,
		"server busy, retry later":    true,
		"server full":                 true,
	} {
		ae := refusal(reason)
		if ae.Temporary != temp || errors.Is(ae, ErrUnavailable) != temp || errors.Is(ae, ErrAuthFailed) == temp {
			t.Errorf("%q: %+v", reason, ae)
		}
	}
}
