// Package embeddednats runs an in-process nats-server for development,
// single-box deployments and tests, the way nats-server's own tests do:
// loopback, a random port unless told otherwise, no signal handlers, logs
// off unless a logger is given, and a ready check turned into an error.
package embeddednats

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Config of an embedded server. The zero value is a loopback server on a
// random port, without JetStream, cluster or auth.
type Config struct {
	// Host to listen on. Empty = 127.0.0.1.
	Host string
	// Port for clients. 0 = a random free port; the real one is in ClientURL.
	Port int
	// DontListen opens no client port at all: connect in-process with
	// Server.Connect (nats.InProcessServer).
	DontListen bool
	// ServerName is the server's name in a cluster. Empty = generated.
	ServerName string

	// JetStream turns on persistence, stored under StoreDir
	// (empty = a temporary directory chosen by nats-server).
	JetStream bool
	StoreDir  string

	// ClusterName turns on clustering. ClusterListen is host:port for routes
	// ("127.0.0.1:0" or empty = loopback, random port); Routes are the
	// nats-route://host:port URLs of the other nodes.
	ClusterName   string
	ClusterListen string
	Routes        []string

	// Client authentication: User and Password, or Token. Empty = none.
	User, Password string
	Token          string
	// TLS for clients: certificate and key files. Empty = plain TCP.
	TLSCert, TLSKey string

	// HTTPPort serves nats-server's monitoring endpoints (/varz, /connz, …).
	// 0 = off; -1 = a random port.
	HTTPPort int

	// Logger receives the server's log at info (Debug: debug) level.
	// Nil = no server logs.
	Logger *slog.Logger
	Debug  bool

	// ReadyTimeout bounds the wait for the server to accept clients.
	// Zero = 10 s.
	ReadyTimeout time.Duration
}

// Server is a running embedded nats-server.
type Server struct {
	ns       *server.Server
	cfg      Config
	stopOnce sync.Once
}

// ErrNotReady is returned when the server did not become ready in time.
var ErrNotReady = errors.New("embeddednats: server not ready")

// Start starts a server and waits until it accepts clients.
func Start(cfg Config) (*Server, error) {
	opts, err := cfg.options()
	if err != nil {
		return nil, err
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embeddednats: %w", err)
	}
	if cfg.Logger != nil {
		ns.SetLoggerV2(&slogAdapter{log: cfg.Logger}, cfg.Debug, false, false)
	}
	ns.Start()
	wait := cfg.ReadyTimeout
	if wait <= 0 {
		wait = 10 * time.Second
	}
	if !ns.ReadyForConnections(wait) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("%w after %s (port %d in use?)", ErrNotReady, wait, cfg.Port)
	}
	return &Server{ns: ns, cfg: cfg}, nil
}

func (cfg Config) options() (*server.Options, error) {
	host := cfg.Host
	if host == "" {
		host = "127.0.0.1"
	}
	port := cfg.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName:    cfg.ServerName,
		Host:          host,
		Port:          port,
		DontListen:    cfg.DontListen,
		NoSigs:        true,
		NoLog:         cfg.Logger == nil,
		Debug:         cfg.Debug,
		JetStream:     cfg.JetStream,
		StoreDir:      cfg.StoreDir,
		Username:      cfg.User,
		Password:      cfg.Password,
		Authorization: cfg.Token,
		MaxPayload:    1 << 20,
	}
	if (cfg.User == "") != (cfg.Password == "") {
		return nil, errors.New("embeddednats: user and password go together")
	}
	if cfg.Token != "" && cfg.User != "" {
		return nil, errors.New("embeddednats: set user/password or token, not both")
	}
	switch cfg.HTTPPort {
	case 0:
	case -1:
		opts.HTTPHost, opts.HTTPPort = host, server.RANDOM_PORT
	default:
		opts.HTTPHost, opts.HTTPPort = host, cfg.HTTPPort
	}
	if cfg.TLSCert != "" || cfg.TLSKey != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey})
		if err != nil {
			return nil, fmt.Errorf("embeddednats: tls: %w", err)
		}
		opts.TLS, opts.TLSConfig, opts.TLSTimeout = true, tc, 2
	}
	if cfg.ClusterName != "" {
		chost, cport := "127.0.0.1", server.RANDOM_PORT
		if cfg.ClusterListen != "" {
			h, p, err := net.SplitHostPort(cfg.ClusterListen)
			if err != nil {
				return nil, fmt.Errorf("embeddednats: cluster listen %q: %w", cfg.ClusterListen, err)
			}
			n, err := strconv.Atoi(p)
			if err != nil {
				return nil, fmt.Errorf("embeddednats: cluster port %q: %w", p, err)
			}
			if h != "" {
				chost = h
			}
			if n != 0 {
				cport = n
			}
		}
		opts.Cluster = server.ClusterOpts{Name: cfg.ClusterName, Host: chost, Port: cport}
		for _, r := range cfg.Routes {
			urls := server.RoutesFromStr(r)
			if len(urls) == 0 {
				return nil, fmt.Errorf("embeddednats: bad route %q", r)
			}
			opts.Routes = append(opts.Routes, urls...)
		}
	} else if len(cfg.Routes) > 0 {
		return nil, errors.New("embeddednats: routes need a cluster name")
	}
	return opts, nil
}

// NATS returns the underlying server, for what this package does not wrap.
func (s *Server) NATS() *server.Server { return s.ns }

// ClientURL is the URL clients dial (nats://host:port). Empty with DontListen.
func (s *Server) ClientURL() string {
	if s.cfg.DontListen {
		return ""
	}
	return s.ns.ClientURL()
}

// Port is the client port actually bound (0 with DontListen).
func (s *Server) Port() int {
	if a, ok := s.ns.Addr().(*net.TCPAddr); ok && !s.cfg.DontListen {
		return a.Port
	}
	return 0
}

// ClusterURL is the nats-route:// URL other nodes use to route to this one.
// Empty without a cluster.
func (s *Server) ClusterURL() string {
	a := s.ns.ClusterAddr()
	if a == nil {
		return ""
	}
	return "nats-route://" + a.String()
}

// MonitorURL is the monitoring endpoint's base URL. Empty unless HTTPPort.
func (s *Server) MonitorURL() string {
	a := s.ns.MonitorAddr()
	if a == nil {
		return ""
	}
	return "http://" + a.String()
}

// NumRoutes is how many route connections are up.
func (s *Server) NumRoutes() int { return s.ns.NumRoutes() }

// Connect opens a client connection: in-process with DontListen, over TCP
// otherwise. Credentials configured on the server are supplied.
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	base := []nats.Option{}
	switch {
	case s.cfg.User != "":
		base = append(base, nats.UserInfo(s.cfg.User, s.cfg.Password))
	case s.cfg.Token != "":
		base = append(base, nats.Token(s.cfg.Token))
	}
	url := s.ClientURL()
	if s.cfg.DontListen {
		base = append(base, nats.InProcessServer(s.ns))
		url = ""
	}
	nc, err := nats.Connect(url, append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("embeddednats: connect: %w", err)
	}
	return nc, nil
}

// InProcess is the option that connects to this server without a socket.
func (s *Server) InProcess() nats.Option { return nats.InProcessServer(s.ns) }

// Shutdown stops the server and waits until it is down. It is idempotent.
func (s *Server) Shutdown() {
	s.stopOnce.Do(func() {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
	})
}
