//go:build linux

package bench

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/plexbus/plex/rawsys"
	"github.com/plexbus/plex/wire"
)

const rawSupported = true

// rawPool runs devices as bare non-blocking sockets in epoll loops, a few
// syscalls per login and none per idle device. Each loop owns its devices:
// it dials them, logs them in, reads them, heartbeats them and closes them.
type rawPool struct {
	p     *Pool
	loops []*rawLoop
	wg    sync.WaitGroup
	slots chan struct{} // logins in flight
	next  atomic.Uint32
	// busy counts logins in flight and heartbeating loops: the ticker
	// wakes the loops for their timers only while it is above zero.
	busy     atomic.Int64
	tickStop chan struct{}
}

type rawLoop struct {
	pool *rawPool
	// ep parks the loop as a goroutine: a thread blocked in epoll_wait
	// kept the runtime's monitor spinning, which cost more CPU than the
	// load itself.
	ep     *rawsys.Epoll
	reqs   chan int // device indices to dial
	devs   map[int32]*rawDev
	buf    []byte
	hb     atomic.Int64 // heartbeat interval, ns; 0 = none
	stop   atomic.Bool
	hbNext int
	hbAt   time.Time
	order  []*rawDev // for heartbeats
	// logging counts devices still logging in; their timeouts are checked
	// at most every 50 ms, and not at all once every device is in.
	logging   int
	checkedAt time.Time
}

type rawDev struct {
	i     int
	fd    int32
	open  bool // logged in
	start time.Time
	rbuf  []byte
}

func newRawPool(p *Pool) *rawPool {
	rp := &rawPool{p: p, slots: make(chan struct{}, p.cfg.Concurrency)}
	n := max(1, runtime.GOMAXPROCS(0))
	for i := 0; i < n; i++ {
		ep, err := rawsys.NewEpoll()
		if err != nil {
			panic(fmt.Sprintf("bench: %v", err)) // only fd exhaustion at start
		}
		l := &rawLoop{pool: rp, ep: ep, reqs: make(chan int, 1<<16), devs: map[int32]*rawDev{}, buf: make([]byte, 256<<10)}
		rp.loops = append(rp.loops, l)
		rp.wg.Add(1)
		go l.run()
	}
	rp.tickStop = make(chan struct{})
	rp.wg.Add(1)
	go rp.tick()
	return rp
}

// tick wakes the loops every 50 ms while they have timers to run (login
// timeouts, heartbeats).
func (rp *rawPool) tick() {
	defer rp.wg.Done()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if rp.busy.Load() > 0 {
				for _, l := range rp.loops {
					l.signal()
				}
			}
		case <-rp.tickStop:
			return
		}
	}
}

// connect dials count devices from index first, Concurrency logins at a
// time, and returns when all have logged in or failed.
func (rp *rawPool) connect(ctx context.Context, first, count int) {
	var done sync.WaitGroup
	done.Add(count)
	rp.p.mu.Lock()
	rp.p.pending = &done
	rp.p.mu.Unlock()
	for k := 0; k < count; k++ {
		select {
		case rp.slots <- struct{}{}:
		case <-ctx.Done():
			for ; k < count; k++ {
				rp.p.fail(ctx.Err())
				done.Done()
			}
			done.Wait()
			return
		}
		l := rp.loops[int(rp.next.Add(1))%len(rp.loops)]
		rp.busy.Add(1)
		l.reqs <- first + k
		l.signal()
	}
	done.Wait()
}

// finished ends one login attempt.
func (rp *rawPool) finished() {
	rp.busy.Add(-1)
	<-rp.slots
	rp.p.mu.Lock()
	wg := rp.p.pending
	rp.p.mu.Unlock()
	wg.Done()
}

func (rp *rawPool) heartbeats(iv time.Duration) {
	rp.busy.Add(1)
	for _, l := range rp.loops {
		l.hb.Store(int64(iv))
		l.signal()
	}
}

func (rp *rawPool) close() {
	close(rp.tickStop)
	for _, l := range rp.loops {
		l.stop.Store(true)
		l.signal()
	}
	rp.wg.Wait()
}

func (l *rawLoop) signal() { l.ep.Wake() }

func (l *rawLoop) run() {
	defer l.pool.wg.Done()
	defer l.shutdown()
	events := make([]unix.EpollEvent, 512)
	for !l.stop.Load() {
		n, err := l.ep.Wait(events)
		if err != nil {
			return
		}
		for i := 0; i < n; i++ {
			ev := events[i]
			d := l.devs[ev.Fd]
			if d == nil {
				continue
			}
			if ev.Events&unix.EPOLLOUT != 0 && !d.open && d.rbuf == nil {
				l.sendLogin(d, false)
			}
			if ev.Events&(unix.EPOLLIN|unix.EPOLLHUP|unix.EPOLLERR|unix.EPOLLRDHUP) != 0 {
				l.readable(d)
			}
		}
		l.dialQueued()
		l.housekeeping()
	}
}

func (l *rawLoop) shutdown() {
	for fd := range l.devs {
		rawsys.Close(int(fd))
	}
	for {
		select {
		case <-l.reqs:
			continue
		default:
		}
		break
	}
	l.ep.Close()
}

func (l *rawLoop) dialQueued() {
	for {
		select {
		case i := <-l.reqs:
			l.dial(i)
		default:
			return
		}
	}
}

// dial starts a non-blocking connect; the login goes out when the socket
// is writable.
func (l *rawLoop) dial(i int) {
	p := l.pool.p
	fail := func(err error) {
		p.fail(err)
		l.pool.finished()
	}
	ap, err := netip.ParseAddrPort(p.cfg.Dialer.addr(i))
	if err != nil || !ap.Addr().Is4() {
		fail(fmt.Errorf("bench: edge address %q: want ipv4:port", p.cfg.Dialer.addr(i)))
		return
	}
	fd, err := rawsys.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		fail(err)
		return
	}
	if p.cfg.Dialer.ExplicitPorts {
		_ = rawsys.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		ip, port := sourceAddr(i)
		src := netip.AddrPortFrom(netip.AddrFrom4(ip), uint16(port))
		if err := rawsys.Bind(fd, src); err != nil {
			// someone holds that port: let the kernel choose
			if err := rawsys.Bind(fd, netip.AddrPortFrom(src.Addr(), 0)); err != nil {
				rawsys.Close(fd)
				fail(err)
				return
			}
		}
	}
	// No TCP_NODELAY: a device writes its login and then a heartbeat a
	// minute, never behind unacknowledged data, so Nagle never holds them.
	err = rawsys.Connect(fd, ap)
	if err != nil && !errors.Is(err, unix.EINPROGRESS) {
		rawsys.Close(fd)
		fail(err)
		return
	}
	d := &rawDev{i: i, fd: int32(fd), start: time.Now()}
	l.devs[d.fd] = d
	l.logging++
	if err := l.ep.Ctl(unix.EPOLL_CTL_ADD, d.fd, unix.EPOLLIN|unix.EPOLLRDHUP); err != nil {
		delete(l.devs, d.fd)
		rawsys.Close(fd)
		fail(err)
		return
	}
	// On loopback the handshake completes inside connect, so the login goes
	// at once; if not, it goes when the socket turns writable.
	l.sendLogin(d, true)
}

// sendLogin writes the login frame. On the first try, right after connect,
// a socket still connecting waits for EPOLLOUT instead.
func (l *rawLoop) sendLogin(d *rawDev, first bool) {
	p := l.pool.p
	tok, err := p.cfg.Tokens.Token(d.i)
	if err == nil {
		if !first {
			_ = l.ep.Ctl(unix.EPOLL_CTL_MOD, d.fd, unix.EPOLLIN|unix.EPOLLRDHUP)
		}
		frame := wire.AppendFrame(nil, p.cfg.Dialer.Order, &wire.Message{URI: wire.URIAuth, Body: tok})
		var n int
		n, err = rawsys.Write(int(d.fd), frame)
		if first && (errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.ENOTCONN)) {
			_ = l.ep.Ctl(unix.EPOLL_CTL_MOD, d.fd, unix.EPOLLIN|unix.EPOLLOUT|unix.EPOLLRDHUP)
			return
		}
		if err == nil && n != len(frame) {
			err = errors.New("bench: login frame cut short")
		}
	}
	if err != nil {
		l.drop(d, err)
	}
	d.rbuf = []byte{} // login sent: not again on the next EPOLLOUT
}

// drop closes a device; a login in progress counts as failed.
func (l *rawLoop) drop(d *rawDev, err error) {
	delete(l.devs, d.fd)
	rawsys.Close(int(d.fd))
	if !d.open {
		l.logging--
		l.pool.p.fail(err)
		l.pool.finished()
	}
	d.open = false
	d.fd = -1
}

func (l *rawLoop) readable(d *rawDev) {
	n, err := rawsys.Read(int(d.fd), l.buf)
	switch {
	case n > 0:
		l.consume(d, l.buf[:n])
	case err == nil:
		l.drop(d, errors.New("bench: connection closed by the edge"))
	case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
	default:
		l.drop(d, err)
	}
}

func (l *rawLoop) consume(d *rawDev, data []byte) {
	p := l.pool.p
	order := p.cfg.Dialer.Order
	if len(d.rbuf) > 0 {
		data = append(d.rbuf, data...) // rare: a frame cut across reads
		d.rbuf = d.rbuf[:0]
	}
	for len(data) > 0 && d.fd >= 0 {
		payload, n, _, err := wire.ParseFrame(data, order, wire.DefaultMaxFrameSize)
		if err != nil {
			l.drop(d, err)
			return
		}
		if n == 0 {
			d.rbuf = append(d.rbuf[:0], data...)
			return
		}
		data = data[n:]
		if payload == nil {
			continue
		}
		var m wire.Message
		if err := wire.DecodeInto(payload, &m); err != nil {
			l.drop(d, err)
			return
		}
		switch {
		case !d.open && m.URI == wire.URIAuthSuccess:
			d.open = true
			l.logging--
			p.ok(d.i, time.Since(d.start))
			l.order = append(l.order, d)
			l.pool.finished()
		case !d.open && m.URI == wire.URIAuthFailed:
			l.drop(d, fmt.Errorf("%w: %s", ErrRefused, m.Body))
		default:
			if p.cfg.OnMessage != nil {
				p.cfg.OnMessage(d.i, &m)
			}
		}
	}
}

// housekeeping times out slow logins and sends heartbeats, spread evenly.
func (l *rawLoop) housekeeping() {
	now := time.Now()
	if l.logging > 0 && now.Sub(l.checkedAt) > 50*time.Millisecond {
		l.checkedAt = now
		timeout := l.pool.p.cfg.Dialer.Timeout
		for _, d := range l.devs {
			if !d.open && now.Sub(d.start) > timeout {
				l.drop(d, errors.New("bench: login timed out"))
			}
		}
	}
	iv := time.Duration(l.hb.Load())
	if iv <= 0 || len(l.order) == 0 {
		return
	}
	if l.hbAt.IsZero() {
		l.hbAt = now
	}
	// Heartbeats due since the last call, at len(order) per interval.
	due := int(now.Sub(l.hbAt) * time.Duration(len(l.order)) / iv)
	if due == 0 {
		return
	}
	l.hbAt = now
	hb := wire.AppendFrame(nil, l.pool.p.cfg.Dialer.Order, &wire.Message{URI: wire.URIHeartbeat})
	for k := 0; k < min(due, len(l.order)); k++ {
		d := l.order[l.hbNext%len(l.order)]
		l.hbNext++
		if d.fd >= 0 {
			_, _ = rawsys.Write(int(d.fd), hb)
		}
	}
}
