package hostile

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plexbus/plex/edge"
	"github.com/plexbus/plex/wire"
)

// outcome is what the edge must do with a connection after its garbage.
type outcome int

const (
	closeNow     outcome = iota // closed within a moment, not by a timeout
	closeByTimer                // closed by the auth or heartbeat timeout
	survive                     // still served: a heartbeat is answered
	closed                      // closed one way or the other
)

func (o outcome) String() string {
	return [...]string{"close at once", "close at its timeout", "survive", "close"}[o]
}

// garbageCase is one kind of broken or hostile client.
type garbageCase struct {
	name  string
	login string // "": none; "user": uid login; "inner": inner push login
	gen   func(r *rand.Rand) []byte
	want  outcome
	// hangUp: the client closes its side after writing (truncated frames).
	hangUp bool
	// reset: the client resets the connection right away.
	reset bool
}

const (
	garbageAuthTimeout      = 2 * time.Second
	garbageHeartbeatTimeout = 2 * time.Second
	innerPassword           = "inner-secret"
)

func hdr(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }

func withHdr(p []byte) []byte { return append(hdr(uint32(len(p))), p...) }

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func deepJSON(prefix string, depth int, closeIt bool) []byte {
	b := []byte(prefix + `"x":`)
	b = append(b, bytes.Repeat([]byte("["), depth)...)
	if closeIt {
		b = append(b, bytes.Repeat([]byte("]"), depth)...)
		b = append(b, '}')
	}
	return b
}

// wideJSON is an object of about size bytes: many unknown keys.
func wideJSON(prefix string, size int) []byte {
	b := []byte(prefix)
	for i := 0; len(b) < size-20; i++ {
		b = append(b, `"k`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `":"vvvvvvvv",`...)
	}
	return append(b, `"end":1}`...)
}

var wrongTypes = []string{
	`{"seq":"1"}`, `{"uri":5}`, `{"body":{}}`, `{"seq":1.5}`, `{"seq":1e400}`, `{"seq":true}`,
	`null`, `[]`, `"str"`, `123`, `true`, `{"uri":["/auth/server"]}`, `{"uri":"/auth/server","body":7}`,
	`{"seq":99999999999999999999}`, `{"uri":"/heartbeat"`, `{"uri":"/heartbeat",}`, `{'uri':'x'}`,
	`{"uri":"\x"}`, `{"uri":"\ud800"`, "{\"uri\":\"a\x00b\"}", `{"seq":-}`, `{} {}`, `{"a":1}x`,
}

var garbageCases = []garbageCase{
	// Before login: every one must end in a close.
	{name: "random bytes", gen: func(r *rand.Rand) []byte { return randBytes(r, 1+r.IntN(2048)) }, want: closed},
	{name: "huge length prefix", gen: func(r *rand.Rand) []byte {
		return hdr(uint32(edge.DefaultAuthFrameSize + 1 + r.Int64N(1<<32-edge.DefaultAuthFrameSize-1)))
	}, want: closeNow},
	{name: "max length prefix", gen: func(*rand.Rand) []byte { return hdr(0xffffffff) }, want: closeNow},
	{name: "http request", gen: func(*rand.Rand) []byte { return []byte("GET /plex/v1/host HTTP/1.1\r\nHost: x\r\n\r\n") }, want: closeNow},
	{name: "tls client hello", gen: func(r *rand.Rand) []byte { return append([]byte{0x16, 0x03, 0x01, 0x02, 0x00}, randBytes(r, 512)...) }, want: closeNow},
	{name: "truncated login, hang up", gen: func(r *rand.Rand) []byte {
		f := frame(wire.URIAuth, "uid:cut")
		return f[:r.IntN(len(f))]
	}, hangUp: true, want: closeNow},
	{name: "truncated login, silence", gen: func(r *rand.Rand) []byte {
		f := frame(wire.URIAuth, "uid:cut")
		return f[:1+r.IntN(len(f)-1)]
	}, want: closeByTimer},
	{name: "not json", gen: func(r *rand.Rand) []byte {
		return withHdr([]byte("hello " + strconv.Itoa(r.IntN(1e6))))
	}, want: closeNow},
	{name: "wrong types", gen: func(r *rand.Rand) []byte { return withHdr([]byte(wrongTypes[r.IntN(len(wrongTypes))])) }, want: closeNow},
	{name: "invalid utf8 outside strings", gen: func(*rand.Rand) []byte { return withHdr([]byte("{\"uri\":\xff\xfe}")) }, want: closeNow},
	{name: "invalid utf8 token", gen: func(*rand.Rand) []byte {
		return withHdr([]byte("{\"uri\":\"/auth/server\",\"body\":\"uid:\xff\xfe\"}"))
	}, want: closeNow},
	{name: "deep json", gen: func(r *rand.Rand) []byte { return withHdr(deepJSON("{", 1+r.IntN(4000), true)) }, want: closeNow},
	{name: "deep unclosed json", gen: func(r *rand.Rand) []byte { return withHdr(deepJSON("{", 1+r.IntN(8000), false)) }, want: closeNow},
	{name: "login above the auth frame limit", gen: func(r *rand.Rand) []byte {
		return withHdr(wideJSON(`{"uri":"/auth/server","body":"uid:big",`, edge.DefaultAuthFrameSize+1+r.IntN(50000)))
	}, want: closeNow},
	{name: "no-ops then a huge length", gen: func(r *rand.Rand) []byte {
		return append(make([]byte, 4*r.IntN(2000)), hdr(0x7fffffff)...)
	}, want: closeNow},
	{name: "data before login", gen: func(*rand.Rand) []byte { return frame("/app/data", "x") }, want: closeNow},
	{name: "wrong inner password", gen: func(*rand.Rand) []byte { return frame(wire.URIInnerAuth, "plex-inner") }, want: closeNow},
	{name: "reset", gen: func(*rand.Rand) []byte { return nil }, reset: true, want: closed},

	// After a login: bad frames close, odd but valid ones are served.
	{name: "huge length prefix after login", login: "user", gen: func(r *rand.Rand) []byte {
		return hdr(uint32(wire.DefaultMaxFrameSize + 1 + r.Int64N(1<<32-wire.DefaultMaxFrameSize-1)))
	}, want: closeNow},
	{name: "random bytes after login", login: "user", gen: func(r *rand.Rand) []byte { return randBytes(r, 1+r.IntN(2048)) }, want: closed},
	{name: "wrong types after login", login: "user", gen: func(r *rand.Rand) []byte {
		return withHdr([]byte(wrongTypes[r.IntN(len(wrongTypes))]))
	}, want: closeNow},
	{name: "deep json after login", login: "user", gen: func(r *rand.Rand) []byte {
		return withHdr(deepJSON(`{"uri":"/app",`, 1+r.IntN(9000), true))
	}, want: survive},
	{name: "too deep json after login", login: "user", gen: func(r *rand.Rand) []byte {
		return withHdr(deepJSON(`{"uri":"/app",`, 10001+r.IntN(20000), true))
	}, want: closeNow},
	{name: "wide json after login", login: "user", gen: func(r *rand.Rand) []byte {
		return withHdr(wideJSON(`{"uri":"/app",`, 100+r.IntN(wire.DefaultMaxFrameSize-200)))
	}, want: survive},
	{name: "json above the frame limit", login: "user", gen: func(r *rand.Rand) []byte {
		return withHdr(wideJSON(`{"uri":"/app",`, wire.DefaultMaxFrameSize+1+r.IntN(100000)))
	}, want: closeNow},
	{name: "invalid utf8 in strings", login: "user", gen: func(*rand.Rand) []byte {
		return withHdr([]byte("{\"uri\":\"/app\xff\",\"body\":\"\xfe\xed\xc0\x80\"}"))
	}, want: survive},
	{name: "nulls and unknown fields", login: "user", gen: func(*rand.Rand) []byte {
		return withHdr([]byte(`{"uri":"/app","seq":null,"body":null,"extra":{"a":[1,2,{"b":null}],"c":"\u0000\ud83d\ude00"}}`))
	}, want: survive},
	{name: "second login", login: "user", gen: func(*rand.Rand) []byte { return frame(wire.URIAuth, "uid:someone-else") }, want: survive},
	{name: "frame flood", login: "user", gen: func(*rand.Rand) []byte {
		return bytes.Repeat(frame("/app", "x"), 200)
	}, want: closeNow},
	{name: "truncated frame after login, silence", login: "user", gen: func(r *rand.Rand) []byte {
		f := frame("/app", "cut short")
		return f[:1+r.IntN(len(f)-1)]
	}, want: closeByTimer},
	{name: "inner push garbage", login: "inner", gen: func(r *rand.Rand) []byte {
		bodies := []string{"not json", `{"uid":"bad uid!","body":"x"}`, `{"uid":5}`, `{"uid":"x","uri":"/auth/failed"}`, `[]`}
		return frame(wire.URIInnerSend, bodies[r.IntN(len(bodies))])
	}, want: survive},
}

// TestGarbage throws seeded random garbage at a live edge, in process so
// its goroutines, file descriptors and connection count can be checked,
// on both read paths: random bytes, truncated frames, huge length
// prefixes, deep and huge JSON, invalid UTF-8, wrong types, floods of
// frames and resets, before and after login, each written whole or in
// random pieces, from many connections at once. Nothing may panic; every
// connection with bad input is closed (at once, or at its timeout for a
// frame cut short), well-formed oddities are served; afterwards the edge
// is back to its baseline of connections, goroutines and descriptors,
// every connection was counted once under some disconnect reason, and the
// bad-frame counters went up. Set HOSTILE_SEED to replay a run.
func TestGarbage(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("HOSTILE_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("HOSTILE_SEED: %v", err)
		}
	}
	t.Logf("seed %d (HOSTILE_SEED=%d replays it)", seed, seed)
	for _, path := range []string{"epoll", "goroutine"} {
		t.Run(path, func(t *testing.T) { garbage(t, path == "goroutine", seed) })
	}
}

func garbage(t *testing.T, goroutinePerConn bool, seed uint64) {
	const (
		conns   = 600
		workers = 100
	)
	st := newStack(t)
	e := st.edge(edge.Config{
		AuthTimeout:      garbageAuthTimeout,
		Heartbeat:        time.Second,
		HeartbeatTimeout: garbageHeartbeatTimeout,
		FailedAuthRate:   -1, // every connection must reach the parser
		InnerPassword:    innerPassword,
		GoroutinePerConn: goroutinePerConn,
	})
	addr := e.Addr().String()
	good := keepAlive(t, addr, "good")
	pushOK := func(body string) {
		t.Helper()
		if err := st.push("good", body); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-good.pushes:
			if got != body {
				t.Fatalf("the good client got %q, want %q", got, body)
			}
		case err := <-good.errs:
			t.Fatalf("the good client: %v", err)
		case <-time.After(5 * time.Second):
			t.Fatal("the good client got no push")
		}
	}
	pushOK("before")
	// Warm up the quick cases once (the auth request machinery, pools), so
	// the baseline holds what stays.
	var quick []garbageCase
	for _, gc := range garbageCases {
		if gc.want == closeNow || gc.want == survive {
			quick = append(quick, gc)
		}
	}
	runGarbage(addr, quick, seed^0xabcdef, 2*len(quick), 20, nil)
	waitFor(t, 10*time.Second, "warm-up connections gone", func() bool { return e.NumConns() == 1 })
	baseConns, baseG, baseFDs := e.NumConns(), runtime.NumGoroutine(), countFDs(t)
	before := e.metrics(t)

	stats := runGarbage(addr, garbageCases, seed, conns, workers, t)

	waitFor(t, 10*time.Second, "edge connections back to the baseline", func() bool { return e.NumConns() == baseConns })
	pushOK("after")
	waitForGoroutines(t, baseG)
	if n := countFDs(t); n > baseFDs {
		waitFor(t, 5*time.Second, fmt.Sprintf("file descriptors back to %d (now %d)", baseFDs, n), func() bool { return countFDs(t) <= baseFDs })
	}
	after := e.metrics(t)

	var names []string
	for k := range stats {
		names = append(names, k)
	}
	sort.Strings(names)
	var lines []string
	for _, k := range names {
		lines = append(lines, fmt.Sprintf("%s %d", k, stats[k]))
	}
	t.Logf("%d connections: %s", conns, strings.Join(lines, ", "))
	var total float64
	var reasons []string
	for k, v := range after {
		if strings.HasPrefix(k, "plex_edge_disconnects_total") {
			if d := v - before[k]; d > 0 {
				total += d
				reasons = append(reasons, fmt.Sprintf("%s +%v", strings.TrimPrefix(k, "plex_edge_disconnects_total"), d))
			}
		}
	}
	sort.Strings(reasons)
	t.Logf("disconnects: %s", strings.Join(reasons, ", "))
	if total != conns {
		t.Errorf("disconnects counted %v, want one per connection: %d", total, conns)
	}
	if d := delta(t, before, after, "plex_edge_accepted_total"); d != conns {
		t.Errorf("accepted +%v, want %d", d, conns)
	}
	for _, k := range []string{"too_large", "bad_payload"} {
		s := `plex_edge_bad_frames_total{kind="` + k + `"}`
		d := delta(t, before, after, s)
		t.Logf("%s +%v", s, d)
		if d == 0 {
			t.Errorf("%s did not increase", s)
		}
	}
}

// runGarbage makes n connections, each a random one of cases, from
// workers goroutines; it reports failures on report (nil: a warm-up, not
// checked) and returns how many connections each case had.
func runGarbage(addr string, cases []garbageCase, seed uint64, n, workers int, report *testing.T) map[string]int {
	var next atomic.Int64
	var mu sync.Mutex
	stats := map[string]int{}
	var failures []string
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				r := rand.New(rand.NewPCG(seed, uint64(i)))
				gc := cases[r.IntN(len(cases))]
				err := oneGarbage(addr, gc, r, int(i))
				mu.Lock()
				stats[gc.name]++
				if err != nil {
					failures = append(failures, fmt.Sprintf("conn %d (%s): %v", i, gc.name, err))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if report != nil {
		sort.Strings(failures)
		for i, f := range failures {
			if i == 20 {
				report.Errorf("… and %d more", len(failures)-20)
				break
			}
			report.Error(f)
		}
	}
	return stats
}

// oneGarbage runs one case on a fresh connection and checks the outcome.
func oneGarbage(addr string, gc garbageCase, r *rand.Rand, i int) error {
	c, err := dialFrom("", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if gc.reset {
		_ = c.Conn.(*net.TCPConn).SetLinger(0)
		return nil
	}
	switch gc.login {
	case "user":
		if _, err := c.login("g"+strconv.Itoa(i), 5*time.Second); err != nil {
			return err
		}
	case "inner":
		if err := c.send(wire.URIInnerAuth, innerPassword); err != nil {
			return err
		}
		if m, err := c.next(5 * time.Second); err != nil || m.URI != wire.URIAuthSuccess {
			return fmt.Errorf("inner login: %+v, %v", m, err)
		}
	}
	data := gc.gen(r)
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if r.IntN(3) == 0 && len(data) > 1 {
		// In random pieces, a little apart.
		for len(data) > 0 {
			k := 1 + r.IntN(min(len(data), 1+len(data)/4))
			if _, err := c.Write(data[:k]); err != nil {
				break // the edge may close before all is written
			}
			data = data[k:]
			time.Sleep(time.Duration(r.IntN(3)) * time.Millisecond)
		}
	} else if len(data) > 0 {
		_, _ = c.Write(data)
	}
	if gc.hangUp {
		_ = c.Conn.(*net.TCPConn).CloseWrite()
	}
	sent := time.Now()

	timer := garbageAuthTimeout
	if gc.login != "" {
		timer = garbageHeartbeatTimeout
	}
	switch gc.want {
	case survive:
		if err := c.send(wire.URIHeartbeat, ""); err != nil {
			return fmt.Errorf("want it served, heartbeat: %w", err)
		}
		for {
			m, err := c.next(3 * time.Second)
			if err != nil {
				return fmt.Errorf("want it served, no heartbeat answer: %w", err)
			}
			if m.URI == wire.URIHeartbeat {
				return nil
			}
		}
	case closeNow, closeByTimer, closed:
		last, ok := c.untilClosed(timer + 3*time.Second)
		took := time.Since(sent)
		switch {
		case !ok:
			return fmt.Errorf("want %s: still open after %v", gc.want, took.Round(time.Millisecond))
		case gc.want == closeNow && (took >= timer || last.Body == wire.FailAuthTimeout):
			return fmt.Errorf("want %s: closed after %v (last frame %+v)", gc.want, took.Round(time.Millisecond), last)
		case gc.want == closeByTimer && took < timer*3/4:
			return fmt.Errorf("want %s: closed after only %v (last frame %+v)", gc.want, took.Round(time.Millisecond), last)
		}
	}
	return nil
}

// liveClient is a logged-in device that heartbeats, so it outlives a
// short HeartbeatTimeout, and hands its pushes over a channel.
type liveClient struct {
	pushes chan string
	errs   chan error
}

// keepAlive logs uid in on addr and keeps it alive until the test ends.
func keepAlive(t *testing.T, addr, uid string) *liveClient {
	t.Helper()
	c, err := dialFrom("", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.login(uid, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	lc := &liveClient{pushes: make(chan string, 16), errs: make(chan error, 1)}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			m, err := c.next(time.Hour)
			if err != nil {
				select {
				case <-stop:
				default:
					lc.errs <- err
				}
				return
			}
			if m.URI == wire.URIPush {
				lc.pushes <- m.Body
			}
		}
	}()
	go func() {
		defer wg.Done()
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if err := c.send(wire.URIHeartbeat, ""); err != nil {
					return
				}
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		c.Close()
		wg.Wait()
	})
	return lc
}

// TestLargeFrameRightAfterLogin sends, right after /auth/success, a
// valid frame larger than MaxAuthFrameSize (8 KiB) but within
// MaxFrameSize (64 KiB): a logged-in client may send it, on either read
// path and over TLS (which reads with a goroutine).
func TestLargeFrameRightAfterLogin(t *testing.T) {
	for _, path := range []string{"epoll", "goroutine"} {
		t.Run(path, func(t *testing.T) {
			st := newStack(t)
			e := st.edge(edge.Config{GoroutinePerConn: path == "goroutine"})
			c, err := dialFrom("", e.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.login("big", 5*time.Second); err != nil {
				t.Fatal(err)
			}
			big := append(withHdr(wideJSON(`{"uri":"/app",`, 20<<10)), frame(wire.URIHeartbeat, "")...)
			if _, err := c.Write(big); err != nil {
				t.Fatal(err)
			}
			if m, err := c.next(3 * time.Second); err != nil || m.URI != wire.URIHeartbeat {
				t.Fatalf("a 20 KiB frame as the first after login: got %+v, %v (the edge counted it %v)", m, err,
					e.metrics(t)[`plex_edge_disconnects_total{reason="frame_too_large"}`])
			}
		})
	}
}

func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// waitForGoroutines waits for the goroutine count to fall back to base,
// and dumps the goroutines if it does not.
func waitForGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			var b strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
			t.Fatalf("goroutines: %d, baseline %d:\n%s", runtime.NumGoroutine(), base, b.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
