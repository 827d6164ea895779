package edge

import (
	"time"

	"github.com/nats-io/nats.go"

	"github.com/plexbus/plex/bus"
)

func (s *Server) publishPresence(c *conn, online bool, r Reason) {
	p := bus.Presence{UID: c.uid, Online: online, Edge: s.id, Conn: c.id(), Remote: c.remote, At: time.Now().UTC()}
	if !online {
		p.Reason = string(r)
	}
	if err := bus.PublishPresence(s.bus, p); err != nil {
		s.log.Warn("publish presence", "err", err)
	}
}

func (s *Server) publishStats() {
	err := bus.PublishEdgeStats(s.bus, bus.EdgeStats{
		ID:         s.id,
		Addr:       s.advertise,
		Conns:      s.NumConns(),
		MaxConns:   s.cfg.MaxConnections,
		Started:    s.started,
		Version:    s.cfg.Version,
		IntervalMS: s.cfg.StatsInterval.Milliseconds(),
		Draining:   s.draining.Load(),
	})
	if err != nil {
		s.log.Debug("publish stats", "err", err)
	}
}

func (s *Server) statsLoop() {
	s.publishStats()
	t := time.NewTicker(s.cfg.StatsInterval)
	defer t.Stop()
	var dropped int64
	for {
		select {
		case <-t.C:
			s.publishStats()
			if n := s.reg.dropped(); n > dropped {
				s.metrics.queueDrops.WithLabelValues("bus").Add(float64(n - dropped))
				s.log.Warn("bus queue full: pushes dropped", "dropped", n-dropped)
				dropped = n
			}
		case <-s.ctx.Done():
			return
		}
	}
}

// watchBus re-announces every online connection after the bus connection
// comes back, so presence consumers can rebuild their view. nats.go
// re-subscribes the users' subjects itself.
func (s *Server) watchBus() {
	ch := s.bus.StatusChanged(nats.CONNECTED, nats.RECONNECTING, nats.DISCONNECTED)
	defer s.bus.RemoveStatusListener(ch)
	for {
		select {
		case st := <-ch:
			if st != nats.CONNECTED {
				continue
			}
			conns := s.reg.all()
			for _, c := range conns {
				// Under wmu and only while announced: a connection whose
				// offline event went out is never re-announced after it.
				c.wmu.Lock()
				if c.announced {
					p := bus.Presence{UID: c.uid, Online: true, Edge: s.id, Conn: c.id(), Remote: c.remote, At: time.Now().UTC(), Resync: true}
					_ = bus.PublishPresence(s.bus, p)
				}
				c.wmu.Unlock()
			}
			s.metrics.busResyncs.Inc()
			s.publishStats()
			s.log.Info("bus reconnected: presence re-announced", "conns", len(conns), "users", s.reg.len())
		case <-s.ctx.Done():
			return
		}
	}
}
