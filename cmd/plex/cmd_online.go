package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/plexbus/plex/bus"
)

func newOnlineCmd(g *globals) *cobra.Command {
	var (
		tf      toolFlags
		jsonOut bool
	)
	cmd := &cobra.Command{
		Use:   "online <uid>",
		Short: "Tell whether a user is online, and where",
		Long: `Ask every edge for the user's connections (Plex-Op: presence on the bus,
or GET /plex/v1/online/<uid> with --api). Exit 0 when online, 3 when offline.`,
		Example: `  plex online 42
  plex online 42 --json
  plex online 42 --api http://127.0.0.1:9579 --inner-password "$PW"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			uid := args[0]
			if err := bus.ValidUID(uid); err != nil {
				return usageErr("uid %q: %v", uid, err)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), tf.timeout)
			defer cancel()
			var conns []bus.ConnInfo
			var err error
			if tf.api != "" {
				conns, err = apiOnline(ctx, tf, uid)
			} else {
				log, lerr := g.logger(cmd.ErrOrStderr())
				if lerr != nil {
					return lerr
				}
				nc, cerr := tf.bus.connect("plex-online", log)
				if cerr != nil {
					return cerr
				}
				defer nc.Close()
				conns, err = bus.QueryPresence(ctx, nc, uid, 0)
			}
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if jsonOut {
				if conns == nil {
					conns = []bus.ConnInfo{}
				}
				data, _ := json.Marshal(map[string]any{"uid": uid, "online": len(conns) > 0, "conns": conns})
				fmt.Fprintln(out, string(data))
			} else if len(conns) == 0 {
				fmt.Fprintf(out, "%s is offline\n", uid)
			} else {
				fmt.Fprintf(out, "%s is online: %d connection(s)\n", uid, len(conns))
				for _, c := range conns {
					fmt.Fprintf(out, "  %s on edge %s from %s since %s\n", c.ID, c.Edge, c.Remote, c.Since.Format("2006-01-02T15:04:05Z07:00"))
				}
			}
			if len(conns) == 0 {
				return errNegative
			}
			return nil
		},
	}
	tf.register(cmd)
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object")
	return cmd
}
