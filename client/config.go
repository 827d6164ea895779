package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/plexbus/plex/wire"
)

// Defaults. A host discovery reply that carries heartbeat or backoff
// values overrides them (and Config).
const (
	DefaultHeartbeat      = 60 * time.Second
	DefaultConnectTimeout = 10 * time.Second
	DefaultWriteTimeout   = 10 * time.Second
	DefaultBackoffBase    = time.Second
	DefaultBackoffFactor  = 1.8
	DefaultBackoffJitter  = 0.3
	DefaultBackoffMax     = 5 * time.Minute
)

// ReconnectPolicy says when Run connects again after a connection ends or an
// attempt fails. Whatever the policy, auth data the server refused is never
// sent again: see ReconnectAlways.
type ReconnectPolicy int

const (
	// ReconnectAlways (the default) reconnects after every disconnect and
	// failed attempt, with backoff. After an auth refusal it calls
	// Config.AuthFunc once more and retries, after a backoff delay, only if
	// that returns different data; with static Config.Auth, or the same
	// data again, Run stops.
	ReconnectAlways ReconnectPolicy = iota
	// ReconnectOnFailure reconnects after network and server failures (dial
	// and I/O errors, heartbeat timeouts, /reconnect from a draining edge,
	// temporary refusals such as "server busy") and stops at the first auth
	// refusal.
	ReconnectOnFailure
	// ReconnectNever makes one connection: Run returns when it ends or when
	// the first attempt fails.
	ReconnectNever
)

func (p ReconnectPolicy) String() string {
	switch p {
	case ReconnectAlways:
		return "always"
	case ReconnectOnFailure:
		return "on-failure"
	case ReconnectNever:
		return "never"
	}
	return fmt.Sprintf("ReconnectPolicy(%d)", int(p))
}

// ParseReconnectPolicy parses "always", "on-failure" or "never"
// (case-insensitive; "" = always), for flags.
func ParseReconnectPolicy(s string) (ReconnectPolicy, error) {
	switch strings.ToLower(s) {
	case "", "always":
		return ReconnectAlways, nil
	case "on-failure", "onfailure", "on_failure":
		return ReconnectOnFailure, nil
	case "never":
		return ReconnectNever, nil
	}
	return 0, fmt.Errorf("client: unknown reconnect policy %q (want always, on-failure or never)", s)
}

// Backoff is the delay between failed connection attempts. The n-th delay
// in a row (n from 0) is d = min(Base·Factorⁿ, Max), drawn uniformly from
// [d·(1−Jitter), d] so a fleet of devices that lost the same edge does not
// come back in step. Zero fields take the defaults.
type Backoff struct {
	// Base is the first delay. Zero = 1 s.
	Base time.Duration
	// Factor multiplies the delay after each failure in a row; at least 1.
	// Zero = 1.8.
	Factor float64
	// Jitter is the fraction of each delay that is random, in [0, 1].
	// Zero = 0.3; negative = no jitter.
	Jitter float64
	// Max caps the delay. Zero = 5 min.
	Max time.Duration
}

func (b *Backoff) setDefaults() {
	if b.Base == 0 {
		b.Base = DefaultBackoffBase
	}
	if b.Factor == 0 {
		b.Factor = DefaultBackoffFactor
	}
	switch {
	case b.Jitter == 0:
		b.Jitter = DefaultBackoffJitter
	case b.Jitter < 0:
		b.Jitter = 0
	}
	if b.Max == 0 {
		b.Max = DefaultBackoffMax
	}
}

func (b Backoff) validate() error {
	var errs []error
	if b.Base < 0 || b.Max < 0 {
		errs = append(errs, fmt.Errorf("backoff Base %s and Max %s must not be negative", b.Base, b.Max))
	}
	if b.Max < b.Base {
		errs = append(errs, fmt.Errorf("backoff Max %s is shorter than Base %s", b.Max, b.Base))
	}
	if b.Factor < 1 {
		errs = append(errs, fmt.Errorf("backoff Factor %g is below 1", b.Factor))
	}
	if b.Jitter > 1 {
		errs = append(errs, fmt.Errorf("backoff Jitter %g is above 1", b.Jitter))
	}
	return errors.Join(errs...)
}

// AuthFunc returns the auth data for the next login. It is called with
// Run's context before every connection attempt, so a token can be
// refreshed; it should return promptly when that context ends.
//
// An error that wraps ErrAuthFailed means there are no credentials to try:
// Run stops. Any other error counts as a failed attempt and is retried
// with backoff under ReconnectAlways and ReconnectOnFailure.
type AuthFunc func(ctx context.Context) (string, error)

// Config of a Client. Zero values take the documented defaults; set either
// Addr or HostURL, and either Auth or AuthFunc.
//
// The callbacks are all optional. Run calls them one at a time, in order,
// from the goroutine that runs Run; see the package documentation.
type Config struct {
	// Addr is the edge's host:port. With HostURL set, it is the fallback
	// used when host discovery fails.
	Addr string
	// HostURL is a host-discovery URL such as
	// "http://api.example.com:9579/plex/v1/host". It is asked before every
	// connection attempt, so a client whose edge went away lands on a live
	// one. Heartbeat and backoff values in its reply override this Config.
	HostURL string
	// HTTPClient asks HostURL. Nil = a private client without keep-alives
	// (a device asks rarely; an idle pooled connection only costs).
	HTTPClient *http.Client

	// Auth is the auth data sent in /auth/server: a token, or whatever the
	// server's verifier expects.
	Auth string
	// AuthFunc, if set, supplies the auth data instead of Auth.
	AuthFunc AuthFunc

	// Heartbeat is the interval between heartbeats. Zero = the interval the
	// edge announces in /auth/success, else the host reply's, else 60 s.
	// A connection on which nothing arrives for two intervals is dead.
	Heartbeat time.Duration
	// ConnectTimeout bounds one connection attempt: host discovery, dial,
	// TLS handshake and the login reply. Zero = 10 s.
	ConnectTimeout time.Duration
	// WriteTimeout bounds one write to the socket; a write that does not
	// finish in time drops the connection. Zero = 10 s.
	WriteTimeout time.Duration
	// Reconnect policy. The zero value is ReconnectAlways.
	Reconnect ReconnectPolicy
	// Backoff between failed attempts.
	Backoff Backoff

	// ByteOrder of length prefixes; it must match the edge's. The zero value
	// is big-endian.
	ByteOrder wire.Order
	// MaxFrameSize bounds the payload of a frame in either direction; a
	// larger incoming frame is a protocol error. Zero = 64 KiB.
	MaxFrameSize int
	// TLS, if set, runs TLS over the TCP connection. An empty ServerName is
	// taken from the host dialled.
	TLS *tls.Config
	// DialContext opens the TCP connection. Nil = a net.Dialer.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// Logger; nil = discard. Auth data is never logged.
	Logger *slog.Logger

	// OnMessage is called with every pushed frame, in the order received.
	OnMessage func(Message)
	// OnConnect is called when a login succeeded.
	OnConnect func(ConnectInfo)
	// OnDisconnect is called when a connection that OnConnect announced
	// ends, unless Run is stopping (Close or its context).
	OnDisconnect func(DisconnectInfo)
	// OnConnectFailed is called when an attempt fails before login: host
	// discovery, dial, TLS, an AuthFunc error, no reply in time, or a
	// temporary refusal by the edge.
	OnConnectFailed func(DisconnectInfo)
	// OnAuthFailed is called when the server refuses the auth data, at
	// login or later (a newer login of the same user kicked this one; then
	// OnDisconnect comes first). Info.Reconnect says whether Run retries
	// with fresh auth data or stops.
	OnAuthFailed func(DisconnectInfo)
}

func (c *Config) setDefaults() error {
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.MaxFrameSize == 0 {
		c.MaxFrameSize = wire.DefaultMaxFrameSize
	}
	c.Backoff.setDefaults()
	var errs []error
	if c.Addr == "" && c.HostURL == "" {
		errs = append(errs, errors.New("set Addr or HostURL"))
	}
	if c.Addr != "" {
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			errs = append(errs, fmt.Errorf("bad Addr: %w", err))
		}
	}
	if c.HostURL != "" && !strings.HasPrefix(c.HostURL, "http://") && !strings.HasPrefix(c.HostURL, "https://") {
		errs = append(errs, fmt.Errorf("HostURL %q is not an http(s) URL", c.HostURL))
	}
	if c.Auth == "" && c.AuthFunc == nil {
		errs = append(errs, errors.New("set Auth or AuthFunc"))
	}
	if c.Auth != "" && c.AuthFunc != nil {
		errs = append(errs, errors.New("set Auth or AuthFunc, not both"))
	}
	if c.Heartbeat < 0 || c.ConnectTimeout < 0 || c.WriteTimeout < 0 {
		errs = append(errs, errors.New("negative Heartbeat, ConnectTimeout or WriteTimeout"))
	}
	if c.Reconnect < ReconnectAlways || c.Reconnect > ReconnectNever {
		errs = append(errs, fmt.Errorf("unknown Reconnect policy %d", int(c.Reconnect)))
	}
	if c.ByteOrder != wire.BigEndian && c.ByteOrder != wire.LittleEndian {
		errs = append(errs, fmt.Errorf("unknown ByteOrder %d", c.ByteOrder))
	}
	if c.MaxFrameSize < 64 || c.MaxFrameSize > 16<<20 {
		errs = append(errs, fmt.Errorf("MaxFrameSize %d not in 64..16777216", c.MaxFrameSize))
	}
	if err := c.Backoff.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("client: invalid config: %w", err)
	}
	return nil
}
