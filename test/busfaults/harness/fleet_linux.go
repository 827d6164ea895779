//go:build linux

package harness

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/plexbus/plex/wire"
)

// Fleet holds many device connections and reads them all from one epoll
// loop, so tens of thousands fit in one test process: no goroutine per
// connection (the race detector allows 8128 goroutines), one file
// descriptor each. Each connection keeps counters the tests read; OnPush
// sees every pushed frame.
//
// Frames are read with read(2) on the socket's descriptor directly; the
// connection's net.Conn is used only to write and to close. The loop owns
// every connection's read buffer.
type Fleet struct {
	order   wire.Order
	onPush  func(c *Conn, m wire.Message)
	onClose func(c *Conn, err error)
	epfd    int

	mu    sync.Mutex
	conns map[int]*Conn // by descriptor; guarded by mu

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// FleetConfig configures a Fleet. The zero value is a big-endian fleet.
type FleetConfig struct {
	Order wire.Order
	// OnPush is called for every frame that is not a protocol frame (a
	// push), on the loop goroutine; it must not block.
	OnPush func(c *Conn, m wire.Message)
	// OnClose is called once when the edge closed a connection or its
	// socket failed (not for Conn.Close), on the loop goroutine.
	OnClose func(c *Conn, err error)
}

// Conn is one device connection of a Fleet.
type Conn struct {
	f   *Fleet
	ID  int    // the caller's index
	UID string // the caller's label
	tc  *net.TCPConn
	fd  int

	mu     sync.Mutex // held while the loop reads, and by Close
	closed bool       // guarded by mu
	buf    []byte     // partial frames; owned by the loop under mu

	wmu sync.Mutex // serializes writes

	// Counters, for tests.
	Authed     atomic.Bool            // /auth/success arrived
	AuthedAt   atomic.Int64           // when, unix nanos
	AnsweredAt atomic.Int64           // when /auth/success or /auth/failed arrived, unix nanos
	Failed     atomic.Pointer[string] // the /auth/failed reason
	Reconnect  atomic.Bool            // /reconnect arrived
	Pushes     atomic.Int64           // pushed frames received
	LastBody   atomic.Pointer[string] // the last push's body
	Heartbeats atomic.Int64           // /heartbeat answers received
	PeerClosed atomic.Bool            // the edge closed it (or the socket failed)
	CloseErr   atomic.Pointer[error]  // why
}

// NewFleet starts a fleet's read loop. Close it when done.
func NewFleet(cfg FleetConfig) (*Fleet, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("fleet: epoll: %w", err)
	}
	f := &Fleet{
		order: cfg.Order, onPush: cfg.OnPush, onClose: cfg.OnClose, epfd: epfd,
		conns: make(map[int]*Conn), stop: make(chan struct{}), done: make(chan struct{}),
	}
	go f.loop()
	return f, nil
}

// Len is how many connections the fleet holds open.
func (f *Fleet) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.conns)
}

// Dial opens a connection to addr from source address src (nil = any).
func (f *Fleet) Dial(addr string, src net.IP, id int, uid string) (*Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if src != nil {
		d.LocalAddr = &net.TCPAddr{IP: src}
		// Choose the port at connect, by the whole 4-tuple, not at bind:
		// bind(port 0) scans every port in use (TIME_WAIT included) and
		// gets slow with tens of thousands of them.
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
			})
			return errors.Join(err, serr)
		}
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := nc.(*net.TCPConn)
	c := &Conn{f: f, ID: id, UID: uid, tc: tc, fd: -1}
	raw, err := tc.SyscallConn()
	if err != nil {
		tc.Close()
		return nil, err
	}
	if err := raw.Control(func(fd uintptr) { c.fd = int(fd) }); err != nil {
		tc.Close()
		return nil, err
	}
	f.mu.Lock()
	f.conns[c.fd] = c
	f.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(c.fd)}
	if err := unix.EpollCtl(f.epfd, unix.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
		c.Close()
		return nil, fmt.Errorf("fleet: epoll add: %w", err)
	}
	return c, nil
}

// Source returns the i-th of n loopback source addresses, 127.0.0.2 on
// (n at most 250), or nil (the default address) when n is 0.
func Source(i, n int) net.IP {
	if n <= 0 {
		return nil
	}
	return net.IPv4(127, 0, 0, byte(2+i%min(n, 250)))
}

// Send writes one frame, waiting at most 5 s.
func (c *Conn) Send(uri, body string) error {
	frame := wire.AppendFrame(nil, c.f.order, &wire.Message{URI: uri, Body: body})
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.tc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := c.tc.Write(frame)
	return err
}

// Close closes the connection from the device's side. OnClose is not called.
func (c *Conn) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked()
}

// Abort closes the connection with a reset, leaving no TIME_WAIT behind.
func (c *Conn) Abort() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		_ = c.tc.SetLinger(0)
	}
	c.closeLocked()
}

func (c *Conn) closeLocked() {
	if c.closed {
		return
	}
	c.closed = true
	_ = unix.EpollCtl(c.f.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
	c.f.mu.Lock()
	if c.f.conns[c.fd] == c {
		delete(c.f.conns, c.fd)
	}
	c.f.mu.Unlock()
	c.tc.Close()
	c.buf = nil
}

// IsClosed reports whether the connection is closed, by either side.
func (c *Conn) IsClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// LocalAddr is the device side's address.
func (c *Conn) LocalAddr() net.Addr { return c.tc.LocalAddr() }

// FailReason is the /auth/failed reason, or "".
func (c *Conn) FailReason() string {
	if p := c.Failed.Load(); p != nil {
		return *p
	}
	return ""
}

// Close stops the loop and aborts every connection (a reset, so that a
// large fleet leaves no TIME_WAIT sockets behind). It is idempotent.
func (f *Fleet) Close() {
	f.closeOnce.Do(func() {
		close(f.stop)
		<-f.done
		f.mu.Lock()
		all := make([]*Conn, 0, len(f.conns))
		for _, c := range f.conns {
			all = append(all, c)
		}
		f.mu.Unlock()
		for _, c := range all {
			c.Abort()
		}
		unix.Close(f.epfd)
	})
}

func (f *Fleet) loop() {
	defer close(f.done)
	events := make([]unix.EpollEvent, 512)
	tmp := make([]byte, 64<<10)
	for {
		select {
		case <-f.stop:
			return
		default:
		}
		n, err := unix.EpollWait(f.epfd, events, 50)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			panic(fmt.Sprintf("fleet: epoll wait: %v", err))
		}
		for i := range n {
			f.mu.Lock()
			c := f.conns[int(events[i].Fd)]
			f.mu.Unlock()
			if c != nil {
				c.read(tmp)
			}
		}
	}
}

// read drains the socket, decodes whole frames and dispatches them.
func (c *Conn) read(tmp []byte) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	var rerr error
	for {
		n, err := unix.Read(c.fd, tmp)
		if n > 0 {
			c.buf = append(c.buf, tmp[:n]...)
		}
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if !errors.Is(err, unix.EAGAIN) {
				rerr = err
			}
			break
		}
		if n == 0 {
			rerr = io.EOF
			break
		}
		if n < len(tmp) {
			break
		}
	}
	var msgs []wire.Message
	off := 0
	for {
		payload, used, _, err := wire.ParseFrame(c.buf[off:], c.f.order, 16<<20)
		if err != nil {
			rerr = err
			break
		}
		if used == 0 {
			break
		}
		off += used
		if payload == nil {
			continue
		}
		m, err := wire.Decode(payload)
		if err != nil {
			rerr = err
			break
		}
		msgs = append(msgs, m)
	}
	if off > 0 {
		c.buf = c.buf[:copy(c.buf, c.buf[off:])]
	}
	if rerr != nil {
		c.closeLocked()
	}
	c.mu.Unlock()

	for _, m := range msgs {
		c.handle(m)
	}
	if rerr != nil {
		c.CloseErr.Store(&rerr)
		c.PeerClosed.Store(true)
		if c.f.onClose != nil {
			c.f.onClose(c, rerr)
		}
	}
}

func (c *Conn) handle(m wire.Message) {
	switch m.URI {
	case wire.URIAuthSuccess:
		now := time.Now().UnixNano()
		c.AuthedAt.Store(now)
		c.AnsweredAt.Store(now)
		c.Authed.Store(true)
	case wire.URIAuthFailed:
		body := m.Body
		c.AnsweredAt.Store(time.Now().UnixNano())
		c.Failed.Store(&body)
	case wire.URIReconnect:
		c.Reconnect.Store(true)
	case wire.URIHeartbeat:
		c.Heartbeats.Add(1)
	default:
		body := m.Body
		c.LastBody.Store(&body)
		c.Pushes.Add(1)
		if c.f.onPush != nil {
			c.f.onPush(c, m)
		}
	}
}

// LoginAll dials one connection per uid to addr and logs each in with
// auth(uid), keeping at most inflight logins pending. Connections come
// from sources loopback addresses in turn (127.0.0.2, .3, …; 0 = the
// default address), as devices come from many addresses: an edge limits
// the logins in progress per address, and one address has only so many
// ephemeral ports. It returns the connections in uid order once all are
// logged in, or an error naming the first failure.
func (f *Fleet) LoginAll(addr string, uids []string, auth func(uid string) string, inflight, sources int, timeout time.Duration) ([]*Conn, error) {
	conns := make([]*Conn, len(uids))
	deadline := time.Now().Add(timeout)
	pending := 0
	done := 0
	wait := func(upto int) error {
		for done < upto {
			c := conns[done]
			for !c.Authed.Load() {
				if r := c.FailReason(); r != "" {
					return fmt.Errorf("login %s: /auth/failed %q", c.UID, r)
				}
				if c.PeerClosed.Load() {
					return fmt.Errorf("login %s: closed: %v", c.UID, *c.CloseErr.Load())
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("login %s: no answer within %s (%d of %d logged in)", c.UID, timeout, done, len(uids))
				}
				time.Sleep(time.Millisecond)
			}
			done++
			pending--
		}
		return nil
	}
	for i, uid := range uids {
		src := Source(i, sources)
		c, err := f.Dial(addr, src, i, uid)
		if err != nil {
			return nil, fmt.Errorf("dial %d: %w", i, err)
		}
		conns[i] = c
		if err := c.Send(wire.URIAuth, auth(uid)); err != nil {
			return nil, fmt.Errorf("login %s: %w", uid, err)
		}
		pending++
		if pending >= inflight {
			if err := wait(i + 1 - inflight/2); err != nil {
				return nil, err
			}
		}
	}
	if err := wait(len(uids)); err != nil {
		return nil, err
	}
	return conns, nil
}
