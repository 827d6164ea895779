package authsvc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"golang.org/x/time/rate"

	"github.com/plexbus/plex/bus"
)

// ServiceName is the micro service name, as seen by `nats micro ls`.
const ServiceName = bus.QueueAuth

// Defaults for zero Config fields.
const (
	DefaultMaxConcurrent = 256
	DefaultVerifyTimeout = 5 * time.Second
	DefaultDrainTimeout  = 10 * time.Second
	DefaultVersion       = "0.0.0"
)

// Config of the auth service. The zero value is valid.
type Config struct {
	// Version is reported in micro INFO; it must be SemVer (1.2.3).
	// Empty = "0.0.0".
	Version string

	// MaxConcurrent bounds how many verifications run at once. When all
	// slots are busy the service stops taking requests off the bus until
	// one frees up (backpressure). Zero = 256; negative is an error.
	MaxConcurrent int

	// VerifyTimeout bounds one verification: its context ends after this
	// long and the client is told "auth timeout". Keep it below the edge's
	// own auth request timeout. Zero = 5 s; negative is an error.
	VerifyTimeout time.Duration

	// DrainTimeout bounds how long Stop waits for requests the bus already
	// delivered to be handed to a verifier; requests still arriving after it
	// are answered with a 503 service error. Running verifications are
	// always waited for. Zero = 10 s; negative is an error.
	DrainTimeout time.Duration

	// Logger receives service events. Refusals and accepted uids are logged
	// at debug level only; the auth body never is. Nil = discard.
	Logger *slog.Logger

	// OnResult, if set, is called once per request with its result (one of
	// Results) and the time from receipt to reply, for metrics. It is
	// called concurrently and must not block.
	OnResult func(result string, d time.Duration)
}

func (cfg Config) withDefaults() (Config, error) {
	if cfg.MaxConcurrent < 0 {
		return cfg, fmt.Errorf("authsvc: MaxConcurrent %d is negative", cfg.MaxConcurrent)
	}
	if cfg.VerifyTimeout < 0 {
		return cfg, fmt.Errorf("authsvc: VerifyTimeout %s is negative", cfg.VerifyTimeout)
	}
	if cfg.DrainTimeout < 0 {
		return cfg, fmt.Errorf("authsvc: DrainTimeout %s is negative", cfg.DrainTimeout)
	}
	if cfg.MaxConcurrent == 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	if cfg.VerifyTimeout == 0 {
		cfg.VerifyTimeout = DefaultVerifyTimeout
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	if cfg.Version == "" {
		cfg.Version = DefaultVersion
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}

// Service is a running auth service. Create it with New, end it with Stop.
type Service struct {
	// Immutable after New.
	cfg  Config
	nc   *nats.Conn
	v    Verifier
	log  *slog.Logger
	svc  micro.Service
	pool *pool

	counts counters
	// errLog rate-limits logs that can repeat per request (a webhook that
	// is down fails every login).
	errLog rate.Sometimes

	stopOnce sync.Once
	stopErr  error
}

// New validates cfg and starts answering bus.SubjectAuth on nc, in queue
// group bus.QueueAuth, with v. The caller keeps ownership of nc and v.
func New(cfg Config, nc *nats.Conn, v Verifier) (*Service, error) {
	if nc == nil {
		return nil, errors.New("authsvc: nil NATS connection")
	}
	if v == nil {
		return nil, errors.New("authsvc: nil verifier")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Service{
		cfg:    cfg,
		nc:     nc,
		v:      v,
		log:    cfg.Logger.With("component", "authsvc"),
		pool:   newPool(cfg.MaxConcurrent),
		errLog: rate.Sometimes{First: 10, Interval: time.Second},
	}
	s.svc, err = micro.AddService(nc, micro.Config{
		Name:         ServiceName,
		Version:      cfg.Version,
		Description:  "Plex auth: answers " + bus.SubjectAuth,
		QueueGroup:   bus.QueueAuth,
		StatsHandler: func(*micro.Endpoint) any { return s.Stats() },
		ErrorHandler: func(_ micro.Service, e *micro.NATSError) {
			s.log.Error("auth service bus error", "subject", e.Subject, "err", e.Description)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("authsvc: add service: %w", err)
	}
	err = s.svc.AddEndpoint("auth", micro.HandlerFunc(s.handle),
		micro.WithEndpointSubject(bus.SubjectAuth),
		micro.WithEndpointQueueGroup(bus.QueueAuth))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("authsvc: add endpoint: %w", err), s.svc.Stop())
	}
	// Make the subscription known to the server before New returns, so
	// the service is reachable from other connections right away. While
	// disconnected the client resubscribes on reconnect instead.
	if err := nc.FlushTimeout(cfg.DrainTimeout); err != nil {
		s.log.Warn("auth service subscribed while the bus is unreachable", "err", err)
	}
	s.log.Info("auth service started", "subject", bus.SubjectAuth, "queue", bus.QueueAuth,
		"max_concurrent", cfg.MaxConcurrent, "verify_timeout", cfg.VerifyTimeout)
	return s, nil
}

// handle runs on the endpoint subscription's goroutine, one request at a
// time: it parses, then hands the verification to the pool, blocking while
// the pool is full.
func (s *Service) handle(req micro.Request) {
	start := time.Now()
	reply := req.Reply()
	if reply == "" {
		s.record(ResultBadRequest, start)
		s.log.Debug("auth request without a reply subject dropped")
		return
	}
	var ar bus.AuthRequest
	if err := json.Unmarshal(req.Data(), &ar); err != nil {
		s.record(ResultBadRequest, start)
		s.log.Debug("malformed auth request", "err", err)
		if err := req.Error("400", "malformed auth request", nil); err != nil {
			s.logErr("reply to malformed auth request", "err", err)
		}
		return
	}
	// The reply is sent from the pool goroutine with nc.Publish, not
	// req.Respond: micro reads the request's response state once this
	// handler returns, so responding later through req would race.
	if !s.pool.Go(func() { s.verify(reply, ar, start) }) {
		s.record(ResultError, start)
		if err := req.Error("503", "auth service stopping", nil); err != nil {
			s.logErr("reply to auth request while stopping", "err", err)
		}
	}
}

// verify runs on a pool goroutine.
func (s *Service) verify(reply string, req bus.AuthRequest, start time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.VerifyTimeout)
	uid, err := s.callVerifier(ctx, req)
	timedOut := err != nil && ctx.Err() != nil
	cancel()

	rep, result := s.decide(req, uid, err, timedOut)
	data, err := json.Marshal(rep)
	if err != nil { // a struct of strings and a bool: cannot happen
		s.log.Error("encode auth reply", "err", err)
		return
	}
	// Count before replying, so whoever sees the reply sees it counted.
	s.record(result, start)
	if err := s.nc.Publish(reply, data); err != nil {
		s.logErr("send auth reply", "err", err, "edge", req.Edge, "conn", req.Conn)
	}
}

func (s *Service) callVerifier(ctx context.Context, req bus.AuthRequest) (uid string, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("authsvc: verifier panicked: %v\n%s", p, debug.Stack())
		}
	}()
	return s.v.Verify(ctx, req)
}

// decide turns a verifier's answer into the reply and its result, and logs
// it: accepted uids and refusals at debug level, failures rate-limited.
func (s *Service) decide(req bus.AuthRequest, uid string, err error, timedOut bool) (bus.AuthReply, string) {
	var refused *RefusedError
	switch {
	case err == nil:
		if verr := bus.ValidUID(uid); verr != nil {
			s.logErr("verifier returned an invalid uid", "err", verr, "edge", req.Edge, "conn", req.Conn)
			return bus.AuthReply{Reason: ReasonInvalidUID}, ResultError
		}
		s.log.Debug("auth ok", "uid", uid, "remote", req.Remote, "edge", req.Edge, "conn", req.Conn)
		return bus.AuthReply{OK: true, UID: uid}, ResultOK
	case errors.As(err, &refused):
		reason := cleanReason(refused.Reason)
		s.log.Debug("auth refused", "reason", reason, "remote", req.Remote, "edge", req.Edge, "conn", req.Conn)
		return bus.AuthReply{Reason: reason}, ResultRefused
	case errors.Is(err, ErrRefused):
		s.log.Debug("auth refused", "reason", ReasonRefused, "remote", req.Remote, "edge", req.Edge, "conn", req.Conn)
		return bus.AuthReply{Reason: ReasonRefused}, ResultRefused
	case timedOut || errors.Is(err, context.DeadlineExceeded):
		s.logErr("verifier timed out", "err", err, "timeout", s.cfg.VerifyTimeout, "edge", req.Edge, "conn", req.Conn)
		return bus.AuthReply{Reason: ReasonTimeout}, ResultTimeout
	case errors.Is(err, ErrUnavailable):
		s.logErr("verifier backend unavailable", "err", err, "edge", req.Edge, "conn", req.Conn)
		return bus.AuthReply{Reason: ReasonUnavailable}, ResultError
	default:
		s.logErr("verifier failed", "err", err, "edge", req.Edge, "conn", req.Conn)
		return bus.AuthReply{Reason: ReasonError}, ResultError
	}
}

// logErr logs a warning that may repeat per request, rate-limited.
func (s *Service) logErr(msg string, args ...any) {
	s.errLog.Do(func() { s.log.Warn(msg, args...) })
}

// Stop drains the service: it stops taking requests from the bus, lets
// the ones already delivered reach a verifier (up to DrainTimeout), waits
// for every running verification to reply, and returns. It does not close
// the NATS connection. It is idempotent; do not call it from a NATS
// callback on the same connection.
func (s *Service) Stop() error {
	s.stopOnce.Do(func() { s.stopErr = s.stop() })
	return s.stopErr
}

func (s *Service) stop() error {
	// micro drains the endpoint: the UNSUB goes out now, and requests
	// already delivered to the client still reach handle.
	err := s.svc.Stop()
	if err != nil {
		err = fmt.Errorf("authsvc: stop: %w", err)
	}
	s.waitDelivered()
	s.pool.Close()
	s.log.Info("auth service stopped", "ok", s.counts.ok.Load(), "refused", s.counts.refused.Load(),
		"errors", s.counts.errors.Load(), "timeouts", s.counts.timeouts.Load())
	return err
}

// waitDelivered waits, up to DrainTimeout, until every request the server
// sent before the UNSUB has been through handle. A flush round trip puts
// them all in the client's pending queue; a barrier queued behind them
// then runs once they have been handled.
func (s *Service) waitDelivered() {
	if !s.nc.IsConnected() {
		return // nothing more can arrive
	}
	deadline := time.Now().Add(s.cfg.DrainTimeout)
	if err := s.nc.FlushTimeout(s.cfg.DrainTimeout); err != nil {
		if !errors.Is(err, nats.ErrConnectionClosed) {
			s.log.Warn("auth service drain: bus flush failed", "err", err)
		}
		return
	}
	done := make(chan struct{})
	if err := s.nc.Barrier(func() { close(done) }); err != nil {
		return // connection closed: nothing more is delivered
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.log.Warn("auth service drain: requests still queued after DrainTimeout are answered as stopping",
			"timeout", s.cfg.DrainTimeout)
	}
}
