package edge

import (
	"errors"
	"net"
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

// errQueueFull is returned by enqueue when a connection is a slow consumer.
var errQueueFull = errors.New("edge: send queue full")

// enqueuePush queues one pushed frame. hasSeq says whether the publisher set
// Plex-Seq; else the connection's own counter supplies it. It reports
// errQueueFull when the frame does not fit in the send queue.
func (c *conn) enqueuePush(seq int64, hasSeq bool, uri string, body []byte) error {
	c.wmu.Lock()
	if c.wclosed {
		c.wmu.Unlock()
		return net.ErrClosed
	}
	if len(c.out)+c.inflight+wire.HeaderSize+len(body)+len(uri)+64 > c.srv.cfg.SendQueueBytes && len(c.out)+c.inflight > 0 {
		c.wmu.Unlock()
		return errQueueFull
	}
	if !hasSeq {
		c.seq++
		seq = c.seq
	}
	c.out = wire.AppendFrameParts(c.buf(), c.srv.cfg.ByteOrder, seq, uri, body)
	c.wmu.Unlock()
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

// flush hands queued bytes to the socket: one direct non-blocking write
// when possible (no goroutine, no copy), else a flusher goroutine that
// blocks under the write deadline.
func (c *conn) flush() {
	c.wmu.Lock()
	if c.flushing || len(c.out) == 0 {
		c.wmu.Unlock()
		return
	}
	if c.state.Load() == stateClosed {
		c.wmu.Unlock()
		return
	}
	if c.raw != nil {
		n, err := c.writeDirect(c.out)
		switch {
		case err == nil && n == len(c.out):
			putBuf(c.out)
			c.out = nil
			fin := c.finAfter
			c.wmu.Unlock()
			if fin {
				c.halfClose()
			}
			return
		case err != nil && !errors.Is(err, syscall.EAGAIN):
			c.wmu.Unlock()
			c.close(ReasonWriteError)
			return
		}
		c.out = c.out[:copy(c.out, c.out[n:])]
	}
	c.flushing = true
	c.wmu.Unlock()
	c.srv.wg.Add(1)
	go c.flushLoop()
}

// writeDirect makes one non-blocking write attempt. wmu held.
func (c *conn) writeDirect(b []byte) (int, error) {
	c.wbuf, c.wn, c.werr = b, 0, nil
	if err := c.raw.Write(c.writeFn); err != nil {
		c.wbuf = nil
		return 0, err
	}
	c.wbuf = nil
	return c.wn, c.werr
}

// writeDirectFD is the raw write; a method value stored once per connection
// so the push path allocates no closure.
func (c *conn) writeDirectFD(fd uintptr) bool {
	n, err := syscall.Write(int(fd), c.wbuf)
	if n < 0 {
		n = 0
	}
	c.wn, c.werr = n, err
	return true // never wait for writability here; the flusher does that
}

// flushLoop writes the queue with blocking writes under the write deadline
// until it is empty. It owns the socket's write side while it runs.
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
			c.wmu.Unlock()
			if fin {
				c.halfClose()
			}
			return
		}
		b := c.out
		c.out = nil
		c.inflight = len(b)
		c.wmu.Unlock()

		_ = c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
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

// halfClose sends FIN after the last frame so the client reads it and
// hangs up; the reader then sees EOF and closes the socket.
func (c *conn) halfClose() {
	type closeWriter interface{ CloseWrite() error }
	if cw, ok := c.nc.(closeWriter); ok {
		if cw.CloseWrite() == nil {
			return
		}
	}
	c.closeSocket()
}

// appendDelivered builds a {"delivered":n,"edge":id} reply without reflection.
func appendDelivered(dst []byte, n int, edge string) []byte {
	dst = append(dst, `{"delivered":`...)
	dst = strconv.AppendInt(dst, int64(n), 10)
	dst = append(dst, `,"edge":`...)
	dst = strconv.AppendQuote(dst, edge)
	return append(dst, '}')
}
