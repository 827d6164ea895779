package bench

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/plexbus/plex/bus"
	"github.com/plexbus/plex/edge"
	"github.com/plexbus/plex/embeddednats"
	"github.com/plexbus/plex/test/busfaults/harness"
	"github.com/plexbus/plex/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBodyRoundTrip(t *testing.T) {
	b := appendBody(nil, 42, 7, 1234567890, 64)
	if len(b) != 64 {
		t.Fatalf("body %d bytes, want 64", len(b))
	}
	idx, seq, ns, ok := parseBody(b)
	if !ok || idx != 42 || seq != 7 || ns != 1234567890 {
		t.Fatalf("parsed %d %d %d %v", idx, seq, ns, ok)
	}
	for _, bad := range []string{"", "x", "1 2", "a b c ", "1 2 3"} {
		if _, _, _, ok := parseBody([]byte(bad)); ok {
			t.Errorf("parsed %q", bad)
		}
	}
}

// TestReceiveCounts drives the receiver's bookkeeping directly: in order,
// a gap filled late (reordered), a duplicate, a misrouted message.
func TestReceiveCounts(t *testing.T) {
	r := &pushRun{cfg: PushConfig{Users: 2, Offset: 10}, users: make([]userState, 2), lat: NewLatency()}
	r.measureAt.Store(0)
	r.endAt.Store(1 << 62)
	now := time.Now().UnixNano()
	send := func(user, idx int, seq int64) { r.receive(user, appendBody(nil, idx, seq, now, 0)) }
	send(0, 10, 1)
	send(0, 10, 2)
	send(0, 10, 4)
	send(0, 10, 3) // late
	send(0, 10, 4) // again
	send(1, 10, 1) // for user 0, arrived at user 1
	send(1, 11, 1)
	u0, u1 := &r.users[0], &r.users[1]
	if u0.recv.Load() != 4 || u0.reorders != 1 || u0.dups != 1 {
		t.Fatalf("user 0: recv %d reorders %d dups %d", u0.recv.Load(), u0.reorders, u0.dups)
	}
	if u1.recv.Load() != 1 || u1.misroutes != 1 {
		t.Fatalf("user 1: recv %d misroutes %d", u1.recv.Load(), u1.misroutes)
	}
	if got := Summarize(r.lat.Merged()).Count; got != 5 {
		t.Fatalf("latency samples %d", got)
	}
}

func TestSlopeAndShares(t *testing.T) {
	if s := slope([]float64{0, 1000, 2000}, []float64{100, 1600, 3100}); s < 1.499 || s > 1.501 {
		t.Fatalf("slope %v", s)
	}
	total := 0
	for i := 0; i < 3; i++ {
		total += share(10, 3, i)
	}
	if total != 10 || share(10, 3, 0) != 4 {
		t.Fatalf("shares of 10 over 3")
	}
	a, b := NewLatency(), NewLatency()
	a.Record(0, time.Millisecond)
	b.Record(1, 3*time.Millisecond)
	m := MergeSummaries([]LatencySummary{Summarize(a.Merged()), Summarize(b.Merged())})
	if m.Count != 2 || m.Max < 2.9 {
		t.Fatalf("merged %+v", m)
	}
}

// stack is NATS, a dev-style auth responder and an edge.
func stack(t *testing.T) (*embeddednats.Server, *edge.Server) {
	t.Helper()
	ns := embeddednats.RunTest(t, embeddednats.Config{})
	auth, err := ns.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(auth.Close)
	_, err = auth.Subscribe(bus.SubjectAuth, func(m *nats.Msg) {
		var req bus.AuthRequest
		_ = json.Unmarshal(m.Data, &req)
		data, _ := json.Marshal(bus.AuthReply{OK: true, UID: req.Body})
		_ = m.Respond(data)
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = auth.Flush()
	enc, err := ns.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(enc.Close)
	e, _ := harness.RunEdge(t, edge.Config{}, enc)
	return ns, e
}

func TestConnsAgainstEdge(t *testing.T) {
	_, e := stack(t)
	pid := ProcStats{PID: os.Getpid()}
	pool := NewPool(PoolConfig{Dialer: Dialer{Addr: e.Addr().String(), ExplicitPorts: true}, Tokens: Tokens{Prefix: "c"}, N: 200, Concurrency: 16})
	res, err := RunConns(context.Background(), ConnsConfig{N: 200, Steps: 2, Settle: 10 * time.Millisecond, Hold: 50 * time.Millisecond, Heartbeat: 20 * time.Millisecond, RSS: pid.RSS},
		[]Worker{LocalWorker{Pool: pool}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Connected != 200 || res.Failed != 0 || res.ConnectRate <= 0 || len(res.RSSSteps) != 3 || res.Login.Count != 200 {
		t.Fatalf("result %+v", res)
	}
	if cpu, err := pid.CPU(); err != nil || cpu <= 0 {
		t.Fatalf("cpu %v %v", cpu, err)
	}
	if e.NumConns() != 0 {
		waitFor(t, func() bool { return e.NumConns() == 0 })
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRefusedLoginsCounted(t *testing.T) {
	_, e := stack(t)
	pool := NewPool(PoolConfig{Dialer: Dialer{Addr: e.Addr().String()}, Tokens: Tokens{Template: "bad.uid.{uid}"}, N: 5})
	res, err := RunConns(context.Background(), ConnsConfig{N: 5}, []Worker{LocalWorker{Pool: pool}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != 5 || res.Refused != 5 || len(res.Errors) == 0 {
		t.Fatalf("result %+v", res)
	}
}

func TestPushAgainstEdgeAndDirect(t *testing.T) {
	ns, e := stack(t)
	for _, direct := range []bool{false, true} {
		cfg := PushConfig{
			Users: 50, Publishers: 2, Rate: 2000, Duration: 300 * time.Millisecond, Warmup: 50 * time.Millisecond,
			NATS:   bus.ConnConfig{URLs: ns.ClientURL()},
			Direct: direct,
			Pool:   PoolConfig{Dialer: Dialer{Addr: e.Addr().String(), Order: wire.BigEndian}, Tokens: Tokens{Prefix: "p"}},
			CPU:    []ProcStats{{PID: os.Getpid()}},
		}
		res, err := RunPush(context.Background(), cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Sent == 0 || res.Delivered != res.Sent || res.Lost != 0 || res.Duplicates != 0 || res.Reordered != 0 || res.Misrouted != 0 {
			t.Fatalf("direct=%v: %+v", direct, res)
		}
		if res.Rate < 500 || res.Rate > 3000 || res.Latency.Count == 0 || res.CPUPerMsg <= 0 {
			t.Fatalf("direct=%v: rate %v latency %+v cpu %v", direct, res.Rate, res.Latency, res.CPUPerMsg)
		}
	}
}

// TestChildProtocol runs a worker behind the line protocol, in process.
func TestChildProtocol(t *testing.T) {
	_, e := stack(t)
	pool := NewPool(PoolConfig{Dialer: Dialer{Addr: e.Addr().String()}, Tokens: Tokens{Prefix: "k"}, N: 20})
	in := strings.NewReader("connect 10\nconnect 10\nhold 0\nfinish\n")
	var out strings.Builder
	if err := ServeWorker(context.Background(), LocalWorker{Pool: pool}, in, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	last := lines[len(lines)-1]
	rest, ok := strings.CutPrefix(last, "result ")
	if !ok {
		t.Fatalf("last line %q", last)
	}
	var part ConnsPart
	if err := json.Unmarshal([]byte(rest), &part); err != nil || part.Connected != 20 {
		t.Fatalf("part %+v %v", part, err)
	}
	if strings.Count(out.String(), "ok\n") != 3 {
		t.Fatalf("replies:\n%s", out.String())
	}
}
