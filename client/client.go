package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plexbus/plex/wire"
)

// Message is a frame pushed by the server.
type Message struct {
	Seq  int64  // the publisher's sequence number, else one the edge assigns
	URI  string // what kind of message; "/push" unless the publisher chose
	Body string // the data, verbatim
}

// ConnectInfo describes a connection that just logged in.
type ConnectInfo struct {
	UID       string        // the user the server logged in ("" from old edges)
	Addr      string        // the edge, host:port
	Heartbeat time.Duration // the heartbeat interval in use
}

// DisconnectInfo describes why a connection, or an attempt to make one,
// ended and what Run does next.
type DisconnectInfo struct {
	Addr      string        // the edge, if one was chosen
	Err       error         // why; match with errors.Is (ErrHeartbeatTimeout, ErrAuthFailed, …)
	Reconnect bool          // whether Run tries again
	Delay     time.Duration // how long it waits first, if it does
}

// Client is a connection to Plex that keeps itself up. Create it with
// New, then call Run. Its methods are safe for concurrent use.
type Client struct {
	cfg  Config
	log  *slog.Logger
	http *http.Client
	own  bool // http is ours to clean up

	// rand draws jitter in [0, 1); tests replace it before Run.
	rand func() float64

	mu      sync.Mutex
	closed  bool
	started bool
	cancel  context.CancelCauseFunc // Run's context; nil before Run
	done    chan struct{}           // closed when Run returns; nil before Run
	sess    *session                // the authenticated connection, or nil

	runG atomic.Uint64 // id of the goroutine in Run: the one calling callbacks
}

// New validates cfg and returns a Client ready to Run.
func New(cfg Config) (*Client, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, log: cfg.Logger, http: cfg.HTTPClient, rand: rand.Float64}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.http == nil && cfg.HostURL != "" {
		c.http, c.own = newHTTPClient(), true
	}
	return c, nil
}

// UID is the logged-in user while connected, else "".
func (c *Client) UID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == nil {
		return ""
	}
	return c.sess.uid
}

// Send writes an application frame to the server (today's edges ignore
// them). uri must not be one of the protocol's reserved URIs. ctx bounds
// the wait behind other writes; the write itself is bounded by
// WriteTimeout. Without a connection it returns ErrNotConnected at once:
// nothing is queued across reconnects.
func (c *Client) Send(ctx context.Context, uri, body string) error {
	switch uri {
	case "", wire.URIAuth, wire.URIAuthSuccess, wire.URIAuthFailed, wire.URIHeartbeat,
		wire.URIInnerAuth, wire.URIInnerSend, wire.URIReconnect:
		return fmt.Errorf("client: send: uri %q is reserved", uri)
	}
	frame := wire.AppendFrame(nil, c.cfg.ByteOrder, &wire.Message{URI: uri, Body: body})
	if n := len(frame) - wire.HeaderSize; n > c.cfg.MaxFrameSize {
		return fmt.Errorf("client: send: %w: %d bytes > max %d", wire.ErrFrameTooLarge, n, c.cfg.MaxFrameSize)
	}
	c.mu.Lock()
	s := c.sess
	c.mu.Unlock()
	if s == nil {
		return ErrNotConnected
	}
	if err := s.write(ctx, frame); err != nil {
		return fmt.Errorf("client: send: %w", err)
	}
	return nil
}

// Close stops Run and waits for it to return: after Close returns, no
// callback runs and every goroutine of the client has ended. Called from a
// callback, it cannot wait for the callback that called it: it stops Run,
// which makes no further callback, and returns. Close before Run makes Run
// return ErrClosed. It is idempotent and returns nil.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	cancel, done := c.cancel, c.done
	c.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel(ErrClosed)
	if g := c.runG.Load(); g != 0 && g == goroutineID() {
		return nil // inside a callback
	}
	<-done
	return nil
}

// Run connects and keeps the client connected until ctx ends, Close is
// called, or the reconnect policy gives up. It returns nil when stopped by
// ctx or Close; else the error that made it give up, such as an
// *AuthError (errors.Is ErrAuthFailed). Run may be called once.
func (c *Client) Run(ctx context.Context) error {
	c.mu.Lock()
	switch {
	case c.closed:
		c.mu.Unlock()
		return ErrClosed
	case c.started:
		c.mu.Unlock()
		return errors.New("client: Run called twice")
	}
	c.started = true
	ctx, cancel := context.WithCancelCause(ctx)
	c.cancel, c.done = cancel, make(chan struct{})
	c.mu.Unlock()
	c.runG.Store(goroutineID())
	defer func() {
		cancel(ErrClosed)
		if c.own {
			c.http.CloseIdleConnections()
		}
		c.runG.Store(0)
		close(c.done)
	}()
	return c.run(ctx)
}

// runState is Run's memory between attempts.
type runState struct {
	failures int     // failed attempts or short-lived connections in a row
	backoff  Backoff // Config.Backoff merged with the last host reply's
	auth     *string // fresh auth data fetched after a refusal, for the next attempt
	sent     string  // the auth data of the last attempt, to tell fresh data from it
}

func (c *Client) run(ctx context.Context) error {
	st := runState{backoff: c.cfg.Backoff}
	for {
		s, addr, err := c.attempt(ctx, &st)
		if ctx.Err() != nil {
			if s != nil {
				s.nc.Close() // logged in just as Run was stopped
			}
			return nil
		}
		var next DisconnectInfo
		if err != nil {
			next = c.decide(ctx, &st, addr, err, false)
			if errors.Is(err, ErrAuthFailed) {
				c.log.Error("login refused", "edge", addr, "err", err, "reconnect", next.Reconnect)
				call(ctx, c.cfg.OnAuthFailed, next)
			} else {
				c.log.Warn("connect failed", "edge", addr, "err", err, "retry_in", next.Delay, "reconnect", next.Reconnect)
				call(ctx, c.cfg.OnConnectFailed, next)
			}
		} else {
			err = c.serve(ctx, s)
			if ctx.Err() != nil {
				return nil
			}
			up := time.Since(s.up)
			next = c.decide(ctx, &st, s.addr, err, up >= max(s.hb, st.backoff.Base))
			s.log.Warn("disconnected", "err", err, "up", up.Round(time.Millisecond), "retry_in", next.Delay, "reconnect", next.Reconnect)
			call(ctx, c.cfg.OnDisconnect, next)
			if errors.Is(err, ErrAuthFailed) {
				call(ctx, c.cfg.OnAuthFailed, next)
			}
		}
		if !next.Reconnect {
			return next.Err
		}
		if !sleep(ctx, next.Delay) {
			return nil
		}
	}
}

// attempt makes one connection: auth data, host discovery, dial, login.
func (c *Client) attempt(ctx context.Context, st *runState) (*session, string, error) {
	auth := c.cfg.Auth
	if st.auth != nil {
		auth, st.auth = *st.auth, nil
	} else if c.cfg.AuthFunc != nil {
		a, err := c.cfg.AuthFunc(ctx)
		if err != nil {
			return nil, "", fmt.Errorf("client: auth data: %w", err)
		}
		auth = a
	}
	actx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
	defer cancel()
	tg, err := c.resolve(actx)
	if err != nil {
		return nil, "", err
	}
	if tg.discovered {
		// The latest reply's values hold until the next reply; a fallback
		// to Addr keeps them.
		st.backoff = c.cfg.Backoff.merge(tg.backoff)
	}
	st.sent = auth
	s, err := c.login(actx, tg, auth)
	if err != nil {
		return nil, tg.addr, err
	}
	return s, tg.addr, nil
}

// serve runs an authenticated session until it ends or ctx does, calling
// OnConnect first and OnMessage for each push. It returns why it ended.
func (c *Client) serve(ctx context.Context, s *session) error {
	c.mu.Lock()
	c.sess = s
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.sess = nil
		c.mu.Unlock()
	}()
	s.start()
	s.log.Info("connected", "heartbeat", s.hb)
	call(ctx, c.cfg.OnConnect, ConnectInfo{UID: s.uid, Addr: s.addr, Heartbeat: s.hb})
	for {
		select {
		case m, ok := <-s.msgs:
			if !ok {
				s.wg.Wait()
				return s.cause
			}
			s.log.Debug("message", "seq", m.Seq, "uri", m.URI, "bytes", len(m.Body))
			call(ctx, c.cfg.OnMessage, Message(m))
		case <-ctx.Done():
			s.fail(ErrClosed)
			s.wg.Wait()
			return ErrClosed
		}
	}
}

// decide applies the reconnect policy to why an attempt or a connection
// ended. stayedUp reports a connection that was logged in for at least a
// heartbeat interval (and the backoff base): it starts the backoff over.
func (c *Client) decide(ctx context.Context, st *runState, addr string, err error, stayedUp bool) DisconnectInfo {
	info := DisconnectInfo{Addr: addr, Err: err}
	policy := c.cfg.Reconnect
	if stayedUp {
		st.failures = 0
	}
	switch {
	case policy == ReconnectNever:
		return info
	case errors.Is(err, ErrAuthFailed):
		// Only a refusal by the server may be retried with fresh data; an
		// AuthFunc that gave up (ErrAuthFailed without an *AuthError) stops.
		_, byServer := errors.AsType[*AuthError](err)
		if policy != ReconnectAlways || !byServer || !c.freshAuth(ctx, st) {
			return info
		}
	case errors.Is(err, ErrServerReconnect) && stayedUp:
		// A draining edge: go at once. An edge that says so right after
		// login gets the usual backoff, so a client never spins on one.
		info.Reconnect, info.Delay = true, st.backoff.spread(c.rand())
		return info
	}
	info.Reconnect = true
	info.Delay = st.backoff.delay(st.failures, c.rand())
	st.failures++
	return info
}

// freshAuth asks AuthFunc for new data after a refusal and keeps it for the
// next attempt. Refused data is never sent again: two devices of the same
// user must not kick each other forever.
func (c *Client) freshAuth(ctx context.Context, st *runState) bool {
	if c.cfg.AuthFunc == nil {
		return false
	}
	a, err := c.cfg.AuthFunc(ctx)
	if err != nil || a == st.sent {
		return false
	}
	st.auth = &a
	return true
}

// call calls the callback f unless Run is stopping, so that none starts
// once Close has been called.
func call[T any](ctx context.Context, f func(T), v T) {
	if f != nil && ctx.Err() == nil {
		f(v)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// goroutineID parses the current goroutine's id from its stack header
// ("goroutine 42 [running]:"). Close uses it only to tell whether it was
// called from a callback, which it must not wait for.
func goroutineID() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		b = b[:i]
	}
	id, _ := strconv.ParseUint(string(b), 10, 64)
	return id
}
