package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/plexbus/plex/client"
	"github.com/plexbus/plex/wire"
)

func newClientCmd(g *globals) *cobra.Command {
	var (
		uid, token, addr, hostURL string
		heartbeat, connectTimeout time.Duration
		reconnect, byteOrder      string
		maxFrame, count           int
		jsonOut, useTLS           bool
		tlsCA, tlsServerName      string
	)
	cmd := &cobra.Command{
		Use:   "client",
		Short: "Connect like a device and print every message received",
		Long: `Connect to an edge as a device would: log in, heartbeat, reconnect with
backoff when the connection drops, and print each pushed message on
standard output (connection events go to standard error). The mosquitto_sub
of Plex. Ctrl-C exits 0; a refused login that will not be retried exits 1.`,
		Example: `  plex client --uid 42                                   # with plex dev (auth body = uid)
  plex client --token "$JWT" --host-url http://127.0.0.1:9579/plex/v1/host
  plex client --uid 42 --json --count 1                  # print one message as JSON and exit`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (uid == "") == (token == "") {
				return usageErr("give --uid (for the dev verifier) or --token")
			}
			auth := token
			if uid != "" {
				auth = uid
			}
			policy, err := client.ParseReconnectPolicy(reconnect)
			if err != nil {
				return usageErr("--reconnect: %v", err)
			}
			order, err := wire.ParseOrder(byteOrder)
			if err != nil {
				return usageErr("--byte-order: %v", err)
			}
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			var tc *tls.Config
			if useTLS || tlsCA != "" {
				tc = &tls.Config{ServerName: tlsServerName, MinVersion: tls.VersionTLS12}
				if tlsCA != "" {
					pem, err := os.ReadFile(tlsCA)
					if err != nil {
						return fmt.Errorf("read --tls-ca: %w", err)
					}
					pool := x509.NewCertPool()
					if !pool.AppendCertsFromPEM(pem) {
						return usageErr("--tls-ca %s holds no certificate", tlsCA)
					}
					tc.RootCAs = pool
				}
			}
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			var got atomic.Int64
			cfg := client.Config{
				Addr: addr, HostURL: hostURL, Auth: auth,
				Heartbeat: heartbeat, ConnectTimeout: connectTimeout,
				Reconnect: policy, ByteOrder: order, MaxFrameSize: maxFrame, TLS: tc,
				Logger: log.With("part", "client"),
				OnMessage: func(m client.Message) {
					if jsonOut {
						data, _ := json.Marshal(wire.Message{Seq: m.Seq, URI: m.URI, Body: m.Body})
						fmt.Fprintln(out, string(data))
					} else {
						fmt.Fprintf(out, "[%d] %s %s\n", m.Seq, m.URI, m.Body)
					}
					if n := got.Add(1); count > 0 && n >= int64(count) {
						cancel() // Run returns nil once the context ends
					}
				},
				OnConnect: func(i client.ConnectInfo) {
					fmt.Fprintf(errOut, "connected to %s as %s (heartbeat %s)\n", i.Addr, i.UID, i.Heartbeat)
				},
				OnDisconnect: func(i client.DisconnectInfo) {
					fmt.Fprintf(errOut, "disconnected from %s: %v%s\n", i.Addr, i.Err, retryNote(i))
				},
				OnConnectFailed: func(i client.DisconnectInfo) {
					fmt.Fprintf(errOut, "connect failed: %v%s\n", i.Err, retryNote(i))
				},
				OnAuthFailed: func(i client.DisconnectInfo) {
					fmt.Fprintf(errOut, "login refused: %v%s\n", i.Err, retryNote(i))
				},
			}
			if cfg.Addr == "" && cfg.HostURL == "" {
				cfg.Addr = "127.0.0.1:9578"
			}
			c, err := client.New(cfg)
			if err != nil {
				return usageErr("%v", err)
			}
			err = c.Run(ctx)
			c.Close()
			return err
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&uid, "uid", "", "log in as this uid (the dev verifier takes the uid as auth data)")
	fs.StringVar(&token, "token", "", "auth data to log in with (a JWT, …)")
	fs.StringVar(&addr, "addr", "", "edge address host:port (default 127.0.0.1:9578 unless --host-url)")
	fs.StringVar(&hostURL, "host-url", "", "ask this /plex/v1/host URL for an edge before each connect")
	fs.Var(dur(&heartbeat, 0), "client-heartbeat", "heartbeat interval (default: what the edge says)")
	fs.Var(dur(&connectTimeout, 10*time.Second), "connect-timeout", "bound on discovery, dial and login")
	fs.StringVar(&reconnect, "reconnect", "always", "reconnect policy: always, on-failure or never")
	fs.StringVar(&byteOrder, "byte-order", "big", "length prefix byte order: big or little")
	fs.IntVar(&maxFrame, "max-frame-size", wire.DefaultMaxFrameSize, "largest frame accepted")
	fs.IntVar(&count, "count", 0, "exit after this many messages (0 = run until interrupted)")
	fs.BoolVar(&jsonOut, "json", false, "print messages as JSON lines {seq,uri,body}")
	fs.BoolVar(&useTLS, "tls", false, "connect with TLS (system roots unless --tls-ca)")
	fs.StringVar(&tlsCA, "tls-ca", "", "CA file to verify the edge's certificate (implies --tls)")
	fs.StringVar(&tlsServerName, "tls-server-name", "", "name to verify in the edge's certificate (default: the host dialled)")
	return cmd
}

func retryNote(i client.DisconnectInfo) string {
	if !i.Reconnect {
		return "; not retrying"
	}
	return fmt.Sprintf("; retrying in %s", i.Delay.Round(time.Millisecond))
}
