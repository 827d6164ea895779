package hostile

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plexbus/plex/wire"
)

// resident is a logged-in device that is pushed to every 20 ms while an
// attack runs; check reports its push latency.
type resident struct {
	w      *pushWatch
	cancel context.CancelFunc
}

func newResident(t *testing.T, st *stack, addr, src, uid string) *resident {
	t.Helper()
	c, err := dialFrom(src, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.login(uid, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &resident{w: watchPushes(ctx, st, c, uid, 20*time.Millisecond), cancel: cancel}
	t.Cleanup(func() {
		cancel()
		<-r.w.stopped
	})
	return r
}

// check stops the pushes and requires every one to have arrived promptly.
func (r *resident) check(t *testing.T, what string) {
	t.Helper()
	r.cancel()
	lat, sent, errs := r.w.result()
	t.Logf("%s: pushes to a connected device: %v", what, lat)
	if len(errs) > 0 {
		t.Errorf("%s: connected device: %v", what, errs)
	}
	if len(lat) != sent {
		t.Errorf("%s: connected device got %d of %d pushes", what, len(lat), sent)
	}
	if lat.pct(50) > 50*time.Millisecond || lat.pct(99) > time.Second {
		t.Errorf("%s: pushes to a connected device slowed down: %v", what, lat)
	}
}

// checkProber requires a prober to have logged in and been pushed to
// every time, promptly.
func checkProber(t *testing.T, what string, pr *prober) {
	t.Helper()
	logins, pushes, failures := pr.results()
	t.Logf("%s: new device: dial+login %v; push %v", what, logins, pushes)
	if len(failures) > 0 {
		t.Errorf("%s: new device failed %d times, first: %s", what, len(failures), failures[0])
	}
	if len(logins) == 0 || logins.pct(50) > 100*time.Millisecond || logins.pct(99) > 2*time.Second ||
		pushes.pct(50) > 50*time.Millisecond || pushes.pct(99) > time.Second {
		t.Errorf("%s: new device slowed down: login %v, push %v", what, logins, pushes)
	}
}

// during runs f while a prober logs in every 50 ms from src.
func during(st *stack, addr, src string, f func()) *prober {
	pr := &prober{st: st, addr: addr, src: src}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		pr.run(ctx, "probe", 50*time.Millisecond)
	}()
	f()
	cancel()
	<-done
	return pr
}

// TestFloodMaxConnections fills an edge to --max-conns and floods it with
// connection attempts: each is told "server full" and closed at once,
// each is counted (plex_edge_limited_total{limit="max_conns"} and
// plex_edge_disconnects_total{reason="server_full"}), the devices already
// connected keep getting their pushes, and a device gets in as soon as a
// slot frees.
func TestFloodMaxConnections(t *testing.T) {
	const maxConns = 200
	st := newStack(t)
	e := startEdge(t, st.url(), "--max-conns", strconv.Itoa(maxConns))
	res := newResident(t, st, e.addr, "127.0.0.2", "resident")
	var holders []net.Conn
	for i := 0; i < maxConns-1; i++ {
		c, err := dialFrom("127.0.2.1", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.login("holder-"+strconv.Itoa(i), 5*time.Second); err != nil {
			t.Fatal(err)
		}
		holders = append(holders, c)
	}
	waitFor(t, 5*time.Second, "the edge to be full", func() bool {
		return e.scrape().get(t, "plex_edge_connections") == maxConns
	})
	before := e.scrape()

	var attempts, full atomic.Int64
	var other sync.Map
	deadline := time.Now().Add(time.Second)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := "127.0.2." + strconv.Itoa(2+w)
			for time.Now().Before(deadline) && attempts.Load() < 6000 {
				attempts.Add(1)
				c, err := dialFrom(src, e.addr)
				if err != nil {
					other.Store("dial: "+err.Error(), true)
					continue
				}
				last, closed := c.untilClosed(2 * time.Second)
				c.Close()
				if closed && last.URI == wire.URIAuthFailed && last.Body == wire.FailServerFull {
					full.Add(1)
				} else {
					other.Store(fmt.Sprintf("%+v closed=%v", last, closed), true)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(deadline.Add(-time.Second))
	after := e.scrape()
	t.Logf("max-conns flood: %d attempts in %v (%.0f/s), %d told %q",
		attempts.Load(), elapsed.Round(time.Millisecond), float64(attempts.Load())/elapsed.Seconds(), full.Load(), wire.FailServerFull)
	other.Range(func(k, _ any) bool {
		t.Errorf("a flood connection was not refused with %q: %s", wire.FailServerFull, k)
		return true
	})
	for _, s := range []string{`plex_edge_limited_total{limit="max_conns"}`, `plex_edge_disconnects_total{reason="server_full"}`} {
		if d := delta(t, before, after, s); d != float64(full.Load()) {
			t.Errorf("%s: +%v, want +%d", s, d, full.Load())
		}
	}
	if got := after.get(t, "plex_edge_connections"); got != maxConns {
		t.Errorf("connections after the flood: %v, want %d", got, maxConns)
	}
	res.check(t, "max-conns flood")

	// A slot frees: a device gets in at once.
	holders[0].Close()
	waitFor(t, 2*time.Second, "a free slot", func() bool {
		return e.scrape().get(t, "plex_edge_connections") < maxConns
	})
	c, err := dialFrom("127.0.0.3", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d, err := c.login("newcomer", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("max-conns flood: login once a slot freed: %v", d)
}

// TestFloodBadLogins sends bad tokens as fast as one address can: after
// --failed-auth-burst failures the address is turned away at accept
// ("too many failed logins, retry later", counted as
// plex_edge_limited_total{limit="failed_auth_ip"}) without asking the auth
// service, which sees no more than the burst plus the refill; devices on
// other addresses log in and are pushed to as usual.
func TestFloodBadLogins(t *testing.T) {
	const (
		rate    = 5
		burst   = 20
		workers = 4
		window  = 1500 * time.Millisecond
	)
	st := newStack(t)
	e := startEdge(t, st.url(), "--failed-auth-rate", strconv.Itoa(rate), "--failed-auth-burst", strconv.Itoa(burst))
	res := newResident(t, st, e.addr, "127.0.0.2", "resident")
	before := e.scrape()
	logLines := e.log.Lines()

	var attempts, refused, turnedAway atomic.Int64
	var other sync.Map
	var elapsed time.Duration
	pr := during(st, e.addr, "127.0.0.3", func() {
		start := time.Now()
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; time.Since(start) < window; i++ {
					attempts.Add(1)
					c, err := dialFrom("127.0.3.1", e.addr)
					if err != nil {
						other.Store("dial: "+err.Error(), true)
						continue
					}
					err = c.send(wire.URIAuth, "not-a-token-"+strconv.Itoa(i))
					last, closed := c.untilClosed(2 * time.Second)
					c.Close()
					switch {
					case closed && last.Body == "bad token":
						refused.Add(1)
					case closed && last.Body == wire.FailTooManyFailures:
						turnedAway.Add(1)
					case err != nil && closedByPeer(err):
						// refused before our frame was written
						turnedAway.Add(1)
					default:
						other.Store(fmt.Sprintf("%+v closed=%v err=%v", last, closed, err), true)
					}
				}
			}()
		}
		wg.Wait()
		elapsed = time.Since(start)
	})
	after := e.scrape()
	t.Logf("bad-login flood from one address: %d attempts in %v (%.0f/s): %d refused by the auth service, %d turned away at accept; edge log lines meanwhile: %d",
		attempts.Load(), elapsed.Round(time.Millisecond), float64(attempts.Load())/elapsed.Seconds(),
		refused.Load(), turnedAway.Load(), e.log.Lines()-logLines)
	other.Range(func(k, _ any) bool {
		t.Errorf("unexpected outcome of a bad login: %s", k)
		return true
	})
	// The auth service was asked at most burst + refill (+ the logins in
	// flight when the bucket ran dry).
	if most := int64(burst + rate*elapsed.Seconds() + workers + 1); refused.Load() > most {
		t.Errorf("the auth service refused %d bad logins from one address in %v; the limit allows about %d", refused.Load(), elapsed, most)
	}
	if turnedAway.Load() == 0 {
		t.Error("no attempt was turned away at accept")
	}
	if d := delta(t, before, after, `plex_edge_limited_total{limit="failed_auth_ip"}`); d != float64(turnedAway.Load()) {
		t.Errorf("failed_auth_ip limited +%v, want +%d", d, turnedAway.Load())
	}
	if d := delta(t, before, after, `plex_edge_disconnects_total{reason="auth_failed"}`); d != float64(refused.Load()) {
		t.Errorf("auth_failed disconnects +%v, want +%d", d, refused.Load())
	}
	if d := delta(t, before, after, `plex_edge_auths_total{result="refused"}`); d != float64(refused.Load()) {
		t.Errorf("refused auths +%v, want +%d", d, refused.Load())
	}
	checkProber(t, "bad-login flood", pr)
	res.check(t, "bad-login flood")
}

// TestFloodFrames has logged-in clients send frames as fast as they can:
// each is closed once past --client-frame-burst, counted as
// plex_edge_limited_total{limit="frame_rate"} and
// plex_edge_disconnects_total{reason="rate_limited"}, and logs in again to
// flood again; meanwhile other devices log in and get their pushes.
func TestFloodFrames(t *testing.T) {
	const (
		workers = 8
		window  = 1500 * time.Millisecond
	)
	st := newStack(t)
	e := startEdge(t, st.url(), "--client-frame-rate", "20", "--client-frame-burst", "40")
	res := newResident(t, st, e.addr, "127.0.0.2", "resident")
	before := e.scrape()

	var burst []byte
	for i := 0; i < 100; i++ {
		if i%2 == 0 {
			burst = append(burst, frame(wire.URIHeartbeat, "")...)
		} else {
			burst = append(burst, frame("/app/data", "flood")...)
		}
	}
	var sessions, cut atomic.Int64
	var other sync.Map
	var elapsed time.Duration
	var bytesSent atomic.Int64
	pr := during(st, e.addr, "127.0.0.3", func() {
		start := time.Now()
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				src := "127.0.4." + strconv.Itoa(1+w)
				for i := 0; time.Since(start) < window; i++ {
					c, err := dialFrom(src, e.addr)
					if err != nil {
						other.Store("dial: "+err.Error(), true)
						continue
					}
					if _, err := c.login(fmt.Sprintf("flood-%d-%d", w, i), 5*time.Second); err != nil {
						c.Close()
						other.Store(err.Error(), true)
						continue
					}
					sessions.Add(1)
					// Flood until the edge cuts us off (or 3 s: a limit that
					// did not hold).
					_ = c.SetWriteDeadline(time.Now().Add(3 * time.Second))
					for {
						n, err := c.Write(burst)
						bytesSent.Add(int64(n))
						if err != nil {
							if closedByPeer(err) {
								cut.Add(1)
							} else {
								other.Store("flood write: "+err.Error(), true)
							}
							break
						}
					}
					c.Close()
				}
			}()
		}
		wg.Wait()
		elapsed = time.Since(start)
	})
	waitFor(t, 3*time.Second, "every flooder disconnected", func() bool {
		return e.scrape().get(t, "plex_edge_connections") == 1
	})
	after := e.scrape()
	t.Logf("frame flood: %d logged-in sessions in %v flooding %.1f MB, %d cut off by the edge",
		sessions.Load(), elapsed.Round(time.Millisecond), float64(bytesSent.Load())/1e6, cut.Load())
	other.Range(func(k, _ any) bool {
		t.Errorf("flooder: %s", k)
		return true
	})
	for _, s := range []string{`plex_edge_limited_total{limit="frame_rate"}`, `plex_edge_disconnects_total{reason="rate_limited"}`} {
		if d := delta(t, before, after, s); d != float64(sessions.Load()) {
			t.Errorf("%s: +%v, want +%d (one per flooding session)", s, d, sessions.Load())
		}
	}
	checkProber(t, "frame flood", pr)
	res.check(t, "frame flood")
}

// TestFailedLoginLimitAgainstWaves sends two waves of silent connections
// from one address, the second 300 ms after the first timed out. The
// limiter is documented to bound failed logins per address to
// FailedAuthBurst plus FailedAuthRate per second; it only checks the
// bucket at accept and spends it when a login fails, so a whole wave gets
// in whenever one token has refilled, and every connection of it then
// fails. The bound must hold whatever the wave size.
func TestFailedLoginLimitAgainstWaves(t *testing.T) {
	const (
		rate  = 10
		burst = 100
		wave  = 300
	)
	st := newStack(t)
	e := startEdge(t, st.url(), "--auth-timeout", "1s",
		"--failed-auth-rate", strconv.Itoa(rate), "--failed-auth-burst", strconv.Itoa(burst))
	before := e.scrape()
	start := time.Now()
	accepted := 0
	for w := 0; w < 2; w++ {
		conns := make([]*rawConn, 0, wave)
		for i := 0; i < wave; i++ {
			c, err := dialFrom("127.0.5.1", e.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			conns = append(conns, c)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				last, _ := c.untilClosed(3 * time.Second)
				if last.Body != wire.FailTooManyFailures {
					mu.Lock()
					accepted++
					mu.Unlock()
				}
				c.Close()
			}()
		}
		wg.Wait()
		time.Sleep(300 * time.Millisecond)
	}
	elapsed := time.Since(start)
	after := e.scrape()
	failed := delta(t, before, after, `plex_edge_disconnects_total{reason="auth_timeout"}`)
	most := burst + rate*elapsed.Seconds()
	t.Logf("two waves of %d silent connections from one address over %v: %d accepted, %v failed logins (auth_timeout); the limit allows %.0f",
		wave, elapsed.Round(time.Millisecond), accepted, failed, most)
	if failed > most+1 {
		t.Errorf("one address made %v failed logins in %v; FailedAuthBurst %d + FailedAuthRate %d/s allows %.0f",
			failed, elapsed.Round(time.Millisecond), burst, rate, most)
	}
}
