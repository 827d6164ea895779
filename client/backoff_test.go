package client

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/plexbus/plex/wire"
)

func TestBackoffDelay(t *testing.T) {
	def := Backoff{}
	def.setDefaults()
	tests := map[string]struct {
		b    Backoff
		n    int
		u    float64
		want time.Duration
	}{
		"first, no jitter drawn":  {b: def, n: 0, u: 0, want: time.Second},
		"first, full jitter":      {b: def, n: 0, u: 1, want: 700 * time.Millisecond},
		"second":                  {b: def, n: 1, u: 0, want: 1800 * time.Millisecond},
		"third, half jitter":      {b: def, n: 2, u: 0.5, want: time.Duration(float64(3240*time.Millisecond) * 0.85)},
		"capped":                  {b: def, n: 20, u: 0, want: 5 * time.Minute},
		"capped, jittered below":  {b: def, n: 20, u: 1, want: 210 * time.Second},
		"overflowing power":       {b: def, n: 100000, u: 0, want: 5 * time.Minute},
		"factor 1 is constant":    {b: Backoff{Base: time.Second, Factor: 1, Max: time.Hour}, n: 50, want: time.Second},
		"jitter zero ignores u":   {b: Backoff{Base: time.Second, Factor: 2, Max: time.Hour}, n: 3, u: 0.9, want: 8 * time.Second},
		"max equal to base":       {b: Backoff{Base: time.Second, Factor: 2, Max: time.Second}, n: 5, want: time.Second},
		"sub-millisecond in test": {b: Backoff{Base: 10 * time.Millisecond, Factor: 2, Max: 40 * time.Millisecond}, n: 1, want: 20 * time.Millisecond},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if got := tt.b.delay(tt.n, tt.u); got != tt.want {
				t.Fatalf("delay(%d, %g) = %s, want %s", tt.n, tt.u, got, tt.want)
			}
		})
	}
}

func TestBackoffDefaults(t *testing.T) {
	var b Backoff
	b.setDefaults()
	if b != (Backoff{Base: time.Second, Factor: 1.8, Jitter: 0.3, Max: 5 * time.Minute}) {
		t.Fatalf("defaults %+v", b)
	}
	nj := Backoff{Jitter: -1}
	nj.setDefaults()
	if nj.Jitter != 0 {
		t.Fatalf("negative jitter became %g, want none", nj.Jitter)
	}
}

func TestBackoffMerge(t *testing.T) {
	base := Backoff{Base: time.Second, Factor: 1.8, Jitter: 0.3, Max: time.Minute}
	f := func(v float64) *float64 { return &v }
	tests := map[string]struct {
		h    *hostBackoff
		want Backoff
	}{
		"none":        {h: nil, want: base},
		"empty":       {h: &hostBackoff{}, want: base},
		"all":         {h: &hostBackoff{Base: f(2), Factor: f(3), Jitter: f(0), Max: f(600)}, want: Backoff{2 * time.Second, 3, 0, 10 * time.Minute}},
		"partial":     {h: &hostBackoff{Max: f(30.5)}, want: Backoff{time.Second, 1.8, 0.3, 30500 * time.Millisecond}},
		"bad values":  {h: &hostBackoff{Base: f(-1), Factor: f(0.5), Jitter: f(7)}, want: base},
		"max < base":  {h: &hostBackoff{Base: f(120)}, want: base},
		"huge capped": {h: &hostBackoff{Max: f(1e300)}, want: Backoff{time.Second, 1.8, 0.3, 24 * time.Hour}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if got := base.merge(tt.h); got != tt.want {
				t.Fatalf("merge = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// seq returns the values in turn, then repeats the last.
func seq(vs ...float64) func() float64 {
	var mu sync.Mutex
	return func() float64 {
		mu.Lock()
		defer mu.Unlock()
		v := vs[0]
		if len(vs) > 1 {
			vs = vs[1:]
		}
		return v
	}
}

var errDial = errors.New("network unreachable")

// TestRunBackoffGrowsWithJitter drives Run's real loop in a synctest
// bubble: every dial fails, and the time between attempts must be exactly
// the jittered, growing, capped delay that was announced.
func TestRunBackoffGrowsWithJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var attempts []time.Time
		var infos []DisconnectInfo
		cfg := Config{
			Addr:    "edge.invalid:9578",
			Auth:    "uid:1",
			Backoff: Backoff{Base: time.Second, Factor: 2, Jitter: 0.5, Max: 10 * time.Second},
			DialContext: func(context.Context, string, string) (net.Conn, error) {
				attempts = append(attempts, time.Now())
				return nil, errDial
			},
		}
		var c *Client
		cfg.OnConnectFailed = func(i DisconnectInfo) {
			infos = append(infos, i)
			if len(infos) == 8 {
				c.Close() // from a callback: returns without waiting
			}
		}
		var err error
		if c, err = New(cfg); err != nil {
			t.Fatal(err)
		}
		us := []float64{0, 1, 0.5, 0.25, 0, 0.9, 0.1, 0}
		c.rand = seq(us...)
		if err := c.Run(context.Background()); err != nil {
			t.Fatalf("Run = %v", err)
		}
		if len(attempts) != 8 {
			t.Fatalf("%d attempts, want 8", len(attempts))
		}
		for i, info := range infos {
			if !errors.Is(info.Err, errDial) || !info.Reconnect {
				t.Fatalf("attempt %d: %+v", i, info)
			}
			d := min(time.Second<<i, 10*time.Second)
			want := time.Duration(float64(d) * (1 - 0.5*us[i]))
			if info.Delay != want {
				t.Fatalf("attempt %d: delay %s, want %s", i, info.Delay, want)
			}
			if i+1 < len(attempts) {
				if gap := attempts[i+1].Sub(attempts[i]); gap != want {
					t.Fatalf("attempt %d: next one %s later, want %s", i, gap, want)
				}
			}
		}
	})
}

// TestRunBackoffRandomJitter uses the real random source: every delay lies
// in its jitter range and they are not all the same.
func TestRunBackoffRandomJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var delays []time.Duration
		cfg := Config{
			Addr:        "edge.invalid:9578",
			Auth:        "x",
			Backoff:     Backoff{Base: time.Second, Factor: 1, Jitter: 0.3, Max: time.Second},
			DialContext: func(context.Context, string, string) (net.Conn, error) { return nil, errDial },
		}
		ctx, cancel := context.WithCancel(context.Background())
		cfg.OnConnectFailed = func(i DisconnectInfo) {
			delays = append(delays, i.Delay)
			if len(delays) == 20 {
				cancel()
			}
		}
		c, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Run(ctx); err != nil {
			t.Fatalf("Run = %v", err)
		}
		distinct := map[time.Duration]bool{}
		for _, d := range delays {
			if d < 700*time.Millisecond || d > time.Second {
				t.Fatalf("delay %s outside [0.7s, 1s]", d)
			}
			distinct[d] = true
		}
		if len(distinct) < 10 {
			t.Fatalf("only %d distinct delays in 20: not jittered", len(distinct))
		}
	})
}

// pipeEdge is a scripted fake edge over net.Pipe, usable in a synctest
// bubble: each dial runs the next script step.
type pipeEdge struct {
	t     *testing.T
	wg    sync.WaitGroup
	steps []func(c net.Conn, r *wire.Reader) // nil step = dial error
	n     int
}

func (p *pipeEdge) dial(context.Context, string, string) (net.Conn, error) {
	i := min(p.n, len(p.steps)-1)
	p.n++
	step := p.steps[i]
	if step == nil {
		return nil, errDial
	}
	cl, sv := net.Pipe()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer sv.Close()
		step(sv, wire.NewReader(sv, wire.BigEndian, 0))
	}()
	return cl, nil
}

// serveFor logs the client in, answers heartbeats for d, then sends last
// (a URI, or "" to just hang up). Keep d off the client's heartbeat ticks:
// a net.Pipe write blocks until read, so a heartbeat sent as the peer
// stops reading would race the last frame.
func serveFor(d time.Duration, last string) func(net.Conn, *wire.Reader) {
	return func(c net.Conn, r *wire.Reader) {
		var m wire.Message
		if r.ReadMessage(&m) != nil || send(c, wire.URIAuthSuccess, `{"uid":"p","heartbeat":60}`) != nil {
			return
		}
		end := time.Now().Add(d)
		for {
			_ = c.SetReadDeadline(end)
			if err := r.ReadMessage(&m); err != nil {
				break
			}
			if m.URI == wire.URIHeartbeat && send(c, wire.URIHeartbeat, "") != nil {
				return
			}
		}
		if last != "" {
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_ = send(c, last, "")
		}
	}
}

// silent logs the client in and then only reads.
func silent(c net.Conn, r *wire.Reader) {
	var m wire.Message
	if r.ReadMessage(&m) != nil || send(c, wire.URIAuthSuccess, `{"uid":"p"}`) != nil {
		return
	}
	drain(r, nil)
}

type runResult struct {
	events []event
	err    error
}

// runPipe runs a client against script until stop says so, in a bubble.
func runPipe(t *testing.T, cfg Config, script []func(net.Conn, *wire.Reader), stop func(events []event) bool) runResult {
	pe := &pipeEdge{t: t, steps: script}
	cfg.Addr, cfg.Auth, cfg.DialContext = "edge.invalid:9578", "uid:p", pe.dial
	var res runResult
	var c *Client
	rec := func(e event) {
		e.at = time.Now()
		res.events = append(res.events, e)
		if stop(res.events) {
			c.Close()
		}
	}
	cfg.OnConnect = func(ci ConnectInfo) { rec(event{kind: "connect", conn: ci}) }
	cfg.OnDisconnect = func(i DisconnectInfo) { rec(event{kind: "disconnect", info: i}) }
	cfg.OnConnectFailed = func(i DisconnectInfo) { rec(event{kind: "connect_failed", info: i}) }
	cfg.OnAuthFailed = func(i DisconnectInfo) { rec(event{kind: "auth_failed", info: i}) }
	var err error
	if c, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	c.rand = seq(0) // no jitter drawn: exact delays
	res.err = c.Run(context.Background())
	pe.wg.Wait()
	return res
}

func delays(events []event) []time.Duration {
	var out []time.Duration
	for _, e := range events {
		if e.kind != "connect" {
			out = append(out, e.info.Delay)
		}
	}
	return out
}

func eqDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRunBackoffReset(t *testing.T) {
	const s = time.Second
	bo := Backoff{Base: s, Factor: 2, Jitter: 0.3, Max: time.Minute}
	tests := map[string]struct {
		script []func(net.Conn, *wire.Reader)
		want   []time.Duration // Delay of each failure or disconnect, in order
	}{
		"a connection that stayed up resets the backoff": {
			script: []func(net.Conn, *wire.Reader){nil, nil, serveFor(65*time.Second, ""), nil},
			want:   []time.Duration{1 * s, 2 * s, 1 * s, 2 * s, 4 * s},
		},
		"a connection dropped at once does not": {
			script: []func(net.Conn, *wire.Reader){nil, nil, serveFor(0, ""), nil},
			want:   []time.Duration{1 * s, 2 * s, 4 * s, 8 * s, 16 * s},
		},
		"reconnect from a draining edge: at once, no penalty": {
			script: []func(net.Conn, *wire.Reader){nil, serveFor(65*time.Second, wire.URIReconnect), nil},
			want:   []time.Duration{1 * s, 0, 1 * s, 2 * s},
		},
		"reconnect right after login is backed off": {
			script: []func(net.Conn, *wire.Reader){nil, serveFor(0, wire.URIReconnect), nil},
			want:   []time.Duration{1 * s, 2 * s, 4 * s, 8 * s},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := Config{Heartbeat: 10 * s, Backoff: bo}
				res := runPipe(t, cfg, tt.script, func(ev []event) bool { return len(delays(ev)) == len(tt.want) })
				if res.err != nil {
					t.Fatalf("Run = %v", res.err)
				}
				if got := delays(res.events); !eqDurations(got, tt.want) {
					t.Fatalf("delays %v, want %v", got, tt.want)
				}
			})
		})
	}
}

// TestHeartbeatTimeoutExact measures, in fake time, when a silent edge is
// declared dead: two intervals after the last frame.
func TestHeartbeatTimeoutExact(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := Config{Heartbeat: 30 * time.Second, Reconnect: ReconnectNever}
		res := runPipe(t, cfg, []func(net.Conn, *wire.Reader){silent}, func([]event) bool { return false })
		if !errors.Is(res.err, ErrHeartbeatTimeout) {
			t.Fatalf("Run = %v", res.err)
		}
		if len(res.events) != 2 || res.events[0].kind != "connect" || res.events[1].kind != "disconnect" {
			t.Fatalf("events %+v", res.events)
		}
		if el := res.events[1].at.Sub(res.events[0].at); el != time.Minute {
			t.Fatalf("declared dead after %s, want exactly 2 intervals (1m)", el)
		}
	})
}

// TestHeartbeatsKeepAlive: an edge that answers heartbeats keeps the
// connection up for many intervals.
func TestHeartbeatsKeepAlive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := Config{Heartbeat: 30 * time.Second, Reconnect: ReconnectNever}
		res := runPipe(t, cfg, []func(net.Conn, *wire.Reader){serveFor(time.Hour, "")}, func([]event) bool { return false })
		if !errors.Is(res.err, ErrConnectionLost) {
			t.Fatalf("Run = %v, want ErrConnectionLost when the edge hangs up", res.err)
		}
		if el := res.events[1].at.Sub(res.events[0].at); el != time.Hour {
			t.Fatalf("connection lasted %s, want the edge's hour", el)
		}
	})
}
