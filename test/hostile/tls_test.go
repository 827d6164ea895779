package hostile

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plexbus/plex/client"
	"github.com/plexbus/plex/test/busfaults/harness"
	"github.com/plexbus/plex/wire"
)

// TestTLS runs plex edge with --tls-cert and --tls-key from a CA made for
// the test, and checks: the Go client SDK trusting that CA logs in and is
// pushed to; a raw crypto/tls client speaks frames (login, heartbeat,
// push); a plain TCP client on the TLS port is closed at once without a
// frame, and a silent one at the auth timeout; clients refuse an edge
// whose certificate is from an unknown CA, for another name, or expired;
// and through all of that the edge keeps serving.
func TestTLS(t *testing.T) {
	const authTimeout = 2 * time.Second
	dir := t.TempDir()
	ca := harness.NewCA(t, "plex test CA")
	certFile, keyFile := ca.Issue(t, dir, "edge", time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	trust := &tls.Config{RootCAs: ca.Pool}
	st := newStack(t)
	e := startEdge(t, st.url(), "--tls-cert", certFile, "--tls-key", keyFile, "--auth-timeout", authTimeout.String())

	t.Run("sdk", func(t *testing.T) {
		connected := make(chan client.ConnectInfo, 1)
		msgs := make(chan client.Message, 1)
		cl, err := client.New(client.Config{
			Addr: e.addr, Auth: "uid:tls-sdk", TLS: trust.Clone(), Reconnect: client.ReconnectNever,
			OnConnect: func(ci client.ConnectInfo) { connected <- ci },
			OnMessage: func(m client.Message) { msgs <- m },
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- cl.Run(ctx) }()
		defer func() {
			cancel()
			<-done
		}()
		select {
		case ci := <-connected:
			if ci.UID != "tls-sdk" {
				t.Fatalf("logged in as %q", ci.UID)
			}
		case err := <-done:
			t.Fatalf("Run: %v", err)
		case <-time.After(5 * time.Second):
			t.Fatal("the SDK did not log in over TLS")
		}
		if err := st.push("tls-sdk", "over tls"); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-msgs:
			if m.Body != "over tls" {
				t.Fatalf("got %+v", m)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no push over TLS")
		}
	})

	t.Run("raw tls client", func(t *testing.T) {
		c, err := dialTLS(e.addr, trust.Clone())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if v := c.Conn.(*tls.Conn).ConnectionState().Version; v < tls.VersionTLS12 {
			t.Errorf("TLS version %x, want 1.2 or later", v)
		}
		if _, err := c.login("tls-raw", 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := c.send(wire.URIHeartbeat, ""); err != nil {
			t.Fatal(err)
		}
		if m, err := c.next(5 * time.Second); err != nil || m.URI != wire.URIHeartbeat {
			t.Fatalf("heartbeat: %+v, %v", m, err)
		}
		if err := st.push("tls-raw", "raw over tls"); err != nil {
			t.Fatal(err)
		}
		if m, err := c.next(5 * time.Second); err != nil || m.Body != "raw over tls" {
			t.Fatalf("push: %+v, %v", m, err)
		}
	})

	t.Run("plain tcp to the tls port", func(t *testing.T) {
		before := e.scrape()
		c, err := dialFrom("127.0.0.5", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		if err := c.send(wire.URIAuth, "uid:plain"); err != nil {
			t.Fatal(err)
		}
		// Whatever comes back (nothing, or a TLS alert) is not a frame the
		// client can act on, and the edge hangs up at once.
		_ = c.SetReadDeadline(time.Now().Add(authTimeout + time.Second))
		got, err := readAll(c.Conn)
		took := time.Since(start)
		t.Logf("a plain TCP client sending a login to the TLS port: %d bytes back, closed after %v (%v)", len(got), took.Round(time.Millisecond), err)
		if !closedByPeer(err) {
			t.Fatalf("not closed by the edge: %v after %v", err, took)
		}
		if took > authTimeout/2 {
			t.Errorf("closed after %v: it waited for the auth timeout", took)
		}
		if len(got) > 0 && got[0] != 0x15 { // a TLS alert record
			t.Errorf("the edge answered plain TCP with %q", got)
		}
		waitFor(t, 2*time.Second, "the read_error disconnect counted", func() bool {
			return delta(t, before, e.scrape(), `plex_edge_disconnects_total{reason="read_error"}`) == 1
		})

		// A plain client that says nothing is closed at the auth timeout.
		s, err := dialFrom("127.0.0.5", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		start = time.Now()
		_ = s.SetReadDeadline(time.Now().Add(authTimeout + 3*time.Second))
		_, err = readAll(s.Conn)
		took = time.Since(start)
		if !closedByPeer(err) || took < authTimeout*3/4 || took > authTimeout+2*time.Second {
			t.Errorf("a silent plain client on the TLS port: %v after %v, want closed at the auth timeout %v", err, took, authTimeout)
		}
	})

	t.Run("bad certificates refused", func(t *testing.T) {
		other := harness.NewCA(t, "someone else's CA")
		expCert, expKey := ca.Issue(t, dir, "expired", time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
		expired := startEdge(t, st.url(), "--tls-cert", expCert, "--tls-key", expKey)
		for _, tc := range []struct {
			name string
			addr string
			cfg  *tls.Config
			want func(error) bool
		}{
			{"unknown authority", e.addr, &tls.Config{RootCAs: other.Pool}, func(err error) bool {
				_, ok := errors.AsType[x509.UnknownAuthorityError](err)
				return ok
			}},
			{"wrong name", e.addr, &tls.Config{RootCAs: ca.Pool, ServerName: "push.example.com"}, func(err error) bool {
				_, ok := errors.AsType[x509.HostnameError](err)
				return ok
			}},
			{"expired", expired.addr, &tls.Config{RootCAs: ca.Pool}, func(err error) bool {
				ie, ok := errors.AsType[x509.CertificateInvalidError](err)
				return ok && ie.Reason == x509.Expired
			}},
		} {
			c, err := dialTLS(tc.addr, tc.cfg)
			if err == nil {
				c.Close()
				t.Errorf("%s: the raw client accepted the certificate", tc.name)
				continue
			}
			if !tc.want(err) {
				t.Errorf("%s: raw client: %v", tc.name, err)
			}
			// The SDK refuses too, and reports it.
			failed := make(chan client.DisconnectInfo, 1)
			cl, err := client.New(client.Config{
				Addr: tc.addr, Auth: "uid:victim", TLS: tc.cfg, Reconnect: client.ReconnectNever,
				OnConnectFailed: func(d client.DisconnectInfo) { failed <- d },
				OnConnect:       func(client.ConnectInfo) { t.Errorf("%s: the SDK logged in", tc.name) },
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_ = cl.Run(ctx)
			cancel()
			select {
			case d := <-failed:
				if !tc.want(d.Err) {
					t.Errorf("%s: SDK: %v", tc.name, d.Err)
				}
			default:
				t.Errorf("%s: the SDK reported no failed connection", tc.name)
			}
		}
	})

	// Still serving.
	c, err := dialTLS(e.addr, trust.Clone())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.login("tls-after", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	c.Close()
	waitFor(t, 5*time.Second, "no connections left", func() bool {
		return e.scrape().get(t, "plex_edge_connections") == 0
	})
}

// TestTLSBadKeyMaterial starts plex edge with broken TLS flags: it must
// refuse to start, with a message and a non-zero exit, rather than serve
// plain TCP.
func TestTLSBadKeyMaterial(t *testing.T) {
	dir := t.TempDir()
	ca := harness.NewCA(t, "plex test CA")
	certFile, keyFile := ca.Issue(t, dir, "edge", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	_, otherKey := ca.Issue(t, dir, "other", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"cert without key", []string{"--tls-cert", certFile}, 2, "--tls-cert and --tls-key go together"},
		{"key of another cert", []string{"--tls-cert", certFile, "--tls-key", otherKey}, 1, "TLS certificate"},
		{"junk cert", []string{"--tls-cert", junk, "--tls-key", keyFile}, 1, "TLS certificate"},
		{"missing file", []string{"--tls-cert", filepath.Join(dir, "nope.crt"), "--tls-key", keyFile}, 1, "TLS certificate"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		args := append([]string{"edge", "--port", "0", "--bind", "127.0.0.1", "--nats", "nats://127.0.0.1:1"}, tc.args...)
		out, err := exec.CommandContext(ctx, harness.Plex(t), args...).CombinedOutput()
		cancel()
		ee, ok := errors.AsType[*exec.ExitError](err)
		if !ok || ee.ExitCode() != tc.code || !strings.Contains(string(out), tc.msg) {
			t.Errorf("%s: %v, output %q; want exit %d mentioning %q", tc.name, err, out, tc.code, tc.msg)
		}
	}
}

// readAll reads until an error and returns what came and the error.
func readAll(c net.Conn) ([]byte, error) {
	var got []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			return got, err
		}
	}
}
