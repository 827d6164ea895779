package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"github.com/plexbus/plex/edge"
	"github.com/plexbus/plex/wire"
)

// edgeFlags configure an edge.
type edgeFlags struct {
	port             int
	bind             string
	id               string
	advertise        string
	authTimeout      time.Duration
	authRequest      time.Duration
	heartbeat        time.Duration
	heartbeatTimeout time.Duration
	byteOrder        string
	maxConns         int
	maxFrame         int
	writeTimeout     time.Duration
	sendQueue        int
	duplicate        string
	innerPassword    string
	statsInterval    time.Duration
	drainTimeout     time.Duration
	tlsCert, tlsKey  string
	showTrace        bool
	failedAuthRate   float64
	failedAuthBurst  int
	frameRate        float64
	frameBurst       int
	dispatchers      int
	readLoops        int
	goroutinePerConn bool
	sndbuf           int
	maxPendingAuth   int
	maxAuthFrame     int
	busQueue         int
}

func (e *edgeFlags) register(fs *pflag.FlagSet) {
	fs.IntVar(&e.port, "port", 9578, "edge TCP port for devices (0 = a free port)")
	fs.StringVar(&e.bind, "bind", "", "edge listen host (empty = all interfaces)")
	fs.StringVar(&e.id, "edge-id", "", "edge id on the bus (default: hostname and a random suffix)")
	fs.StringVar(&e.advertise, "advertise", "", "host:port devices should dial, published for host discovery (default: the listen address)")
	fs.Var(dur(&e.authTimeout, edge.DefaultAuthTimeout), "auth-timeout", "close connections not authenticated within this long")
	fs.Var(dur(&e.authRequest, edge.DefaultAuthRequest), "auth-request-timeout", "bound on one auth service request")
	fs.Var(dur(&e.heartbeat, edge.DefaultHeartbeat), "heartbeat", "heartbeat interval recommended to clients")
	fs.Var(dur(&e.heartbeatTimeout, edge.DefaultHeartbeatTimeout), "heartbeat-timeout", "close connections silent for this long")
	fs.StringVar(&e.byteOrder, "byte-order", "big", "length prefix byte order: big or little (clients must agree)")
	fs.IntVar(&e.maxConns, "max-conns", 0, "refuse connections beyond this many (0 = unlimited)")
	fs.IntVar(&e.maxFrame, "max-frame-size", wire.DefaultMaxFrameSize, "largest frame payload in bytes")
	fs.Var(dur(&e.writeTimeout, edge.DefaultWriteTimeout), "write-timeout", "close a client whose socket takes no bytes for this long")
	fs.IntVar(&e.sendQueue, "send-queue", edge.DefaultSendQueueBytes, "bytes queued per connection before it is closed as a slow consumer")
	fs.StringVar(&e.duplicate, "duplicate-login", "multi", "a uid logging in twice: multi, kick-old or reject-new")
	fs.StringVar(&e.innerPassword, "inner-password", "", "enable the original push client protocol with this password (empty = disabled)")
	fs.Var(dur(&e.statsInterval, edge.DefaultStatsInterval), "stats-interval", "interval of plex.edge.stats")
	fs.Var(dur(&e.drainTimeout, edge.DefaultDrainTimeout), "drain-timeout", "bound on a graceful shutdown")
	fs.Float64Var(&e.failedAuthRate, "failed-auth-rate", 10, "failed logins allowed per remote IP per second, after the burst (negative = no limit)")
	fs.IntVar(&e.failedAuthBurst, "failed-auth-burst", 100, "failed logins a remote IP may make at once, and logins it may have in progress")
	fs.Float64Var(&e.frameRate, "client-frame-rate", 10, "frames a client may send per second, after the burst (negative = no limit)")
	fs.IntVar(&e.frameBurst, "client-frame-burst", 50, "frames a client may send at once")
	fs.IntVar(&e.dispatchers, "dispatchers", 0, "goroutines writing pushes to sockets (0 = one per CPU)")
	fs.IntVar(&e.readLoops, "read-loops", 0, "epoll loops reading client sockets (0 = one per CPU)")
	fs.IntVar(&e.maxPendingAuth, "max-pending-auth", edge.DefaultMaxPendingAuth, "logins in flight to the auth service; beyond them a login gets \"server busy, retry later\"")
	fs.IntVar(&e.maxAuthFrame, "max-auth-frame-size", edge.DefaultAuthFrameSize, "largest frame before login, in bytes")
	fs.IntVar(&e.busQueue, "bus-queue", edge.DefaultBusQueueLen, "pushes queued between the bus and the socket writers; overflow drops them (counted)")
	fs.IntVar(&e.sndbuf, "socket-send-buffer", 0, "SO_SNDBUF of client sockets in bytes, bounding the kernel memory a stuck client holds (0 = kernel default)")
	fs.BoolVar(&e.goroutinePerConn, "goroutine-per-conn", false, "read each connection with its own goroutine instead of epoll loops (uses more memory; TLS always does)")
	fs.StringVar(&e.tlsCert, "tls-cert", "", "serve TLS to devices with this certificate (with --tls-key)")
	fs.StringVar(&e.tlsKey, "tls-key", "", "TLS private key")
	fs.BoolVar(&e.showTrace, "show-trace", false, "log every frame at debug level, bodies included (development only)")
}

func (e *edgeFlags) config(log *slog.Logger) (edge.Config, error) {
	order, err := wire.ParseOrder(e.byteOrder)
	if err != nil {
		return edge.Config{}, usageErr("--byte-order: %v", err)
	}
	policy, err := edge.ParseDuplicatePolicy(e.duplicate)
	if err != nil {
		return edge.Config{}, usageErr("--duplicate-login: %v", err)
	}
	if e.port < 0 || e.port > 65535 {
		return edge.Config{}, usageErr("--port %d out of range", e.port)
	}
	cfg := edge.Config{
		Addr:               net.JoinHostPort(e.bind, strconv.Itoa(e.port)),
		ID:                 e.id,
		Advertise:          e.advertise,
		AuthTimeout:        e.authTimeout,
		AuthRequestTimeout: e.authRequest,
		Heartbeat:          e.heartbeat,
		HeartbeatTimeout:   e.heartbeatTimeout,
		ByteOrder:          order,
		MaxConnections:     e.maxConns,
		MaxFrameSize:       e.maxFrame,
		WriteTimeout:       e.writeTimeout,
		SendQueueBytes:     e.sendQueue,
		DuplicateLogin:     policy,
		InnerPassword:      e.innerPassword,
		StatsInterval:      e.statsInterval,
		DrainTimeout:       e.drainTimeout,
		ShowTrace:          e.showTrace,
		FailedAuthRate:     e.failedAuthRate,
		FailedAuthBurst:    e.failedAuthBurst,
		ClientFrameRate:    e.frameRate,
		ClientFrameBurst:   e.frameBurst,
		Dispatchers:        e.dispatchers,
		ReadLoops:          e.readLoops,
		GoroutinePerConn:   e.goroutinePerConn,
		SocketSendBuffer:   e.sndbuf,
		MaxPendingAuth:     e.maxPendingAuth,
		MaxAuthFrameSize:   min(e.maxAuthFrame, e.maxFrame),
		BusQueueLen:        e.busQueue,
		Logger:             log.With("part", "edge"),
		Version:            version,
	}
	if (e.tlsCert == "") != (e.tlsKey == "") {
		return edge.Config{}, usageErr("--tls-cert and --tls-key go together")
	}
	if e.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(e.tlsCert, e.tlsKey)
		if err != nil {
			return edge.Config{}, fmt.Errorf("load edge TLS certificate: %w", err)
		}
		cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	return cfg, nil
}
