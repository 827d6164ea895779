package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/plexbus/plex/edge"
	"github.com/plexbus/plex/test/busfaults/harness"
)

// serverCert returns a server certificate for 127.0.0.1 from a CA made for
// the test, and a pool that trusts that CA.
func serverCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	ca := harness.NewCA(t, "plex test CA")
	certFile, keyFile := ca.Issue(t, t.TempDir(), "edge", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return cert, ca.Pool
}

func TestTLS(t *testing.T) {
	cert, pool := serverCert(t)
	st := newStack(t)
	e := st.edge(edge.Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})

	t.Run("trusted", func(t *testing.T) {
		cfg := fastConfig(e.addr(), "uid:tls")
		cfg.TLS = &tls.Config{RootCAs: pool} // ServerName taken from the address
		c := start(t, cfg)
		c.rec.wait("connect")
		st.push("tls", "", 0, "secret")
		if m := c.rec.wait("message"); m.msg.Body != "secret" {
			t.Fatalf("got %+v", m)
		}
	})
	t.Run("untrusted", func(t *testing.T) {
		cfg := fastConfig(e.addr(), "uid:tls")
		cfg.TLS = &tls.Config{}
		cfg.Reconnect = ReconnectNever
		c := start(t, cfg)
		f := c.rec.wait("connect_failed").info
		if _, ok := errors.AsType[*tls.CertificateVerificationError](f.Err); !ok {
			t.Fatalf("connect failed %+v, want a certificate error", f)
		}
	})
}
