package hostile

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/plexbus/plex/wire"
)

// rawConn is a device speaking frames on a plain or TLS socket.
type rawConn struct {
	net.Conn
	r *wire.Reader
}

func newRaw(c net.Conn) *rawConn {
	return &rawConn{Conn: c, r: wire.NewReader(c, wire.BigEndian, 0)}
}

// dialFrom opens a TCP connection to addr from source address src
// (127.0.0.x), so tests can play several client addresses on loopback.
func dialFrom(src, addr string) (*rawConn, error) {
	c, err := dialer(src).Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return newRaw(c), nil
}

func dialer(src string) *net.Dialer {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	return d
}

// dialTLS opens a TLS connection to addr and completes the handshake.
func dialTLS(addr string, cfg *tls.Config) (*rawConn, error) {
	c, err := tls.DialWithDialer(dialer(""), "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	return newRaw(c), nil
}

func frame(uri, body string) []byte {
	return wire.AppendFrame(nil, wire.BigEndian, &wire.Message{URI: uri, Body: body})
}

func (c *rawConn) send(uri, body string) error {
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Write(frame(uri, body))
	return err
}

// next reads one message within timeout.
func (c *rawConn) next(timeout time.Duration) (wire.Message, error) {
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	var m wire.Message
	err := c.r.ReadMessage(&m)
	return m, err
}

// login sends uid's token and waits for /auth/success; it returns the
// time from sending to the answer.
func (c *rawConn) login(uid string, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	if err := c.send(wire.URIAuth, "uid:"+uid); err != nil {
		return 0, err
	}
	m, err := c.next(timeout)
	if err != nil {
		return 0, fmt.Errorf("login %s: %w", uid, err)
	}
	if m.URI != wire.URIAuthSuccess {
		return 0, fmt.Errorf("login %s: got %s %q", uid, m.URI, m.Body)
	}
	return time.Since(start), nil
}

// untilClosed reads until the peer closes the connection (EOF, reset, a
// frame cut short) or timeout passes; it returns the last frame read
// before the close and whether the connection was closed.
func (c *rawConn) untilClosed(timeout time.Duration) (last wire.Message, closed bool) {
	deadline := time.Now().Add(timeout)
	_ = c.SetReadDeadline(deadline)
	for {
		p, err := c.r.ReadFrame()
		if err == nil {
			_ = wire.DecodeInto(p, &last)
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return last, false
		}
		return last, true
	}
}

// closedByPeer reports whether err says the peer closed the connection.
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// latencies is a set of samples.
type latencies []time.Duration

func (l latencies) pct(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	i := int(p / 100 * float64(len(s)))
	return s[min(i, len(s)-1)]
}

func (l latencies) max() time.Duration { return l.pct(100) }

func (l latencies) String() string {
	r := func(d time.Duration) time.Duration {
		if d > time.Millisecond {
			return d.Round(10 * time.Microsecond)
		}
		return d.Round(time.Microsecond)
	}
	return fmt.Sprintf("n=%d p50=%v p99=%v max=%v", len(l), r(l.pct(50)), r(l.pct(99)), r(l.max()))
}

// prober is a well-behaved device measuring the service it gets while an
// attack runs: it logs in again and again (login latency) and is pushed
// to (push latency: publish on the bus to frame read).
type prober struct {
	st   pusher
	addr string
	src  string // source address

	mu       sync.Mutex
	logins   latencies
	pushes   latencies
	failures []string
}

type pusher interface{ push(uid, body string) error }

// run logs in as a fresh uid every interval until ctx ends, and pushes
// once to each session.
func (p *prober) run(ctx context.Context, name string, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for i := 0; ; i++ {
		p.once(name + "-" + strconv.Itoa(i))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p *prober) fail(format string, a ...any) {
	p.mu.Lock()
	p.failures = append(p.failures, fmt.Sprintf(format, a...))
	p.mu.Unlock()
}

func (p *prober) once(uid string) {
	start := time.Now()
	c, err := dialFrom(p.src, p.addr)
	if err != nil {
		p.fail("dial: %v", err)
		return
	}
	defer c.Close()
	if _, err := c.login(uid, 5*time.Second); err != nil {
		p.fail("%v", err)
		return
	}
	login := time.Since(start) // dial and login: what a device waits for
	sent := time.Now()
	if err := p.st.push(uid, "probe"); err != nil {
		p.fail("push: %v", err)
		return
	}
	m, err := c.next(5 * time.Second)
	if err != nil || m.Body != "probe" {
		p.fail("push to %s: got %+v, %v", uid, m, err)
		return
	}
	p.mu.Lock()
	p.logins = append(p.logins, login)
	p.pushes = append(p.pushes, time.Since(sent))
	p.mu.Unlock()
}

func (p *prober) results() (logins, pushes latencies, failures []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.logins), slices.Clone(p.pushes), slices.Clone(p.failures)
}

// pushWatch pushes a timestamp to a logged-in connection every interval
// and measures how long each takes to arrive.
type pushWatch struct {
	mu      sync.Mutex
	lat     latencies
	sent    int
	errs    []string
	stopped chan struct{}
}

// watchPushes runs until ctx ends, then closes c; c must be logged in as
// uid and is read only by it.
func watchPushes(ctx context.Context, st pusher, c *rawConn, uid string, every time.Duration) *pushWatch {
	w := &pushWatch{stopped: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // reader
		defer wg.Done()
		for {
			m, err := c.next(time.Hour)
			if err != nil {
				if ctx.Err() == nil {
					w.mu.Lock()
					w.errs = append(w.errs, "read: "+err.Error())
					w.mu.Unlock()
				}
				return
			}
			if m.URI != wire.URIPush {
				continue
			}
			ns, err := strconv.ParseInt(m.Body, 10, 64)
			if err != nil {
				continue
			}
			w.mu.Lock()
			w.lat = append(w.lat, time.Since(time.Unix(0, ns)))
			w.mu.Unlock()
		}
	}()
	go func() {
		defer close(w.stopped)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				// Let the last pushes land, then end the reader.
				time.Sleep(200 * time.Millisecond)
				c.Close()
				wg.Wait()
				return
			case <-t.C:
				if err := st.push(uid, strconv.FormatInt(time.Now().UnixNano(), 10)); err != nil {
					w.mu.Lock()
					w.errs = append(w.errs, "push: "+err.Error())
					w.mu.Unlock()
					continue
				}
				w.mu.Lock()
				w.sent++
				w.mu.Unlock()
			}
		}
	}()
	return w
}

// result waits for the watcher to stop and returns what it saw.
func (w *pushWatch) result() (lat latencies, sent int, errs []string) {
	<-w.stopped
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.lat), w.sent, slices.Clone(w.errs)
}
