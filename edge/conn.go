package edge

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plexbus/plex/bus"
	"github.com/plexbus/plex/wire"
)

// Connection states. Transitions only move forward, except
// authing → new never happens: a refused login ends the connection.
const (
	stateNew     int32 = iota // accepted, waiting for a login frame
	stateAuthing              // login sent to the auth service
	stateOpen                 // an authenticated user
	stateInner                // an authenticated inner push client
	stateClosing              // final frame queued, socket lingering for the client to read it
	stateClosed               // socket closed
)

// linger is how long a connection in stateClosing waits for the client
// to read its last frame and hang up before the socket is closed anyway.
const linger = time.Second

// conn is one client connection. It is kept small: an idle connection
// costs this struct, its user's subscription, and nothing else in the
// epoll path (no goroutine, no buffer, no net.Conn).
type conn struct {
	// Immutable after accept. Exactly one of fd (epoll path: the socket,
	// owned by poller) or nc (goroutine path: TLS, GoroutinePerConn, not
	// Linux) is in use; fd is -1 on the goroutine path.
	srv    *Server
	nc     net.Conn
	poller *poller
	fd     int32
	num    uint64 // the id is srv.id-num
	remote string
	since  int64 // unix nanos

	state    atomic.Int32
	deadline atomic.Int64 // unix nanos: auth, idle or linger deadline, by state
	// blockedAt is when the socket stopped taking bytes (epoll path), 0 when
	// it takes them; written under wmu, read by the sweeper.
	blockedAt atomic.Int64
	ended     atomic.Bool // logical close done (unregistered, presence sent)
	// reserved: this connection holds one of its address's failed-login
	// tokens until it logs in (refunded) or fails (spent).
	reserved atomic.Bool

	// uid is set by the login under wmu before the state becomes open; read
	// it under wmu, or without a lock after observing stateOpen.
	uid string

	// The write side, guarded by wmu.
	wmu       sync.Mutex
	out       []byte // queued bytes not yet handed to the socket
	seq       int64  // edge-assigned seq of the last push
	inflight  int32  // bytes a flusher is writing outside the lock (goroutine path)
	flushing  bool   // a flusher goroutine, or the poller on EPOLLOUT, owns writing
	wclosed   bool   // no more frames accepted
	finAfter  bool   // half-close the socket once out is written
	announced bool   // online presence was published

	// Owned by the dispatcher serving this connection's user.
	dirty bool

	// Owned by the read path.
	frames frameBucket
	rbuf   []byte // epoll path: a frame cut across reads
}

// maxFrame is the frame limit for the connection's current state.
func (c *conn) maxFrame() int {
	if c.state.Load() >= stateOpen {
		return c.srv.cfg.MaxFrameSize
	}
	return c.srv.cfg.MaxAuthFrameSize
}

func newConn(s *Server, nc net.Conn, fd int32, remote string) *conn {
	now := time.Now()
	c := &conn{srv: s, nc: nc, fd: fd, num: s.connSeq.Add(1), remote: remote, since: now.UnixNano()}
	c.deadline.Store(now.Add(s.cfg.AuthTimeout).UnixNano())
	return c
}

// id names the connection on the bus: the edge's id and a number.
func (c *conn) id() string { return c.srv.id + "-" + strconv.FormatUint(c.num, 10) }

func (c *conn) logger() *slog.Logger {
	l := c.srv.log.With("conn", c.id(), "remote", c.remote)
	c.wmu.Lock()
	uid := c.uid
	c.wmu.Unlock()
	if uid != "" {
		l = l.With("uid", uid)
	}
	return l
}

// readLoop is the goroutine-per-connection read path.
func (c *conn) readLoop() {
	defer c.srv.wg.Done()
	if tc, ok := c.nc.(handshaker); ok {
		_ = c.nc.SetDeadline(time.Unix(0, c.deadline.Load()))
		if err := tc.Handshake(); err != nil {
			c.close(ReasonReadError)
			return
		}
		_ = c.nc.SetDeadline(time.Time{})
	}
	r := wire.NewReaderSize(c.nc, c.srv.cfg.ByteOrder, c.srv.cfg.MaxAuthFrameSize, 512)
	authed := false
	for {
		p, err := r.ReadFrame()
		if err != nil && !authed && errors.Is(err, wire.ErrFrameTooLarge) && c.state.Load() >= stateOpen {
			// Logged in while this frame's header was read under the login
			// limit: raise it and read the frame again (nothing was consumed).
			authed = true
			r.SetMaxFrameSize(c.srv.cfg.MaxFrameSize)
			continue
		}
		if err != nil {
			c.close(readReason(err, c))
			return
		}
		c.handleFrame(p)
		if !authed && c.state.Load() >= stateOpen {
			authed = true
			r.SetMaxFrameSize(c.srv.cfg.MaxFrameSize)
		}
	}
}

func readReason(err error, c *conn) Reason {
	switch {
	case errors.Is(err, wire.ErrFrameTooLarge):
		c.srv.metrics.badFrames.WithLabelValues("too_large").Inc()
		return ReasonFrameTooLarge
	case errors.Is(err, io.EOF), errors.Is(err, wire.ErrTruncated):
		return ReasonClientClosed
	}
	return ReasonReadError
}

// handleFrame runs one client frame through the protocol state machine.
func (c *conn) handleFrame(p []byte) {
	if c.state.Load() >= stateClosing {
		return // what a closing client still sends is discarded
	}
	var m wire.Message
	if err := wire.DecodeInto(p, &m); err != nil {
		c.srv.metrics.badFrames.WithLabelValues("bad_payload").Inc()
		c.logger().Debug("bad frame", "err", err)
		c.close(ReasonBadFrame)
		return
	}
	if c.srv.cfg.ShowTrace {
		c.logger().Debug("frame in", "seq", m.Seq, "uri", m.URI, "body", m.Body)
	}
	if cfg := &c.srv.cfg; cfg.ClientFrameRate > 0 && !c.frames.allow(time.Now().UnixNano(), float32(cfg.ClientFrameRate), float32(cfg.ClientFrameBurst)) {
		c.srv.metrics.limited.WithLabelValues("frame_rate").Inc()
		c.close(ReasonRateLimited)
		return
	}
	switch st := c.state.Load(); st {
	case stateNew:
		switch m.URI {
		case wire.URIAuth:
			c.startAuth(m.Body)
		case wire.URIInnerAuth:
			c.innerAuth(m.Body)
		default:
			c.fail(ReasonNotAuthenticated, wire.URIAuthFailed, wire.FailNotAuthenticated)
		}
	case stateAuthing:
		switch m.URI {
		case wire.URIHeartbeat:
			c.sendControl(wire.URIHeartbeat, "")
		case wire.URIAuth, wire.URIInnerAuth:
			// A repeated login while the first is pending: ignore it.
		default:
			c.fail(ReasonNotAuthenticated, wire.URIAuthFailed, wire.FailNotAuthenticated)
		}
	case stateOpen, stateInner:
		c.touch()
		switch m.URI {
		case wire.URIHeartbeat:
			c.sendControl(wire.URIHeartbeat, "")
		case wire.URIInnerSend:
			if st == stateInner {
				c.innerSend(m.Body)
			}
		default:
			// Repeated logins and application data: ignored for now.
		}
	}
}

// touch pushes the idle deadline after client activity.
func (c *conn) touch() {
	c.deadline.Store(time.Now().Add(c.srv.cfg.HeartbeatTimeout).UnixNano())
}

// fail ends the connection with a last frame (uri, body) that the client
// gets to read: it is unregistered at once, the frame is written, the
// socket half-closed, and closed when the client hangs up or after linger.
func (c *conn) fail(r Reason, uri, body string) {
	if !c.end(r) {
		return
	}
	c.deadline.Store(time.Now().Add(linger).UnixNano())
	c.wmu.Lock()
	if !c.wclosed {
		c.out = wire.AppendFrame(c.buf(), c.srv.cfg.ByteOrder, &wire.Message{URI: uri, Body: body})
		c.finAfter = true
		c.wclosed = true // nothing after the last frame
	}
	c.wmu.Unlock()
	c.flush()
}

// close ends the connection now.
func (c *conn) close(r Reason) {
	c.end(r)
	c.closeSocket()
}

// end is the logical close: unregister, offline presence, metric. It
// reports whether this call did it (the first one wins).
func (c *conn) end(r Reason) bool {
	if !c.ended.CompareAndSwap(false, true) {
		return false
	}
	s := c.srv
	prev := c.state.Load()
	for prev < stateClosing && !c.state.CompareAndSwap(prev, stateClosing) {
		prev = c.state.Load()
	}
	s.metrics.disconnects.WithLabelValues(string(r)).Inc()
	if !failedLogin(r) {
		c.refundLoginToken()
	}
	switch prev {
	case stateOpen:
		s.reg.remove(c)
	case stateAuthing:
		s.auth.forget(c)
	}
	c.wmu.Lock()
	announced := c.announced
	c.announced = false
	c.wmu.Unlock()
	if announced {
		s.publishPresence(c, false, r)
	}
	if prev >= stateOpen {
		c.logger().Debug("connection ended", "reason", string(r))
	}
	return true
}

// refundLoginToken gives back the failed-login token reserved at accept:
// the connection logged in, or ended for a reason that is not its fault.
func (c *conn) refundLoginToken() {
	if c.reserved.CompareAndSwap(true, false) {
		if ap, err := netip.ParseAddrPort(c.remote); err == nil {
			c.srv.failedIPs.refund(ap.Addr().Unmap(), time.Now())
		}
	}
}

// failedLogin says which ends of an unauthenticated connection count
// against its address.
func failedLogin(r Reason) bool {
	switch r {
	case ReasonAuthFailed, ReasonAuthTimeout, ReasonNotAuthenticated, ReasonBadFrame, ReasonFrameTooLarge, ReasonRateLimited:
		return true
	}
	return false
}

// closeSocket closes the socket once; the reader then ends too. On the
// epoll path no write can follow (wclosed is set under wmu first) and the
// poller itself closes the fd, so the number is never reused under a read.
func (c *conn) closeSocket() {
	c.end(ReasonShutdown) // no-op unless nothing ended it logically
	if c.state.Swap(stateClosed) == stateClosed {
		return
	}
	c.wmu.Lock()
	c.wclosed = true
	if !c.flushing || c.fd >= 0 {
		if c.out != nil {
			putBuf(c.out)
		}
		c.out = nil
	}
	c.wmu.Unlock()
	if c.fd >= 0 {
		c.poller.release(c)
	} else {
		c.nc.Close()
	}
	c.srv.removeConn(c)
}

// handshaker is the part of *tls.Conn the read loop needs.
type handshaker interface{ Handshake() error }

// info describes the connection for presence replies.
func (c *conn) info() bus.ConnInfo {
	return bus.ConnInfo{ID: c.id(), Edge: c.srv.id, Remote: c.remote, Since: time.Unix(0, c.since).UTC()}
}
