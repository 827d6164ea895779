package main

import (
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/plexbus/plex/embeddednats"
)

// natsFlags configure an embedded nats-server.
type natsFlags struct {
	port          int
	bind          string
	name          string
	jetstream     bool
	dataDir       string
	clusterName   string
	clusterListen string
	routes        string
	user          string
	password      string
	token         string
	tlsCert       string
	tlsKey        string
	monitorPort   int
}

func (n *natsFlags) register(fs *pflag.FlagSet, defJetStream bool) {
	fs.IntVar(&n.port, "nats-port", 4222, "embedded NATS client port (0 = a free port)")
	fs.StringVar(&n.bind, "nats-bind", "127.0.0.1", "embedded NATS listen host")
	fs.StringVar(&n.name, "server-name", "", "NATS server name (must differ across a cluster; default generated)")
	fs.BoolVar(&n.jetstream, "jetstream", defJetStream, "enable JetStream")
	fs.StringVar(&n.dataDir, "data-dir", "./.plex-data", "directory for JetStream data")
	fs.StringVar(&n.clusterName, "cluster-name", "", "join a NATS cluster of this name")
	fs.StringVar(&n.clusterListen, "cluster-listen", "127.0.0.1:6222", "host:port for cluster routes (with --cluster-name)")
	fs.StringVar(&n.routes, "routes", "", "routes to other nodes, comma-separated nats-route://host:port")
	fs.StringVar(&n.user, "nats-server-user", "", "require this user from NATS clients (with --nats-server-password)")
	fs.StringVar(&n.password, "nats-server-password", "", "password NATS clients must present")
	fs.StringVar(&n.token, "nats-server-token", "", "token NATS clients must present")
	fs.StringVar(&n.tlsCert, "nats-tls-cert", "", "serve NATS clients over TLS with this certificate")
	fs.StringVar(&n.tlsKey, "nats-tls-key", "", "NATS TLS private key")
	fs.IntVar(&n.monitorPort, "nats-monitor-port", 0, "NATS monitoring HTTP port (0 = off)")
}

func (n *natsFlags) config(log *slog.Logger) embeddednats.Config {
	cfg := embeddednats.Config{
		Host:       n.bind,
		Port:       n.port,
		ServerName: n.name,
		JetStream:  n.jetstream,
		User:       n.user,
		Password:   n.password,
		Token:      n.token,
		TLSCert:    n.tlsCert,
		TLSKey:     n.tlsKey,
		HTTPPort:   n.monitorPort,
		Logger:     log.With("part", "nats"),
	}
	if n.jetstream {
		cfg.StoreDir = filepath.Join(n.dataDir, "jetstream")
	}
	if n.clusterName != "" {
		cfg.ClusterName = n.clusterName
		cfg.ClusterListen = n.clusterListen
		for _, r := range strings.Split(n.routes, ",") {
			if r = strings.TrimSpace(r); r != "" {
				cfg.Routes = append(cfg.Routes, r)
			}
		}
	}
	return cfg
}

func (n *natsFlags) validate() error {
	if n.routes != "" && n.clusterName == "" {
		return usageErr("--routes needs --cluster-name")
	}
	if n.port < 0 || n.port > 65535 {
		return usageErr("--nats-port %d out of range", n.port)
	}
	return nil
}
