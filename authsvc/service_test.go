package authsvc_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/plexbus/plex/authsvc"
	"github.com/plexbus/plex/bus"
)

const secretBody = "tok-hunter2-do-not-log"

// scripted answers by body, so one service covers every reply shape.
func scripted(ctx context.Context, req bus.AuthRequest) (string, error) {
	switch req.Body {
	case "42", secretBody:
		return "42", nil
	case "banned":
		return "", authsvc.Refuse("account banned")
	case "plain-refusal":
		return "", fmt.Errorf("lookup: %w", authsvc.ErrRefused)
	case "internal":
		return "", errors.New("db: password hunter3 rejected")
	case "down":
		return "", fmt.Errorf("%w: backend 503", authsvc.ErrUnavailable)
	case "bad-uid":
		return "4.2", nil
	case "slow":
		<-ctx.Done()
		return "", ctx.Err()
	case "panic":
		panic("boom")
	}
	return "", authsvc.Refuse("")
}

func TestServiceReplies(t *testing.T) {
	log, logs := newLogger()
	var mu sync.Mutex
	results := map[string]int{}
	cfg := authsvc.Config{
		Version:       "1.2.3",
		VerifyTimeout: 100 * time.Millisecond,
		Logger:        log,
		OnResult: func(result string, d time.Duration) {
			mu.Lock()
			results[result]++
			mu.Unlock()
		},
	}
	svc, client := startService(t, cfg, authsvc.VerifierFunc(scripted))

	tests := map[string]struct {
		body   string
		ok     bool
		uid    string
		reason string
	}{
		"accepted":          {body: "42", ok: true, uid: "42"},
		"secret body":       {body: secretBody, ok: true, uid: "42"},
		"refused":           {body: "banned", reason: "account banned"},
		"refused sentinel":  {body: "plain-refusal", reason: authsvc.ReasonRefused},
		"refused no reason": {body: "who", reason: authsvc.ReasonRefused},
		"internal error":    {body: "internal", reason: authsvc.ReasonError},
		"unavailable":       {body: "down", reason: authsvc.ReasonUnavailable},
		"invalid uid":       {body: "bad-uid", reason: authsvc.ReasonInvalidUID},
		"timeout":           {body: "slow", reason: authsvc.ReasonTimeout},
		"panic":             {body: "panic", reason: authsvc.ReasonError},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			rep := rawAuth(t, client, tc.body)
			if rep.OK != tc.ok || rep.UID != tc.uid || rep.Reason != tc.reason {
				t.Fatalf("got %+v, want ok=%v uid=%q reason=%q", rep, tc.ok, tc.uid, tc.reason)
			}
		})
	}

	// The edge's own helper sees the same answers.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rep, err := bus.RequestAuth(ctx, client, bus.AuthRequest{Body: "42"})
	if err != nil || !rep.OK || rep.UID != "42" {
		t.Fatalf("RequestAuth: %+v %v", rep, err)
	}
	rep, err = bus.RequestAuth(ctx, client, bus.AuthRequest{Body: "banned"})
	if err != nil || rep.OK || rep.Reason != "account banned" {
		t.Fatalf("RequestAuth refused: %+v %v", rep, err)
	}

	// Counters are recorded before each reply goes out, but the pool slot
	// is freed only after it, so InFlight may lag the last reply briefly.
	want := authsvc.Stats{OK: 3, Refused: 4, Errors: 4, Timeouts: 1}
	got := svc.Stats()
	for deadline := time.Now().Add(5 * time.Second); got.InFlight != 0 && time.Now().Before(deadline); got = svc.Stats() {
		time.Sleep(time.Millisecond)
	}
	if got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
	mu.Lock()
	if results[authsvc.ResultOK] != 3 || results[authsvc.ResultRefused] != 4 ||
		results[authsvc.ResultError] != 4 || results[authsvc.ResultTimeout] != 1 {
		t.Errorf("OnResult saw %v", results)
	}
	mu.Unlock()

	out := logs.String()
	for _, secret := range []string{secretBody, "hunter2"} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{"verifier panicked", "invalid uid", "verifier timed out", `uid=42`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestMalformedRequest(t *testing.T) {
	svc, client := startService(t, authsvc.Config{}, authsvc.VerifierFunc(scripted))
	for _, data := range []string{"not json", `["42"]`, `{"body": 42}`} {
		msg, err := client.Request(bus.SubjectAuth, []byte(data), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if code := msg.Header.Get(micro.ErrorCodeHeader); code != "400" {
			t.Errorf("%s: error code %q, want 400", data, code)
		}
		rep, err := bus.ParseAuthReply(msg)
		if err != nil || rep.OK || rep.Reason != "malformed auth request" {
			t.Errorf("%s: parsed as %+v, %v", data, rep, err)
		}
	}
	if got := svc.Stats().BadRequests; got != 3 {
		t.Errorf("bad requests %d, want 3", got)
	}
}

func TestMicroDiscovery(t *testing.T) {
	_, client := startService(t, authsvc.Config{Version: "2.0.0"}, authsvc.VerifierFunc(scripted))
	rawAuth(t, client, "42")

	msg, err := client.Request("$SRV.INFO."+authsvc.ServiceName, nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var info micro.Info
	if err := json.Unmarshal(msg.Data, &info); err != nil {
		t.Fatal(err)
	}
	if info.Name != "plex-auth" || info.Version != "2.0.0" || len(info.Endpoints) != 1 ||
		info.Endpoints[0].Subject != bus.SubjectAuth || info.Endpoints[0].QueueGroup != bus.QueueAuth {
		t.Fatalf("info %+v", info)
	}

	msg, err = client.Request("$SRV.STATS."+authsvc.ServiceName, nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var stats micro.Stats
	if err := json.Unmarshal(msg.Data, &stats); err != nil {
		t.Fatal(err)
	}
	var ours authsvc.Stats
	if len(stats.Endpoints) != 1 || json.Unmarshal(stats.Endpoints[0].Data, &ours) != nil || ours.OK != 1 {
		t.Fatalf("stats %+v data %s", stats, stats.Endpoints[0].Data)
	}
}

func TestNewErrors(t *testing.T) {
	svcConn, _ := testBus(t)
	v := authsvc.VerifierFunc(scripted)
	tests := map[string]struct {
		cfg authsvc.Config
		nc  *nats.Conn
		v   authsvc.Verifier
	}{
		"nil conn":               {nc: nil, v: v},
		"nil verifier":           {nc: svcConn, v: nil},
		"negative concurrency":   {cfg: authsvc.Config{MaxConcurrent: -1}, nc: svcConn, v: v},
		"negative timeout":       {cfg: authsvc.Config{VerifyTimeout: -time.Second}, nc: svcConn, v: v},
		"negative drain timeout": {cfg: authsvc.Config{DrainTimeout: -time.Second}, nc: svcConn, v: v},
		"version not semver":     {cfg: authsvc.Config{Version: "dev"}, nc: svcConn, v: v},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if svc, err := authsvc.New(tc.cfg, tc.nc, tc.v); err == nil {
				_ = svc.Stop()
				t.Fatal("accepted")
			}
		})
	}
}

// sleeper verifies in d and records the peak number of verifications
// running at once.
type sleeper struct {
	d         time.Duration
	now, peak atomic.Int64
	peakMu    sync.Mutex
}

func (s *sleeper) Verify(ctx context.Context, req bus.AuthRequest) (string, error) {
	n := s.now.Add(1)
	defer s.now.Add(-1)
	s.peakMu.Lock()
	if n > s.peak.Load() {
		s.peak.Store(n)
	}
	s.peakMu.Unlock()
	select {
	case <-time.After(s.d):
		return req.Body, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// timeAuths sends n auth requests at once and returns when all answered.
func timeAuths(t *testing.T, nc *nats.Conn, n int) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			uid := fmt.Sprint("u", i)
			rep, err := bus.RequestAuth(ctx, nc, bus.AuthRequest{Body: uid})
			if err == nil && (!rep.OK || rep.UID != uid) {
				err = fmt.Errorf("reply %+v", rep)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return time.Since(start)
}

func TestConcurrency(t *testing.T) {
	const d = 300 * time.Millisecond
	const n = 8
	t.Run("parallel", func(t *testing.T) {
		t.Parallel()
		v := &sleeper{d: d}
		_, client := startService(t, authsvc.Config{MaxConcurrent: n}, v)
		single := timeAuths(t, client, 1)
		all := timeAuths(t, client, n)
		t.Logf("one request %s, %d at once %s", single, n, all)
		if all >= 2*single {
			t.Errorf("%d requests took %s, one took %s: not run in parallel", n, all, single)
		}
		if p := v.peak.Load(); p != n {
			t.Errorf("peak concurrency %d, want %d", p, n)
		}
	})
	t.Run("serial", func(t *testing.T) {
		t.Parallel()
		v := &sleeper{d: d}
		_, client := startService(t, authsvc.Config{MaxConcurrent: 1}, v)
		all := timeAuths(t, client, n)
		t.Logf("%d at once, one at a time: %s", n, all)
		if all < n*d {
			t.Errorf("%d requests took %s with MaxConcurrent=1, want at least %s", n, all, n*d)
		}
		if p := v.peak.Load(); p != 1 {
			t.Errorf("peak concurrency %d, want 1", p)
		}
	})
}

// gate is a verifier that blocks each call until released.
type gate struct {
	started chan string
	release chan struct{}
}

func newGate() *gate {
	return &gate{started: make(chan string, 16), release: make(chan struct{})}
}

func (g *gate) Verify(ctx context.Context, req bus.AuthRequest) (string, error) {
	select {
	case g.started <- req.Body:
	default:
	}
	select {
	case <-g.release:
		return req.Body, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func TestStopWaitsForInFlight(t *testing.T) {
	g := newGate()
	svcConn, client := testBus(t)
	svc, err := authsvc.New(authsvc.Config{}, svcConn, g)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		rep bus.AuthReply
		err error
	}
	replies := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		rep, err := bus.RequestAuth(ctx, client, bus.AuthRequest{Body: "7"})
		replies <- result{rep, err}
	}()
	<-g.started

	stopped := make(chan error, 1)
	go func() { stopped <- svc.Stop() }()
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) while a verification was running", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(g.release)
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not return")
	}
	if r := <-replies; r.err != nil || !r.rep.OK || r.rep.UID != "7" {
		t.Fatalf("in-flight request answered %+v, %v", r.rep, r.err)
	}
	if err := svc.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := bus.RequestAuth(ctx, client, bus.AuthRequest{Body: "8"}); !errors.Is(err, bus.ErrAuthUnavailable) {
		t.Fatalf("after Stop: %v", err)
	}
}

// TestStopDrainsQueued: requests delivered before Stop, still waiting for
// the only pool slot, are verified and answered, not dropped.
func TestStopDrainsQueued(t *testing.T) {
	g := newGate()
	svcConn, client := testBus(t)
	svc, err := authsvc.New(authsvc.Config{MaxConcurrent: 1}, svcConn, g)
	if err != nil {
		t.Fatal(err)
	}
	inbox := nats.NewInbox()
	replies := make(chan *nats.Msg, 16)
	sub, err := client.ChanSubscribe(inbox+".*", replies)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	const n = 3
	for i := range n {
		data, _ := json.Marshal(bus.AuthRequest{Body: fmt.Sprint("q", i)})
		if err := client.PublishRequest(bus.SubjectAuth, fmt.Sprint(inbox, ".", i), data); err != nil {
			t.Fatal(err)
		}
	}
	if err := client.Flush(); err != nil {
		t.Fatal(err)
	}
	<-g.started // one verifies, the others wait for the slot

	stopped := make(chan error, 1)
	go func() { stopped <- svc.Stop() }()
	// Once the UNSUB is through, new requests find no responder.
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := client.RequestWithContext(ctx, bus.SubjectAuth, []byte(`{}`))
		if errors.Is(err, nats.ErrNoResponders) {
			return nil
		}
		return fmt.Errorf("still subscribed: %v", err)
	})
	close(g.release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for range n {
		select {
		case m := <-replies:
			var rep bus.AuthReply
			if err := json.Unmarshal(m.Data, &rep); err != nil || !rep.OK {
				t.Fatalf("reply %s: %v", m.Data, err)
			}
			got[rep.UID] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d of %d queued requests answered", len(got), n)
		}
	}
	if len(got) != n {
		t.Fatalf("answers %v", got)
	}
}

func TestRequestWithoutReplyIgnored(t *testing.T) {
	svc, client := startService(t, authsvc.Config{}, authsvc.VerifierFunc(scripted))
	if err := client.Publish(bus.SubjectAuth, []byte(`{"body":"42"}`)); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if st := svc.Stats(); st.BadRequests != 1 || st.OK != 0 {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	})
}

func TestStopAfterConnectionClosed(t *testing.T) {
	svcConn, _ := testBus(t)
	svc, err := authsvc.New(authsvc.Config{}, svcConn, authsvc.VerifierFunc(scripted))
	if err != nil {
		t.Fatal(err)
	}
	svcConn.Close()
	stopped := make(chan error, 1)
	go func() { stopped <- svc.Stop() }()
	select {
	case err := <-stopped:
		t.Logf("Stop: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("Stop hung on a closed connection")
	}
}

// TestStopDrainTimeout: a request still waiting for a pool slot when
// DrainTimeout passes is answered "stopping", and Stop still waits for the
// verification that runs.
func TestStopDrainTimeout(t *testing.T) {
	g := newGate()
	log, logs := newLogger()
	svcConn, client := testBus(t)
	svc, err := authsvc.New(authsvc.Config{MaxConcurrent: 1, DrainTimeout: 50 * time.Millisecond, Logger: log}, svcConn, g)
	if err != nil {
		t.Fatal(err)
	}
	inbox := nats.NewInbox()
	replies := make(chan *nats.Msg, 4)
	sub, err := client.ChanSubscribe(inbox+".*", replies)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	for i := range 2 {
		data, _ := json.Marshal(bus.AuthRequest{Body: fmt.Sprint("q", i)})
		if err := client.PublishRequest(bus.SubjectAuth, fmt.Sprint(inbox, ".", i), data); err != nil {
			t.Fatal(err)
		}
	}
	if err := client.Flush(); err != nil {
		t.Fatal(err)
	}
	<-g.started

	stopped := make(chan error, 1)
	go func() { stopped <- svc.Stop() }()
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if !strings.Contains(logs.String(), "after DrainTimeout") {
			return errors.New("drain has not timed out")
		}
		return nil
	})
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) while a verification was running", err)
	default:
	}
	close(g.release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	var ok, stopping int
	for range 2 {
		select {
		case m := <-replies:
			switch {
			case m.Header.Get(micro.ErrorCodeHeader) == "503":
				stopping++
			case strings.Contains(string(m.Data), `"ok":true`):
				ok++
			default:
				t.Fatalf("reply %q %v", m.Data, m.Header)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a request was not answered")
		}
	}
	if ok != 1 || stopping != 1 {
		t.Fatalf("ok %d, stopping %d", ok, stopping)
	}
}
