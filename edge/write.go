package edge

import (
	"errors"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/plexbus/plex/wire"
)

// Buffers for queued bytes come from a pool and go back once written, so an
// idle connection holds none.
const pooledBufSize = 4 << 10

var bufPool = sync.Pool{New: func() any {
	b := make([]byte, 0, pooledBufSize)
	return &b
}}

func getBuf() []byte { return (*bufPool.Get().(*[]byte))[:0] }

func putBuf(b []byte) {
	if cap(b) > 64<<10 {
		return // let an outsized buffer go
	}
	b = b[:0]
	bufPool.Put(&b)
}

// buf returns the queue buffer, taking one from the pool if needed. wmu held.
func (c *conn) buf() []byte {
	if c.out == nil {
		c.out = getBuf()
	}
	return c.out
}

// errQueueFull is returned by enqueuePush when a connection is a slow consumer.
var errQueueFull = errors.New("edge: send queue full")

// errWriteClosed is returned by enqueuePush after the last frame.
var errWriteClosed = errors.New("edge: connection closed for writing")

// enqueuePush queues one pushed frame. hasSeq says whether the publisher set
// Plex-Seq; else the connection's own counter supplies it. It reports
// errQueueFull when the frame does not fit in the send queue.
func (c *conn) enqueuePush(seq int64, hasSeq bool, uri string, body []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wclosed {
		return errWriteClosed
	}
	queued := len(c.out) + int(c.inflight)
	if queued > 0 && queued+wire.HeaderSize+len(body)+len(uri)+64 > c.srv.cfg.SendQueueBytes {
		return errQueueFull
	}
	if !hasSeq {
		c.seq++
		seq = c.seq
	}
	c.out = wire.AppendFrameParts(c.buf(), c.srv.cfg.ByteOrder, seq, uri, body)
	return nil
}

// sendControl queues a protocol frame and flushes it at once.
func (c *conn) sendControl(uri, body string) {
	c.wmu.Lock()
	if c.wclosed {
		c.wmu.Unlock()
		return
	}
	c.out = wire.AppendFrameParts(c.buf(), c.srv.cfg.ByteOrder, 0, uri, body)
	c.wmu.Unlock()
	c.flush()
}

// flush hands queued bytes to the socket. On the epoll path: one direct
// non-blocking write (no goroutine, no copy); what the socket does not take
// waits for the poller to see it writable. On the goroutine path: a
// flusher goroutine that blocks under the write deadline.
func (c *conn) flush() {
	c.wmu.Lock()
	if c.flushing || len(c.out) == 0 || c.state.Load() == stateClosed {
		c.wmu.Unlock()
		return
	}
	if c.fd >= 0 {
		err := c.writeOutLocked()
		c.wmu.Unlock()
		if err != nil {
			c.close(ReasonWriteError)
		}
		return
	}
	c.flushing = true
	c.wmu.Unlock()
	c.srv.wg.Add(1)
	go c.flushLoop()
}

// writeOutLocked writes the queue on the epoll path until the socket stops
// taking bytes, then asks the poller to finish when it is writable. wmu held.
func (c *conn) writeOutLocked() error {
	for len(c.out) > 0 {
		c.srv.metrics.socketWrites.Inc()
		n, err := writeFD(c.fd, c.out)
		if n > 0 {
			c.out = c.out[:copy(c.out, c.out[n:])]
			continue
		}
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if errors.Is(err, syscall.EAGAIN) {
			if !c.flushing {
				c.flushing = true
				c.blockedAt.Store(time.Now().UnixNano())
				c.poller.wantWrite(c, true)
			}
			return nil
		}
		return err
	}
	putBuf(c.out)
	c.out = nil
	c.blockedAt.Store(0)
	if c.flushing {
		c.flushing = false
		c.poller.wantWrite(c, false)
	}
	if c.finAfter {
		c.finAfter = false
		shutdownWrite(c.fd)
	}
	return nil
}

// writable is the poller's EPOLLOUT callback.
func (c *conn) writable() {
	c.wmu.Lock()
	if !c.flushing || c.state.Load() == stateClosed {
		c.wmu.Unlock()
		return
	}
	err := c.writeOutLocked()
	c.wmu.Unlock()
	if err != nil {
		c.close(ReasonWriteError)
	}
}

// flushLoop writes the queue with blocking writes under the write deadline
// until it is empty (goroutine path). It owns the socket's write side
// while it runs.
func (c *conn) flushLoop() {
	defer c.srv.wg.Done()
	for {
		c.wmu.Lock()
		if len(c.out) == 0 || c.state.Load() == stateClosed {
			c.flushing = false
			if c.out != nil {
				putBuf(c.out)
				c.out = nil
			}
			fin := c.finAfter && c.state.Load() != stateClosed
			c.finAfter = false
			c.wmu.Unlock()
			if fin {
				c.halfCloseNet()
			}
			return
		}
		b := c.out
		c.out = nil
		c.inflight = int32(len(b))
		c.wmu.Unlock()

		_ = c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
		c.srv.metrics.socketWrites.Inc()
		_, err := c.nc.Write(b)
		putBuf(b)
		c.wmu.Lock()
		c.inflight = 0
		c.wmu.Unlock()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				c.srv.metrics.queueDrops.WithLabelValues("conn").Inc()
				c.close(ReasonSlow)
			} else {
				c.close(ReasonWriteError)
			}
			c.wmu.Lock()
			c.flushing = false
			c.wmu.Unlock()
			return
		}
	}
}

// halfCloseNet sends FIN after the last frame so the client reads it and
// hangs up; the reader then sees EOF and closes the socket.
func (c *conn) halfCloseNet() {
	type closeWriter interface{ CloseWrite() error }
	if cw, ok := c.nc.(closeWriter); ok {
		if cw.CloseWrite() == nil {
			return
		}
	}
	c.closeSocket()
}

// writeStalled reports whether the socket has taken no bytes for longer
// than the write timeout (epoll path; the sweeper closes such clients).
func (c *conn) writeStalled(now int64) bool {
	at := c.blockedAt.Load()
	return at != 0 && now-at > int64(c.srv.cfg.WriteTimeout)
}

// appendDelivered builds a {"delivered":n,"edge":id} reply without reflection.
func appendDelivered(dst []byte, n int, edge string) []byte {
	dst = append(dst, `{"delivered":`...)
	dst = strconv.AppendInt(dst, int64(n), 10)
	dst = append(dst, `,"edge":`...)
	dst = strconv.AppendQuote(dst, edge)
	return append(dst, '}')
}
