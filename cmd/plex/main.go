// Command plex is the Plex push gateway: one binary whose subcommands run
// everything in one process (dev), or the parts as separate processes
// (nats, edge, auth, api), plus the operator's and tester's tools (client,
// push, online, presence, bench).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string) int {
	root := newRoot()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	code := exitCode(err)
	if code != exitNegative {
		fmt.Fprintln(os.Stderr, "plex: "+oneLine(err.Error()))
	}
	return code
}
