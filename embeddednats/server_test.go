package embeddednats

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func roundTrip(t *testing.T, pub, sub *nats.Conn) {
	t.Helper()
	s, err := sub.SubscribeSync("t.x")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Unsubscribe()
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	// Cluster interest propagates asynchronously: publish until it arrives.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if err := pub.Publish("t.x", []byte("hi")); err != nil {
			t.Fatal(err)
		}
		if m, err := s.NextMsg(50 * time.Millisecond); err == nil {
			if string(m.Data) != "hi" {
				t.Fatalf("got %q", m.Data)
			}
			return
		}
	}
	t.Fatal("message never arrived")
}

func TestRandomPort(t *testing.T) {
	s := RunTest(t, Config{})
	if s.Port() == 0 || s.Port() == 4222 || !strings.HasPrefix(s.ClientURL(), "nats://127.0.0.1:") {
		t.Fatalf("port %d url %s", s.Port(), s.ClientURL())
	}
	nc, err := s.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	roundTrip(t, nc, nc)
}

func TestDontListenInProcess(t *testing.T) {
	s := RunTest(t, Config{DontListen: true})
	if s.ClientURL() != "" || s.Port() != 0 {
		t.Fatalf("listening: %q %d", s.ClientURL(), s.Port())
	}
	nc, err := s.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	roundTrip(t, nc, nc)
}

func TestJetStreamStoreDir(t *testing.T) {
	dir := t.TempDir()
	s := RunTest(t, Config{JetStream: true, StoreDir: dir})
	nc, err := s.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.AddStream(&nats.StreamConfig{Name: "T", Subjects: []string{"js.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish("js.a", []byte("x")); err != nil {
		t.Fatal(err)
	}
}

func TestClusterRoutes(t *testing.T) {
	a := RunTest(t, Config{ClusterName: "c", ServerName: "a"})
	b := RunTest(t, Config{ClusterName: "c", ServerName: "b", Routes: []string{a.ClusterURL()}})
	deadline := time.Now().Add(5 * time.Second)
	for a.NumRoutes() == 0 || b.NumRoutes() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("route never came up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	na, err := a.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer na.Close()
	nb, err := b.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nb.Close()
	roundTrip(t, na, nb)
}

func TestRestartSamePort(t *testing.T) {
	s, err := Start(Config{})
	if err != nil {
		t.Fatal(err)
	}
	port := s.Port()
	s.Shutdown()
	s.Shutdown() // idempotent
	s2 := RunTest(t, Config{Port: port})
	if s2.Port() != port {
		t.Fatalf("restarted on %d, want %d", s2.Port(), port)
	}
}

func TestPortInUse(t *testing.T) {
	s := RunTest(t, Config{})
	_, err := Start(Config{Port: s.Port(), ReadyTimeout: 500 * time.Millisecond})
	if err == nil {
		t.Fatal("second server on the same port started")
	}
	if !errors.Is(err, ErrNotReady) {
		t.Logf("error: %v", err)
	}
}

func TestUserPassword(t *testing.T) {
	s := RunTest(t, Config{User: "plex", Password: "secret"})
	if _, err := nats.Connect(s.ClientURL()); err == nil {
		t.Fatal("connected without credentials")
	}
	nc, err := s.Connect()
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	if _, err := Start(Config{User: "x"}); err == nil {
		t.Fatal("user without password accepted")
	}
}

func TestBadConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"routes without cluster": {Routes: []string{"nats-route://127.0.0.1:1"}},
		"bad cluster listen":     {ClusterName: "c", ClusterListen: "nope"},
		"token and user":         {Token: "t", User: "u", Password: "p"},
		"missing tls key":        {TLSCert: "/nonexistent.pem"},
	} {
		if s, err := Start(cfg); err == nil {
			s.Shutdown()
			t.Errorf("%s: started", name)
		}
	}
}
