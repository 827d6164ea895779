package harness

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/plexbus/plex/bus"
	"github.com/plexbus/plex/edge"
)

// RunEdge runs an edge on nc in this process (on 127.0.0.1:0 unless
// cfg.Addr is set) until stop is called or the test ends. Stopping fails
// the test if Run returns an error or the edge takes over 15 s to stop;
// stop is idempotent.
func RunEdge(t testing.TB, cfg edge.Config, nc *nats.Conn) (s *edge.Server, stop func()) {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	s, err := edge.New(cfg, nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("edge Run: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Error("edge did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return s, stop
}

// ServeUIDAuth answers plex.auth on nc in place of an auth service: the
// body "uid:<x>" logs in as x when x is a valid uid, anything else is
// refused with "bad token". onRequest, if not nil, is called for each
// request. The subscription is known to the server when it returns.
func ServeUIDAuth(t testing.TB, nc *nats.Conn, onRequest func()) {
	t.Helper()
	_, err := nc.QueueSubscribe(bus.SubjectAuth, bus.QueueAuth, func(m *nats.Msg) {
		if onRequest != nil {
			onRequest()
		}
		var req bus.AuthRequest
		rep := bus.AuthReply{Reason: "bad token"}
		if json.Unmarshal(m.Data, &req) == nil {
			if uid, ok := strings.CutPrefix(req.Body, "uid:"); ok && bus.ValidUID(uid) == nil {
				rep = bus.AuthReply{OK: true, UID: uid}
			}
		}
		data, _ := json.Marshal(rep)
		if err := m.Respond(data); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			t.Errorf("auth respond: %v", err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}
