//go:build linux

package busfaults

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/plexbus/plex/authsvc"
	"github.com/plexbus/plex/bus"
	"github.com/plexbus/plex/edge"
	"github.com/plexbus/plex/embeddednats"
	"github.com/plexbus/plex/test/busfaults/harness"
	"github.com/plexbus/plex/wire"
)

// hook plays a business's auth webhook. Auth body "uid:<x>" logs in as x
// at once; "slow" takes 10 s (or until the caller gives up); "deny" is a
// 403; "boom" a 500. With slowAll set, every call takes 10 s.
type hook struct {
	srv     *httptest.Server
	slowAll atomic.Bool
	calls   atomic.Int64
}

func newHook(t *testing.T) *hook {
	t.Helper()
	h := &hook{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.calls.Add(1)
		var req bus.AuthRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		if req.Body == "slow" || h.slowAll.Load() {
			select {
			case <-time.After(10 * time.Second):
			case <-r.Context().Done():
				return
			}
		}
		switch {
		case strings.HasPrefix(req.Body, "uid:"):
			_, _ = io.WriteString(w, `{"uid":"`+strings.TrimPrefix(req.Body, "uid:")+`"}`)
		case req.Body == "boom":
			http.Error(w, "internal error", http.StatusInternalServerError)
		default:
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `{"reason":"bad token"}`)
		}
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// startAuthsvc runs an auth service with a webhook verifier on its own bus
// connection; it is stopped at cleanup.
func startAuthsvc(t *testing.T, url string, cfg authsvc.Config, wh authsvc.WebhookConfig) *authsvc.Service {
	t.Helper()
	v, err := authsvc.NewWebhook(wh)
	if err != nil {
		t.Fatal(err)
	}
	nc := connectBus(t, url)
	svc, err := authsvc.New(cfg, nc, v)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := svc.Stop(); err != nil {
			t.Errorf("auth service stop: %v", err)
		}
		v.CloseIdleConnections()
	})
	return svc
}

// loginResult logs a new device in with auth and returns the first frame's
// uri and body and how long it took.
func loginResult(t *testing.T, addr, auth string, d time.Duration) (uri, body string, took time.Duration) {
	t.Helper()
	r := harness.Dial(t, addr)
	start := time.Now()
	r.Send(wire.URIAuth, auth)
	m, err := r.Read(d)
	if err != nil {
		t.Fatalf("login %q: no answer within %s: %v", auth, d, err)
	}
	return m.URI, m.Body, time.Since(start)
}

func expectFailed(t *testing.T, addr, auth, reason string, within time.Duration) time.Duration {
	t.Helper()
	uri, body, took := loginResult(t, addr, auth, within+5*time.Second)
	if uri != wire.URIAuthFailed || body != reason {
		t.Fatalf("login %q: %s %q after %s, want /auth/failed %q", auth, uri, body, took, reason)
	}
	if took > within {
		t.Fatalf("login %q: /auth/failed %q after %s, want within %s", auth, body, took, within)
	}
	return took
}

func expectLogin(t *testing.T, addr, auth string) {
	t.Helper()
	uri, body, took := loginResult(t, addr, auth, 5*time.Second)
	if uri != wire.URIAuthSuccess {
		t.Fatalf("login %q: %s %q after %s, want /auth/success", auth, uri, body, took)
	}
}

// TestAuthServiceDown: with no auth service on the bus, a login fails at
// once with "auth unavailable"; when one starts, logins work; when it
// stops, they fail at once again. The edge process serves throughout.
func TestAuthServiceDown(t *testing.T) {
	t.Parallel()
	ns := embeddednats.RunTest(t, embeddednats.Config{})
	e := harness.StartEdge(t, nil, "--nats", ns.ClientURL())
	took := expectFailed(t, e.Addr, "uid:1", wire.FailAuthUnavailable, time.Second)
	t.Logf("no auth service: /auth/failed %q after %s", wire.FailAuthUnavailable, took.Round(time.Microsecond))

	h := newHook(t)
	svc := startAuthsvc(t, ns.ClientURL(), authsvc.Config{}, authsvc.WebhookConfig{URL: h.srv.URL})
	expectLogin(t, e.Addr, "uid:1")
	if err := svc.Stop(); err != nil {
		t.Fatal(err)
	}
	expectFailed(t, e.Addr, "uid:2", wire.FailAuthUnavailable, time.Second)
	if e.Exited() {
		t.Fatal("edge exited")
	}
}

// TestAuthServiceSlowWebhook: the business's webhook takes 10 s. Whichever
// timeout is shorter, the auth service's verify timeout or the edge's auth
// request timeout, the device gets a clear temporary reason within it,
// well before the edge's AuthTimeout, and other logins keep working.
func TestAuthServiceSlowWebhook(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		verify    time.Duration // the auth service's VerifyTimeout (0 = default 5 s)
		edgeFlags []string
		reasons   []string // acceptable reasons
		min, max  time.Duration
	}{
		"auth service gives up first": {
			verify: 500 * time.Millisecond, edgeFlags: []string{"--auth-request-timeout", "3s", "--auth-timeout", "5s"},
			reasons: []string{authsvc.ReasonTimeout}, min: 400 * time.Millisecond, max: 2 * time.Second,
		},
		"edge gives up first": {
			verify: 5 * time.Second, edgeFlags: []string{"--auth-request-timeout", "500ms", "--auth-timeout", "5s"},
			reasons: []string{wire.FailAuthTimedOut}, min: 400 * time.Millisecond, max: 2 * time.Second,
		},
		"defaults": { // auth service 5 s, webhook client 5 s, edge 10 s and 30 s
			reasons: []string{authsvc.ReasonTimeout, authsvc.ReasonUnavailable}, min: 4 * time.Second, max: 7 * time.Second,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ns := embeddednats.RunTest(t, embeddednats.Config{})
			h := newHook(t)
			startAuthsvc(t, ns.ClientURL(), authsvc.Config{VerifyTimeout: tc.verify}, authsvc.WebhookConfig{URL: h.srv.URL})
			e := harness.StartEdge(t, nil, append([]string{"--nats", ns.ClientURL()}, tc.edgeFlags...)...)

			uri, body, took := loginResult(t, e.Addr, "slow", 15*time.Second)
			if uri != wire.URIAuthFailed || !contains(tc.reasons, body) || took < tc.min || took > tc.max {
				t.Fatalf("slow webhook: %s %q after %s; want /auth/failed %q within [%s, %s]", uri, body, took, tc.reasons, tc.min, tc.max)
			}
			if !wire.TemporaryFailure(body) {
				t.Fatalf("reason %q is not a temporary failure: clients would give up", body)
			}
			t.Logf("webhook taking 10 s: /auth/failed %q after %s", body, took.Round(time.Millisecond))
			expectLogin(t, e.Addr, "uid:fast")
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestAuthBackendFailureIsNotAFailedLogin: when the auth backend fails
// (webhook slow or erroring), devices are told so with a temporary reason,
// and that must not count as a failed login of their address: otherwise a
// webhook outage locks out every address with the failed-login limit
// ("too many failed logins") long after the webhook recovered. Real
// refusals still count.
func TestAuthBackendFailureIsNotAFailedLogin(t *testing.T) {
	t.Parallel()
	ns := embeddednats.RunTest(t, embeddednats.Config{})
	h := newHook(t)
	startAuthsvc(t, ns.ClientURL(), authsvc.Config{VerifyTimeout: 300 * time.Millisecond}, authsvc.WebhookConfig{URL: h.srv.URL})
	// Two failures from an address are tolerated, then it waits ~1000 s.
	limit := []string{"--failed-auth-burst", "2", "--failed-auth-rate", "0.001"}

	t.Run("refusals count", func(t *testing.T) {
		e := harness.StartEdge(t, nil, append([]string{"--nats", ns.ClientURL()}, limit...)...)
		expectFailed(t, e.Addr, "deny", "bad token", 2*time.Second)
		expectFailed(t, e.Addr, "deny", "bad token", 2*time.Second)
		expectFailed(t, e.Addr, "uid:1", wire.FailTooManyFailures, 2*time.Second)
	})
	t.Run("backend failures do not", func(t *testing.T) {
		e := harness.StartEdge(t, nil, append([]string{"--nats", ns.ClientURL()}, limit...)...)
		for _, auth := range []string{"boom", "slow", "boom", "slow"} {
			uri, body, took := loginResult(t, e.Addr, auth, 5*time.Second)
			if uri != wire.URIAuthFailed || !wire.TemporaryFailure(body) || body == wire.FailTooManyFailures {
				t.Fatalf("login %q with the webhook failing: %s %q after %s; want a temporary backend reason, "+
					"not a failed login of the address", auth, uri, body, took)
			}
		}
		expectLogin(t, e.Addr, "uid:1")
	})
}

// TestAuthServiceGarbage: an auth service that answers nonsense. Each
// answer gives the device a clear reason at once, and the edge serves on.
func TestAuthServiceGarbage(t *testing.T) {
	t.Parallel()
	ns := embeddednats.RunTest(t, embeddednats.Config{})
	e := harness.StartEdge(t, nil, "--nats", ns.ClientURL())
	nc := connectBus(t, ns.ClientURL())
	long := strings.Repeat("x", 100<<10)

	tests := map[string]struct {
		reply  func(m *nats.Msg)
		reason string
	}{
		"not json":     {reply: respond("<html>502 Bad Gateway</html>"), reason: wire.FailAuthUnavailable},
		"empty":        {reply: respond(""), reason: wire.FailAuthUnavailable},
		"wrong types":  {reply: respond(`{"ok":"yes","uid":42}`), reason: wire.FailAuthUnavailable},
		"json array":   {reply: respond(`[true]`), reason: wire.FailAuthUnavailable},
		"invalid uid":  {reply: respond(`{"ok":true,"uid":"a.b"}`), reason: "auth service returned an invalid uid"},
		"wildcard uid": {reply: respond(`{"ok":true,"uid":">"}`), reason: "auth service returned an invalid uid"},
		"no uid":       {reply: respond(`{"ok":true}`), reason: "auth service returned an invalid uid"},
		"no reason":    {reply: respond(`{"ok":false}`), reason: "refused"},
		"micro 500":    {reply: serviceError("500", "database down"), reason: wire.FailAuthUnavailable},
		"micro 400":    {reply: serviceError("400", "malformed request"), reason: "malformed request"},
		// A reason too long for a frame must be cut, not break the device's
		// reader (its frame limit is 64 KiB) or be sent whole.
		"huge reason": {reply: respond(`{"ok":false,"reason":"` + long + `"}`), reason: long[:256]},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			sub, err := nc.QueueSubscribe(bus.SubjectAuth, bus.QueueAuth, tc.reply)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Unsubscribe()
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			r := harness.Dial(t, e.Addr)
			start := time.Now()
			r.Send(wire.URIAuth, "uid:1")
			m, err := r.Read(2 * time.Second)
			if err != nil {
				t.Fatalf("no readable answer: %v", err)
			}
			if m.URI != wire.URIAuthFailed || m.Body != tc.reason {
				t.Fatalf("got %s %.80q (%d bytes), want /auth/failed %.80q", m.URI, m.Body, len(m.Body), tc.reason)
			}
			if took := time.Since(start); took > time.Second {
				t.Fatalf("answered after %s", took)
			}
			r.ExpectClosed(3 * time.Second)
		})
	}
	sub, err := nc.QueueSubscribe(bus.SubjectAuth, bus.QueueAuth, respond(`{"ok":true,"uid":"1"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	expectLogin(t, e.Addr, "uid:1")
}

func respond(data string) func(*nats.Msg) {
	return func(m *nats.Msg) { _ = m.Respond([]byte(data)) }
}

func serviceError(code, desc string) func(*nats.Msg) {
	return func(m *nats.Msg) {
		r := nats.NewMsg(m.Reply)
		r.Header.Set("Nats-Service-Error", desc)
		r.Header.Set("Nats-Service-Error-Code", code)
		_ = m.RespondMsg(r)
	}
}

// TestPendingAuthBounded: many devices log in at once while the auth
// service does not answer. The edge keeps at most MaxPendingAuth logins in
// flight (the auth service is asked no more often); the excess are told
// "server busy, retry later" at once; the edge's goroutines stay bounded by
// that limit, not by the number of logins, and return to where they were.
func TestPendingAuthBounded(t *testing.T) {
	const (
		pending = 20
		logins  = 600
	)
	ns := embeddednats.RunTest(t, embeddednats.Config{})
	// An auth service that never answers in time: each pending login
	// holds its slot until the edge's auth request timeout.
	anc := connectBus(t, ns.ClientURL())
	var asked atomic.Int64
	hole, err := anc.QueueSubscribe(bus.SubjectAuth, bus.QueueAuth, func(*nats.Msg) { asked.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Unsubscribe()
	if err := anc.Flush(); err != nil {
		t.Fatal(err)
	}
	srv := startEdge(t, ns, edge.Config{MaxPendingAuth: pending, AuthRequestTimeout: 2 * time.Second, AuthTimeout: 4 * time.Second})
	fleet := newFleet(t, harness.FleetConfig{})
	base := runtime.NumGoroutine()

	var peak atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			peak.Store(max(peak.Load(), int64(runtime.NumGoroutine())))
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	start := time.Now()
	conns := make([]*harness.Conn, logins)
	sentAt := make([]time.Time, logins)
	for i := range conns {
		c, err := fleet.Dial(srv.Addr().String(), harness.Source(i, sources), i, "u"+strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		sentAt[i] = time.Now()
		if err := c.Send(wire.URIAuth, "uid:"+c.UID); err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	sent := time.Since(start)
	harness.WaitFor(t, 10*time.Second, "every login answered", func() bool {
		for _, c := range conns {
			if c.FailReason() == "" {
				return false
			}
		}
		return true
	})
	close(stop)
	wg.Wait()
	// Every login not among the pending ones was refused as busy at once,
	// long before a pending login could time out (2 s); a pending one
	// failed with a temporary reason. Slots free up only as pending logins
	// time out, so logins sent over a long time get more of them.
	busy, slowest := 0, time.Duration(0)
	for i, c := range conns {
		switch r := c.FailReason(); {
		case r == wire.FailServerBusy:
			busy++
			slowest = max(slowest, time.Duration(c.AnsweredAt.Load()-sentAt[i].UnixNano()))
		case !wire.TemporaryFailure(r):
			t.Fatalf("%s: reason %q", c.UID, r)
		}
	}
	allowed := pending * (1 + int(sent/(2*time.Second)))
	if busy < logins-allowed || slowest > time.Second || asked.Load() > int64(allowed) {
		t.Fatalf("%d of %d logins refused as busy (want at least %d with MaxPendingAuth %d), the slowest after %s; "+
			"the auth service was asked %d times", busy, logins, logins-allowed, pending, slowest, asked.Load())
	}
	growth := peak.Load() - int64(base)
	t.Logf("%d logins sent in %s to a silent auth service: %d refused as busy (the slowest answer after %s), goroutines %d → peak %d (+%d)",
		logins, sent.Round(time.Millisecond), busy, slowest.Round(time.Microsecond), base, peak.Load(), growth)
	// Not one goroutine per login: at most one per pending login (the edge
	// needs none today) and a few helpers.
	if growth > pending+20 {
		t.Fatalf("goroutines grew by %d for %d logins with MaxPendingAuth %d", growth, logins, pending)
	}
	harness.WaitFor(t, 10*time.Second, "goroutines back to the baseline", func() bool {
		return runtime.NumGoroutine() <= base+10
	})
}

// startEdge runs an in-process edge on ns (for settings `plex edge` has
// no flag for); it is shut down at cleanup.
func startEdge(t *testing.T, ns *embeddednats.Server, cfg edge.Config) *edge.Server {
	t.Helper()
	s, _ := harness.RunEdge(t, cfg, connectBus(t, ns.ClientURL(), nats.Name("plex-edge")))
	return s
}

// TestEdgeFlagsCoverAuthLimits: an operator can set the limit that bounds
// pending logins on `plex edge`, as every edge setting has a flag.
func TestEdgeFlagsCoverAuthLimits(t *testing.T) {
	t.Parallel()
	out, _, code := harness.Run(t, 10*time.Second, nil, "edge", "--help")
	if code != 0 {
		t.Fatalf("plex edge --help: exit %d", code)
	}
	for _, flag := range []string{"--auth-timeout", "--auth-request-timeout", "--max-pending-auth"} {
		if !strings.Contains(out, flag) {
			t.Errorf("plex edge has no %s flag (edge.Config's limit cannot be set by an operator)", flag)
		}
	}
}

// TestAuthBacklogDrains: a burst of logins while the webhook hangs must
// not leave the auth service working through requests whose edge gave up
// long ago. Once the webhook answers again, a new login must succeed
// within the edge's timeout, not wait behind the stale backlog.
func TestAuthBacklogDrains(t *testing.T) {
	t.Parallel()
	const burst = 200
	ns := embeddednats.RunTest(t, embeddednats.Config{})
	h := newHook(t)
	h.slowAll.Store(true)
	startAuthsvc(t, ns.ClientURL(), authsvc.Config{MaxConcurrent: 4, VerifyTimeout: 500 * time.Millisecond, DrainTimeout: time.Second},
		authsvc.WebhookConfig{URL: h.srv.URL})
	e := harness.StartEdge(t, nil, "--nats", ns.ClientURL(), "--auth-request-timeout", "1s", "--auth-timeout", "5s")
	fleet := newFleet(t, harness.FleetConfig{})
	conns := make([]*harness.Conn, burst)
	for i := range conns {
		c, err := fleet.Dial(e.Addr, harness.Source(i, sources), i, "u"+strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Send(wire.URIAuth, "uid:"+c.UID); err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	harness.WaitFor(t, 10*time.Second, "the burst answered", func() bool {
		for _, c := range conns {
			if c.FailReason() == "" {
				return false
			}
		}
		return true
	})
	h.slowAll.Store(false) // the webhook recovers
	calls := h.calls.Load()
	reasons := map[string]int{}
	for _, c := range conns {
		reasons[c.FailReason()]++
	}
	t.Logf("burst answered: %v; webhook calls so far %d", reasons, calls)
	uri, body, took := loginResult(t, e.Addr, "uid:after", 10*time.Second)
	if uri != wire.URIAuthSuccess {
		t.Fatalf("login after the webhook recovered: %s %q after %s; the auth service was still busy with "+
			"%d requests the edge had given up on (webhook calls: %d at recovery, %d now)",
			uri, body, took, burst, calls, h.calls.Load())
	}
}
