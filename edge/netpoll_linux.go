//go:build linux

package edge

import (
	"errors"
	"fmt"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/plexbus/plex/wire"
)

const pollSupported = true

// readBufSize is each poller's shared read buffer: idle connections hold
// none of their own.
const readBufSize = 64 << 10

// poller is an epoll loop reading many connections from one goroutine, so
// an idle connection costs no goroutine and no buffer. Writes do not go
// through it: they are direct non-blocking writes or a flusher goroutine.
type poller struct {
	srv  *Server
	epfd int
	wake int // eventfd that wakes the loop for shutdown

	mu    sync.Mutex
	conns map[int32]*conn // by fd

	// Owned by the loop goroutine.
	buf    []byte
	n      int
	err    error
	readFn func(fd uintptr) bool
}

func newPoller(s *Server) (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("edge: epoll_create: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("edge: eventfd: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)}); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, fmt.Errorf("edge: epoll add eventfd: %w", err)
	}
	p := &poller{srv: s, epfd: epfd, wake: wake, conns: make(map[int32]*conn), buf: make([]byte, readBufSize)}
	p.readFn = p.readFD
	return p, nil
}

// add starts reading c from this loop.
func (p *poller) add(c *conn) error {
	var fd int32 = -1
	if err := c.raw.Control(func(f uintptr) { fd = int32(f) }); err != nil {
		return err
	}
	c.pfd = fd
	c.poller = p // before the table publishes c to the loop
	p.mu.Lock()
	p.conns[fd] = c
	p.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: fd}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev); err != nil {
		p.mu.Lock()
		delete(p.conns, fd)
		p.mu.Unlock()
		c.poller = nil // no event can have come: the loop never saw c
		return fmt.Errorf("edge: epoll add: %w", err)
	}
	return nil
}

// remove stops reading c; called once, before its socket is closed.
func (p *poller) remove(c *conn) {
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, int(c.pfd), nil)
	p.mu.Lock()
	if p.conns[c.pfd] == c {
		delete(p.conns, c.pfd)
	}
	p.mu.Unlock()
}

// stop wakes the loop so it sees the server's context is done.
func (p *poller) stop() {
	var one = [8]byte{1}
	_, _ = unix.Write(p.wake, one[:])
}

func (p *poller) close() {
	unix.Close(p.wake)
	unix.Close(p.epfd)
}

func (p *poller) run() {
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			p.srv.log.Error("epoll_wait failed; reads stop", "err", err)
			return
		}
		for i := 0; i < n; i++ {
			fd := events[i].Fd
			if fd == int32(p.wake) {
				select {
				case <-p.srv.ctx.Done():
					return
				default:
					var b [8]byte
					_, _ = unix.Read(p.wake, b[:])
					continue
				}
			}
			p.mu.Lock()
			c := p.conns[fd]
			p.mu.Unlock()
			if c != nil {
				p.readable(c)
			}
		}
	}
}

// readFD is the raw read, a method value made once per poller so the read
// path allocates nothing.
func (p *poller) readFD(fd uintptr) bool {
	n, err := syscall.Read(int(fd), p.buf)
	if n < 0 {
		n = 0
	}
	p.n, p.err = n, err
	return true // never park: epoll says when to come back
}

// readable reads what c has (one read per event; epoll is level-triggered,
// so more data brings another event) and runs its complete frames.
func (p *poller) readable(c *conn) {
	p.n, p.err = 0, nil
	if err := c.raw.Read(p.readFn); err != nil {
		return // closed meanwhile
	}
	switch {
	case p.err == nil && p.n == 0:
		c.close(ReasonClientClosed)
		return
	case p.err != nil:
		if errors.Is(p.err, syscall.EAGAIN) || errors.Is(p.err, syscall.EINTR) {
			return
		}
		c.close(ReasonReadError)
		return
	}
	p.consume(c, p.buf[:p.n])
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
		if len(c.rbuf) > 0 || cap(c.rbuf) > 0 {
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
func (p *poller) completePending(c *conn, data []byte, max int) ([]byte, bool) {
	if len(c.rbuf) < wire.HeaderSize {
		take := min(wire.HeaderSize-len(c.rbuf), len(data))
		c.rbuf = append(c.rbuf, data[:take]...)
		data = data[take:]
		if len(c.rbuf) < wire.HeaderSize {
			return nil, false
		}
		size := p.srv.cfg.ByteOrder.Uint32(c.rbuf)
		if uint64(size) > uint64(max) {
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
