package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/plexbus/plex/bus"
	"github.com/plexbus/plex/wire"
)

// PushConfig is a push benchmark over Users users [Offset, Offset+Users).
type PushConfig struct {
	Users, Offset int
	// Publishers publish round-robin over their share of the users, each on
	// its own connection; a user always has the same publisher, so its
	// pushes are ordered. Zero = 4.
	Publishers int
	// Rate is this process's total pushes per second; 0 = as fast as
	// InFlight allows.
	Rate float64
	// Duration of the measured window, after Warmup (not measured).
	Duration, Warmup time.Duration
	// InFlight bounds the pushes sent but not yet received, per user. Zero = 5.
	InFlight int
	// Random picks each push's user at random among a publisher's users
	// instead of round-robin.
	Random bool
	// BodySize pads bodies to this many bytes. Zero = 64.
	BodySize int
	// Via "nats" (default) publishes on plex.user.<uid>; "http" POSTs to
	// APIURL's /plex/v1/push with Password.
	Via              string
	NATS             bus.ConnConfig
	APIURL, Password string
	// Direct makes each user a plain NATS subscriber instead of a device on
	// an edge: nats-server's own delivery, the baseline to compare with.
	Direct bool
	// Pool configures the devices (edge mode): Dialer, Tokens, Concurrency.
	Pool PoolConfig
	// CPU lists server processes whose CPU time per delivered push is measured.
	CPU []ProcStats
	// Progress, if set, is called every half second with pushes sent and
	// received so far.
	Progress func(sent, received int64)
}

// PushResult is the benchmark's figures.
type PushResult struct {
	Mode      string  `json:"mode"` // edge or direct
	Via       string  `json:"via"`
	Users     int     `json:"users"`
	Processes int     `json:"processes"`
	Seconds   float64 `json:"seconds"`
	// Sent and Delivered count the whole run; Rate is deliveries per second
	// within the measured window.
	Sent       int64          `json:"sent"`
	Delivered  int64          `json:"delivered"`
	InWindow   int64          `json:"delivered_in_window"`
	Rate       float64        `json:"delivered_per_sec"`
	Lost       int64          `json:"lost"`
	Duplicates int64          `json:"duplicates"`
	Reordered  int64          `json:"reordered"`
	Misrouted  int64          `json:"misrouted"`
	Latency    LatencySummary `json:"latency"`
	// CPUPerMsg is the measured servers' CPU time per delivered push, µs.
	CPUPerMsg  float64   `json:"cpu_us_per_msg,omitempty"`
	CPUSeconds float64   `json:"cpu_seconds,omitempty"`
	Connect    ConnsPart `json:"connect"`
}

// userState is one user's counters: sent by its publisher, the rest by its
// receiver (one goroutine per device or subscription).
type userState struct {
	sent atomic.Int64
	recv atomic.Int64 // unique receipts

	last      int64  // highest seq received
	window    uint64 // bit k: seq last-k received
	dups      int64
	reorders  int64
	misroutes int64
	inWindow  int64
	_         [16]byte
}

type pushRun struct {
	cfg       PushConfig
	users     []userState
	lat       *Latency
	measureAt atomic.Int64 // unix nanos: start of the window
	endAt     atomic.Int64 // unix nanos: end of publishing
}

// RunPush connects the receivers, calls gate (a multi-process run waits
// there for the parent's go; nil = start at once), then pushes for
// Warmup+Duration and drains.
func RunPush(ctx context.Context, cfg PushConfig, gate func(context.Context) error) (PushResult, error) {
	if cfg.Publishers <= 0 {
		cfg.Publishers = 4
	}
	if cfg.InFlight <= 0 {
		cfg.InFlight = 5
	}
	if cfg.BodySize <= 0 {
		cfg.BodySize = 64
	}
	if cfg.Via == "" {
		cfg.Via = "nats"
	}
	r := &pushRun{cfg: cfg, users: make([]userState, cfg.Users), lat: NewLatency()}
	r.measureAt.Store(1 << 62)
	r.endAt.Store(1 << 62)
	res := PushResult{Mode: "edge", Via: cfg.Via, Users: cfg.Users, Processes: 1}
	if cfg.Direct {
		res.Mode = "direct"
	}

	stopRecv, connect, err := r.startReceivers(ctx)
	if err != nil {
		return res, err
	}
	defer stopRecv()
	res.Connect = connect
	if connect.Connected < int64(cfg.Users) {
		return res, fmt.Errorf("only %d of %d users connected: %v", connect.Connected, cfg.Users, connect.Errors)
	}
	pubs, closePubs, err := r.publishers()
	if err != nil {
		return res, err
	}
	defer closePubs()
	if gate != nil {
		if err := gate(ctx); err != nil {
			return res, err
		}
	}

	start := time.Now()
	measure := start.Add(cfg.Warmup)
	end := measure.Add(cfg.Duration)
	r.measureAt.Store(measure.UnixNano())
	r.endAt.Store(end.UnixNano())
	pubCtx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	var cpu0 time.Duration
	var cpuOnce sync.Once
	readCPU := func() time.Duration {
		var total time.Duration
		for _, p := range cfg.CPU {
			if d, err := p.CPU(); err == nil {
				total += d
			}
		}
		return total
	}
	go func() { // CPU baseline at the start of the window
		select {
		case <-time.After(time.Until(measure)):
			cpuOnce.Do(func() { cpu0 = readCPU() })
		case <-pubCtx.Done():
		}
	}()
	if cfg.Progress != nil {
		go func() {
			t := time.NewTicker(500 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					var sent, recv int64 // only the atomics: receivers own the rest
					for i := range r.users {
						sent += r.users[i].sent.Load()
						recv += r.users[i].recv.Load()
					}
					cfg.Progress(sent, recv)
				case <-pubCtx.Done():
					return
				}
			}
		}()
	}
	var wg sync.WaitGroup
	errs := make([]error, len(pubs))
	for i, pub := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.publish(pubCtx, i, pub, start)
		}()
	}
	wg.Wait()
	cpuOnce.Do(func() { cpu0 = readCPU() })
	cpu1 := readCPU()
	if err := errors.Join(errs...); err != nil && ctx.Err() == nil {
		return res, err
	}
	r.drain(ctx, 5*time.Second)
	stopRecv()

	res.Seconds = cfg.Duration.Seconds()
	agg := r.aggregate()
	res.Sent, res.Delivered, res.InWindow = agg.sent, agg.recv, agg.inWindow
	res.Lost, res.Duplicates, res.Reordered, res.Misrouted = agg.sent-agg.recv, agg.dups, agg.reorders, agg.misroutes
	if res.Seconds > 0 {
		res.Rate = float64(res.InWindow) / res.Seconds
	}
	res.Latency = Summarize(r.lat.Merged())
	if len(cfg.CPU) > 0 && res.InWindow > 0 {
		res.CPUSeconds = (cpu1 - cpu0).Seconds()
		res.CPUPerMsg = float64((cpu1 - cpu0).Microseconds()) / float64(res.InWindow)
	}
	return res, nil
}

type totals struct{ sent, recv, inWindow, dups, reorders, misroutes int64 }

func (r *pushRun) aggregate() totals {
	var t totals
	for i := range r.users {
		u := &r.users[i]
		t.sent += u.sent.Load()
		t.recv += u.recv.Load()
		t.inWindow += u.inWindow
		t.dups += u.dups
		t.reorders += u.reorders
		t.misroutes += u.misroutes
	}
	return t
}

// drain waits until every sent push is received, or timeout.
func (r *pushRun) drain(ctx context.Context, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		pending := false
		for i := range r.users {
			if r.users[i].sent.Load() != r.users[i].recv.Load() {
				pending = true
				break
			}
		}
		if !pending {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// receive handles one delivered body for user index i (relative).
func (r *pushRun) receive(i int, body []byte) {
	now := time.Now().UnixNano()
	idx, seq, sentAt, ok := parseBody(body)
	u := &r.users[i]
	if !ok || idx != r.cfg.Offset+i {
		u.misroutes++
		return
	}
	switch {
	case seq > u.last:
		shift := seq - u.last
		if shift >= 64 {
			u.window = 0
		} else {
			u.window <<= uint(shift)
		}
		u.window |= 1 // a gap before seq arrives later (reordered) or never (lost)
		u.last = seq
	case u.last-seq < 64 && u.window&(1<<uint(u.last-seq)) != 0:
		u.dups++
		return
	default:
		u.reorders++
		if u.last-seq < 64 {
			u.window |= 1 << uint(u.last-seq)
		}
	}
	u.recv.Add(1)
	if sentAt >= r.measureAt.Load() && sentAt < r.endAt.Load() {
		u.inWindow++
		r.lat.Record(i, time.Duration(now-sentAt))
	}
}

func appendBody(dst []byte, idx int, seq, nanos int64, size int) []byte {
	dst = strconv.AppendInt(dst, int64(idx), 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, seq, 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, nanos, 10)
	dst = append(dst, ' ')
	for len(dst) < size {
		dst = append(dst, 'x')
	}
	return dst
}

func parseBody(b []byte) (idx int, seq, nanos int64, ok bool) {
	var f [3]int64
	for k := 0; k < 3; k++ {
		sp := bytes.IndexByte(b, ' ')
		if sp <= 0 {
			return 0, 0, 0, false
		}
		v, err := strconv.ParseInt(string(b[:sp]), 10, 64)
		if err != nil {
			return 0, 0, 0, false
		}
		f[k] = v
		b = b[sp+1:]
	}
	return int(f[0]), f[1], f[2], true
}

// startReceivers connects the users: devices on an edge, or NATS
// subscribers in direct mode.
func (r *pushRun) startReceivers(ctx context.Context) (stop func(), part ConnsPart, err error) {
	cfg := r.cfg
	if !cfg.Direct {
		pc := cfg.Pool
		pc.Offset, pc.N = cfg.Offset, cfg.Users
		pc.OnMessage = func(i int, m *wire.Message) {
			if m.URI == wire.URIPush {
				r.receive(i-cfg.Offset, []byte(m.Body))
			}
		}
		pool := NewPool(pc)
		pool.Connect(ctx, cfg.Users)
		var once sync.Once
		return func() { once.Do(pool.Close) }, pool.Summary(), nil
	}
	conns := make([]*nats.Conn, 0, cfg.Users)
	closeAll := func() {
		for _, nc := range conns {
			nc.Close()
		}
	}
	start := time.Now()
	lat := NewLatency()
	for k := 0; k < cfg.Users; k++ {
		t0 := time.Now()
		nc, err := bus.Connect(cfg.NATS)
		if err != nil {
			closeAll()
			return nil, part, fmt.Errorf("direct subscriber %d: %w", k, err)
		}
		conns = append(conns, nc)
		uid := cfg.Pool.Tokens.UID(cfg.Offset + k)
		i := k
		if _, err := nc.Subscribe(bus.UserPrefix+uid, func(m *nats.Msg) { r.receive(i, m.Data) }); err != nil {
			closeAll()
			return nil, part, err
		}
		if err := nc.Flush(); err != nil {
			closeAll()
			return nil, part, err
		}
		lat.Record(k, time.Since(t0))
	}
	part = ConnsPart{Connected: int64(cfg.Users), ConnectSeconds: time.Since(start).Seconds(), Login: Summarize(lat.Merged())}
	var once sync.Once
	return func() { once.Do(closeAll) }, part, nil
}

// publisher sends one push.
type publisher func(uid string, body []byte) error

func (r *pushRun) publishers() ([]publisher, func(), error) {
	var pubs []publisher
	var closers []func()
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	for i := 0; i < r.cfg.Publishers; i++ {
		switch r.cfg.Via {
		case "nats":
			nc, err := bus.Connect(r.cfg.NATS)
			if err != nil {
				closeAll()
				return nil, nil, err
			}
			closers = append(closers, func() { _ = nc.Drain() })
			pubs = append(pubs, func(uid string, body []byte) error {
				return nc.Publish(bus.UserPrefix+uid, body)
			})
		case "http":
			hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			closers = append(closers, hc.CloseIdleConnections)
			url := r.cfg.APIURL + "/plex/v1/push"
			pubs = append(pubs, func(uid string, body []byte) error {
				data, _ := json.Marshal(map[string]string{"uid": uid, "body": string(body)})
				req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(data))
				if err != nil {
					return err
				}
				req.Header.Set("Authorization", "Bearer "+r.cfg.Password)
				req.Header.Set("Content-Type", "application/json")
				resp, err := hc.Do(req)
				if err != nil {
					return err
				}
				resp.Body.Close()
				if resp.StatusCode >= 300 {
					return fmt.Errorf("push API: %s", resp.Status)
				}
				return nil
			})
		default:
			return nil, nil, fmt.Errorf("via %q: want nats or http", r.cfg.Via)
		}
	}
	return pubs, closeAll, nil
}

// publish is publisher p's loop over its users (index ≡ p mod Publishers).
func (r *pushRun) publish(ctx context.Context, p int, pub publisher, start time.Time) error {
	cfg := r.cfg
	var mine []int
	var uids []string
	for i := p; i < cfg.Users; i += cfg.Publishers {
		mine = append(mine, i)
		uids = append(uids, cfg.Pool.Tokens.UID(cfg.Offset+i))
	}
	if len(mine) == 0 {
		return nil
	}
	ratePer := cfg.Rate / float64(cfg.Publishers)
	var sent int64
	buf := make([]byte, 0, cfg.BodySize+32)
	rng := rand.New(rand.NewPCG(uint64(p), uint64(start.UnixNano())))
	for ctx.Err() == nil {
		progressed := false
		for j := range mine {
			k := j
			if cfg.Random {
				k = rng.IntN(len(mine))
			}
			i := mine[k]
			u := &r.users[i]
			s := u.sent.Load()
			if s-u.recv.Load() >= int64(cfg.InFlight) {
				continue
			}
			if ratePer > 0 {
				// Sleep until this push is due: one wakeup per push at most
				// (polling with short sleeps cost the load generator more
				// CPU than the servers it measured).
				// Wake at most once a millisecond and send what is due then:
				// the publisher's flushes batch too. Latency is measured from
				// each push's own send time, so this does not bias it.
				due := start.Add(time.Duration(float64(sent) / ratePer * float64(time.Second)))
				if wait := time.Until(due); wait > 0 {
					select {
					case <-time.After(max(wait, time.Millisecond)):
					case <-ctx.Done():
						return nil
					}
				}
			}
			buf = appendBody(buf[:0], cfg.Offset+i, s+1, time.Now().UnixNano(), cfg.BodySize)
			if err := pub(uids[k], buf); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			u.sent.Store(s + 1)
			sent++
			progressed = true
			if ctx.Err() != nil {
				return nil
			}
		}
		if !progressed {
			time.Sleep(20 * time.Microsecond)
		}
	}
	return nil
}

// MergePush adds up the results of several processes.
func MergePush(parts []PushResult) PushResult {
	if len(parts) == 0 {
		return PushResult{}
	}
	out := PushResult{Mode: parts[0].Mode, Via: parts[0].Via, Processes: len(parts), Seconds: parts[0].Seconds}
	var lat []LatencySummary
	var conn []ConnsPart
	for _, p := range parts {
		out.Users += p.Users
		out.Sent += p.Sent
		out.Delivered += p.Delivered
		out.InWindow += p.InWindow
		out.Rate += p.Rate
		out.Lost += p.Lost
		out.Duplicates += p.Duplicates
		out.Reordered += p.Reordered
		out.Misrouted += p.Misrouted
		lat = append(lat, p.Latency)
		conn = append(conn, p.Connect)
	}
	out.Latency = MergeSummaries(lat)
	out.Connect = mergeConns(conn)
	return out
}
