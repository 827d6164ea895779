package harness

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/plexbus/plex/wire"
)

// Raw is one blocking protocol client, as a device would be, for tests
// that follow a single connection closely. It is not safe for concurrent use.
type Raw struct {
	t testing.TB
	C net.Conn
	r *wire.Reader
}

// Dial connects a Raw client to an edge, big-endian, failing the test on
// error. The connection is closed at cleanup.
func Dial(t testing.TB, addr string) *Raw {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &Raw{t: t, C: c, r: wire.NewReader(c, wire.BigEndian, 0)}
}

// Send writes one frame.
func (r *Raw) Send(uri, body string) {
	r.t.Helper()
	_ = r.C.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.C.Write(wire.AppendFrame(nil, wire.BigEndian, &wire.Message{URI: uri, Body: body})); err != nil {
		r.t.Fatalf("send %s: %v", uri, err)
	}
}

// Read reads one frame within d.
func (r *Raw) Read(d time.Duration) (wire.Message, error) {
	_ = r.C.SetReadDeadline(time.Now().Add(d))
	var m wire.Message
	err := r.r.ReadMessage(&m)
	return m, err
}

// Expect reads one frame within d and fails the test unless its uri is uri.
func (r *Raw) Expect(uri string, d time.Duration) wire.Message {
	r.t.Helper()
	m, err := r.Read(d)
	if err != nil {
		r.t.Fatalf("waiting %s for %s: %v", d, uri, err)
	}
	if m.URI != uri {
		r.t.Fatalf("got %+v, want uri %s", m, uri)
	}
	return m
}

// Login sends auth data and expects /auth/success.
func (r *Raw) Login(auth string) {
	r.t.Helper()
	r.Send(wire.URIAuth, auth)
	r.Expect(wire.URIAuthSuccess, 5*time.Second)
}

// ExpectClosed reads until the peer closes, failing after d.
func (r *Raw) ExpectClosed(d time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(d)
	for {
		_, err := r.Read(time.Until(deadline))
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			r.t.Fatalf("connection still open after %s", d)
		}
		return // EOF, reset, truncated: closed
	}
}
