package bench

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/plexbus/plex/wire"
)

// PoolConfig describes a set of devices: indices [Offset, Offset+N).
type PoolConfig struct {
	Dialer      Dialer
	Tokens      Tokens
	Offset, N   int
	Concurrency int // logins in flight; 0 = 256
	// Portable uses net.Conn and a goroutine per device even where the
	// epoll path exists.
	Portable bool
	// OnMessage is called from the device's reader goroutine for every
	// frame it receives (i is the device's index, not offset).
	OnMessage func(i int, m *wire.Message)
}

// Pool logs devices in, step by step, and holds them, with heartbeats if
// asked. On Linux the devices are bare sockets served by epoll loops (see
// rawPool), so the load generator spends its CPU on the load, not on a
// goroutine per device; elsewhere, or with Portable, each has a reader
// goroutine and a net.Conn.
type Pool struct {
	cfg     PoolConfig
	raw     *rawPool
	next    int // devices asked for so far (raw path)
	devices []*Device
	login   *Latency

	connected atomic.Int64
	failed    atomic.Int64
	refused   atomic.Int64
	connectNS atomic.Int64 // time spent in Connect calls

	mu      sync.Mutex
	errs    []string
	pending *sync.WaitGroup // the raw path's current Connect
	readWG  sync.WaitGroup
	hbStop  chan struct{}
	hbWG    sync.WaitGroup
}

// NewPool prepares a pool; nothing is dialled yet.
func NewPool(cfg PoolConfig) *Pool {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 256
	}
	if cfg.Dialer.Timeout <= 0 {
		cfg.Dialer.Timeout = 10 * time.Second
	}
	p := &Pool{cfg: cfg, login: NewLatency()}
	if !cfg.Portable && rawSupported {
		p.raw = newRawPool(p)
	} else {
		p.devices = make([]*Device, 0, cfg.N)
	}
	return p
}

// Connected, Failed report progress (safe to call concurrently).
func (p *Pool) Connected() int64 { return p.connected.Load() }
func (p *Pool) Failed() int64    { return p.failed.Load() }

// Connect logs in the next count devices, Concurrency at a time.
func (p *Pool) Connect(ctx context.Context, count int) {
	start := time.Now()
	defer func() { p.connectNS.Add(int64(time.Since(start))) }()
	if p.raw != nil {
		first := p.cfg.Offset + p.next
		count = min(count, p.cfg.Offset+p.cfg.N-first)
		if count > 0 {
			p.next += count
			p.raw.connect(ctx, first, count)
		}
		return
	}
	first := p.cfg.Offset + len(p.devices)
	count = min(count, p.cfg.Offset+p.cfg.N-first)
	if count <= 0 {
		return
	}
	results := make([]*Device, count)
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for w := 0; w < min(p.cfg.Concurrency, count); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := int(next.Add(1) - 1)
				if k >= count || ctx.Err() != nil {
					return
				}
				i := first + k
				dev, err := p.loginOne(ctx, i)
				if err != nil {
					p.fail(err)
					continue
				}
				results[k] = dev
				p.connected.Add(1)
			}
		}()
	}
	wg.Wait()
	for k, dev := range results {
		if dev == nil {
			continue
		}
		p.devices = append(p.devices, dev)
		p.readWG.Add(1)
		go p.read(first+k, dev)
	}
}

func (p *Pool) loginOne(ctx context.Context, i int) (*Device, error) {
	tok, err := p.cfg.Tokens.Token(i)
	if err != nil {
		return nil, err
	}
	dev, took, err := p.cfg.Dialer.Login(ctx, i, p.cfg.Tokens.UID(i), tok)
	if err != nil {
		return nil, err
	}
	p.login.Record(i, took)
	return dev, nil
}

// ok records a login of device i that took d.
func (p *Pool) ok(i int, d time.Duration) {
	p.login.Record(i, d)
	p.connected.Add(1)
}

func (p *Pool) fail(err error) {
	p.failed.Add(1)
	if errors.Is(err, ErrRefused) {
		p.refused.Add(1)
	}
	p.mu.Lock()
	if len(p.errs) < 5 {
		p.errs = append(p.errs, err.Error())
	}
	p.mu.Unlock()
}

func (p *Pool) read(i int, dev *Device) {
	defer p.readWG.Done()
	for {
		var m wire.Message
		if err := dev.R.ReadMessage(&m); err != nil {
			return
		}
		if p.cfg.OnMessage != nil {
			p.cfg.OnMessage(i, &m)
		}
	}
}

// Heartbeats sends a heartbeat from every device each interval, spread
// over the interval, until Close.
func (p *Pool) Heartbeats(interval time.Duration) {
	if interval <= 0 || p.hbStop != nil {
		return
	}
	if p.raw != nil {
		p.raw.heartbeats(interval)
		return
	}
	p.hbStop = make(chan struct{})
	devs := append([]*Device(nil), p.devices...)
	p.hbWG.Add(1)
	go func() {
		defer p.hbWG.Done()
		if len(devs) == 0 {
			return
		}
		tick := time.NewTicker(max(interval/time.Duration(len(devs)), time.Millisecond))
		defer tick.Stop()
		per := max(1, len(devs)*int(time.Millisecond)/int(interval))
		for k := 0; ; {
			select {
			case <-p.hbStop:
				return
			case <-tick.C:
			}
			for j := 0; j < per; j++ {
				_ = devs[k%len(devs)].Heartbeat()
				k++
			}
		}
	}()
}

// Close hangs up every device and waits for the readers.
func (p *Pool) Close() {
	if p.raw != nil {
		p.raw.close()
		return
	}
	if p.hbStop != nil {
		close(p.hbStop)
		p.hbWG.Wait()
		p.hbStop = nil
	}
	for _, d := range p.devices {
		d.Conn.Close()
	}
	p.readWG.Wait()
}

// Summary of the logins so far.
func (p *Pool) Summary() ConnsPart {
	p.mu.Lock()
	errs := append([]string(nil), p.errs...)
	p.mu.Unlock()
	return ConnsPart{
		Connected:      p.connected.Load(),
		Failed:         p.failed.Load(),
		Refused:        p.refused.Load(),
		ConnectSeconds: time.Duration(p.connectNS.Load()).Seconds(),
		Login:          Summarize(p.login.Merged()),
		Errors:         errs,
	}
}

// ConnsPart is one process's share of a connection benchmark.
type ConnsPart struct {
	Connected      int64          `json:"connected"`
	Failed         int64          `json:"failed"`
	Refused        int64          `json:"refused"`
	ConnectSeconds float64        `json:"connect_seconds"`
	Login          LatencySummary `json:"login"`
	Errors         []string       `json:"errors,omitempty"`
}
