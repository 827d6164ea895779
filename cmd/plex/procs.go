package main

import (
	"context"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"sync"

	"github.com/spf13/cobra"

	"github.com/plexbus/plex/procs"
)

// procsFlag is --gomaxprocs: how many Ps a server process uses.
type procsFlag struct {
	value string
	n     int // parsed by validate; 0 = auto
}

// register adds the flag to cmd and checks it before cmd runs.
func (p *procsFlag) register(cmd *cobra.Command) {
	cmd.PreRunE = func(*cobra.Command, []string) error { return p.validate() }
	cmd.Flags().StringVar(&p.value, "gomaxprocs", "auto", "Go runtime Ps: auto = 1 while the load fits in one core, doubled up to the CPU count as it grows; a number fixes it (a GOMAXPROCS variable, if set, wins)")
}

// validate parses the value, before anything starts (cmd's PreRunE).
func (p *procsFlag) validate() error {
	if p.value == "auto" {
		p.n = 0
		return nil
	}
	n, err := strconv.Atoi(p.value)
	if err != nil || n < 1 {
		return usageErr("--gomaxprocs must be auto or a number of at least 1, not %q", p.value)
	}
	p.n = n
	return nil
}

// start applies the validated flag once the process's parts exist (the edge
// sizes its pollers and dispatchers by the CPU count when it is built).
// stop ends the adjusting goroutine.
func (p *procsFlag) start(ctx context.Context, log *slog.Logger) (stop func()) {
	switch {
	case os.Getenv("GOMAXPROCS") != "":
		return func() {}
	case p.n > 0:
		runtime.GOMAXPROCS(p.n)
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { procs.Run(ctx, procs.Config{Logger: log}) })
	return func() { cancel(); wg.Wait() }
}
