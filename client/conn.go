package client

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/plexbus/plex/wire"
)

// msgQueue is how many pushed frames the reader may hold for Run before it
// stops reading (and TCP pushes back on the edge).
const msgQueue = 32

// session is one authenticated connection. Run owns it: it starts the
// reader and heartbeat goroutines and joins both before it moves on.
type session struct {
	// Immutable after login.
	nc           net.Conn
	addr         string
	uid          string
	hb           time.Duration
	order        wire.Order
	writeTimeout time.Duration
	up           time.Time
	log          *slog.Logger

	r    *wire.Reader      // owned by readLoop
	msgs chan wire.Message // readLoop → Run; closed when readLoop ends

	wlock chan struct{} // the write side, a semaphore so waiting obeys a context

	once  sync.Once
	done  chan struct{} // closed by fail
	cause error         // first failure; set once by fail, read after wg.Wait

	wg sync.WaitGroup // readLoop and heartbeatLoop
}

// fail ends the session with cause: the first call wins, closes done and
// the socket, so both goroutines end.
func (s *session) fail(cause error) {
	s.once.Do(func() {
		s.cause = cause
		close(s.done)
		s.nc.Close()
	})
}

// start runs the reader and heartbeat goroutines.
func (s *session) start() {
	s.wg.Add(2)
	go s.readLoop()
	go s.heartbeatLoop()
}

// readLoop reads frames until the connection fails. Anything that arrives
// proves the connection alive: a read deadline of two heartbeat intervals,
// renewed per frame, detects a dead one. The deadline is not running while
// the loop waits for Run to take a message, so a slow callback is not
// mistaken for a dead edge.
func (s *session) readLoop() {
	defer s.wg.Done()
	defer close(s.msgs)
	var m wire.Message
	for {
		_ = s.nc.SetReadDeadline(time.Now().Add(2 * s.hb))
		if err := s.r.ReadMessage(&m); err != nil {
			s.fail(readError(err))
			return
		}
		switch m.URI {
		case wire.URIHeartbeat, wire.URIAuthSuccess:
			continue
		case wire.URIReconnect:
			s.fail(ErrServerReconnect)
			return
		case wire.URIAuthFailed:
			s.fail(refusal(m.Body))
			return
		}
		select {
		case s.msgs <- m:
		case <-s.done:
			return
		}
	}
}

// heartbeatLoop sends /heartbeat every interval.
func (s *session) heartbeatLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.hb)
	defer t.Stop()
	frame := wire.AppendFrame(nil, s.order, &wire.Message{URI: wire.URIHeartbeat})
	for {
		select {
		case <-t.C:
			if s.write(context.Background(), frame) != nil {
				return // write failed the session
			}
		case <-s.done:
			return
		}
	}
}

// write sends one complete frame. ctx bounds only the wait for the write
// side; the write itself is bounded by WriteTimeout, and a write that fails
// or times out (perhaps half done) ends the session.
func (s *session) write(ctx context.Context, frame []byte) error {
	select {
	case s.wlock <- struct{}{}:
	case <-s.done:
		return ErrNotConnected
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.wlock }()
	select {
	case <-s.done:
		return ErrNotConnected
	default:
	}
	_ = s.nc.SetWriteDeadline(time.Now().Add(s.writeTimeout))
	if _, err := s.nc.Write(frame); err != nil {
		werr := fmt.Errorf("%w: write: %w", ErrConnectionLost, err)
		s.fail(werr)
		return werr
	}
	return nil
}

// target is where one attempt goes, with what the host reply announced.
type target struct {
	addr       string
	discovered bool          // addr came from the host URL
	heartbeat  time.Duration // 0 = none announced
	backoff    *hostBackoff
}

// resolve picks the edge for an attempt: the host URL's answer, else Addr.
func (c *Client) resolve(ctx context.Context) (target, error) {
	if c.cfg.HostURL == "" {
		return target{addr: c.cfg.Addr}, nil
	}
	rep, err := discover(ctx, c.http, c.cfg.HostURL)
	if err != nil {
		if c.cfg.Addr != "" && ctx.Err() == nil {
			c.log.Warn("host discovery failed, using the fallback address", "err", err, "addr", c.cfg.Addr)
			return target{addr: c.cfg.Addr}, nil
		}
		return target{}, err
	}
	return target{addr: rep.Host, discovered: true, heartbeat: heartbeatOf(rep.Heartbeat), backoff: rep.Backoff}, nil
}

// successBody is the body of /auth/success; old edges send none.
type successBody struct {
	UID       string  `json:"uid"`
	Heartbeat float64 `json:"heartbeat"`
}

// login dials addr, authenticates with auth and returns a session that has
// not started yet. It gives up when ctx ends (ConnectTimeout or Run's).
func (c *Client) login(ctx context.Context, tg target, auth string) (*session, error) {
	log := c.log.With("edge", tg.addr)
	nc, err := c.dial(ctx, "tcp", tg.addr)
	if err != nil {
		return nil, fmt.Errorf("client: dial %s: %w", tg.addr, err)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
		_ = tc.SetKeepAlive(true) // a backstop; heartbeats do the real work
	}
	ok := false
	defer func() {
		if !ok {
			nc.Close()
		}
	}()
	// Ending ctx interrupts any blocking I/O below.
	if d, has := ctx.Deadline(); has {
		_ = nc.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if c.cfg.TLS != nil {
		tc := tls.Client(nc, c.tlsConfig(tg.addr))
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, c.attemptErr(ctx, tg.addr, "tls handshake", err)
		}
		nc = tc
	}
	frame := wire.AppendFrame(nil, c.cfg.ByteOrder, &wire.Message{URI: wire.URIAuth, Body: auth})
	if _, err := nc.Write(frame); err != nil {
		return nil, c.attemptErr(ctx, tg.addr, "send login", err)
	}
	r := wire.NewReader(nc, c.cfg.ByteOrder, c.cfg.MaxFrameSize)
	var m wire.Message
	for {
		if err := r.ReadMessage(&m); err != nil {
			return nil, c.attemptErr(ctx, tg.addr, "wait for login reply", err)
		}
		switch m.URI {
		case wire.URIAuthSuccess:
		case wire.URIAuthFailed:
			return nil, refusal(m.Body)
		case wire.URIReconnect:
			return nil, ErrServerReconnect
		default:
			log.Debug("frame before login ignored", "uri", m.URI)
			continue
		}
		break
	}
	if !stop() {
		return nil, c.attemptErr(ctx, tg.addr, "login", context.Cause(ctx))
	}
	_ = nc.SetDeadline(time.Time{})

	var sb successBody
	if m.Body != "" {
		if err := json.Unmarshal([]byte(m.Body), &sb); err != nil {
			log.Warn("unreadable /auth/success body", "err", err)
		}
	}
	hb := c.cfg.Heartbeat
	for _, d := range []time.Duration{heartbeatOf(sb.Heartbeat), tg.heartbeat, DefaultHeartbeat} {
		if hb == 0 {
			hb = d
		}
	}
	ok = true
	s := &session{
		nc:           nc,
		addr:         tg.addr,
		uid:          sb.UID,
		hb:           hb,
		order:        c.cfg.ByteOrder,
		writeTimeout: c.cfg.WriteTimeout,
		up:           time.Now(),
		log:          log.With("uid", sb.UID),
		r:            r,
		msgs:         make(chan wire.Message, msgQueue),
		wlock:        make(chan struct{}, 1),
		done:         make(chan struct{}),
	}
	return s, nil
}

// attemptErr describes a failed step of an attempt, preferring the reason
// ctx ended over the I/O error that ending caused.
func (c *Client) attemptErr(ctx context.Context, addr, step string, err error) error {
	if cerr := context.Cause(ctx); cerr != nil {
		if errors.Is(cerr, context.DeadlineExceeded) {
			return fmt.Errorf("client: %s %s: no reply within %s: %w", step, addr, c.cfg.ConnectTimeout, cerr)
		}
		return fmt.Errorf("client: %s %s: %w", step, addr, cerr)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) { // the socket deadline beat ctx's timer
		return fmt.Errorf("client: %s %s: no reply within %s: %w", step, addr, c.cfg.ConnectTimeout, context.DeadlineExceeded)
	}
	if errors.Is(err, wire.ErrFrameTooLarge) || errors.Is(err, wire.ErrBadPayload) {
		return fmt.Errorf("%w: %s %s: %w", ErrProtocol, step, addr, err)
	}
	return fmt.Errorf("client: %s %s: %w", step, addr, err)
}

func (c *Client) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if c.cfg.DialContext != nil {
		return c.cfg.DialContext(ctx, network, addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

func (c *Client) tlsConfig(addr string) *tls.Config {
	cfg := c.cfg.TLS.Clone()
	if cfg.ServerName == "" {
		if host, _, err := net.SplitHostPort(addr); err == nil {
			cfg.ServerName = host
		}
	}
	return cfg
}
