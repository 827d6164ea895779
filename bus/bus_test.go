package bus

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/plexbus/plex/embeddednats"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestValidUID(t *testing.T) {
	tests := map[string]struct {
		uid string
		ok  bool
	}{
		"digits":         {"42", true},
		"all specials":   {"a_b@c:d=e+f-G9", true},
		"max length":     {strings.Repeat("x", 128), true},
		"empty":          {"", false},
		"too long":       {strings.Repeat("x", 129), false},
		"dot":            {"a.b", false},
		"star":           {"*", false},
		"gt":             {">", false},
		"space":          {"a b", false},
		"tab":            {"a\tb", false},
		"slash":          {"a/b", false},
		"non-ascii":      {"é", false},
		"nul":            {"a\x00", false},
		"newline":        {"a\n", false},
		"email like uid": {"bob@example:com", true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := ValidUID(tc.uid)
			if tc.ok != (err == nil) {
				t.Fatalf("ValidUID(%q) = %v", tc.uid, err)
			}
			if err != nil && !errors.Is(err, ErrInvalidUID) {
				t.Fatalf("error %v is not ErrInvalidUID", err)
			}
			subj, err := UserSubject(tc.uid)
			if tc.ok != (err == nil) {
				t.Fatalf("UserSubject(%q) = %q, %v", tc.uid, subj, err)
			}
			if tc.ok {
				if got, ok := UIDFromSubject(subj); !ok || got != tc.uid {
					t.Fatalf("UIDFromSubject(%q) = %q, %v", subj, got, ok)
				}
			}
		})
	}
	for _, s := range []string{"plex.user.", "plex.users.x", "plex.user.a.b", "other"} {
		if _, ok := UIDFromSubject(s); ok {
			t.Errorf("UIDFromSubject(%q) accepted", s)
		}
	}
}

func TestPushMsg(t *testing.T) {
	m, err := Push{UID: "42", Body: []byte("hi")}.Msg()
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "plex.user.42" || m.Header != nil || string(m.Data) != "hi" {
		t.Fatalf("plain push: %+v", m)
	}
	m, err = Push{UID: "42", URI: "/n", Seq: 7}.Msg()
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get(HeaderURI) != "/n" || m.Header.Get(HeaderSeq) != "7" {
		t.Fatalf("headers: %v", m.Header)
	}
	if _, err := (Push{UID: "a.b"}).Msg(); !errors.Is(err, ErrInvalidUID) {
		t.Fatalf("bad uid: %v", err)
	}
}

func connect(t *testing.T, s *embeddednats.Server) *nats.Conn {
	t.Helper()
	nc, err := s.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// TestGatherAcrossResponders plays two edges answering one push.
func TestGatherAcrossResponders(t *testing.T) {
	s := embeddednats.RunTest(t, embeddednats.Config{})
	nc := connect(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()

	if n, err := PublishWait(ctx, nc, Push{UID: "7", Body: []byte("x")}, 0); err != nil || n != 0 {
		t.Fatalf("offline user: n=%d err=%v", n, err)
	}
	if conns, err := QueryPresence(ctx, nc, "7", 0); err != nil || len(conns) != 0 {
		t.Fatalf("offline presence: %v %v", conns, err)
	}

	for _, edge := range []string{"a", "b"} {
		e := connect(t, s)
		_, err := e.Subscribe("plex.user.7", func(m *nats.Msg) {
			var reply any
			switch m.Header.Get(HeaderOp) {
			case OpPresence:
				reply = PresenceReply{UID: "7", Edge: edge, Conns: []ConnInfo{{ID: edge + "-1", Edge: edge}}}
			case OpKick:
				n := 1
				if m.Header.Get(HeaderConn) == edge+"-1" {
					n = 0
				}
				reply = KickReply{Kicked: n, Edge: edge}
			default:
				reply = Delivered{Delivered: 2, Edge: edge}
			}
			data, _ := json.Marshal(reply)
			_ = m.Respond(data)
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := PublishWait(ctx, nc, Push{UID: "7", Body: []byte("x")}, 100*time.Millisecond); err != nil || n != 4 {
		t.Fatalf("delivered n=%d err=%v, want 4", n, err)
	}
	conns, err := QueryPresence(ctx, nc, "7", 100*time.Millisecond)
	if err != nil || len(conns) != 2 {
		t.Fatalf("presence %v %v", conns, err)
	}
	if n, err := KickWait(ctx, nc, "7", "a-1", 100*time.Millisecond); err != nil || n != 1 {
		t.Fatalf("kick n=%d err=%v, want 1", n, err)
	}
}

func TestRequestAuth(t *testing.T) {
	s := embeddednats.RunTest(t, embeddednats.Config{})
	nc := connect(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := RequestAuth(ctx, nc, AuthRequest{Body: "x"}); !errors.Is(err, ErrAuthUnavailable) {
		t.Fatalf("no service: %v", err)
	}
	replies := map[string]string{
		"good":    `{"ok":true,"uid":"42"}`,
		"baduid":  `{"ok":true,"uid":"4.2"}`,
		"refused": `{"ok":false,"reason":"nope"}`,
		"garbage": `not json`,
	}
	sub, err := nc.Subscribe(SubjectAuth, func(m *nats.Msg) {
		var req AuthRequest
		_ = json.Unmarshal(m.Data, &req)
		_ = m.Respond([]byte(replies[req.Body]))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	rep, err := RequestAuth(ctx, nc, AuthRequest{Body: "good"})
	if err != nil || !rep.OK || rep.UID != "42" {
		t.Fatalf("good: %+v %v", rep, err)
	}
	rep, err = RequestAuth(ctx, nc, AuthRequest{Body: "baduid"})
	if err != nil || rep.OK {
		t.Fatalf("bad uid accepted: %+v %v", rep, err)
	}
	rep, err = RequestAuth(ctx, nc, AuthRequest{Body: "refused"})
	if err != nil || rep.OK || rep.Reason != "nope" {
		t.Fatalf("refused: %+v %v", rep, err)
	}
	if _, err := RequestAuth(ctx, nc, AuthRequest{Body: "garbage"}); !errors.Is(err, ErrAuthUnavailable) {
		t.Fatalf("garbage: %v", err)
	}
}

func TestPresenceAndStatsRoundTrip(t *testing.T) {
	s := embeddednats.RunTest(t, embeddednats.Config{})
	nc := connect(t, s)
	gotP := make(chan Presence, 1)
	gotS := make(chan EdgeStats, 1)
	ps, err := SubscribePresence(nc, func(p Presence) { gotP <- p })
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Unsubscribe()
	ss, err := SubscribeEdgeStats(nc, func(s EdgeStats) { gotS <- s })
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Unsubscribe()
	_ = nc.Publish(SubjectPresence, []byte("garbage is skipped"))
	at := time.Now().UTC().Truncate(time.Millisecond)
	if err := PublishPresence(nc, Presence{UID: "1", Online: true, Edge: "e", Conn: "e-1", At: at}); err != nil {
		t.Fatal(err)
	}
	if err := PublishEdgeStats(nc, EdgeStats{ID: "e", Addr: "127.0.0.1:1", Conns: 3}); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-gotP:
		if p.UID != "1" || !p.Online || !p.At.Equal(at) {
			t.Fatalf("presence %+v", p)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no presence")
	}
	select {
	case st := <-gotS:
		if st.ID != "e" || st.Conns != 3 {
			t.Fatalf("stats %+v", st)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no stats")
	}
}

func TestRedactURLs(t *testing.T) {
	got := RedactURLs("nats://u:p@h1:4222, nats://h2:4222,tls://tok@h3")
	if strings.Contains(got, "u:p") || strings.Contains(got, "tok") || !strings.Contains(got, "h2:4222") {
		t.Fatalf("got %q", got)
	}
}

func TestConnConfigErrors(t *testing.T) {
	for name, cfg := range map[string]ConnConfig{
		"two auths":       {User: "u", Password: "p", Token: "t"},
		"missing creds":   {CredsFile: "/nonexistent.creds"},
		"half client tls": {CertFile: "x.pem"},
		"missing ca":      {CAFile: "/nonexistent.pem"},
	} {
		if _, err := cfg.Options(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
