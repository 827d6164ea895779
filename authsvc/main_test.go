package authsvc_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/plexbus/plex/authsvc"
	"github.com/plexbus/plex/bus"
	"github.com/plexbus/plex/embeddednats"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// logBuffer is a goroutine-safe sink for a debug-level test logger.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newLogger() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// testBus starts an embedded server and returns a connection for the
// service and one for clients (edges).
func testBus(t *testing.T) (svcConn, client *nats.Conn) {
	t.Helper()
	s := embeddednats.RunTest(t, embeddednats.Config{})
	connect := func() *nats.Conn {
		nc, err := s.Connect()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	return connect(), connect()
}

// startService runs a service for the test and stops it in t.Cleanup.
func startService(t *testing.T, cfg authsvc.Config, v authsvc.Verifier) (*authsvc.Service, *nats.Conn) {
	t.Helper()
	svcConn, client := testBus(t)
	svc, err := authsvc.New(cfg, svcConn, v)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := svc.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return svc, client
}

// rawAuth sends an auth request and decodes the service's reply as is,
// without bus.ParseAuthReply's own uid check.
func rawAuth(t *testing.T, nc *nats.Conn, body string) bus.AuthReply {
	t.Helper()
	data, err := json.Marshal(bus.AuthRequest{Body: body, Remote: "10.0.0.1:5555", Edge: "e1", Conn: "e1-7"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msg, err := nc.RequestWithContext(ctx, bus.SubjectAuth, data)
	if err != nil {
		t.Fatalf("request %q: %v", body, err)
	}
	var rep bus.AuthReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		t.Fatalf("reply %q: %v (headers %v)", msg.Data, err, msg.Header)
	}
	return rep
}

// checkFor polls fn until it returns nil or the timeout passes.
func checkFor(t *testing.T, timeout, every time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(every)
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
