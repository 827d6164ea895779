package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/plexbus/plex/embeddednats"
)

func newNATSCmd(g *globals) *cobra.Command {
	var (
		nf natsFlags
		pf procsFlag
	)
	cmd := &cobra.Command{
		Use:   "nats",
		Short: "Run a standalone NATS server for the parts to share",
		Long: `Run an embedded nats-server as its own process, so edges, auth services
and APIs in other processes (or on other machines) can attach to it with
--nats. With --cluster-name and --routes it joins a NATS cluster.`,
		Example: `  # one node on the default port
  plex nats --nats-bind 0.0.0.0

  # a three-node cluster on one box
  plex nats --nats-port 4222 --cluster-name plex --cluster-listen 127.0.0.1:6222 --server-name n1
  plex nats --nats-port 4223 --cluster-name plex --cluster-listen 127.0.0.1:6223 --server-name n2 --routes nats-route://127.0.0.1:6222
  plex nats --nats-port 4224 --cluster-name plex --cluster-listen 127.0.0.1:6224 --server-name n3 --routes nats-route://127.0.0.1:6222`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := nf.validate(); err != nil {
				return err
			}
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			ns, err := embeddednats.Start(nf.config(quietNATS(g, log)))
			if err != nil {
				return err
			}
			defer ns.Shutdown()
			stopProcs := pf.start(cmd.Context(), log)
			defer stopProcs()
			fmt.Fprintf(cmd.OutOrStdout(), "nats listening on %s\n", ns.ClientURL())
			if u := ns.ClusterURL(); u != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "cluster routes on %s\n", u)
			}
			<-cmd.Context().Done()
			return nil
		},
	}
	nf.register(cmd.Flags(), false)
	pf.register(cmd)
	return cmd
}
