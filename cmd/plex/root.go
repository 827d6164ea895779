package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit codes, documented in the root help.
const (
	exitOK       = 0
	exitError    = 1 // something failed: unreachable server, refused login, …
	exitUsage    = 2 // bad flags or arguments
	exitNegative = 3 // a clean "no": the user is offline, a push reached nobody
)

// exitErr carries an exit code through cobra.
type exitErr struct {
	code int
	err  error
}

func (e *exitErr) Error() string { return e.err.Error() }
func (e *exitErr) Unwrap() error { return e.err }

func usageErr(format string, a ...any) error {
	return &exitErr{code: exitUsage, err: fmt.Errorf(format, a...)}
}

// negative is a clean "no" answer: exit 3 with nothing on stderr.
var errNegative = &exitErr{code: exitNegative, err: errors.New("negative answer")}

func exitCode(err error) int {
	var ee *exitErr
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitError
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// globals are the flags every command has.
type globals struct {
	logLevel  string
	logFormat string
}

func (g *globals) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, usageErr("--log-level %q: want debug, info, warn or error", g.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch g.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageErr("--log-format %q: want text or json", g.logFormat)
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "plex",
		Short: "Plex, a push gateway on NATS",
		Long: `Plex holds one long-lived TCP connection per device and delivers short
commands that business services push to a user id, on whichever edge holds
that user's socket. The parts meet on NATS.

Every flag can also be set with an environment variable: PLEX_ and the flag
name in upper case with dashes as underscores (--auth-timeout is
PLEX_AUTH_TIMEOUT). A flag on the command line wins. Durations take Go
syntax (90s, 2m) or plain seconds (90).

Exit codes: 0 success; 1 failure; 2 bad flags or arguments; 3 a clean
negative answer (plex online: the user is offline; plex push --wait: it
reached no connection).`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return applyEnv(cmd)
		},
	}
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &exitErr{code: exitUsage, err: err} })
	root.AddCommand(
		newDevCmd(g), newEdgeCmd(g), newAuthCmd(g), newAPICmd(g), newNATSCmd(g),
		newClientCmd(g), newPushCmd(g), newOnlineCmd(g), newPresenceCmd(g), newBenchCmd(g),
	)
	for _, c := range root.Commands() {
		c.Args = wrapArgs(c.Args)
	}
	annotateEnv(root)
	return root
}

// wrapArgs makes argument-count errors usage errors (exit 2).
func wrapArgs(v cobra.PositionalArgs) cobra.PositionalArgs {
	if v == nil {
		return nil
	}
	return func(cmd *cobra.Command, args []string) error {
		if err := v(cmd, args); err != nil {
			return &exitErr{code: exitUsage, err: err}
		}
		return nil
	}
}

// envName is the environment variable of a flag.
func envName(flag string) string {
	return "PLEX_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// annotateEnv appends each flag's variable to its help text.
func annotateEnv(c *cobra.Command) {
	seen := map[*pflag.Flag]bool{}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		for _, fs := range []*pflag.FlagSet{c.LocalNonPersistentFlags(), c.PersistentFlags()} {
			fs.VisitAll(func(f *pflag.Flag) {
				if seen[f] || f.Name == "help" || f.Name == "version" {
					return
				}
				seen[f] = true
				f.Usage += " [$" + envName(f.Name) + "]"
			})
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(c)
}

// applyEnv sets every flag not given on the command line from its variable.
func applyEnv(cmd *cobra.Command) error {
	var err error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed || f.Name == "help" || f.Name == "version" {
			return
		}
		v, ok := os.LookupEnv(envName(f.Name))
		if !ok {
			return
		}
		if e := cmd.Flags().Set(f.Name, v); e != nil {
			err = usageErr("$%s: %v", envName(f.Name), e)
		}
	})
	return err
}
