package main

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/plexbus/plex/pushapi"
)

// apiFlags configure the HTTP API.
type apiFlags struct {
	port          int
	bind          string
	innerPassword string
	outerServers  string
	heartbeat     time.Duration
	backoffBase   time.Duration
	backoffFactor float64
	backoffJitter float64
	backoffMax    time.Duration
	maxBody       int64
	maxUIDs       int
	reqTimeout    time.Duration
}

func (a *apiFlags) register(fs *pflag.FlagSet, registerPassword bool) {
	fs.IntVar(&a.port, "http-port", 9579, "HTTP API port (0 = a free port)")
	fs.StringVar(&a.bind, "http-bind", "", "HTTP API listen host (empty = all interfaces)")
	if registerPassword {
		fs.StringVar(&a.innerPassword, "inner-password", "", "bearer password of the operator routes (required; the original's default is refused)")
	}
	fs.StringVar(&a.outerServers, "outer-servers", "", "fallback edge addresses for /plex/v1/host, comma-separated host:port")
	fs.Var(dur(&a.heartbeat, pushapi.DefaultHeartbeat), "client-heartbeat", "heartbeat recommended to clients by /plex/v1/host (keep equal to the edges' --heartbeat)")
	fs.Var(dur(&a.backoffBase, pushapi.DefaultBackoffBase), "backoff-base", "reconnect backoff recommended to clients: first wait")
	fs.Float64Var(&a.backoffFactor, "backoff-factor", pushapi.DefaultBackoffFactor, "reconnect backoff: growth per attempt")
	fs.Float64Var(&a.backoffJitter, "backoff-jitter", pushapi.DefaultBackoffJitter, "reconnect backoff: random fraction added or removed")
	fs.Var(dur(&a.backoffMax, pushapi.DefaultBackoffMax), "backoff-max", "reconnect backoff: longest wait")
	fs.Int64Var(&a.maxBody, "max-body", pushapi.DefaultMaxBodyBytes, "largest HTTP request body in bytes")
	fs.IntVar(&a.maxUIDs, "max-uids", pushapi.DefaultMaxUIDs, "most uids in one push request")
	fs.Var(dur(&a.reqTimeout, pushapi.DefaultRequestTimeout), "request-timeout", "bound on one HTTP request")
}

func (a *apiFlags) config(log *slog.Logger, reg *prometheus.Registry, maxFrame int) (pushapi.Config, error) {
	var outer []string
	for _, s := range strings.Split(a.outerServers, ",") {
		if s = strings.TrimSpace(s); s != "" {
			outer = append(outer, s)
		}
	}
	if a.port < 0 || a.port > 65535 {
		return pushapi.Config{}, usageErr("--http-port %d out of range", a.port)
	}
	cfg := pushapi.Config{
		InnerPassword:  a.innerPassword,
		OuterServers:   outer,
		Heartbeat:      a.heartbeat,
		Backoff:        pushapi.Backoff{Base: a.backoffBase, Factor: a.backoffFactor, Jitter: a.backoffJitter, Max: a.backoffMax},
		MaxBodyBytes:   a.maxBody,
		MaxUIDs:        a.maxUIDs,
		RequestTimeout: a.reqTimeout,
		Logger:         log.With("part", "api"),
		Registerer:     reg,
		Gatherer:       reg,
	}
	if maxFrame > 0 {
		cfg.MaxMessageBytes = maxFrame - 64
	}
	return cfg, nil
}

func (a *apiFlags) addr() string { return net.JoinHostPort(a.bind, strconv.Itoa(a.port)) }

// apiServer is a running HTTP API with its edge table.
type apiServer struct {
	http  *httpServer
	edges *pushapi.Edges
}

func startAPI(af *apiFlags, nc *nats.Conn, log *slog.Logger, reg *prometheus.Registry, maxFrame int) (*apiServer, error) {
	cfg, err := af.config(log, reg, maxFrame)
	if err != nil {
		return nil, err
	}
	edges, err := pushapi.WatchEdges(nc, pushapi.EdgesConfig{Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	h, err := pushapi.New(cfg, nc, edges)
	if err != nil {
		_ = edges.Close()
		return nil, usageErr("%v", err)
	}
	srv := pushapi.NewServer(af.addr(), h, cfg)
	hs, err := serveServer(srv, af.addr(), log)
	if err != nil {
		_ = edges.Close()
		return nil, err
	}
	return &apiServer{http: hs, edges: edges}, nil
}

func (a *apiServer) stop() {
	a.http.stop(5 * time.Second)
	_ = a.edges.Close()
}

func newAPICmd(g *globals) *cobra.Command {
	var (
		af apiFlags
		bf busFlags
		pf procsFlag
	)
	cmd := &cobra.Command{
		Use:   "api",
		Short: "Run the HTTP API: host discovery, push, online, edges, health, metrics",
		Long: `Run the HTTP API attached to NATS. /plex/v1/host is public (devices ask
it which edge to dial); push, online and edges need the bearer password.
/healthz says whether the bus is reachable and /metrics serves Prometheus.`,
		Example: `  plex api --nats nats://127.0.0.1:4222 --inner-password "$(cat /etc/plex/api.pw)"
  curl -s http://127.0.0.1:9579/plex/v1/host`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if af.innerPassword == "" {
				return usageErr("set --inner-password (or PLEX_INNER_PASSWORD): the operator routes need a password")
			}
			if af.innerPassword == "plex-inner" {
				return usageErr("--inner-password plex-inner is the original's public default; choose another")
			}
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			reg := newRegistry()
			nc, err := bf.connect("plex-api", log)
			if err != nil {
				return err
			}
			defer nc.Close()
			api, err := startAPI(&af, nc, log, reg, 0)
			if err != nil {
				return err
			}
			stopProcs := pf.start(cmd.Context(), log)
			defer stopProcs()
			fmt.Fprintf(cmd.OutOrStdout(), "api listening on http://%s\n", api.http.addr)
			<-cmd.Context().Done()
			api.stop()
			_ = nc.Drain()
			return nil
		},
	}
	af.register(cmd.Flags(), true)
	bf.register(cmd.Flags(), "nats://127.0.0.1:4222")
	pf.register(cmd)
	return cmd
}
