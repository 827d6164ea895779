package bus

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/plexbus/plex/rawconn"
)

// ConnConfig says how a part reaches the bus. The zero value connects to
// nats://127.0.0.1:4222 without credentials.
type ConnConfig struct {
	// URLs is a comma-separated list of servers; the client fails over
	// between them. Empty = nats.DefaultURL.
	URLs string
	// Name identifies the connection in the server's monitoring.
	Name string
	// User and Password, or Token, or CredsFile (a .creds file) authenticate;
	// at most one of them.
	User, Password string
	Token          string
	CredsFile      string
	// TLS: CAFile verifies the server; CertFile+KeyFile present a client
	// certificate. Any of them turns TLS on.
	CAFile, CertFile, KeyFile string
	// NoRandomize connects to URLs in the order given (nats.go shuffles them
	// by default), so a part can be tied to its own zone's node and keep
	// the others for failover.
	NoRandomize bool
	// InboxPrefix replaces "_INBOX" in reply subjects, so a role can be
	// allowed to subscribe only its own replies. Empty = _INBOX.
	InboxPrefix string
	// ConnectTimeout per dial attempt. Zero = 2 s.
	ConnectTimeout time.Duration
	// ReconnectWait between reconnect attempts to one server (jittered).
	// Zero = 250 ms, so a restarted server is found quickly.
	ReconnectWait time.Duration
	// Logger gets disconnect, reconnect and async error events. Nil = discard.
	Logger *slog.Logger
}

// Connect dials the bus and keeps reconnecting forever. Options in extra are
// applied last, so a caller can replace the logging handlers set here.
func Connect(cfg ConnConfig, extra ...nats.Option) (*nats.Conn, error) {
	opts, err := cfg.Options()
	if err != nil {
		return nil, err
	}
	urls := cfg.URLs
	if urls == "" {
		urls = nats.DefaultURL
	}
	nc, err := nats.Connect(urls, append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("bus: connect %s: %w", RedactURLs(urls), err)
	}
	return nc, nil
}

// Options turns the config into nats.go options.
func (cfg ConnConfig) Options() ([]nats.Option, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	timeout := cfg.ConnectTimeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	wait := cfg.ReconnectWait
	if wait <= 0 {
		wait = 250 * time.Millisecond
	}
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.Timeout(timeout),
		// Raw reads and writes: see package rawconn for why.
		nats.SetCustomDialer(rawconn.Dialer{Timeout: timeout}),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(wait),
		nats.ReconnectJitter(wait/2, wait/2),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("bus disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("bus reconnected", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Error("bus async error", "subject", subj, "err", err)
		}),
	}
	if cfg.NoRandomize {
		opts = append(opts, nats.DontRandomize())
	}
	if cfg.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(cfg.InboxPrefix))
	}
	n := 0
	for _, set := range []bool{cfg.User != "" || cfg.Password != "", cfg.Token != "", cfg.CredsFile != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		return nil, errors.New("bus: set only one of user/password, token or creds file")
	}
	switch {
	case cfg.User != "" || cfg.Password != "":
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	case cfg.Token != "":
		opts = append(opts, nats.Token(cfg.Token))
	case cfg.CredsFile != "":
		if _, err := os.Stat(cfg.CredsFile); err != nil {
			return nil, fmt.Errorf("bus: creds file: %w", err)
		}
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if cfg.CAFile != "" || cfg.CertFile != "" || cfg.KeyFile != "" {
		tc, err := cfg.tlsConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Secure(tc))
	}
	return opts, nil
}

func (cfg ConnConfig) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("bus: read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("bus: no certificates in CA file %s", cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, errors.New("bus: client certificate needs both cert and key files")
	}
	if cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("bus: load client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// RedactURLs hides passwords in a comma-separated URL list for logs and errors.
func RedactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, u := range parts {
		u = strings.TrimSpace(u)
		if at := strings.LastIndex(u, "@"); at >= 0 {
			scheme := ""
			if k := strings.Index(u, "://"); k >= 0 && k < at {
				scheme = u[:k+3]
			}
			u = scheme + "[redacted]" + u[at:]
		}
		parts[i] = u
	}
	return strings.Join(parts, ",")
}
