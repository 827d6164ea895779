package main

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/spf13/cobra"

	"github.com/plexbus/plex/bus"
)

func newPresenceCmd(g *globals) *cobra.Command {
	var (
		bf      busFlags
		uid     string
		jsonOut bool
	)
	cmd := &cobra.Command{
		Use:   "presence",
		Short: "Stream presence events: every connect and disconnect",
		Long: `Print each event published on plex.presence until interrupted. Events
marked resync re-announce connections after an edge reconnected to NATS.`,
		Example: `  plex presence
  plex presence --uid 42 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			nc, err := bf.connect("plex-presence", log)
			if err != nil {
				return err
			}
			defer nc.Close()
			out := cmd.OutOrStdout()
			var mu sync.Mutex
			sub, err := bus.SubscribePresence(nc, func(p bus.Presence) {
				if uid != "" && p.UID != uid {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if jsonOut {
					data, _ := json.Marshal(p)
					fmt.Fprintln(out, string(data))
					return
				}
				state := "offline"
				if p.Online {
					state = "online "
				}
				line := fmt.Sprintf("%s %s %s edge=%s conn=%s remote=%s", p.At.Format("15:04:05.000"), state, p.UID, p.Edge, p.Conn, p.Remote)
				if p.Reason != "" {
					line += " reason=" + p.Reason
				}
				if p.Resync {
					line += " (resync)"
				}
				fmt.Fprintln(out, line)
			})
			if err != nil {
				return err
			}
			if err := nc.Flush(); err != nil {
				return fmt.Errorf("subscribe presence: %w", err)
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "watching plex.presence; Ctrl-C to stop")
			<-cmd.Context().Done()
			_ = sub.Unsubscribe()
			return nil
		},
	}
	bf.register(cmd.Flags(), "nats://127.0.0.1:4222")
	cmd.Flags().StringVar(&uid, "uid", "", "only this user's events")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print events as JSON lines")
	return cmd
}
