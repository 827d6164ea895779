//go:build linux

package rawconn

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"

	"github.com/plexbus/plex/rawsys"
)

// Conn is a TCP connection whose Read and Write use raw system calls. It is
// safe for concurrent use like any net.Conn: one reader and one writer at a
// time each, as the mutexes ensure.
type Conn struct {
	*net.TCPConn
	rc syscall.RawConn

	rmu    sync.Mutex
	rbuf   []byte
	rn     int
	rerr   error
	readFn func(uintptr) bool

	wmu     sync.Mutex
	wbuf    []byte
	wn      int
	werr    error
	writeFn func(uintptr) bool
}

// Wrap turns tc into a Conn.
func Wrap(tc *net.TCPConn) (*Conn, error) {
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil, err
	}
	c := &Conn{TCPConn: tc, rc: rc}
	// Bound once, so Read and Write pass the netpoller no new closure.
	c.readFn, c.writeFn = c.doRead, c.doWrite
	return c, nil
}

// Read reads like net.Conn.Read.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.rbuf, c.rn, c.rerr = p, 0, nil
	err := c.rc.Read(c.readFn)
	c.rbuf = nil
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case c.rerr != nil:
		return 0, c.opError("read", os.NewSyscallError("read", c.rerr))
	case c.rn == 0:
		return 0, io.EOF
	}
	return c.rn, nil
}

// doRead runs under the netpoller's read lock; false means "wait until
// readable and call again".
func (c *Conn) doRead(fd uintptr) bool {
	for {
		n, err := rawsys.Read(int(fd), c.rbuf)
		switch {
		case err == nil:
			c.rn = n
			return true
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EAGAIN):
			return false
		}
		c.rerr = err
		return true
	}
}

// Write writes all of p like net.Conn.Write.
func (c *Conn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf, c.wn, c.werr = p, 0, nil
	err := c.rc.Write(c.writeFn)
	n := c.wn
	c.wbuf = nil
	switch {
	case err != nil:
		return n, c.opError("write", err)
	case c.werr != nil:
		return n, c.opError("write", os.NewSyscallError("write", c.werr))
	}
	return n, nil
}

func (c *Conn) doWrite(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		n, err := rawsys.Write(int(fd), c.wbuf[c.wn:])
		switch {
		case err == nil:
			c.wn += n
		case errors.Is(err, syscall.EINTR):
		case errors.Is(err, syscall.EAGAIN):
			return false
		default:
			c.werr = err
			return true
		}
	}
	return true
}

func (c *Conn) opError(op string, err error) error {
	if oe, ok := err.(*net.OpError); ok {
		// The netpoller's own errors (deadline, closed) come wrapped as
		// "raw-read"/"raw-write"; name the operation the caller did.
		oe.Op = op
		return oe
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

func wrap(c net.Conn) (net.Conn, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	rc, err := Wrap(tc)
	if err != nil {
		c.Close()
		return nil, err
	}
	return rc, nil
}
