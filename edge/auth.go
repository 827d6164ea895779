package edge

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/plexbus/plex/bus"
	"github.com/plexbus/plex/wire"
)

var errEnded = errors.New("edge: connection ended")

// authPipe sends logins to the auth service and commits the accepted ones
// without a goroutine per login: requests are published with a reply
// subject of their own (inbox prefix + connection number), one goroutine
// takes the replies in batches, subscribes the users, and makes sure the
// bus has the subscriptions with one round trip per batch before the
// devices hear /auth/success. Request timeouts are the sweeper's.
type authPipe struct {
	srv    *Server
	prefix string
	sub    *nats.Subscription
	ch     chan *nats.Msg

	mu      sync.Mutex
	pending map[uint64]pendingAuth // by conn number
}

type pendingAuth struct {
	c     *conn
	start time.Time
}

func newAuthPipe(s *Server) (*authPipe, error) {
	a := &authPipe{srv: s, prefix: s.bus.NewRespInbox() + ".", ch: make(chan *nats.Msg, 4096), pending: make(map[uint64]pendingAuth)}
	sub, err := s.bus.ChanSubscribe(a.prefix+"*", a.ch)
	if err != nil {
		return nil, err
	}
	a.sub = sub
	return a, nil
}

// startAuth sends a login to the auth service.
func (c *conn) startAuth(body string) {
	if !c.state.CompareAndSwap(stateNew, stateAuthing) {
		return
	}
	s, a := c.srv, c.srv.auth
	now := time.Now()
	if !s.bus.IsConnected() {
		s.metrics.observeAuth("unavailable", now)
		c.fail(ReasonAuthUnavailable, wire.URIAuthFailed, wire.FailAuthUnavailable)
		return
	}
	a.mu.Lock()
	full := len(a.pending) >= s.cfg.MaxPendingAuth
	if !full {
		a.pending[c.num] = pendingAuth{c: c, start: now}
	}
	a.mu.Unlock()
	if full {
		s.metrics.auths.WithLabelValues("busy").Inc()
		s.metrics.limited.WithLabelValues("pending_auth").Inc()
		c.fail(ReasonAuthUnavailable, wire.URIAuthFailed, wire.FailServerBusy)
		return
	}
	// The sweeper fails a request not answered in time.
	if d := now.Add(s.cfg.AuthRequestTimeout).UnixNano(); d < c.deadline.Load() {
		c.deadline.Store(d)
	}
	data, _ := json.Marshal(bus.AuthRequest{Body: body, Remote: c.remote, Edge: s.id, Conn: c.id()})
	err := s.bus.PublishMsg(&nats.Msg{Subject: bus.SubjectAuth, Reply: a.prefix + strconv.FormatUint(c.num, 10), Data: data})
	if err != nil {
		a.forget(c)
		s.metrics.observeAuth("unavailable", now)
		s.warnAuth("auth request", "err", err)
		c.fail(ReasonAuthUnavailable, wire.URIAuthFailed, wire.FailAuthUnavailable)
	}
}

// forget drops c's pending request (it ended, or its request timed out).
func (a *authPipe) forget(c *conn) (pendingAuth, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, ok := a.pending[c.num]
	if ok && p.c == c {
		delete(a.pending, c.num)
		return p, true
	}
	return pendingAuth{}, false
}

func (a *authPipe) take(subject string) (pendingAuth, bool) {
	num, err := strconv.ParseUint(strings.TrimPrefix(subject, a.prefix), 10, 64)
	if err != nil {
		return pendingAuth{}, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	p, ok := a.pending[num]
	delete(a.pending, num)
	return p, ok
}

// timedOut fails a login whose request the auth service did not answer
// in time (called by the sweeper).
func (a *authPipe) timedOut(c *conn) bool {
	p, ok := a.forget(c)
	if !ok {
		return false
	}
	a.srv.metrics.observeAuth("timeout", p.start)
	a.srv.warnAuth("auth service timed out", "after", time.Since(p.start).Round(time.Millisecond))
	c.fail(ReasonAuthUnavailable, wire.URIAuthFailed, wire.FailAuthTimedOut)
	return true
}

// run takes replies in batches until the server stops.
func (a *authPipe) run() {
	var batch []*nats.Msg
	var accepted []pendingAuth
	for {
		select {
		case m := <-a.ch:
			batch = append(batch[:0], m)
		case <-a.srv.ctx.Done():
			return
		}
	fill:
		for len(batch) < 1024 {
			select {
			case m := <-a.ch:
				batch = append(batch, m)
			default:
				break fill
			}
		}
		accepted = accepted[:0]
		subscribed := false
		for _, m := range batch {
			if p, ok, sub := a.reply(m); ok {
				accepted = append(accepted, p)
				subscribed = subscribed || sub
			}
		}
		if subscribed {
			// One round trip for the batch: the bus has every new
			// subscription before a device hears it is online, so a push
			// sent after /auth/success is not missed.
			_ = a.srv.bus.FlushTimeout(a.srv.cfg.AuthRequestTimeout)
		}
		for _, p := range accepted {
			p.c.commitLogin(p.start)
		}
		clear(batch)
		clear(accepted)
	}
}

// reply handles one auth reply: a refusal fails the connection, an
// acceptance registers it (ok) and reports whether that subscribed its user.
func (a *authPipe) reply(m *nats.Msg) (pendingAuth, bool, bool) {
	p, ok := a.take(m.Subject)
	if !ok {
		return p, false, false // timed out or gone meanwhile
	}
	s, c := a.srv, p.c
	var rep bus.AuthReply
	var err error
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		err = bus.ErrNoResponders
	} else {
		rep, err = bus.ParseAuthReply(m)
	}
	switch {
	case err != nil:
		s.metrics.observeAuth("unavailable", p.start)
		s.warnAuth("auth unavailable", "err", err)
		c.fail(ReasonAuthUnavailable, wire.URIAuthFailed, wire.FailAuthUnavailable)
		return p, false, false
	case !rep.OK && wire.TemporaryFailure(rep.Reason):
		// The auth service could not decide (its backend is down or slow):
		// not the device's fault, so not a failed login for its address.
		s.metrics.observeAuth("unavailable", p.start)
		s.warnAuth("auth service could not decide", "reason", rep.Reason)
		c.fail(ReasonAuthUnavailable, wire.URIAuthFailed, wire.CutReason(rep.Reason))
		return p, false, false
	case !rep.OK:
		s.metrics.observeAuth("refused", p.start)
		reason := wire.CutReason(rep.Reason)
		c.logger().Debug("auth refused", "reason", reason)
		c.fail(ReasonAuthFailed, wire.URIAuthFailed, reason)
		return p, false, false
	}
	if s.cfg.DuplicateLogin == DuplicateRejectNew {
		// Asking the other edges takes a round trip of its own: off this goroutine.
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if c.rejectDuplicate(rep.UID) {
				return
			}
			if sub, ok := c.register(rep.UID); ok {
				if sub {
					_ = s.bus.FlushTimeout(s.cfg.AuthRequestTimeout)
				}
				c.commitLogin(p.start)
			}
		}()
		return p, false, false
	}
	sub, ok := c.register(rep.UID)
	return p, ok, sub
}

// rejectDuplicate applies reject-new: it refuses the login if uid has a
// connection on any edge.
func (c *conn) rejectDuplicate(uid string) bool {
	s := c.srv
	ctx, cancel := context.WithTimeout(s.ctx, 500*time.Millisecond)
	defer cancel()
	if len(s.reg.conns(uid, nil)) == 0 {
		conns, err := bus.QueryPresence(ctx, s.bus, uid, 20*time.Millisecond)
		if err != nil || len(conns) == 0 {
			return false
		}
	}
	s.metrics.auths.WithLabelValues("duplicate").Inc()
	c.fail(ReasonDuplicate, wire.URIAuthFailed, wire.FailAlreadyLoggedIn)
	return true
}

// register puts an authenticated connection under uid, subscribing the
// user's subject if it is the first; it reports whether it subscribed.
func (c *conn) register(uid string) (subscribed, ok bool) {
	s := c.srv
	c.wmu.Lock()
	c.uid = uid
	c.wmu.Unlock()
	subscribed, err := s.reg.add(c, uid, s.subscribe)
	if err != nil {
		if !errors.Is(err, errEnded) {
			c.logger().Error("subscribe user", "err", err)
			c.fail(ReasonAuthUnavailable, wire.URIAuthFailed, wire.FailAuthUnavailable)
		}
		return false, false
	}
	return subscribed, true
}

// commitLogin opens a registered connection: /auth/success, presence,
// and kick-old's kick.
func (c *conn) commitLogin(start time.Time) {
	s := c.srv
	if !c.state.CompareAndSwap(stateAuthing, stateOpen) {
		s.reg.remove(c) // ended while logging in
		return
	}
	c.refundLoginToken()
	c.touch()
	if s.cfg.DuplicateLogin == DuplicateKickOld {
		// Every edge holding uid, this one included, closes the others.
		if err := bus.Kick(s.bus, c.uid, c.id()); err != nil {
			c.logger().Warn("kick older logins", "err", err)
		}
	}
	// Online presence goes out before the device hears /auth/success, and
	// under wmu, where end reads announced: so a device that heard it is
	// online always gets its offline event, after the online one, and a
	// connection that ended meanwhile gets neither.
	c.wmu.Lock()
	if !c.wclosed && !c.ended.Load() {
		c.announced = true
		s.publishPresence(c, true, "")
	}
	c.wmu.Unlock()
	c.sendControl(wire.URIAuthSuccess, successBody(c.uid, s.heartbeatSecs))
	s.metrics.observeAuth("ok", start)
}

func successBody(uid string, heartbeat int) string {
	b := make([]byte, 0, 32+len(uid))
	b = append(b, `{"uid":`...)
	b = strconv.AppendQuote(b, uid) // uids are plain ASCII: Go and JSON quoting agree
	b = append(b, `,"heartbeat":`...)
	b = strconv.AppendInt(b, int64(heartbeat), 10)
	return string(append(b, '}'))
}

// warnAuth logs an auth service problem at most once a second: during an
// outage every login would log it.
func (s *Server) warnAuth(msg string, args ...any) {
	now := time.Now().UnixNano()
	if last := s.authWarned.Load(); now-last > int64(time.Second) && s.authWarned.CompareAndSwap(last, now) {
		s.log.Warn(msg, args...)
	}
}
