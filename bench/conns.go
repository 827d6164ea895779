package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Worker holds a share of the devices, in this process or in a child
// process (see Child), so one benchmark can exceed a process's file limit.
type Worker interface {
	// Connect logs in count more devices and returns when they are done.
	Connect(ctx context.Context, count int) error
	// Progress reports devices connected and failed so far.
	Progress() (connected, failed int64)
	// Hold starts heartbeats every interval (0 = none) while holding.
	Hold(ctx context.Context, interval time.Duration) error
	// Finish hangs up and reports.
	Finish(ctx context.Context) (ConnsPart, error)
}

// LocalWorker is a Worker in this process.
type LocalWorker struct{ Pool *Pool }

func (w LocalWorker) Connect(ctx context.Context, n int) error {
	w.Pool.Connect(ctx, n)
	return ctx.Err()
}
func (w LocalWorker) Progress() (int64, int64) { return w.Pool.Connected(), w.Pool.Failed() }
func (w LocalWorker) Hold(_ context.Context, iv time.Duration) error {
	w.Pool.Heartbeats(iv)
	return nil
}
func (w LocalWorker) Finish(context.Context) (ConnsPart, error) {
	s := w.Pool.Summary()
	w.Pool.Close()
	return s, nil
}

// ConnsConfig is a connection benchmark: N devices logged in over Steps
// steps, the edge's RSS read after each (when RSS is set), then held for
// Hold with heartbeats every Heartbeat.
type ConnsConfig struct {
	N         int
	Steps     int           // 0 = 1, or 5 when RSS is set
	Settle    time.Duration // wait before reading RSS; 0 = 2 s
	Hold      time.Duration
	Heartbeat time.Duration
	RSS       func() (int64, error)
}

// RSSStep is the edge's RSS with Conns devices held.
type RSSStep struct {
	Conns int64 `json:"conns"`
	RSS   int64 `json:"rss_bytes"`
}

// ConnsResult is the benchmark's figures.
type ConnsResult struct {
	Devices   int `json:"devices"`
	Processes int `json:"processes"`
	ConnsPart
	// ConnectRate is logins per second of wall time spent connecting.
	ConnectRate float64   `json:"connect_rate"`
	RSSSteps    []RSSStep `json:"rss_steps,omitempty"`
	// RSSPerConn is the slope of the edge's RSS over the held devices.
	RSSPerConn float64 `json:"rss_per_conn_bytes,omitempty"`
}

// RunConns drives the workers; devices are split evenly among them.
func RunConns(ctx context.Context, cfg ConnsConfig, workers []Worker) (ConnsResult, error) {
	steps := cfg.Steps
	if steps <= 0 {
		steps = 1
		if cfg.RSS != nil {
			steps = 5
		}
	}
	settle := cfg.Settle
	if settle <= 0 {
		settle = 2 * time.Second
	}
	res := ConnsResult{Devices: cfg.N, Processes: len(workers)}
	var xs, ys []float64
	measure := func() error {
		if cfg.RSS == nil {
			return nil
		}
		select {
		case <-time.After(settle):
		case <-ctx.Done():
			return ctx.Err()
		}
		rss, err := cfg.RSS()
		if err != nil {
			return fmt.Errorf("read the edge's RSS: %w", err)
		}
		var conns int64
		for _, w := range workers {
			c, _ := w.Progress()
			conns += c
		}
		res.RSSSteps = append(res.RSSSteps, RSSStep{Conns: conns, RSS: rss})
		xs, ys = append(xs, float64(conns)), append(ys, float64(rss))
		return nil
	}
	if err := measure(); err != nil {
		return res, err
	}
	var wall time.Duration
	done := 0
	for s := 1; s <= steps; s++ {
		target := cfg.N * s / steps
		start := time.Now()
		if err := Each(workers, func(i int, w Worker) error {
			return w.Connect(ctx, share(target, len(workers), i)-share(done, len(workers), i))
		}); err != nil {
			return res, err
		}
		wall += time.Since(start)
		done = target
		if err := measure(); err != nil {
			return res, err
		}
	}
	if err := Each(workers, func(_ int, w Worker) error { return w.Hold(ctx, cfg.Heartbeat) }); err != nil {
		return res, err
	}
	if cfg.Hold > 0 {
		select {
		case <-time.After(cfg.Hold):
		case <-ctx.Done():
		}
	}
	parts := make([]ConnsPart, len(workers))
	err := Each(workers, func(i int, w Worker) error {
		p, err := w.Finish(context.WithoutCancel(ctx))
		parts[i] = p
		return err
	})
	res.ConnsPart = mergeConns(parts)
	if wall > 0 {
		res.ConnectRate = float64(res.Connected) / wall.Seconds()
	}
	res.ConnectSeconds = wall.Seconds()
	if len(xs) >= 2 {
		res.RSSPerConn = slope(xs, ys)
	}
	return res, err
}

// share is worker i's part of total among n.
func share(total, n, i int) int { return total/n + boolInt(i < total%n) }

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Each runs f on every item at once (workers, child processes) and waits
// for all; it returns their errors joined.
func Each[T any](items []T, f func(int, T) error) error {
	errs := make([]error, len(items))
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(i, it)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func mergeConns(parts []ConnsPart) ConnsPart {
	var out ConnsPart
	var lat []LatencySummary
	for _, p := range parts {
		out.Connected += p.Connected
		out.Failed += p.Failed
		out.Refused += p.Refused
		lat = append(lat, p.Login)
		for _, e := range p.Errors {
			if len(out.Errors) < 5 {
				out.Errors = append(out.Errors, e)
			}
		}
	}
	out.Login = MergeSummaries(lat)
	return out
}
