package cluster

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
)

// proxy forwards TCP connections to an in-process edge. Killing it resets
// every device's socket and refuses new ones, which is what devices see
// when the edge's process dies.
type proxy struct {
	t  testing.TB
	ln net.Listener

	mu    sync.Mutex
	conns map[net.Conn]struct{} // both sides of every forwarded connection
	dead  bool

	wg sync.WaitGroup // the accept loop and two copiers per connection
}

func newProxy(t testing.TB) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, ln: ln, conns: make(map[net.Conn]struct{})}
	t.Cleanup(func() {
		p.kill()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

// start forwards accepted connections to target.
func (p *proxy) start(target string) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := p.ln.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					p.t.Errorf("proxy accept: %v", err)
				}
				return
			}
			p.forward(c, target)
		}
	}()
}

func (p *proxy) forward(c net.Conn, target string) {
	up, err := net.Dial("tcp", target)
	if err != nil {
		c.Close()
		return
	}
	if !p.track(c, up) {
		return
	}
	pipe := func(dst, src net.Conn) {
		defer p.wg.Done()
		_, _ = io.Copy(dst, src)
		// One direction ended: end both, as a process closing its socket would.
		p.untrack(c, up)
	}
	p.wg.Add(2)
	go pipe(up, c)
	go pipe(c, up)
}

func (p *proxy) track(c, up net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dead {
		c.Close()
		up.Close()
		return false
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	return true
}

func (p *proxy) untrack(c, up net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
	c.Close()
	up.Close()
}

// kill stops accepting (new dials are refused) and resets every forwarded
// connection. Idempotent.
func (p *proxy) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dead {
		return
	}
	p.dead = true
	p.ln.Close()
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // RST, as the kernel sends for a dead process with unread data
		}
		c.Close()
	}
}
