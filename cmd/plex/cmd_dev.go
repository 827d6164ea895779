package main

import (
	"fmt"
	"io"
	"net"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/plexbus/plex/bus"
	"github.com/plexbus/plex/edge"
	"github.com/plexbus/plex/embeddednats"
)

func newDevCmd(g *globals) *cobra.Command {
	var (
		nf natsFlags
		ef edgeFlags
		af apiFlags
		au authFlags
		pf procsFlag
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run everything in one process: NATS, auth, an edge and the API",
		Long: `Run a whole Plex on one box, for development and trials: an embedded NATS
server (other processes and the nats CLI can join it), the auth service
with the insecure dev verifier (the auth body is the uid) unless you choose
another, an edge and the HTTP API. Ctrl-C shuts it all down cleanly.`,
		Example: `  plex dev
  plex dev --port 0 --http-port 0 --nats-port 0      # free ports, printed in the banner
  plex dev --jwt-secret-file ./jwt.key                # real logins
  plex dev --cluster-name plex --cluster-listen 127.0.0.1:6222 --routes nats-route://10.0.0.2:6222`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := nf.validate(); err != nil {
				return err
			}
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			ecfg, err := ef.config(log)
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("client-heartbeat") {
				af.heartbeat = ef.heartbeat
			}
			af.innerPassword = ef.innerPassword
			if ecfg.Advertise == "" {
				ecfg.Advertise = "127.0.0.1" // one box: hand out loopback, with the edge's port
			}
			verifier, kind, err := au.build(log.With("part", "auth"), true)
			if err != nil {
				return err
			}

			ns, err := embeddednats.Start(nf.config(quietNATS(g, log)))
			if err != nil {
				return err
			}
			defer ns.Shutdown()
			connect := func(name string) (*nats.Conn, error) {
				return bus.Connect(bus.ConnConfig{URLs: ns.ClientURL(), Name: name, User: nf.user, Password: nf.password, Token: nf.token, Logger: log}, ns.InProcess())
			}
			var conns []*nats.Conn
			defer func() {
				for _, nc := range conns {
					_ = nc.Drain()
				}
			}()
			var nc [3]*nats.Conn
			for i, name := range []string{"plex-auth", "plex-edge", "plex-api"} {
				if nc[i], err = connect(name); err != nil {
					return err
				}
				conns = append(conns, nc[i])
			}
			reg := newRegistry()
			svc, err := au.start(nc[0], reg, log, verifier)
			if err != nil {
				return err
			}
			defer func() { _ = svc.Stop() }()
			ecfg.Registerer = reg
			srv, err := edge.New(ecfg, nc[1])
			if err != nil {
				return err
			}
			api, err := startAPI(&af, nc[2], log, reg, ecfg.MaxFrameSize)
			if err != nil {
				srv.Close()
				return err
			}
			defer api.stop()
			stopProcs := pf.start(cmd.Context(), log)
			defer stopProcs()
			printBanner(cmd.OutOrStdout(), ns.ClientURL(), nf, srv, api.http.addr.String(), kind, ef.innerPassword)
			return srv.Run(cmd.Context())
		},
	}
	nf.register(cmd.Flags(), true)
	ef.register(cmd.Flags())
	af.register(cmd.Flags(), false)
	au.register(cmd.Flags())
	pf.register(cmd)
	// In dev the inner push protocol and the API share the original's
	// well-known password; a real deployment must choose its own.
	_ = cmd.Flags().Set("inner-password", "plex-inner")
	cmd.Flags().Lookup("inner-password").Changed = false
	cmd.Flags().Lookup("inner-password").DefValue = "plex-inner"
	cmd.Flags().Lookup("inner-password").Usage = "password of the inner push protocol and the API's operator routes"
	return cmd
}

// printBanner says where each part listens and how to try it.
func printBanner(w io.Writer, natsURL string, nf natsFlags, srv *edge.Server, apiAddr, verifier, password string) {
	edgeAddr := srv.Advertise()
	dialEdge := edgeAddr
	apiURL := "http://" + hostPort(apiAddr)
	data := ""
	if nf.jetstream {
		data = "  (JetStream data in " + nf.dataDir + ")"
	}
	natsFlag, apiFlag := "", ""
	if natsURL != "nats://127.0.0.1:4222" {
		natsFlag = " --nats " + natsURL
	}
	if apiURL != "http://127.0.0.1:9579" {
		apiFlag = " --host-url " + apiURL + "/plex/v1/host"
	}
	clientLine := "plex client --uid 42" + apiFlag
	if apiFlag == "" && dialEdge != "127.0.0.1:9578" {
		clientLine = "plex client --uid 42 --addr " + dialEdge
	}
	if verifier != "dev" {
		clientLine = "plex client --token <a token your verifier accepts>" + apiFlag
	}
	fmt.Fprintf(w, `Plex dev: NATS, auth (%s verifier), an edge and the API in one process.

  nats   %s%s
  edge   %s   devices connect here (edge id %s)
  api    %s   bearer password: %s

Try it from three more terminals:
  %s
  plex push 42 'hello from plex'%s
  plex presence%s

Ctrl-C stops everything.
`, verifier, natsURL, data, edgeAddr, srv.ID(), apiURL, password, clientLine, natsFlag, natsFlag)
}

// hostPort turns a listen address into one to dial on this box.
func hostPort(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	p, _ := strconv.Atoi(port)
	return net.JoinHostPort(host, strconv.Itoa(p))
}
