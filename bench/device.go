package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/plexbus/plex/wire"
)

// Dialer opens device connections, spreading them over source addresses
// 127.0.0.1 … 127.0.0.N so one box can hold more than one address's
// ephemeral ports (about 28,000) against one edge.
type Dialer struct {
	Addr      string
	SourceIPs int // 127.0.0.x addresses to use; 0 or 1 = the default route
	Timeout   time.Duration
	Order     wire.Order
}

func (d *Dialer) dial(ctx context.Context, i int) (net.Conn, error) {
	nd := net.Dialer{Timeout: d.Timeout}
	if d.SourceIPs > 1 {
		idx := i % d.SourceIPs
		nd.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, byte(idx/250), byte(1+idx%250))}
	}
	return nd.DialContext(ctx, "tcp", d.Addr)
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
