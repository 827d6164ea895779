package client

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/plexbus/plex/edge"
)

// selfSigned returns a server certificate for 127.0.0.1 and a pool that
// trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "plex test edge"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

func TestTLS(t *testing.T) {
	cert, pool := selfSigned(t)
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
