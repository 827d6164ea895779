package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/plexbus/plex/wire"
)

// Dialer opens device connections. With ExplicitPorts, device i binds
// source address 127.0.(k/250).(1+k%250), k = i mod SourceIPs, and source
// port 10000 + i/SourceIPs before connecting: the kernel's search for a
// free ephemeral port grows slow as one address's ports fill up (it was
// half of the load generator's CPU at 20,000 connections), one box can hold
// more connections than one address has ports, and no single address
// exceeds the edge's per-address limits the way a real user base would not.
type Dialer struct {
	// Addr is the edge's host:port; a comma-separated list spreads device i
	// over the edges round-robin (i mod their number).
	Addr          string
	ExplicitPorts bool
	Timeout       time.Duration
	Order         wire.Order
}

// SourceIPs is how many loopback source addresses explicit ports spread
// devices over; each gives ports from 10000 up, below Linux's ephemeral
// range, so they rarely collide (64 addresses × 20,000 ports).
const SourceIPs = 64

// sourceAddr is device i's explicit source address and port.
func sourceAddr(i int) ([4]byte, int) {
	k := i % SourceIPs
	return [4]byte{127, 0, byte(k / 250), byte(1 + k%250)}, 10000 + (i/SourceIPs)%20000
}

func (d *Dialer) addr(i int) string {
	if !strings.Contains(d.Addr, ",") {
		return d.Addr
	}
	all := strings.Split(d.Addr, ",")
	return strings.TrimSpace(all[i%len(all)])
}

func (d *Dialer) dial(ctx context.Context, i int) (net.Conn, error) {
	nd := net.Dialer{Timeout: d.Timeout}
	addr := d.addr(i)
	if d.ExplicitPorts {
		ip, port := sourceAddr(i)
		nd.LocalAddr = &net.TCPAddr{IP: net.IP(ip[:]), Port: port}
		// A port left in TIME_WAIT by the previous run may be bound again.
		nd.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
			})
			return errors.Join(err, serr)
		}
		c, err := nd.DialContext(ctx, "tcp", addr)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) {
			return c, err
		}
		// Someone else holds that port: let the kernel pick one.
		nd.LocalAddr, nd.Control = &net.TCPAddr{IP: nd.LocalAddr.(*net.TCPAddr).IP}, nil
	}
	return nd.DialContext(ctx, "tcp", addr)
}

// Device is one logged-in connection. R holds what was read past the
// login, so keep reading with it.
type Device struct {
	UID  string
	Conn net.Conn
	R    *wire.Reader
	wmu  sync.Mutex
	hb   []byte
}

// ErrRefused is a login answered with /auth/failed.
var ErrRefused = errors.New("login refused")

// Login dials and logs in with token; it returns the device and how long
// the login took (dial to /auth/success).
func (d *Dialer) Login(ctx context.Context, i int, uid, token string) (*Device, time.Duration, error) {
	start := time.Now()
	c, err := d.dial(ctx, i)
	if err != nil {
		return nil, 0, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	deadline := time.Now().Add(d.Timeout)
	_ = c.SetDeadline(deadline)
	if _, err := c.Write(wire.AppendFrame(nil, d.Order, &wire.Message{URI: wire.URIAuth, Body: token})); err != nil {
		c.Close()
		return nil, 0, err
	}
	r := wire.NewReaderSize(c, d.Order, 0, 256)
	for {
		var m wire.Message
		if err := r.ReadMessage(&m); err != nil {
			c.Close()
			return nil, 0, err
		}
		switch m.URI {
		case wire.URIAuthSuccess:
			_ = c.SetDeadline(time.Time{})
			dev := &Device{UID: uid, Conn: c, R: r, hb: wire.AppendFrame(nil, d.Order, &wire.Message{URI: wire.URIHeartbeat})}
			return dev, time.Since(start), nil
		case wire.URIAuthFailed:
			c.Close()
			return nil, 0, fmt.Errorf("%w: %s", ErrRefused, m.Body)
		}
	}
}

// Heartbeat sends one heartbeat frame.
func (d *Device) Heartbeat() error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	_ = d.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := d.Conn.Write(d.hb)
	return err
}
