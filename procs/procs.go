package procs

import (
	"context"
	"log/slog"
	"runtime"
	"time"
)

// Config tunes Run. The zero value is ready to use.
type Config struct {
	// Max is the most Ps to use. Zero = GOMAXPROCS when Run starts (the
	// CPU count, or the container's CPU limit).
	Max int
	// Min is the fewest Ps, and where Run starts. Zero = 1.
	Min int
	// Interval between load checks. Zero = 1 s.
	Interval time.Duration
	// Raise is the share of the current Ps the process must keep busy over
	// an interval before they are doubled. Zero = 0.9: one P is doubled only
	// once it is nearly full, because on a box shared with other processes
	// (NATS, other edges) a second P mostly adds thread hand-offs.
	Raise float64
	// Lower is the share of half the current Ps below which the load must
	// stay for LowerAfter intervals before the Ps are halved. Zero = 0.5:
	// at 2 Ps, under half a core for LowerAfter seconds.
	Lower float64
	// LowerAfter intervals. Zero = 5.
	LowerAfter int
	// Logger gets a debug line on every change. Nil = discard.
	Logger *slog.Logger

	// set replaces runtime.GOMAXPROCS and cpu the process CPU clock, for tests.
	set func(int) int
	cpu func() (time.Duration, bool)
}

func (c Config) withDefaults() Config {
	if c.set == nil {
		c.set = runtime.GOMAXPROCS
	}
	if c.cpu == nil {
		c.cpu = processCPU
	}
	if c.Max <= 0 {
		c.Max = c.set(0)
	}
	if c.Min <= 0 {
		c.Min = 1
	}
	c.Min = min(c.Min, c.Max)
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if c.Raise <= 0 {
		c.Raise = 0.9
	}
	if c.Lower <= 0 {
		c.Lower = 0.5
	}
	if c.LowerAfter <= 0 {
		c.LowerAfter = 5
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Run sets GOMAXPROCS to Min and adjusts it until ctx ends, then restores
// the value it found. It returns at once, changing nothing, where the
// process CPU clock cannot be read.
func Run(ctx context.Context, cfg Config) {
	cfg = cfg.withDefaults()
	if _, ok := cfg.cpu(); !ok || cfg.Min == cfg.Max {
		return
	}
	orig := cfg.set(cfg.Min)
	defer cfg.set(orig)
	a := newAdjuster(cfg)
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	lastCPU, _ := cfg.cpu()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			used, _ := cfg.cpu()
			cores := (used - lastCPU).Seconds() / now.Sub(last).Seconds()
			lastCPU, last = used, now
			if n, changed := a.observe(cores); changed {
				cfg.set(n)
				cfg.Logger.Debug("GOMAXPROCS changed", "procs", n, "cores_used", cores)
			}
		}
	}
}

// adjuster decides the P count from observed load.
type adjuster struct {
	cfg   Config
	procs int
	low   int // consecutive intervals under the lowering threshold
}

func newAdjuster(cfg Config) *adjuster { return &adjuster{cfg: cfg, procs: cfg.Min} }

// observe takes the cores used over the last interval and says what the P
// count should be now.
func (a *adjuster) observe(cores float64) (procs int, changed bool) {
	if cores >= a.cfg.Raise*float64(a.procs) && a.procs < a.cfg.Max {
		a.procs = min(a.cfg.Max, a.procs*2)
		a.low = 0
		return a.procs, true
	}
	half := max(a.cfg.Min, a.procs/2)
	if half < a.procs && cores < a.cfg.Lower*float64(half) {
		a.low++
		if a.low >= a.cfg.LowerAfter {
			a.procs, a.low = half, 0
			return a.procs, true
		}
		return a.procs, false
	}
	a.low = 0
	return a.procs, false
}
