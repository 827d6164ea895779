//go:build linux

package edge

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/nats-io/nats.go"
	"golang.org/x/sys/unix"

	"github.com/plexbus/plex/bus"
)

// BenchmarkPushPath measures the edge's work per push after the bus
// connection: the dispatcher looks up the user, encodes the frame into the
// connection's queue and writes it to the socket (a socketpair drained by a
// reader). allocs/op shows the path makes no garbage of its own.
func BenchmarkPushPath(b *testing.B) {
	for _, batch := range []int{1, 64} {
		b.Run(map[int]string{1: "one-per-write", 64: "batch-64"}[batch], func(b *testing.B) {
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
			if err != nil {
				b.Fatal(err)
			}
			peer := os.NewFile(uintptr(fds[1]), "peer")
			defer peer.Close()
			_ = unix.SetNonblock(fds[1], false)
			go func() { _, _ = io.Copy(io.Discard, peer) }()

			cfg := Config{SendQueueBytes: 256 << 20} // the peer drains slower than the loop pushes
			if err := cfg.setDefaults(); err != nil {
				b.Fatal(err)
			}
			s := &Server{cfg: cfg, id: "bench", reg: newRegistry(), metrics: newMetrics(func() float64 { return 0 }), log: slog.New(slog.DiscardHandler)}
			s.ctx, s.cancel = context.WithCancel(context.Background())
			p, err := newPoller(s)
			if err != nil {
				b.Fatal(err)
			}
			done := make(chan struct{})
			go func() { defer close(done); p.run() }()
			defer func() { s.cancel(); p.stop(); <-done; p.close() }()
			c := newConn(s, nil, int32(fds[0]), "127.0.0.1:1")
			c.poller = p
			if err := p.add(c); err != nil {
				b.Fatal(err)
			}
			c.state.Store(stateOpen)
			if _, err := s.reg.add(c, "42", func(string) (*nats.Subscription, error) { return &nats.Subscription{}, nil }); err != nil {
				b.Fatal(err)
			}
			d := newDispatcher(s, 1)
			msgs := make([]*nats.Msg, batch)
			for i := range msgs {
				msgs[i] = &nats.Msg{Subject: bus.UserPrefix + "42", Data: []byte(`{"t":1732500000000000000,"n":123456}`)}
			}
			b.ReportAllocs()
			b.ReportMetric(float64(batch), "pushes/op")
			for b.Loop() {
				d.handle(msgs)
			}
		})
	}
}
