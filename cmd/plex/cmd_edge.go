package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/plexbus/plex/edge"
)

func newEdgeCmd(g *globals) *cobra.Command {
	var (
		ef  edgeFlags
		bf  busFlags
		ops opsFlags
		pf  procsFlag
	)
	cmd := &cobra.Command{
		Use:   "edge",
		Short: "Run an edge: the TCP server devices connect to",
		Long: `Run an edge attached to NATS. Devices connect to it over TCP, log in
through the auth service on the bus, and receive what is published on
plex.user.<uid>. SIGINT or SIGTERM drains it: devices get /reconnect, their
offline presence is published, and it exits 0.`,
		Example: `  plex edge --nats nats://127.0.0.1:4222 --port 9578 --metrics-addr :9580
  PLEX_NATS=nats://n1:4222,nats://n2:4222 plex edge --advertise push1.example.com:9578`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			cfg, err := ef.config(log)
			if err != nil {
				return err
			}
			reg := newRegistry()
			cfg.Registerer = reg
			if cfg.ID == "" {
				cfg.ID = edge.NewID() // known now, so the bus connection carries it
			}
			nc, err := bf.connect("plex-edge "+cfg.ID, log)
			if err != nil {
				return err
			}
			defer nc.Close()
			srv, err := edge.New(cfg, nc)
			if err != nil {
				return err
			}
			stopOps, err := ops.start(reg, log, cmd.OutOrStdout())
			if err != nil {
				srv.Close()
				return err
			}
			defer stopOps()
			stopProcs := pf.start(cmd.Context(), log)
			defer stopProcs()
			fmt.Fprintf(cmd.OutOrStdout(), "edge %s listening on %s (advertised %s)\n", srv.ID(), srv.Addr(), srv.Advertise())
			err = srv.Run(cmd.Context())
			_ = nc.Drain()
			return err
		},
	}
	ef.register(cmd.Flags())
	bf.register(cmd.Flags(), "nats://127.0.0.1:4222")
	ops.register(cmd.Flags())
	pf.register(cmd)
	return cmd
}
