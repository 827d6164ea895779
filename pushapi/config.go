package pushapi

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/plexbus/plex/bus"
	"github.com/plexbus/plex/wire"
)

// Defaults of Config.
const (
	DefaultHeartbeat       = 60 * time.Second
	DefaultBackoffBase     = 1 * time.Second
	DefaultBackoffFactor   = 1.8
	DefaultBackoffJitter   = 0.3
	DefaultBackoffMax      = 300 * time.Second
	DefaultMaxBodyBytes    = 1 << 20
	DefaultMaxUIDs         = 1000
	DefaultMaxMessageBytes = wire.DefaultMaxFrameSize - 64 // what a default edge accepts (body + uri)
	DefaultRequestTimeout  = 10 * time.Second
	DefaultWaitTimeout     = 5 * time.Second
	DefaultWaitGrace       = bus.DefaultGrace
)

// Timeouts NewServer sets on the http.Server; a binary building its own
// server should set the same.
const (
	// DefaultReadHeaderTimeout bounds reading a request's headers (slowloris).
	DefaultReadHeaderTimeout = 5 * time.Second
	// DefaultIdleTimeout closes idle keep-alive connections.
	DefaultIdleTimeout = 120 * time.Second
	// DefaultMaxHeaderBytes bounds a request's headers.
	DefaultMaxHeaderBytes = 64 << 10
	// writeSlack is added to RequestTimeout for the server's WriteTimeout, so
	// a handler that ran to its deadline can still write its answer.
	writeSlack = 5 * time.Second
)

// maxURILen bounds a push's uri.
const maxURILen = 1024

// Backoff is the reconnect policy recommended to devices in the
// /plex/v1/host answer: wait Base, then multiply by Factor after every
// failed attempt up to Max, each wait varied by ±Jitter (a fraction).
type Backoff struct {
	// Base is the first wait. Zero = 1 s.
	Base time.Duration
	// Factor multiplies the wait after each failure; at least 1. Zero = 1.8.
	Factor float64
	// Jitter is the random fraction applied to each wait, in [0, 1].
	// Zero = 0.3: some jitter is what keeps a reconnect storm from
	// arriving in waves.
	Jitter float64
	// Max caps the wait; sent rounded up to whole seconds. Zero = 300 s.
	Max time.Duration
}

// Config of the HTTP API. Zero values take the documented defaults;
// InnerPassword is required.
type Config struct {
	// InnerPassword is the bearer token of the operator routes (push,
	// online, edges). Required: an operator API open to anyone who can reach
	// it is never the right default. It is never logged.
	InnerPassword string
	// OuterServers are host:port addresses handed out by /plex/v1/host,
	// picked at random, while no live edge reports stats. Empty = none:
	// 503 when no edge is live.
	OuterServers []string

	// Heartbeat is the heartbeat interval recommended to devices in the
	// /plex/v1/host answer (whole seconds, rounded up); keep it equal to the
	// edges' Heartbeat. Zero = 60 s.
	Heartbeat time.Duration
	// Backoff is the reconnect policy recommended to devices.
	Backoff Backoff

	// MaxBodyBytes bounds a request body. Zero = 1 MiB.
	MaxBodyBytes int64
	// MaxUIDs bounds the uids of one push. Zero = 1000.
	MaxUIDs int
	// MaxMessageBytes bounds a push's body plus uri, in bytes: an edge drops
	// a push larger than its MaxFrameSize less 64, so the API refuses it
	// with 413 instead. Zero = 65472 (for the default 64 KiB frames).
	MaxMessageBytes int

	// RequestTimeout bounds every request's context. Zero = 10 s.
	RequestTimeout time.Duration
	// WaitTimeout bounds how long a push with ?wait=1, and an online query,
	// wait for the first edge's answer; at most RequestTimeout. Zero = 5 s,
	// or half of RequestTimeout if that is shorter.
	WaitTimeout time.Duration
	// WaitGrace is how long they keep collecting answers from other edges
	// after the first. Zero = 50 ms.
	WaitGrace time.Duration

	// Logger; nil = discard. Requests (and why a push or query failed) are
	// logged at debug level, a 500 at warn, a panic at error; the bearer
	// token never.
	Logger *slog.Logger
	// Registerer receives the API's metrics. Nil = not registered.
	Registerer prometheus.Registerer
	// Gatherer is served on /metrics (it may hold the edge's metrics too, as
	// in plex dev). Nil = the Registerer if it is also a Gatherer (a
	// *prometheus.Registry is), else /metrics is not served (404).
	Gatherer prometheus.Gatherer
}

// setDefaults fills zero values; it does not validate.
func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Heartbeat, DefaultHeartbeat)
	def(&c.Backoff.Base, DefaultBackoffBase)
	def(&c.Backoff.Max, DefaultBackoffMax)
	def(&c.RequestTimeout, DefaultRequestTimeout)
	def(&c.WaitTimeout, min(DefaultWaitTimeout, max(c.RequestTimeout, 0)/2))
	def(&c.WaitGrace, DefaultWaitGrace)
	if c.Backoff.Factor == 0 {
		c.Backoff.Factor = DefaultBackoffFactor
	}
	if c.Backoff.Jitter == 0 {
		c.Backoff.Jitter = DefaultBackoffJitter
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxUIDs == 0 {
		c.MaxUIDs = DefaultMaxUIDs
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Gatherer == nil {
		if g, ok := c.Registerer.(prometheus.Gatherer); ok {
			c.Gatherer = g
		}
	}
}

// validate checks a config after setDefaults, normalising OuterServers.
func (c *Config) validate() error {
	var errs []error
	if c.InnerPassword == "" {
		errs = append(errs, errors.New("InnerPassword is required (it guards push, online and edges)"))
	}
	servers := make([]string, 0, len(c.OuterServers))
	for _, s := range c.OuterServers {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
			errs = append(errs, fmt.Errorf("OuterServers: %q is not host:port", s))
			continue
		}
		servers = append(servers, s)
	}
	c.OuterServers = servers
	for name, d := range map[string]time.Duration{
		"Heartbeat": c.Heartbeat, "Backoff.Base": c.Backoff.Base, "Backoff.Max": c.Backoff.Max,
		"RequestTimeout": c.RequestTimeout, "WaitTimeout": c.WaitTimeout, "WaitGrace": c.WaitGrace,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %s", name, d))
		}
	}
	if c.Backoff.Max < c.Backoff.Base {
		errs = append(errs, fmt.Errorf("Backoff.Max %s is below Backoff.Base %s", c.Backoff.Max, c.Backoff.Base))
	}
	if math.IsNaN(c.Backoff.Factor) || c.Backoff.Factor < 1 || c.Backoff.Factor > 100 {
		errs = append(errs, fmt.Errorf("Backoff.Factor %v not in 1..100", c.Backoff.Factor))
	}
	if math.IsNaN(c.Backoff.Jitter) || c.Backoff.Jitter < 0 || c.Backoff.Jitter > 1 {
		errs = append(errs, fmt.Errorf("Backoff.Jitter %v not in 0..1", c.Backoff.Jitter))
	}
	if c.WaitTimeout > c.RequestTimeout {
		errs = append(errs, fmt.Errorf("WaitTimeout %s exceeds RequestTimeout %s", c.WaitTimeout, c.RequestTimeout))
	}
	if c.MaxBodyBytes < 0 || c.MaxUIDs < 0 || c.MaxMessageBytes < 0 {
		errs = append(errs, errors.New("MaxBodyBytes, MaxUIDs and MaxMessageBytes must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pushapi: invalid config: %w", err)
	}
	return nil
}

// NewServer returns an http.Server serving h on addr with timeouts fitted
// to cfg (after its defaults): ReadHeaderTimeout 5 s, ReadTimeout =
// RequestTimeout, WriteTimeout = RequestTimeout + 5 s, IdleTimeout 120 s,
// MaxHeaderBytes 64 KiB, and the server's own errors logged on cfg.Logger
// at warn level. The caller runs ListenAndServe and Shutdown.
func NewServer(addr string, h http.Handler, cfg Config) *http.Server {
	cfg.setDefaults()
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: DefaultReadHeaderTimeout,
		ReadTimeout:       cfg.RequestTimeout,
		WriteTimeout:      cfg.RequestTimeout + writeSlack,
		IdleTimeout:       DefaultIdleTimeout,
		MaxHeaderBytes:    DefaultMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
}
