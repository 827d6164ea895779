package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/plexbus/plex/bus"
)

// toolFlags choose how an operator's tool reaches Plex: the bus, or the HTTP API.
type toolFlags struct {
	bus      busFlags
	api      string
	password string
	timeout  time.Duration
}

func (t *toolFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	t.bus.register(fs, "nats://127.0.0.1:4222")
	fs.StringVar(&t.api, "api", "", "use the HTTP API at this base URL (e.g. http://127.0.0.1:9579) instead of the bus")
	fs.StringVar(&t.password, "inner-password", "", "bearer password of the HTTP API (with --api)")
	fs.Var(dur(&t.timeout, 5*time.Second), "timeout", "give up after this long")
}

func newPushCmd(g *globals) *cobra.Command {
	var (
		tf   toolFlags
		uri  string
		seq  int64
		wait bool
		uids string
	)
	cmd := &cobra.Command{
		Use:   "push <uid> <body>  |  push --uids <a,b,…> <body>",
		Short: "Push a message to a user's connections",
		Long: `Publish a push on plex.user.<uid> (or POST it to the HTTP API with --api).
A body of "-" is read from standard input. With --wait, wait for the edges'
replies and print how many connections took it; exit 3 if none did.`,
		Example: `  plex push 42 'hello'
  plex push 42 '{"type":"sync"}' --uri /notify --wait
  echo 'config changed' | plex push --uids 1,2,3 - --api http://127.0.0.1:9579 --inner-password "$PW"`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			targets, body, err := pushArgs(uids, args, cmd.InOrStdin())
			if err != nil {
				return err
			}
			for _, u := range targets {
				if err := bus.ValidUID(u); err != nil {
					return usageErr("uid %q: %v", u, err)
				}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), tf.timeout)
			defer cancel()
			var delivered int
			if tf.api != "" {
				delivered, err = apiPush(ctx, tf, targets, uri, seq, body, wait)
			} else {
				delivered, err = busPush(ctx, g, cmd, tf, targets, uri, seq, body, wait)
			}
			if err != nil {
				return err
			}
			if !wait {
				fmt.Fprintf(cmd.OutOrStdout(), "pushed to %s\n", strings.Join(targets, ","))
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "delivered to %d connection(s)\n", delivered)
			if delivered == 0 {
				return errNegative
			}
			return nil
		},
	}
	tf.register(cmd)
	cmd.Flags().StringVar(&uri, "uri", "", "uri of the pushed frame (default /push)")
	cmd.Flags().Int64Var(&seq, "seq", 0, "seq of the pushed frame (default: assigned per connection by the edge)")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for delivery counts; exit 3 if no connection took it")
	cmd.Flags().StringVar(&uids, "uids", "", "push to several users, comma-separated (then the only argument is the body)")
	return cmd
}

func pushArgs(uids string, args []string, stdin io.Reader) ([]string, []byte, error) {
	var targets []string
	var body string
	switch {
	case uids != "" && len(args) == 1:
		for _, u := range strings.Split(uids, ",") {
			if u = strings.TrimSpace(u); u != "" {
				targets = append(targets, u)
			}
		}
		body = args[0]
	case uids == "" && len(args) == 2:
		targets, body = []string{args[0]}, args[1]
	default:
		return nil, nil, usageErr("want <uid> <body>, or --uids a,b <body>")
	}
	if len(targets) == 0 {
		return nil, nil, usageErr("no uid given")
	}
	if body == "-" {
		b, err := io.ReadAll(io.LimitReader(stdin, 1<<20+1))
		if err != nil {
			return nil, nil, fmt.Errorf("read body from stdin: %w", err)
		}
		if len(b) > 1<<20 {
			return nil, nil, usageErr("body from stdin is over 1 MiB")
		}
		return targets, []byte(strings.TrimRight(string(b), "\n")), nil
	}
	return targets, []byte(body), nil
}

func busPush(ctx context.Context, g *globals, cmd *cobra.Command, tf toolFlags, uids []string, uri string, seq int64, body []byte, wait bool) (int, error) {
	log, err := g.logger(cmd.ErrOrStderr())
	if err != nil {
		return 0, err
	}
	nc, err := tf.bus.connect("plex-push", log)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	total := 0
	for _, u := range uids {
		p := bus.Push{UID: u, URI: uri, Seq: seq, Body: body}
		if !wait {
			if err := bus.Publish(nc, p); err != nil {
				return 0, err
			}
			continue
		}
		n, err := bus.PublishWait(ctx, nc, p, 0)
		if err != nil {
			return 0, err
		}
		total += n
	}
	if err := nc.FlushWithContext(ctx); err != nil {
		return 0, fmt.Errorf("flush to NATS: %w", err)
	}
	return total, nil
}
