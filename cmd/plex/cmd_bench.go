package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/plexbus/plex/authsvc"
	"github.com/plexbus/plex/bench"
	"github.com/plexbus/plex/wire"
)

// deviceFlags say how benchmark devices connect and log in.
type deviceFlags struct {
	addr        string
	prefix      string
	template    string
	jwtSecret   string
	jwtFile     string
	ports       bool
	concurrency int
	byteOrder   string
	timeout     time.Duration
	procs       int
	child       bool
	offset      int
}

func (d *deviceFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&d.addr, "addr", "127.0.0.1:9578", "edge address; a comma-separated list spreads the devices over several edges")
	fs.StringVar(&d.prefix, "uid-prefix", "bench-", "uids are this prefix and a number")
	fs.StringVar(&d.template, "token-template", "", "auth data with {uid} replaced (default: the uid, for the dev verifier)")
	fs.StringVar(&d.jwtSecret, "jwt-secret", "", "log in with HS256 JWTs signed with this secret (sub = uid)")
	fs.StringVar(&d.jwtFile, "jwt-secret-file", "", "file holding the HS256 secret")
	fs.BoolVar(&d.ports, "explicit-ports", true, "bind each connection to its own source address and port (64 addresses 127.0.0.x, ports from 10000): fast connects, more than one address's ports, and load spread like real users; false = let the kernel choose")
	fs.IntVar(&d.concurrency, "concurrency", 256, "logins in flight per process")
	fs.StringVar(&d.byteOrder, "byte-order", "big", "length prefix byte order")
	fs.Var(dur(&d.timeout, 10*time.Second), "login-timeout", "bound on one dial and login")
	fs.IntVar(&d.procs, "procs", 1, "run in this many child processes and merge their results (one process holds at most ~19,000 sockets)")
	fs.BoolVar(&d.child, "child", false, "internal: run as a child of a --procs run")
	fs.IntVar(&d.offset, "offset", 0, "internal: index of the first device")
	_ = fs.MarkHidden("child")
	_ = fs.MarkHidden("offset")
}

func (d *deviceFlags) pool(n int) (bench.PoolConfig, error) {
	order, err := wire.ParseOrder(d.byteOrder)
	if err != nil {
		return bench.PoolConfig{}, usageErr("--byte-order: %v", err)
	}
	tok := bench.Tokens{Prefix: d.prefix, Template: d.template}
	switch {
	case d.jwtSecret != "":
		tok.JWTSecret = []byte(d.jwtSecret)
	case d.jwtFile != "":
		s, err := authsvc.LoadSecretFile(d.jwtFile)
		if err != nil {
			return bench.PoolConfig{}, err
		}
		tok.JWTSecret = s
	}
	return bench.PoolConfig{
		Dialer:      bench.Dialer{Addr: d.addr, ExplicitPorts: d.ports, Timeout: d.timeout, Order: order},
		Tokens:      tok,
		Offset:      d.offset,
		N:           n,
		Concurrency: d.concurrency,
	}, nil
}

// childArgs re-creates this command line for child i of procs, with its
// share of n devices.
func childArgs(cmd *cobra.Command, n, procs, i int, extra map[string]string) []string {
	args := strings.Fields(cmd.CommandPath())[1:]
	skip := map[string]bool{"procs": true, "child": true, "offset": true, "n": true, "help": true}
	for k := range extra {
		skip[k] = true
	}
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if !skip[f.Name] {
			args = append(args, "--"+f.Name+"="+f.Value.String())
		}
	})
	args = append(args, "--child", "--procs=1", "-n", strconv.Itoa(shareOf(n, procs, i)), "--offset", strconv.Itoa(offsetOf(n, procs, i)))
	for k, v := range extra {
		args = append(args, "--"+k+"="+v)
	}
	return args
}

func shareOf(n, procs, i int) int { return n/procs + b2i(i < n%procs) }
func offsetOf(n, procs, i int) int {
	off := 0
	for k := 0; k < i; k++ {
		off += shareOf(n, procs, k)
	}
	return off
}
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func startChildren(cmd *cobra.Command, n, procs int, extra func(i int) map[string]string) ([]*bench.Child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var kids []*bench.Child
	for i := 0; i < procs; i++ {
		c := exec.Command(exe, childArgs(cmd, n, procs, i, extra(i))...)
		c.Stderr = os.Stderr
		kid, err := bench.StartChild(c)
		if err != nil {
			for _, k := range kids {
				k.Kill()
			}
			return nil, err
		}
		kids = append(kids, kid)
	}
	return kids, nil
}

// progressLine prints a live line on stderr every half second until stop.
func progressLine(w io.Writer, line func() string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				fmt.Fprintf(w, "\r\033[K%s", line())
			case <-done:
				fmt.Fprintf(w, "\r\033[K%s\n", line())
				return
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// printResult writes the figures for people, then the JSON object as the
// last line of stdout.
func printResult(w io.Writer, human string, v any) {
	if human != "" {
		fmt.Fprintln(w, human)
	}
	data, _ := json.Marshal(v)
	fmt.Fprintln(w, string(data))
}

func newBenchCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure a running Plex: connections held, login rate, push throughput and latency",
		Long: `Load tools to size a deployment, like nats bench. They measure a Plex that
is already running (start one with plex dev, or the parts separately). A
live progress line goes to stderr; the last line of stdout is one JSON
object with every figure. --procs P spreads the load over P processes,
since one process may hold at most about 19,000 sockets here.`,
		Example: `  plex bench conns --addr 127.0.0.1:9578 -n 15000 --edge-pid $(pgrep -f 'plex edge')
  plex bench auth -n 15000 --jwt-secret-file ./jwt.key
  plex bench push -n 1000 --rate max --duration 10s --inflight 5
  plex bench push -n 1000 --rate 10000 --cpu-pids $EDGE_PID,$NATS_PID`,
	}
	var profile string
	cmd.PersistentFlags().StringVar(&profile, "cpuprofile", "", "write the load generator's own CPU profile here")
	cmd.PersistentPreRunE = func(c *cobra.Command, args []string) error {
		if err := applyEnv(c); err != nil {
			return err
		}
		if profile == "" {
			return nil
		}
		f, err := os.Create(profile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return err
		}
		cobra.OnFinalize(func() { pprof.StopCPUProfile(); f.Close() })
		return nil
	}
	cmd.AddCommand(newBenchConnsCmd(g, false), newBenchConnsCmd(g, true), newBenchPushCmd(g))
	return cmd
}

func newBenchConnsCmd(g *globals, authOnly bool) *cobra.Command {
	var (
		df         deviceFlags
		n, steps   int
		settle     time.Duration
		hold, hb   time.Duration
		edgePID    int
		metricsURL string
	)
	use, short := "conns", "Open, log in and hold N connections; report login rate and the edge's RSS per connection"
	example := `  plex bench conns -n 15000 --edge-pid 12345 --hold 30s --heartbeat 10s
  plex bench conns -n 60000 --procs 4 --metrics-url http://127.0.0.1:9580/metrics`
	if authOnly {
		use, short = "auth", "Measure connect + login rate with the running verifier"
		example = `  plex bench auth -n 15000                                  # dev verifier: auth data = uid
  plex bench auth -n 15000 --jwt-secret-file ./jwt.key      # HS256 JWTs, sub = uid`
	}
	c := &cobra.Command{
		Use:     use,
		Short:   short,
		Example: example,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if n <= 0 {
				return usageErr("-n must be positive")
			}
			pc, err := df.pool(n)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if df.child {
				pool := bench.NewPool(pc)
				return bench.ServeWorker(ctx, bench.LocalWorker{Pool: pool}, os.Stdin, cmd.OutOrStdout())
			}
			cfg := bench.ConnsConfig{N: n, Steps: steps, Settle: settle, Hold: hold, Heartbeat: hb}
			switch {
			case edgePID > 0:
				cfg.RSS = bench.ProcStats{PID: edgePID}.RSS
			case metricsURL != "":
				cfg.RSS = func() (int64, error) { return bench.MetricsRSS(ctx, metricsURL) }
			}
			if authOnly {
				cfg.Steps, cfg.RSS, cfg.Hold = 1, nil, 0
			}
			var workers []bench.Worker
			if df.procs > 1 {
				kids, err := startChildren(cmd, n, df.procs, func(int) map[string]string { return nil })
				if err != nil {
					return err
				}
				defer func() {
					for _, k := range kids {
						k.Kill()
					}
				}()
				for _, k := range kids {
					workers = append(workers, k)
				}
			} else {
				workers = []bench.Worker{bench.LocalWorker{Pool: bench.NewPool(pc)}}
			}
			start := time.Now()
			stop := progressLine(cmd.ErrOrStderr(), func() string {
				var c, f int64
				for _, w := range workers {
					cc, ff := w.Progress()
					c, f = c+cc, f+ff
				}
				return fmt.Sprintf("[%s] %d/%d logged in, %d failed, %.0f/s overall", use, c, n, f, float64(c)/time.Since(start).Seconds())
			})
			res, err := bench.RunConns(ctx, cfg, workers)
			stop()
			if err != nil {
				return err
			}
			human := fmt.Sprintf("%d/%d logged in (%d failed) at %.0f logins/s; login p50 %.2f ms p99 %.2f ms",
				res.Connected, n, res.Failed, res.ConnectRate, res.Login.P50, res.Login.P99)
			if res.RSSPerConn > 0 {
				human += fmt.Sprintf("; edge RSS %.0f bytes (%.2f KiB) per connection", res.RSSPerConn, res.RSSPerConn/1024)
			}
			res.Login.Hist = ""
			printResult(cmd.OutOrStdout(), human, res)
			if res.Failed > 0 {
				return fmt.Errorf("%d logins failed, e.g. %v", res.Failed, res.Errors)
			}
			return nil
		},
	}
	fs := c.Flags()
	df.register(fs)
	fs.IntVarP(&n, "n", "n", 1000, "connections")
	if !authOnly {
		fs.IntVar(&steps, "steps", 0, "connect in this many steps, reading the edge's RSS after each (default 5 with --edge-pid/--metrics-url, else 1)")
		fs.Var(dur(&settle, 2*time.Second), "settle", "wait before reading RSS after a step")
		fs.Var(dur(&hold, 0), "hold", "hold the connections this long after the last step")
		fs.Var(dur(&hb, 0), "heartbeat", "heartbeat interval while holding (0 = none)")
		fs.IntVar(&edgePID, "edge-pid", 0, "the edge's pid, to read its RSS from /proc (same box)")
		fs.StringVar(&metricsURL, "metrics-url", "", "the edge's /metrics URL, to read process_resident_memory_bytes")
	}
	return c
}

func newBenchPushCmd(g *globals) *cobra.Command {
	var (
		df               deviceFlags
		n, publishers    int
		rate             string
		duration, warmup time.Duration
		inflight, size   int
		via, apiURL, pw  string
		direct, random   bool
		cpuPIDs          string
		nf               busFlags
	)
	c := &cobra.Command{
		Use:   "push",
		Short: "Push to N connected users and report throughput, loss, order and latency",
		Long: `Connect N users as devices (or, with --direct, as plain NATS subscribers:
nats-server's own delivery, the baseline), then push to them from separate
publishers round-robin, at most --inflight un-received pushes per user.
Bodies carry the send time and a per-user sequence, so the receivers count
loss, duplicates, reordering and misrouting, and record latency in an HDR
histogram.`,
		Example: `  plex bench push -n 1000 --rate max --duration 10s --inflight 5
  plex bench push -n 1000 --rate max --duration 10s --inflight 5 --direct   # the same load on bare NATS
  plex bench push -n 1000 --rate 10000 --duration 20s --cpu-pids $EDGE_PID,$NATS_PID
  plex bench push -n 200 --rate 2000 --via http --api http://127.0.0.1:9579 --inner-password plex-inner`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if n <= 0 {
				return usageErr("-n must be positive")
			}
			r := 0.0
			if rate != "max" {
				v, err := strconv.ParseFloat(rate, 64)
				if err != nil || v <= 0 {
					return usageErr("--rate %q: want a number of pushes per second, or max", rate)
				}
				r = v
			}
			pc, err := df.pool(n)
			if err != nil {
				return err
			}
			var cpu []bench.ProcStats
			for _, s := range strings.Split(cpuPIDs, ",") {
				if s = strings.TrimSpace(s); s != "" {
					pid, err := strconv.Atoi(s)
					if err != nil {
						return usageErr("--cpu-pids %q: want pids", cpuPIDs)
					}
					cpu = append(cpu, bench.ProcStats{PID: pid})
				}
			}
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			cfg := bench.PushConfig{
				Users: n, Offset: df.offset, Publishers: publishers, Rate: r,
				Duration: duration, Warmup: warmup, InFlight: inflight, BodySize: size,
				Via: via, NATS: nf.config("plex-bench", log), APIURL: apiURL, Password: pw,
				Direct: direct, Pool: pc, Random: random,
			}
			ctx := cmd.Context()
			if df.child {
				return servePushChild(ctx, cfg, os.Stdin, cmd.OutOrStdout())
			}
			var res bench.PushResult
			if df.procs <= 1 {
				cfg.CPU = cpu
				var sent, recv int64
				var mu sync.Mutex
				cfg.Progress = func(s, rv int64) { mu.Lock(); sent, recv = s, rv; mu.Unlock() }
				start := time.Now()
				stop := progressLine(cmd.ErrOrStderr(), func() string {
					mu.Lock()
					defer mu.Unlock()
					return fmt.Sprintf("[push] %s sent %d, received %d", time.Since(start).Round(time.Second), sent, recv)
				})
				res, err = bench.RunPush(ctx, cfg, nil)
				stop()
			} else {
				res, err = pushChildren(ctx, cmd, n, df.procs, r, cpu, warmup, duration)
			}
			if err != nil {
				return err
			}
			res.Latency.Hist, res.Connect.Login.Hist = "", ""
			human := fmt.Sprintf("%s: %d users, %.0f pushes/s delivered; sent %d, lost %d, duplicates %d, reordered %d, misrouted %d; latency p50 %.3f ms p90 %.3f ms p99 %.3f ms p99.9 %.3f ms max %.3f ms",
				res.Mode, res.Users, res.Rate, res.Sent, res.Lost, res.Duplicates, res.Reordered, res.Misrouted,
				res.Latency.P50, res.Latency.P90, res.Latency.P99, res.Latency.P999, res.Latency.Max)
			if res.CPUPerMsg > 0 {
				human += fmt.Sprintf("; servers' CPU %.1f µs per push", res.CPUPerMsg)
			}
			printResult(cmd.OutOrStdout(), human, res)
			return nil
		},
	}
	fs := c.Flags()
	df.register(fs)
	nf.register(fs, "nats://127.0.0.1:4222")
	fs.IntVarP(&n, "n", "n", 1000, "users")
	fs.IntVar(&publishers, "publishers", 4, "publisher connections per process")
	fs.StringVar(&rate, "rate", "max", "pushes per second in all, or max")
	fs.Var(dur(&duration, 10*time.Second), "duration", "measured time")
	fs.Var(dur(&warmup, time.Second), "warmup", "unmeasured time before it")
	fs.IntVar(&inflight, "inflight", 5, "un-received pushes allowed per user")
	fs.IntVar(&size, "body-size", 64, "body size in bytes")
	fs.StringVar(&via, "via", "nats", "publish on the bus (nats) or through the HTTP API (http)")
	fs.StringVar(&apiURL, "api", "http://127.0.0.1:9579", "HTTP API base URL (with --via http)")
	fs.StringVar(&pw, "inner-password", "", "HTTP API bearer password (with --via http)")
	fs.BoolVar(&direct, "direct", false, "users are plain NATS subscribers: measure nats-server alone")
	fs.BoolVar(&random, "random", false, "push to users at random instead of round-robin")
	fs.StringVar(&cpuPIDs, "cpu-pids", "", "server pids (edge, nats) whose CPU time per push to report")
	return c
}

// servePushChild runs a share of a push benchmark for the parent: it
// answers "start" with "ready" once its users are connected, then "go"
// with "result <json>".
func servePushChild(ctx context.Context, cfg bench.PushConfig, in io.Reader, out io.Writer) error {
	sc := bufio.NewScanner(in)
	expect := func(word string) error {
		if !sc.Scan() {
			return fmt.Errorf("parent went away before %q", word)
		}
		if sc.Text() != word {
			return fmt.Errorf("want %q from the parent, got %q", word, sc.Text())
		}
		return nil
	}
	var mu sync.Mutex
	cfg.Progress = func(s, r int64) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, "progress %d %d\n", s, r)
	}
	res, err := bench.RunPush(ctx, cfg, func(ctx context.Context) error {
		if err := expect("start"); err != nil {
			return err
		}
		mu.Lock()
		fmt.Fprintln(out, "ready")
		mu.Unlock()
		return expect("go")
	})
	mu.Lock()
	defer mu.Unlock()
	if err != nil {
		fmt.Fprintf(out, "error %s\n", oneLine(err.Error()))
		return err
	}
	data, _ := json.Marshal(res)
	fmt.Fprintf(out, "result %s\n", data)
	return nil
}

func pushChildren(ctx context.Context, cmd *cobra.Command, n, procs int, rate float64, cpu []bench.ProcStats, warmup, duration time.Duration) (bench.PushResult, error) {
	kids, err := startChildren(cmd, n, procs, func(i int) map[string]string {
		if rate == 0 {
			return nil
		}
		return map[string]string{"rate": strconv.FormatFloat(rate*float64(shareOf(n, procs, i))/float64(n), 'f', -1, 64)}
	})
	if err != nil {
		return bench.PushResult{}, err
	}
	defer func() {
		for _, k := range kids {
			k.Kill()
		}
	}()
	if err := bench.Each(kids, func(_ int, k *bench.Child) error { return k.Ready(ctx) }); err != nil {
		return bench.PushResult{}, err
	}
	start := time.Now()
	stop := progressLine(cmd.ErrOrStderr(), func() string {
		var s, r int64
		for _, k := range kids {
			a, b := k.Progress()
			s, r = s+a, r+b
		}
		return fmt.Sprintf("[push ×%d] %s sent %d, received %d", procs, time.Since(start).Round(time.Second), s, r)
	})
	cpuRead := func() time.Duration {
		var t time.Duration
		for _, p := range cpu {
			if d, err := p.CPU(); err == nil {
				t += d
			}
		}
		return t
	}
	var cpu0, cpu1 time.Duration
	cpuDone := make(chan struct{})
	go func() {
		defer close(cpuDone)
		time.Sleep(warmup)
		cpu0 = cpuRead()
		time.Sleep(duration)
		cpu1 = cpuRead()
	}()
	parts := make([]bench.PushResult, len(kids))
	err = bench.Each(kids, func(i int, k *bench.Child) error {
		r, err := k.Go(ctx)
		parts[i] = r
		return err
	})
	stop()
	<-cpuDone
	if err != nil {
		return bench.PushResult{}, err
	}
	res := bench.MergePush(parts)
	if len(cpu) > 0 && res.InWindow > 0 {
		res.CPUSeconds = (cpu1 - cpu0).Seconds()
		res.CPUPerMsg = float64((cpu1 - cpu0).Microseconds()) / float64(res.InWindow)
	}
	return res, nil
}
