package edge

import (
	"time"

	"github.com/plexbus/plex/wire"
)

// sweepLoop enforces the auth, idle, linger and write deadlines of every
// connection from one goroutine, so a connection needs no timer of its own.
func (s *Server) sweepLoop() {
	tick := min(s.cfg.AuthTimeout, s.cfg.HeartbeatTimeout, linger, s.cfg.WriteTimeout) / 4
	tick = min(max(tick, 5*time.Millisecond), time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	var expired []*conn
	sweeps := 0
	for {
		select {
		case <-t.C:
		case <-s.ctx.Done():
			return
		}
		now := time.Now().UnixNano()
		s.connsMu.RLock()
		for c := range s.conns {
			if c.deadline.Load() < now || c.writeStalled(now) {
				expired = append(expired, c)
			}
		}
		s.connsMu.RUnlock()
		for i, c := range expired {
			if c.writeStalled(now) {
				s.metrics.queueDrops.WithLabelValues("conn").Inc()
				c.close(ReasonSlow)
				expired[i] = nil
				continue
			}
			switch c.state.Load() {
			case stateAuthing:
				if !s.auth.timedOut(c) {
					c.fail(ReasonAuthTimeout, wire.URIAuthFailed, wire.FailAuthTimeout)
				}
			case stateNew:
				c.fail(ReasonAuthTimeout, wire.URIAuthFailed, wire.FailAuthTimeout)
			case stateOpen, stateInner:
				c.close(ReasonIdle)
			default:
				c.closeSocket()
			}
			expired[i] = nil
		}
		expired = expired[:0]
		if sweeps++; sweeps%(int(time.Minute/tick)+1) == 0 {
			s.failedIPs.sweep(time.Now())
		}
	}
}
