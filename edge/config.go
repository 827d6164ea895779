package edge

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/plexbus/plex/bus"
	"github.com/plexbus/plex/wire"
)

// Defaults follow the original framework where it had the setting.
const (
	DefaultAddr             = ":9578"
	DefaultAuthTimeout      = 30 * time.Second
	DefaultHeartbeat        = 60 * time.Second
	DefaultHeartbeatTimeout = 120 * time.Second
	DefaultAuthRequest      = 10 * time.Second
	DefaultWriteTimeout     = 10 * time.Second
	DefaultSendQueueBytes   = 256 << 10
	DefaultStatsInterval    = bus.DefaultStatsInterval
	DefaultDrainTimeout     = 10 * time.Second
	DefaultMaxPendingAuth   = 4096
	DefaultAuthFrameSize    = 8 << 10
	DefaultBusQueueLen      = 1 << 16
)

// DuplicatePolicy says what happens when a uid logs in while already online.
type DuplicatePolicy string

const (
	// DuplicateMulti keeps every connection; pushes reach all of them.
	DuplicateMulti DuplicatePolicy = "multi"
	// DuplicateKickOld closes the user's older connections, on every edge.
	DuplicateKickOld DuplicatePolicy = "kick-old"
	// DuplicateRejectNew refuses the new login while the user is online anywhere.
	DuplicateRejectNew DuplicatePolicy = "reject-new"
)

// ParseDuplicatePolicy parses multi, kick-old or reject-new ("" = multi).
func ParseDuplicatePolicy(s string) (DuplicatePolicy, error) {
	switch p := DuplicatePolicy(s); p {
	case "":
		return DuplicateMulti, nil
	case DuplicateMulti, DuplicateKickOld, DuplicateRejectNew:
		return p, nil
	}
	return "", fmt.Errorf("edge: unknown duplicate-login policy %q (want multi, kick-old or reject-new)", s)
}

// Config of an edge. Zero values take the documented defaults.
type Config struct {
	// Addr is the TCP listen address. Empty = ":9578".
	Addr string
	// ID names this edge on the bus (presence, stats, conn ids). Empty =
	// hostname plus a random suffix, new on every start.
	ID string
	// Advertise is the host:port clients should dial, published in stats for
	// host discovery; a bare host takes the listener's port. Empty = the
	// listener's address (with the wildcard host replaced by the first
	// non-loopback IP, or 127.0.0.1).
	Advertise string

	// AuthTimeout: a connection must authenticate within this long of
	// accept, or it is closed. Zero = 30 s.
	AuthTimeout time.Duration
	// AuthRequestTimeout bounds one request to the auth service (and never
	// exceeds what is left of AuthTimeout). Zero = 10 s, above the auth
	// service's own verify timeout (5 s) so its clear answer arrives first.
	AuthRequestTimeout time.Duration
	// MaxPendingAuth bounds auth requests in flight; beyond it a login is
	// refused with "server busy". Zero = 4096.
	MaxPendingAuth int
	// Heartbeat is the interval recommended to clients in /auth/success.
	// Zero = 60 s.
	Heartbeat time.Duration
	// HeartbeatTimeout closes an authenticated connection idle this long.
	// Zero = 120 s.
	HeartbeatTimeout time.Duration

	// ByteOrder of length prefixes; the zero value is big-endian.
	ByteOrder wire.Order
	// MaxFrameSize bounds a frame's payload. Zero = 64 KiB.
	MaxFrameSize int
	// MaxAuthFrameSize bounds frames before authentication, so an
	// unauthenticated peer cannot make the edge buffer much. Zero = 8 KiB
	// (or MaxFrameSize if smaller).
	MaxAuthFrameSize int
	// MaxConnections refuses connections beyond this many. 0 = unlimited.
	MaxConnections int
	// FailedAuthRate and FailedAuthBurst bound failed logins (refusals,
	// auth timeouts, garbage before login) per remote IP: a token bucket of
	// FailedAuthBurst refilled at FailedAuthRate per second. A connection
	// holds a token while it logs in (refunded on success), so an address
	// also has at most FailedAuthBurst logins in progress. An address with
	// none left is refused at accept with "too many logins from this
	// address, retry later". Zero = 10/s, burst 100 (generous: carrier NAT
	// puts many devices behind one address); a negative rate turns it off.
	FailedAuthRate  float64
	FailedAuthBurst int
	// ClientFrameRate and ClientFrameBurst bound the frames one client may
	// send (heartbeats, application data): beyond them it is closed as
	// rate_limited. Zero = 10/s, burst 50; a negative rate turns it off.
	ClientFrameRate  float64
	ClientFrameBurst int
	// DuplicateLogin policy. Empty = multi.
	DuplicateLogin DuplicatePolicy

	// WriteTimeout: a connection whose socket accepts no bytes for this long
	// is closed as slow. Zero = 10 s.
	WriteTimeout time.Duration
	// SendQueueBytes bounds the bytes queued for one connection beyond what
	// its socket accepted; overflowing closes it as a slow consumer.
	// Zero = 256 KiB.
	SendQueueBytes int
	// SocketSendBuffer sets SO_SNDBUF on client sockets, in bytes: it bounds
	// the kernel memory a client that stops reading holds before the send
	// queue and WriteTimeout apply (Linux doubles the value). Zero = the
	// kernel's default (autotuned up to net.ipv4.tcp_wmem's maximum).
	SocketSendBuffer int
	// BusQueueLen is the capacity of the queue between the bus connection
	// and the dispatchers; overflow drops messages (counted). Zero = 65536.
	BusQueueLen int
	// Dispatchers is how many goroutines write pushes to sockets; each user
	// is served by one, so per-user order holds. Zero = GOMAXPROCS.
	Dispatchers int

	// GoroutinePerConn reads every connection with its own goroutine
	// instead of the epoll loops (Linux). TLS connections always do.
	GoroutinePerConn bool
	// ReadLoops is the number of epoll loops. Zero = GOMAXPROCS.
	ReadLoops int

	// InnerPassword enables the original push client's protocol
	// (/inner/auth/server, /logic/send/msg). Empty = disabled: the default
	// password of the original is public knowledge.
	InnerPassword string

	// StatsInterval between plex.edge.stats messages. Zero = 5 s.
	StatsInterval time.Duration
	// DrainTimeout bounds a graceful shutdown. Zero = 10 s.
	DrainTimeout time.Duration

	// TLS, if set, serves TLS on the listener.
	TLS *tls.Config
	// Logger; nil = discard. Nothing secret is logged above debug level.
	Logger *slog.Logger
	// ShowTrace logs every frame at debug level (bodies included): for
	// development only.
	ShowTrace bool
	// Registerer receives the edge's Prometheus metrics. Nil = not registered.
	Registerer prometheus.Registerer
	// Version is reported in stats.
	Version string
}

func (c *Config) setDefaults() error {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	def(&c.AuthTimeout, DefaultAuthTimeout)
	def(&c.AuthRequestTimeout, DefaultAuthRequest)
	def(&c.Heartbeat, DefaultHeartbeat)
	def(&c.HeartbeatTimeout, DefaultHeartbeatTimeout)
	def(&c.WriteTimeout, DefaultWriteTimeout)
	def(&c.StatsInterval, DefaultStatsInterval)
	def(&c.DrainTimeout, DefaultDrainTimeout)
	if c.MaxPendingAuth == 0 {
		c.MaxPendingAuth = DefaultMaxPendingAuth
	}
	if c.MaxFrameSize == 0 {
		c.MaxFrameSize = wire.DefaultMaxFrameSize
	}
	if c.MaxAuthFrameSize == 0 {
		c.MaxAuthFrameSize = min(DefaultAuthFrameSize, c.MaxFrameSize)
	}
	if c.SendQueueBytes == 0 {
		c.SendQueueBytes = DefaultSendQueueBytes
	}
	if c.BusQueueLen == 0 {
		c.BusQueueLen = DefaultBusQueueLen
	}
	if c.FailedAuthRate == 0 {
		c.FailedAuthRate = 10
	}
	if c.FailedAuthBurst == 0 {
		c.FailedAuthBurst = 100
	}
	if c.ClientFrameRate == 0 {
		c.ClientFrameRate = 10
	}
	if c.ClientFrameBurst == 0 {
		c.ClientFrameBurst = 50
	}
	if c.DuplicateLogin == "" {
		c.DuplicateLogin = DuplicateMulti
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	var errs []error
	for name, d := range map[string]time.Duration{
		"AuthTimeout": c.AuthTimeout, "AuthRequestTimeout": c.AuthRequestTimeout,
		"Heartbeat": c.Heartbeat, "HeartbeatTimeout": c.HeartbeatTimeout,
		"WriteTimeout": c.WriteTimeout, "StatsInterval": c.StatsInterval, "DrainTimeout": c.DrainTimeout,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %s", name, d))
		}
	}
	if c.HeartbeatTimeout < c.Heartbeat {
		errs = append(errs, fmt.Errorf("HeartbeatTimeout %s is shorter than Heartbeat %s: every client would time out", c.HeartbeatTimeout, c.Heartbeat))
	}
	if c.MaxFrameSize < 64 || c.MaxFrameSize > 16<<20 {
		errs = append(errs, fmt.Errorf("MaxFrameSize %d not in 64..16777216", c.MaxFrameSize))
	}
	if c.MaxAuthFrameSize < 64 || c.MaxAuthFrameSize > c.MaxFrameSize {
		errs = append(errs, fmt.Errorf("MaxAuthFrameSize %d not in 64..MaxFrameSize", c.MaxAuthFrameSize))
	}
	if c.SendQueueBytes < c.MaxFrameSize+wire.HeaderSize {
		errs = append(errs, fmt.Errorf("SendQueueBytes %d cannot hold one frame of MaxFrameSize %d", c.SendQueueBytes, c.MaxFrameSize))
	}
	if c.MaxConnections < 0 || c.MaxPendingAuth < 0 || c.BusQueueLen < 0 || c.Dispatchers < 0 || c.ReadLoops < 0 || c.SocketSendBuffer < 0 {
		errs = append(errs, errors.New("MaxConnections, MaxPendingAuth, BusQueueLen, Dispatchers and ReadLoops must not be negative"))
	}
	if _, err := ParseDuplicatePolicy(string(c.DuplicateLogin)); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("edge: invalid config: %w", err)
	}
	return nil
}
