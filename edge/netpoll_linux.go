//go:build linux

package edge

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/plexbus/plex/rawsys"
	"github.com/plexbus/plex/wire"
)

const pollSupported = true

// readBufSize is each poller's shared read buffer: idle connections hold
// none of their own.
const readBufSize = 64 << 10

// poller is an epoll loop owning many client sockets: it reads them, writes
// what a socket could not take at once when it becomes writable, and is
// the only closer of their fds. An idle connection costs no goroutine and
// no buffer.
type poller struct {
	srv *Server
	ep  *rawsys.Epoll // parks the loop as a goroutine; Wake ends the wait
	lfd atomic.Int32  // the listener's fd, if this loop accepts; -1 otherwise
	// spare is a reserved fd, given back when accept runs out of them (owned by the loop).
	spare int

	mu      sync.Mutex
	conns   map[int32]*conn // by fd
	toClose []int32         // fds released by other goroutines, closed by the loop

	buf []byte // owned by the loop goroutine
}

func newPoller(s *Server) (*poller, error) {
	ep, err := rawsys.NewEpoll()
	if err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	p := &poller{srv: s, ep: ep, conns: make(map[int32]*conn), buf: make([]byte, readBufSize), spare: -1}
	p.lfd.Store(-1)
	return p, nil
}

const readEvents = unix.EPOLLIN | unix.EPOLLRDHUP

// add starts serving c's socket from this loop; c.poller is p already.
func (p *poller) add(c *conn) error {
	p.mu.Lock()
	p.conns[c.fd] = c
	p.mu.Unlock()
	if err := p.ep.Ctl(unix.EPOLL_CTL_ADD, c.fd, readEvents); err != nil {
		p.mu.Lock()
		delete(p.conns, c.fd)
		p.mu.Unlock()
		return fmt.Errorf("edge: epoll add: %w", err)
	}
	return nil
}

// wantWrite turns EPOLLOUT interest on or off. c.wmu is held.
func (p *poller) wantWrite(c *conn, on bool) {
	ev := uint32(readEvents)
	if on {
		ev |= unix.EPOLLOUT
	}
	_ = p.ep.Ctl(unix.EPOLL_CTL_MOD, c.fd, ev)
}

// release stops serving c: the peer sees the close at once, and the loop
// closes the fd between two batches of events, so its number cannot be
// reused under a read in progress.
func (p *poller) release(c *conn) {
	_ = p.ep.Ctl(unix.EPOLL_CTL_DEL, c.fd, 0)
	_ = rawsys.Shutdown(int(c.fd), unix.SHUT_RDWR)
	p.mu.Lock()
	if p.conns[c.fd] == c {
		delete(p.conns, c.fd)
	}
	first := len(p.toClose) == 0
	p.toClose = append(p.toClose, c.fd)
	p.mu.Unlock()
	if first {
		p.signal()
	}
}

func (p *poller) signal() { p.ep.Wake() }

// stop wakes the loop so it sees the server's context is done.
func (p *poller) stop() { p.signal() }

// close frees the loop's own fds and any client fd still held; the loop
// has returned.
func (p *poller) close() {
	p.closeReleased()
	p.mu.Lock()
	for fd := range p.conns {
		rawsys.Close(int(fd))
	}
	p.conns = map[int32]*conn{}
	p.mu.Unlock()
	if p.spare >= 0 {
		rawsys.Close(p.spare)
	}
	p.ep.Close()
}

func (p *poller) closeReleased() {
	p.mu.Lock()
	fds := p.toClose
	p.toClose = nil
	p.mu.Unlock()
	for _, fd := range fds {
		rawsys.Close(int(fd))
	}
}

func (p *poller) run() {
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := p.ep.Wait(events)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				p.srv.log.Error("epoll_wait failed; reads stop", "err", err)
			}
			return
		}
		if p.srv.ctx.Err() != nil {
			p.closeReleased()
			return
		}
		for i := 0; i < n; i++ {
			ev := &events[i]
			if ev.Fd == p.lfd.Load() {
				p.acceptReady(ev.Fd)
				continue
			}
			p.mu.Lock()
			c := p.conns[ev.Fd]
			p.mu.Unlock()
			if c == nil {
				continue
			}
			if ev.Events&unix.EPOLLOUT != 0 {
				c.writable()
			}
			if ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				p.readable(c)
			}
		}
		p.closeReleased()
	}
}

// readable reads what c has (one read per event; epoll is level-triggered,
// so more data brings another event) and runs its complete frames.
func (p *poller) readable(c *conn) {
	n, err := rawsys.Read(int(c.fd), p.buf)
	switch {
	case n > 0:
		p.consume(c, p.buf[:n])
	case err == nil:
		c.close(ReasonClientClosed)
	case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EINTR):
	default:
		c.close(ReasonReadError)
	}
}

// consume splits data into frames; a frame cut across reads waits in
// c.rbuf, sized exactly for it. Payloads alias the shared buffer and are
// decoded (copied) before the next read.
func (p *poller) consume(c *conn, data []byte) {
	order := p.srv.cfg.ByteOrder
	for len(data) > 0 {
		if c.state.Load() >= stateClosing {
			return // discard what a closing client still sends
		}
		limit := c.maxFrame()
		if len(c.rbuf) > 0 {
			var ok bool
			if data, ok = p.completePending(c, data, limit); !ok {
				return
			}
			continue
		}
		payload, n, need, err := wire.ParseFrame(data, order, limit)
		if err != nil {
			c.srv.metrics.badFrames.WithLabelValues("too_large").Inc()
			c.close(ReasonFrameTooLarge)
			return
		}
		if n == 0 { // a partial frame: keep it
			c.rbuf = make([]byte, len(data), max(need, wire.HeaderSize))
			copy(c.rbuf, data)
			return
		}
		data = data[n:]
		if payload != nil {
			c.handleFrame(payload)
		}
	}
}

// completePending feeds data into the partial frame in c.rbuf. It returns
// the unused rest, and false when nothing more can be done now.
func (p *poller) completePending(c *conn, data []byte, limit int) ([]byte, bool) {
	if len(c.rbuf) < wire.HeaderSize {
		take := min(wire.HeaderSize-len(c.rbuf), len(data))
		c.rbuf = append(c.rbuf, data[:take]...)
		data = data[take:]
		if len(c.rbuf) < wire.HeaderSize {
			return nil, false
		}
		size := p.srv.cfg.ByteOrder.Uint32(c.rbuf)
		if uint64(size) > uint64(limit) {
			c.srv.metrics.badFrames.WithLabelValues("too_large").Inc()
			c.close(ReasonFrameTooLarge)
			return nil, false
		}
		if size == 0 {
			c.rbuf = nil
			return data, true
		}
		nb := make([]byte, wire.HeaderSize, wire.HeaderSize+int(size))
		copy(nb, c.rbuf)
		c.rbuf = nb
	}
	need := wire.HeaderSize + int(p.srv.cfg.ByteOrder.Uint32(c.rbuf))
	take := min(need-len(c.rbuf), len(data))
	c.rbuf = append(c.rbuf, data[:take]...)
	data = data[take:]
	if len(c.rbuf) < need {
		return nil, false
	}
	frame := c.rbuf
	c.rbuf = nil
	c.handleFrame(frame[wire.HeaderSize:])
	return data, true
}

// writeFD is the hot path's write: raw, see package rawsys for why.
func writeFD(fd int32, b []byte) (int, error) { return rawsys.Write(int(fd), b) }

func shutdownWrite(fd int32) { _ = rawsys.Shutdown(int(fd), unix.SHUT_WR) }

// listenControl sets options on the listening socket before it listens:
// accepted sockets inherit them, one syscall per option instead of one per
// client. TCP_NODELAY always; SO_SNDBUF when sndbuf > 0, which bounds the
// kernel memory a client that stops reading can hold.
func listenControl(sndbuf int) func(_, _ string, rc syscall.RawConn) error {
	return func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
			if serr == nil && sndbuf > 0 {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, sndbuf)
			}
		})
		return errors.Join(err, serr)
	}
}

// listen makes this loop accept on the listener's fd with accept4, so a
// connection is a bare fd: no net.Conn, no runtime poll descriptor, no
// address objects.
func (p *poller) listen(ln net.Listener) error {
	rc, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		return err
	}
	var fd int32 = -1
	if err := rc.Control(func(f uintptr) { fd = int32(f) }); err != nil {
		return err
	}
	p.lfd.Store(fd)
	p.spare, _ = unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err := p.ep.Ctl(unix.EPOLL_CTL_ADD, fd, unix.EPOLLIN); err != nil {
		p.lfd.Store(-1)
		return fmt.Errorf("edge: epoll add listener: %w", err)
	}
	return nil
}

// unlisten stops accepting; call it before closing the listener, so its
// fd number cannot come back as a client's while still taken for the
// listener's.
func (p *poller) unlisten() {
	if fd := p.lfd.Swap(-1); fd >= 0 {
		_ = p.ep.Ctl(unix.EPOLL_CTL_DEL, fd, 0)
	}
}

// acceptReady accepts every pending connection on lfd.
func (p *poller) acceptReady(lfd int32) {
	s := p.srv
	for {
		nfd, peer, err := rawsys.Accept4(int(lfd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		switch {
		case err == nil:
			s.acceptFD(nfd, peer)
		case errors.Is(err, unix.EAGAIN):
			return
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.ECONNABORTED):
		case errors.Is(err, unix.EMFILE), errors.Is(err, unix.ENFILE):
			// Out of file descriptors: give back the spare one, accept the
			// client and close it at once, so it fails fast instead of
			// waiting in the backlog; then take the spare again.
			s.fdExhausted(func() {
				if p.spare >= 0 {
					rawsys.Close(p.spare)
					p.spare = -1
				}
				if nfd, _, err := rawsys.Accept4(int(lfd), unix.SOCK_CLOEXEC); err == nil {
					rawsys.Close(nfd)
				}
				p.spare, _ = unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
			})
			return
		default:
			s.fdExhausted(nil)
			time.Sleep(20 * time.Millisecond) // the listener stays readable: do not spin
			return
		}
	}
}

func (s *Server) acceptFD(fd int, ap netip.AddrPort) {
	s.metrics.accepted.Inc()
	if !s.failedIPs.take(ap.Addr(), time.Now()) {
		s.metrics.limited.WithLabelValues("failed_auth_ip").Inc()
		refuseFD(fd, s.cfg.ByteOrder, wire.FailTooManyFailures)
		return
	}
	c := newConn(s, nil, int32(fd), ap.String())
	c.reserved.Store(true)
	p := s.pollers[int(s.nextPoll.Add(1))%len(s.pollers)]
	c.poller = p // before register publishes c to the sweeper
	if !s.register(c) {
		s.failedIPs.refund(ap.Addr(), time.Now())
		refuseFD(fd, s.cfg.ByteOrder, wire.FailServerFull)
		return
	}
	if err := p.add(c); err != nil {
		s.log.Error("register connection", "err", err)
		c.close(ReasonReadError)
	}
}

// refuseFD tells a just-accepted client why and closes it: one small write
// to a fresh socket does not block.
func refuseFD(fd int, order wire.Order, reason string) {
	_, _ = rawsys.Write(fd, wire.AppendFrame(nil, order, &wire.Message{URI: wire.URIAuthFailed, Body: reason}))
	rawsys.Close(fd)
}
