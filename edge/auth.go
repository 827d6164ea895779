package edge

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/plexbus/plex/bus"
	"github.com/plexbus/plex/wire"
)

var errEnded = errors.New("edge: connection ended")

// startAuth hands a login to a short-lived goroutine, bounded by
// MaxPendingAuth, so the read path never waits on the bus.
func (c *conn) startAuth(body string) {
	if !c.state.CompareAndSwap(stateNew, stateAuthing) {
		return
	}
	s := c.srv
	select {
	case s.authSem <- struct{}{}:
	default:
		s.metrics.auths.WithLabelValues("busy").Inc()
		s.metrics.limited.WithLabelValues("pending_auth").Inc()
		c.fail(ReasonAuthUnavailable, wire.URIAuthFailed, wire.FailServerBusy)
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() { <-s.authSem }()
		c.authenticate(body)
	}()
}

func (c *conn) authenticate(body string) {
	s := c.srv
	start := time.Now()
	if !s.bus.IsConnected() {
		s.metrics.observeAuth("unavailable", start)
		c.fail(ReasonAuthUnavailable, wire.URIAuthFailed, wire.FailAuthUnavailable)
		return
	}
	timeout := min(s.cfg.AuthRequestTimeout, time.Until(time.Unix(0, c.deadline.Load())))
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	rep, err := bus.RequestAuth(ctx, s.bus, bus.AuthRequest{Body: body, Remote: c.remote, Edge: s.id, Conn: c.id()})
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		s.metrics.observeAuth("timeout", start)
		c.logger().Warn("auth service timed out", "after", time.Since(start).Round(time.Millisecond))
		c.fail(ReasonAuthUnavailable, wire.URIAuthFailed, wire.FailAuthTimedOut)
		return
	case err != nil:
		s.metrics.observeAuth("unavailable", start)
		c.logger().Warn("auth unavailable", "err", err)
		c.fail(ReasonAuthUnavailable, wire.URIAuthFailed, wire.FailAuthUnavailable)
		return
	case !rep.OK:
		s.metrics.observeAuth("refused", start)
		reason := rep.Reason
		if reason == "" {
			reason = "auth refused"
		}
		c.logger().Info("auth refused", "reason", reason)
		c.fail(ReasonAuthFailed, wire.URIAuthFailed, reason)
		return
	}
	if !c.login(ctx, rep.UID) {
		return
	}
	s.metrics.observeAuth("ok", start)
}

// login registers an authenticated connection under uid, applying the
// duplicate-login policy, and answers /auth/success.
func (c *conn) login(ctx context.Context, uid string) bool {
	s := c.srv
	if s.cfg.DuplicateLogin == DuplicateRejectNew && s.onlineAnywhere(ctx, uid) {
		s.metrics.auths.WithLabelValues("duplicate").Inc()
		c.fail(ReasonDuplicate, wire.URIAuthFailed, wire.FailAlreadyLoggedIn)
		return false
	}
	c.wmu.Lock()
	c.uid = uid
	c.wmu.Unlock()
	subscribed, err := s.reg.add(c, uid, s.subscribe)
	if err != nil {
		if !errors.Is(err, errEnded) {
			c.logger().Error("subscribe user", "err", err)
			c.fail(ReasonAuthUnavailable, wire.URIAuthFailed, wire.FailAuthUnavailable)
		}
		return false
	}
	if subscribed {
		// Make sure the server has the subscription before the client hears
		// it is online, so a push sent after /auth/success is not missed.
		_ = s.bus.FlushWithContext(ctx)
	}
	if !c.state.CompareAndSwap(stateAuthing, stateOpen) {
		s.reg.remove(c) // ended while logging in
		return false
	}
	c.touch()
	if s.cfg.DuplicateLogin == DuplicateKickOld {
		// Every edge holding uid, this one included, closes the others.
		if err := bus.Kick(s.bus, uid, c.id()); err != nil {
			c.logger().Warn("kick older logins", "err", err)
		}
	}
	c.sendControl(wire.URIAuthSuccess, successBody(uid, s.heartbeatSecs))
	c.wmu.Lock()
	announce := !c.wclosed
	c.announced = announce
	c.wmu.Unlock()
	if announce {
		s.publishPresence(c, true, "")
	}
	return true
}

func successBody(uid string, heartbeat int) string {
	b := make([]byte, 0, 32+len(uid))
	b = append(b, `{"uid":`...)
	b = strconv.AppendQuote(b, uid) // uids are plain ASCII: Go and JSON quoting agree
	b = append(b, `,"heartbeat":`...)
	b = strconv.AppendInt(b, int64(heartbeat), 10)
	return string(append(b, '}'))
}

// onlineAnywhere asks the edges (this one included) whether uid has a connection.
func (s *Server) onlineAnywhere(ctx context.Context, uid string) bool {
	if len(s.reg.conns(uid, nil)) > 0 {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	conns, err := bus.QueryPresence(ctx, s.bus, uid, 20*time.Millisecond)
	return err == nil && len(conns) > 0
}

// innerAuth logs in the original framework's push client.
func (c *conn) innerAuth(password string) {
	s := c.srv
	if s.cfg.InnerPassword == "" || subtle.ConstantTimeCompare([]byte(password), []byte(s.cfg.InnerPassword)) != 1 {
		s.metrics.auths.WithLabelValues("refused").Inc()
		reason := wire.FailInnerRefused
		if s.cfg.InnerPassword == "" {
			reason = wire.FailInnerDisabled
		}
		c.logger().Warn("inner auth refused", "reason", reason)
		c.fail(ReasonAuthFailed, wire.URIAuthFailed, reason)
		return
	}
	if !c.state.CompareAndSwap(stateNew, stateInner) {
		return
	}
	s.metrics.auths.WithLabelValues("ok").Inc()
	c.touch()
	c.logger().Info("inner push client logged in")
	c.sendControl(wire.URIAuthSuccess, `{"heartbeat":`+strconv.Itoa(s.heartbeatSecs)+`}`)
}

// innerMessage is the body of /logic/send/msg.
type innerMessage struct {
	UID  string `json:"uid"`
	URI  string `json:"uri"`
	Body string `json:"body"`
}

// innerSend publishes an inner push on the bus, so it reaches the user on
// whichever edge holds them.
func (c *conn) innerSend(body string) {
	var im innerMessage
	if err := json.Unmarshal([]byte(body), &im); err != nil {
		c.logger().Warn("inner push: bad body", "err", err)
		return
	}
	p := bus.Push{UID: im.UID, URI: im.URI, Body: []byte(im.Body)}
	if err := bus.Publish(c.srv.bus, p); err != nil {
		c.logger().Warn("inner push refused", "err", err)
		return
	}
	c.srv.metrics.innerPushes.Inc()
}
